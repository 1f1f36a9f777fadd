"""Prometheus metrics of one sdcord process (prometheus-client, the standard exporter library), served at
`/metrics` on METRICS_HOST:METRICS_PORT when METRICS_PORT is set. No Discord imports here.

* sdcord_jobs_total{kind, outcome}       jobs that ended (done, failed, cancelled)
* sdcord_job_wait_seconds{kind}          from queued to started
* sdcord_job_run_seconds{kind}           from started to ended
* sdcord_queue_length                    jobs waiting now
* sdcord_backend_up{backend}, sdcord_backend_busy{backend}
* sdcord_discord_api_errors_total{status}  Discord API calls that failed (counted by the Discord side)

The queue and backend gauges are read from the scheduler at scrape time, so they are never stale.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .jobs import FINAL_STATES, Job, JobState

__all__ = ["Metrics", "MetricsServer"]

log = logging.getLogger(__name__)

# seconds: a few-second job to a long queue
WAIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900)
ENDED_MEMORY = 10_000  # ended job ids remembered, so a repeated notice doesn't count a job twice


class _PoolCollector(Collector):
    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = GaugeMetricFamily("sdcord_queue_length", "Jobs waiting for a backend")
        queue.add_metric([], self.scheduler.queue_length())
        up = GaugeMetricFamily("sdcord_backend_up", "1 when the backend answers", labels=["backend"])
        busy = GaugeMetricFamily("sdcord_backend_busy", "1 while the backend runs a job", labels=["backend"])
        for b in self.scheduler.backend_status():
            up.add_metric([b.name], 1.0 if b.up else 0.0)
            busy.add_metric([b.name], 1.0 if b.busy else 0.0)
        yield from (queue, up, busy)


class Metrics:
    """This process's metrics, in a registry of its own (several engines in one test process don't mix)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("sdcord_jobs", "Jobs that ended, by kind and outcome", ["kind", "outcome"],
                            registry=self.registry)
        self.wait = Histogram("sdcord_job_wait_seconds", "Time from queued to started", ["kind"],
                              buckets=WAIT_BUCKETS, registry=self.registry)
        self.run = Histogram("sdcord_job_run_seconds", "Time from started to ended", ["kind"],
                             buckets=RUN_BUCKETS, registry=self.registry)
        self.discord_errors = Counter("sdcord_discord_api_errors", "Discord API calls that failed", ["status"],
                                      registry=self.registry)
        self._seen: dict[str, JobState] = {}  # live jobs' last state (bounded by the live jobs)
        self._ended: OrderedDict[str, None] = OrderedDict()  # recently ended ones: counted once however told

    def watch(self, scheduler: Any) -> None:
        """Follow the scheduler's jobs and read its queue and backends at scrape time."""
        self.registry.register(_PoolCollector(scheduler))
        scheduler.listeners.append(self.on_job)

    def on_job(self, job: Job) -> None:
        before = self._seen.get(job.id)
        if job.state is before:
            return
        kind = str(job.request.kind)
        if job.state is JobState.RUNNING and job.started is not None:
            self.wait.labels(kind).observe(max(0.0, job.started - job.created))
        if job.state in FINAL_STATES:
            self._seen.pop(job.id, None)
            if job.id in self._ended:
                return
            self._ended[job.id] = None
            while len(self._ended) > ENDED_MEMORY:
                self._ended.popitem(last=False)
            self.jobs.labels(kind, job.state.value).inc()
            if job.started is not None and job.finished is not None:
                self.run.labels(kind).observe(max(0.0, job.finished - job.started))
            return
        self._seen[job.id] = job.state

    def discord_error(self, status: int | str) -> None:
        self.discord_errors.labels(str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """`/metrics` in Prometheus text format on host:port (port 0: any free one; see `port`)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics, self.host, self.port = metrics, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else self.port
        log.info("Metrics at http://%s:%s/metrics", self.host, self.port)

    async def _serve(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
