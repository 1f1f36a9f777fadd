"""The fair queue and the pool of WebUI backends. No Discord imports.

* Admission: a per-user token bucket (RATE_LIMIT) and a cap on jobs waiting or running per user
  (MAX_QUEUED_PER_USER). A refusal says which limit and when to try again, and costs the WebUI nothing.
* Fairness: start-time fair queuing. Each job gets a round, max(the user's last round + 1, the round
  being served); the lowest round goes next, arrival order within a round. So a user's second job
  waits behind every other user's first job, and a burst from one user can't starve anyone.
* Pool: one worker per backend, so at most one generation is in flight per WebUI (the WebUI runs
  one job at a time and never says "busy"). A backend whose connection fails is marked down and
  health-checked with back-off. Its job goes back to the front of the queue if the request never
  reached the WebUI; otherwise it fails clearly, so a job is never run twice by accident. When every
  backend is down, jobs wait up to BACKEND_WAIT_LIMIT seconds, then fail clearly.
* Lifecycle, progress (read from the running backend's /progress) and cancel live here; the Discord
  side only renders a job's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .ratelimit import RateLimiter
from .webui import WebUIClient, WebUIConnectionError, WebUIError

__all__ = ["Job", "JobState", "JobProgress", "Refused", "Scheduler", "Ticket", "BackendStatus"]

log = logging.getLogger(__name__)

Runner = Callable[["Job", WebUIClient], Awaitable[Any]]


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class JobProgress:
    fraction: float  # 0..1
    step: int  # 1-based step within the current pass
    steps: int
    eta: float | None  # seconds
    preview: bytes | None  # the WebUI's live preview (PNG), if any


class Refused(Exception):
    """A job was not accepted. `limit` is "rate" or "queue"; `retry_in` is seconds from now."""

    def __init__(self, limit: str, retry_in: float, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_in = retry_in
        self.message = message


@dataclass(eq=False)
class Job:
    id: str
    user_id: int
    payload: Any  # what the runner needs (sdcord: the BuiltPayload)
    seq: int
    round: int
    created: float
    channel_id: int | None = None
    guild_id: int | None = None
    filesize_limit: int = 10 * 1024 * 1024
    parent_id: str | None = None  # the job this one reruns
    seen: bool = False  # recorded by the job store
    state: JobState = JobState.QUEUED
    backend: str | None = None
    started: float | None = None
    finished: float | None = None
    progress: JobProgress | None = None
    result: Any = None
    error: BaseException | None = None
    waiting_for_backend: bool = False  # every backend is down
    cancel_requested: bool = False
    cancelled_by: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _on_state: Callable[[Job], None] | None = field(default=None, repr=False)  # the scheduler's listeners

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def touch(self) -> None:
        self._changed.set()

    async def wait_changed(self, timeout: float | None = None) -> bool:
        """Wait until something about the job changed (True) or the timeout passed (False)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def wait_done(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._done.wait(), timeout)

    def _finish(self, state: JobState, now: float, *, result: Any = None, error: BaseException | None = None) -> None:
        self.state, self.finished, self.result, self.error = state, now, result, error
        self.waiting_for_backend = False
        self.touch()
        self._done.set()
        if self._on_state is not None:
            self._on_state(self)


@dataclass(eq=False)
class Ticket:
    """An admitted (rate-limited, slot-reserved) job that is not yet submitted."""

    user_id: int
    used: bool = False


@dataclass(eq=False)
class _Backend:
    name: str
    client: WebUIClient
    up: bool = True
    job: Job | None = None
    last_error: str = ""
    health_task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    up: bool
    busy: bool
    last_error: str


class Scheduler:
    def __init__(
        self,
        clients: list[WebUIClient],
        runner: Runner,
        *,
        rate: int = 5,
        per: float = 60.0,
        max_queued_per_user: int = 3,
        wait_limit: float = 600.0,
        progress_interval: float = 1.0,
        health_backoff: tuple[float, float] = (1.0, 30.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not clients:
            raise ValueError("at least one backend")
        self.runner = runner
        self.limiter = RateLimiter(rate, per, clock=clock)
        self.max_queued_per_user = max_queued_per_user
        self.wait_limit = wait_limit
        self.progress_interval = progress_interval
        self.health_backoff = health_backoff
        self.clock = clock
        self.backends = [_Backend(c.display_url, c) for c in clients]
        self.jobs: dict[str, Job] = {}  # every job not yet final, plus recent final ones
        self._pending: list[Job] = []  # kept sorted by (round, seq)
        self._user_round: dict[int, int] = {}
        self._round = 0  # the round being served
        self._seq = itertools.count()
        self._tickets: dict[int, int] = {}  # user -> admitted but not yet submitted
        self._wakeup = asyncio.Condition()
        self._workers: list[asyncio.Task[None]] = []
        self._all_down_since: float | None = None
        self._avg_duration = 20.0  # seconds; moving average of finished jobs, for estimates
        self._supervisor: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[Job], None]] = []  # told of every state change (e.g. the job store)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._worker(b), name=f"worker {b.name}") for b in self.backends]
        self._supervisor = loop.create_task(self._supervise(), name="scheduler supervisor")

    async def close(self) -> None:
        """Stop the workers; every unfinished job ends as failed, with a clear reason. Idempotent."""
        tasks = [*self._workers, *(b.health_task for b in self.backends if b.health_task)]
        if self._supervisor:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        now = self.clock()
        for job in list(self.jobs.values()):
            if not job.is_final:
                job._finish(JobState.FAILED, now, error=WebUIError("The bot is shutting down; the job was not finished."))

    def _emit(self, job: Job) -> None:
        for listener in self.listeners:
            try:
                listener(job)
            except Exception:  # noqa: BLE001 - a listener must never break the queue
                log.exception("Job listener failed for %s", job.id)

    # ------------------------------------------------------------------ admission
    def _active_count(self, user_id: int) -> int:
        return sum(1 for j in self.jobs.values() if j.user_id == user_id and not j.is_final) + self._tickets.get(
            user_id, 0)

    def admit(self, user_id: int) -> Ticket:
        """Reserve a slot for a job of `user_id`, or raise Refused. Costs the WebUI nothing."""
        if self._active_count(user_id) >= self.max_queued_per_user:
            wait = self._estimate_first_finish(user_id)
            raise Refused("queue", wait, f"You already have {self.max_queued_per_user} jobs waiting or running "
                                         f"(the most one person may have).")
        wait = self.limiter.take(user_id)
        if wait > 0:
            per = "minute" if self.limiter.per == 60 else _duration(self.limiter.per)
            raise Refused("rate", wait, f"You've reached the limit of {self.limiter.rate} jobs per {per} per person.")
        self._tickets[user_id] = self._tickets.get(user_id, 0) + 1
        return Ticket(user_id)

    def release(self, ticket: Ticket, *, refund: bool = True) -> None:
        """Give an unused ticket back (the job was never submitted)."""
        if ticket.used:
            return
        ticket.used = True
        self._drop_ticket(ticket.user_id)
        if refund:
            self.limiter.refund(ticket.user_id)

    def _drop_ticket(self, user_id: int) -> None:
        left = self._tickets.get(user_id, 0) - 1
        if left > 0:
            self._tickets[user_id] = left
        else:
            self._tickets.pop(user_id, None)

    def submit(self, ticket: Ticket, payload: Any, *, channel_id: int | None = None, guild_id: int | None = None,
               filesize_limit: int = 10 * 1024 * 1024, parent_id: str | None = None) -> Job:
        """Queue an admitted job; workers pick it up in fair order."""
        if ticket.used:
            raise RuntimeError("ticket already used")
        ticket.used = True
        self._drop_ticket(ticket.user_id)
        user = ticket.user_id
        job_round = max(self._user_round.get(user, 0) + 1, self._round)
        self._user_round[user] = job_round
        job = Job(secrets.token_hex(4), user, payload, next(self._seq), job_round, self.clock(),
                  channel_id=channel_id, guild_id=guild_id, filesize_limit=filesize_limit, parent_id=parent_id)
        job.waiting_for_backend = not any(b.up for b in self.backends)
        job._on_state = self._emit
        self.jobs[job.id] = job
        self._emit(job)
        self._insert(job)
        self._positions_changed()
        self._notify()
        return job

    # ------------------------------------------------------------------ the queue
    def _insert(self, job: Job) -> None:
        key = (job.round, job.seq)
        index = next((i for i, j in enumerate(self._pending) if (j.round, j.seq) > key), len(self._pending))
        self._pending.insert(index, job)

    def position(self, job: Job) -> int | None:
        """1-based place in the queue (1 = next to start), None when not queued."""
        try:
            return self._pending.index(job) + 1
        except ValueError:
            return None

    @property
    def queued(self) -> list[Job]:
        return list(self._pending)

    def user_jobs(self, user_id: int) -> list[Job]:
        return sorted((j for j in self.jobs.values() if j.user_id == user_id and not j.is_final),
                      key=lambda j: (j.state != JobState.RUNNING, self.position(j) or 0))

    def _reset_round(self, user_id: int) -> None:
        """After a user's job left the queue or finished: their next job's round follows only the
        jobs they still have, so a cancelled burst doesn't push their future jobs back."""
        rounds = [j.round for j in self.jobs.values() if j.user_id == user_id and not j.is_final]
        if rounds:
            self._user_round[user_id] = max(rounds)
        else:
            self._user_round.pop(user_id, None)  # also keeps the table from growing forever

    def _positions_changed(self) -> None:
        for job in self._pending:
            job.touch()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._wakeup:
                self._wakeup.notify_all()

        asyncio.get_running_loop().create_task(wake())

    def _take_next(self) -> Job | None:
        if not self._pending:
            return None
        job = self._pending.pop(0)
        self._round = max(self._round, job.round)
        self._positions_changed()
        return job

    # ------------------------------------------------------------------ cancel
    async def cancel(self, job: Job, by: int | None = None) -> bool:
        """Cancel a queued job (it leaves the queue) or a running one (its backend is interrupted and
        the partial result discarded). False when the job had already ended."""
        if job.is_final:
            return False
        job.cancelled_by = by
        if job.state is JobState.QUEUED:
            with contextlib.suppress(ValueError):
                self._pending.remove(job)
            job._finish(JobState.CANCELLED, self.clock())
            self._positions_changed()
            self._forget_later(job)
            return True
        job.cancel_requested = True
        job.touch()
        backend = next((b for b in self.backends if b.job is job), None)
        if backend is not None:
            try:
                await backend.client.interrupt()  # this backend only
            except WebUIError as exc:
                log.warning("Interrupting job %s on %s failed: %s", job.id, backend.name, exc.message)
        return True

    # ------------------------------------------------------------------ workers
    async def _worker(self, backend: _Backend) -> None:
        while True:
            async with self._wakeup:
                await self._wakeup.wait_for(lambda: backend.up and bool(self._pending))
                job = self._take_next()
            if job is None:
                continue
            await self._run(backend, job)
            self._notify()

    async def _run(self, backend: _Backend, job: Job) -> None:
        job.state, job.backend, job.started, job.progress = JobState.RUNNING, backend.name, self.clock(), None
        job.waiting_for_backend = False
        backend.job = job
        job.touch()
        self._emit(job)
        poller = asyncio.get_running_loop().create_task(self._poll_progress(backend, job))
        try:
            result = await self.runner(job, backend.client)
        except WebUIConnectionError as exc:
            self._mark_down(backend, exc)
            if not exc.reached and not job.cancel_requested:
                # The WebUI never saw the request: give the job back, first in line, for another backend.
                job.state, job.backend, job.started = JobState.QUEUED, None, None
                self._pending.insert(0, job)
                self._positions_changed()
                job.waiting_for_backend = not any(b.up for b in self.backends)
                job.touch()
                self._emit(job)
                log.info("Job %s requeued: %s was unreachable", job.id, backend.name)
                return
            self._fail(job, exc)
        except WebUIError as exc:
            if job.cancel_requested:
                job._finish(JobState.CANCELLED, self.clock())
            else:
                self._fail(job, exc)
        except asyncio.CancelledError:
            job._finish(JobState.FAILED, self.clock(), error=WebUIError("The bot stopped while the job ran."))
            raise
        except Exception as exc:  # noqa: BLE001 - a job's bug must not kill the worker
            log.exception("Job %s failed unexpectedly on %s", job.id, backend.name)
            self._fail(job, exc)
        else:
            if job.cancel_requested:
                job._finish(JobState.CANCELLED, self.clock())  # partial result discarded
            else:
                took = self.clock() - (job.started or self.clock())
                self._avg_duration = 0.8 * self._avg_duration + 0.2 * took
                job._finish(JobState.DONE, self.clock(), result=result)
        finally:
            poller.cancel()
            backend.job = None
        self._forget_later(job)

    def _fail(self, job: Job, exc: BaseException) -> None:
        job._finish(JobState.FAILED, self.clock(), error=exc)

    def _forget_later(self, job: Job, after: float = 300.0) -> None:
        """Keep a finished job in memory a while (Cancel answers "already ended"), then drop it; the job
        store keeps the record. Called once for every job that ends, so it also settles the user's round."""
        self._reset_round(job.user_id)
        asyncio.get_running_loop().call_later(after, self.jobs.pop, job.id, None)

    # ------------------------------------------------------------------ progress
    async def _poll_progress(self, backend: _Backend, job: Job) -> None:
        while True:
            await asyncio.sleep(self.progress_interval)
            try:
                p = await backend.client.progress(skip_current_image=False)
            except WebUIError:
                continue
            if p.job_count <= 0 and p.progress <= 0:
                continue  # not started yet (waiting for the lock or loading a model)
            steps = p.sampling_steps or 0
            job.progress = JobProgress(
                fraction=max(0.0, min(1.0, p.progress)),
                step=min(steps, p.sampling_step + 1) if steps else 0,
                steps=steps,
                eta=p.eta_relative if p.eta_relative and p.eta_relative > 0 else None,
                preview=p.current_image or (job.progress.preview if job.progress else None),
            )
            job.touch()

    # ------------------------------------------------------------------ backend health
    def _mark_down(self, backend: _Backend, exc: WebUIError) -> None:
        backend.up = False
        backend.last_error = exc.message
        log.warning("Backend %s is down: %s", backend.name, exc.message)
        if not any(b.up for b in self.backends) and self._all_down_since is None:
            self._all_down_since = self.clock()
            for job in self._pending:
                job.waiting_for_backend = True
                job.touch()
        if backend.health_task is None or backend.health_task.done():
            backend.health_task = asyncio.get_running_loop().create_task(self._heal(backend))

    async def _heal(self, backend: _Backend) -> None:
        delay, ceiling = self.health_backoff
        while not backend.up:
            await asyncio.sleep(delay)
            delay = min(ceiling, delay * 2)
            try:
                await backend.client.progress(skip_current_image=True)
            except WebUIError as exc:
                backend.last_error = exc.message
                continue
            backend.up, backend.last_error = True, ""
            log.info("Backend %s is back", backend.name)
            self._all_down_since = None
            for job in self._pending:
                if job.waiting_for_backend:
                    job.waiting_for_backend = False
                    job.touch()
            self._notify()

    async def _supervise(self) -> None:
        """Fail jobs that waited too long while every backend was down; prune idle rate buckets."""
        while True:
            await asyncio.sleep(1.0)
            self.limiter.prune()
            if self._all_down_since is None:
                continue
            now = self.clock()
            expired = [j for j in self._pending if now - max(j.created, self._all_down_since) > self.wait_limit]
            for job in expired:
                self._pending.remove(job)
                self._fail(job, WebUIError(
                    f"No WebUI has been reachable for {_duration(self.wait_limit)}, so the job was given up. "
                    "Please try again later."))
                self._forget_later(job)
            if expired:
                self._positions_changed()

    # ------------------------------------------------------------------ status and estimates
    def backend_status(self) -> list[BackendStatus]:
        return [BackendStatus(b.name, b.up, b.job is not None, b.last_error) for b in self.backends]

    def estimate_start(self, job: Job) -> float:
        """Rough seconds until a queued job starts."""
        position = self.position(job) or 0
        up = max(1, sum(1 for b in self.backends if b.up))
        return (position - 1) // up * self._avg_duration + self._avg_duration / 2

    def _estimate_first_finish(self, user_id: int) -> float:
        best = self._avg_duration
        for job in self.jobs.values():
            if job.user_id != user_id or job.is_final:
                continue
            if job.state is JobState.RUNNING:
                p = job.progress
                left = p.eta if p and p.eta else self._avg_duration * (1 - (p.fraction if p else 0))
            else:
                left = self.estimate_start(job) + self._avg_duration
            best = min(best, left)
        return max(1.0, best)


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds / 3600:g} hour{'s' if seconds != 3600 else ''}"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds / 60:g} minute{'s' if seconds != 60 else ''}"
    return f"{seconds:g} seconds"
