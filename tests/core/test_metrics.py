"""Metrics follow the scheduler's jobs: one count per ended job, a wait and a run time each."""

from __future__ import annotations

import time

from bot.core.jobs import DrawRequest, Job, JobState, Origin
from bot.core.metrics import Metrics


class Pool:
    def __init__(self) -> None:
        self.listeners: list = []
        self.queue: list = []

    def backend_status(self) -> list:
        return []

    def queue_length(self) -> int:
        return len(self.queue)


def test_each_ended_job_is_counted_once_with_its_wait_and_run_time() -> None:
    metrics, pool = Metrics(), Pool()
    metrics.watch(pool)
    job = Job("0000000a", Origin(1, 1), DrawRequest({"prompt": "x"}), 0, 0, time.monotonic() - 3)
    for state in (JobState.QUEUED, JobState.RUNNING, JobState.RUNNING, JobState.DONE, JobState.DONE):
        if state is JobState.RUNNING:
            job.state, job.started = state, job.created + 2
        elif state is JobState.DONE:
            job.finish(JobState.DONE, job.created + 5)
        for listener in pool.listeners:
            listener(job)
    text = metrics.render().decode()
    assert 'sdcord_jobs_total{kind="txt2img",outcome="done"} 1.0' in text
    assert 'sdcord_job_wait_seconds_sum{kind="txt2img"} 2.0' in text
    assert 'sdcord_job_run_seconds_sum{kind="txt2img"} 3.0' in text
    assert "sdcord_queue_length 0.0" in text and not metrics._seen  # nothing kept for an ended job but its id
