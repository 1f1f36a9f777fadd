"""The pool of WebUI backends in front of the fair queue. No Discord imports.

* Admission: a per-user token bucket (RATE_LIMIT) and a cap on jobs waiting or running per user
  (MAX_QUEUED_PER_USER), both O(1). A refusal says which limit and when to try again, and costs the
  WebUI nothing. While the bot shuts down, nothing new is admitted.
* Order: `FairQueue` (start-time fair queuing, O(log n) per operation).
* Pool: one worker per backend, so at most one generation is in flight per WebUI (a WebUI runs one
  job at a time and never says "busy"). A backend whose connection fails is marked down and health-
  checked with back-off. Its job goes back to the front of the queue if the request never reached
  the WebUI; otherwise it fails clearly, so a job is never run twice by accident. When every backend
  is down, jobs wait up to BACKEND_WAIT_LIMIT seconds, then fail clearly.
* A generation that times out is interrupted on its WebUI, and that WebUI gets nothing more until
  its /progress shows it idle (the WebUI keeps running a request its client gave up on). The same
  holds at start for a WebUI that was running one of our jobs when the bot stopped.
* Shutdown: `pause()` stops workers from taking jobs, `stop()` ends the workers; a job still running
  then stays unfinished (`pausing`), so the store runs it again at the next start.
* Every state change is told to `listeners` (the engine keeps the job store current from them).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import JobFailed, JobInterrupted, Refused, WebUIConnectionError, WebUIError, WebUITimeoutError
from bot.text import T, Text, period
from bot.webui.client import WebUIClient

from .estimate import Estimator
from .jobs import Job, JobProgress, JobState, Origin, Request, Ticket
from .limits import RateLimiter
from .queue import FairQueue

__all__ = ["BackendStatus", "Scheduler", "StatusView"]

log = logging.getLogger(__name__)

Runner = Callable[[Job, WebUIClient], Awaitable[Any]]
RETENTION = 300.0  # seconds a finished job stays in memory (Cancel then answers "already ended")
LOOK_AHEAD = 64  # jobs a free backend looks through, in fair order, for the first one it can run
ESTIMATE_AHEAD = 200  # jobs ahead simulated by estimate_start; the rest are extrapolated from them
FALLBACK_WAIT = 20.0  # seconds "retry in" says while no job duration is known yet


@dataclass(eq=False)
class _Backend:
    name: str
    client: WebUIClient
    up: bool = True
    job: Job | None = None
    last_error: Text | str = ""
    draining: bool = False  # sent nothing until /progress shows it idle
    interrupt_first: bool = False  # a job of ours may still run there (restart): interrupt it first
    health_task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    up: bool
    busy: bool
    last_error: Text | str
    draining: bool = False


@dataclass(frozen=True, slots=True)
class StatusView:
    """What /status shows one user: every backend, the queue length, and the user's first jobs (running
    first, then in queue order) with their positions, of `total`."""

    backends: list[BackendStatus]
    queue_length: int
    jobs: list[tuple[Job, int | None]]
    total: int


class Scheduler:
    requires_backends = True  # the in-process pool runs every job itself

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
        drain_interval: float = 1.0,
        retention: float = RETENTION,
        clock: Callable[[], float] = time.monotonic,
        router: Any = None,
    ) -> None:
        if not clients and self.requires_backends:
            raise ValueError("at least one backend")
        self.runner = runner
        self.limiter = RateLimiter(rate, per, clock=clock)
        self.max_queued_per_user = max_queued_per_user
        self.wait_limit = wait_limit
        self.progress_interval = progress_interval
        self.health_backoff = health_backoff
        self.drain_interval = drain_interval
        self.retention = retention
        self.clock = clock
        self.backends = [_Backend(c.display_url, c) for c in clients]
        self.queue = FairQueue()
        self.jobs: dict[str, Job] = {}  # every job not yet final, plus recently final ones
        self._by_user: dict[int, set[str]] = {}  # user -> ids of their jobs in `jobs`
        self._tickets: dict[int, int] = {}  # user -> admitted but not yet submitted
        self._wakeup = asyncio.Condition()
        self._workers: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._all_down_since: float | None = None
        self.durations = Estimator()  # learned from finished jobs, per backend and kind: for estimates
        self.accepting = True  # False once the bot shuts down
        self._taking = True
        self.listeners: list[Callable[[Job], None]] = []  # told of every state change (the job store)
        self.router = router  # which backend may run which job (None: every backend runs every job)
        self.backend_back: list[Callable[[str], None]] = []  # told when a backend is up again

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._worker(b), name=f"worker {b.name}") for b in self.backends]
        self._supervisor = loop.create_task(self._supervise(), name="scheduler supervisor")

    def pause(self) -> None:
        """Shutting down: admit nothing new and start nothing new; running jobs go on."""
        self.accepting = False
        self._taking = False
        for job in self.queue:
            job.pausing = True
            job.touch()

    def running(self) -> list[Job]:
        return [b.job for b in self.backends if b.job is not None]

    async def stop(self) -> None:
        """End the workers. A job still running is interrupted on its WebUI and stays unfinished
        (`pausing`): the job store keeps it as running, so it runs again at the next start. Idempotent."""
        self.pause()
        running = [(b, b.job) for b in self.backends if b.job is not None]
        for _, job in running:
            job.pausing = True
        tasks = [*self._workers, *(b.health_task for b in self.backends if b.health_task)]
        if self._supervisor:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers, self._supervisor = [], None
        if running:
            await asyncio.gather(*(self._interrupt(b, "shutdown") for b, _ in running), return_exceptions=True)
        for _, job in running:
            job.touch()

    def _emit(self, job: Job) -> None:
        for listener in self.listeners:
            try:
                listener(job)
            except Exception:  # noqa: BLE001 - a listener must never break the queue
                log.exception("Job listener failed for %s", job.id)

    # ------------------------------------------------------------------ admission
    def _active_count(self, user_id: int) -> int:
        return self.queue.unfinished(user_id) + self._tickets.get(user_id, 0)

    def admit(self, user_id: int) -> Ticket:
        """Reserve a slot for a job of `user_id`, or raise Refused. Costs the WebUI nothing."""
        if not self.accepting:
            raise Refused("shutdown", 60.0, T("refuse.restarting"))
        if self._active_count(user_id) >= self.max_queued_per_user:
            wait = self._estimate_first_finish(user_id)
            raise Refused("queue", wait, T("refuse.queue", count=self.max_queued_per_user))
        wait = self.limiter.take(user_id)
        if wait > 0:
            raise Refused("rate", wait, T("refuse.rate", count=self.limiter.rate, period=period(self.limiter.per)))
        self._tickets[user_id] = self._tickets.get(user_id, 0) + 1
        return Ticket(user_id)

    async def reserve(self, user_id: int, daily: Sequence[Any] = (), guild_id: int | None = None) -> Ticket:
        """`admit`, for callers that may wait (a shared queue asks its database, and counts `daily` there;
        in one process the engine's DailyQuota does)."""
        return self.admit(user_id)

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

    # ------------------------------------------------------------------ jobs
    def new_job(self, ticket: Ticket, request: Request, origin: Origin) -> Job:
        """Turn a ticket into a job with its place in the fair order (not yet waiting: `enqueue` it once
        it is stored)."""
        if ticket.used:
            raise RuntimeError("ticket already used")
        if origin.user_id != ticket.user_id:
            raise ValueError("the ticket belongs to another user")
        ticket.used = True
        self._drop_ticket(ticket.user_id)
        job_round, seq = self.queue.next_key(ticket.user_id)
        job = Job(secrets.token_hex(4), origin, request, seq, job_round, self.clock())
        self.queue.register(job)  # counts against the user's cap from now on
        return job

    def renumber(self, job: Job) -> None:
        """Give a not yet queued job a new id (its id was taken in the store)."""
        job.id = secrets.token_hex(4)

    def _track(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._by_user.setdefault(job.user_id, set()).add(job.id)

    def _untrack(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        ids = self._by_user.get(job.user_id)
        if ids is not None:
            ids.discard(job.id)
            if not ids:
                del self._by_user[job.user_id]

    def discard(self, job: Job) -> None:
        """A new job that could not be stored: forget it (its user gets the slot back)."""
        self.queue.settle(job)

    def enqueue(self, job: Job) -> None:
        """Queue a stored job; workers pick it up in fair order."""
        self._track(job)
        job.waiting_for_backend = not any(b.up for b in self.backends)
        job.pausing = not self._taking  # accepted just before a shutdown: it runs after the restart
        self.queue.push(job)
        self._notify()

    def submit(self, ticket: Ticket, request: Request, origin: Origin) -> Job:
        """`new_job` + `enqueue`, for callers without a job store (tests, benchmarks)."""
        job = self.new_job(ticket, request, origin)
        self.enqueue(job)
        return job

    def restore(self, job: Job) -> None:
        """A job rebuilt from the store: waiting ones get their old place, final ones wait for delivery."""
        self._track(job)
        if not job.is_final:
            self.queue.register(job)
        if job.state is JobState.QUEUED:
            job.waiting_for_backend = not any(b.up for b in self.backends)
            self.queue.push(job)
        elif job.is_final:
            self._forget_later(job)

    def restored(self, last_seq: int, busy_backends: set[str]) -> None:
        """Every stored job is back. WebUIs that were running one of them are interrupted and waited for."""
        self.queue.restored(last_seq)
        for backend in self.backends:
            if backend.name in busy_backends:
                backend.draining = backend.interrupt_first = True

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        return self.queue.position(job)

    def queue_length(self) -> int:
        return len(self.queue)

    def user_jobs(self, user_id: int) -> list[tuple[Job, int | None]]:
        """The user's unfinished jobs with their positions: running first, then in queue order."""
        placed = [(job, self.position(job)) for i in self._by_user.get(user_id, ())
                  if not (job := self.jobs[i]).is_final]
        return sorted(placed, key=lambda p: (p[0].state is not JobState.RUNNING, p[1] or 0))

    def status(self, user_id: int, limit: int) -> StatusView:
        mine = self.user_jobs(user_id)
        return StatusView(self.backend_status(), len(self.queue), mine[:limit], len(mine))

    async def status_of(self, user_id: int, limit: int) -> StatusView:
        """`status`, for callers that may wait (a shared queue asks its database)."""
        return self.status(user_id, limit)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._wakeup:
                self._wakeup.notify_all()

        with contextlib.suppress(RuntimeError):  # no running loop: nothing is waiting either
            asyncio.get_running_loop().create_task(wake())

    def _finish(self, job: Job, state: JobState, *, result: Any = None, error: BaseException | None = None) -> None:
        job.finish(state, self.clock(), result=result, error=error)
        self._emit(job)
        self._forget_later(job)

    def _forget_later(self, job: Job) -> None:
        """Keep a finished job in memory a while (Cancel answers "already ended"), then drop it; the job
        store keeps the record. Called once for every job that ends, so it also settles the user's round."""
        self.queue.settle(job)
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(self.retention, self._forget, job)

    def _forget(self, job: Job) -> None:
        if self.jobs.get(job.id) is job:
            self._untrack(job)

    # ------------------------------------------------------------------ cancel
    async def cancel(self, job: Job, by: int | None = None) -> bool:
        """Cancel a queued job (it leaves the queue) or a running one (its backend is interrupted and
        the partial result discarded). False when the job had already ended."""
        if job.is_final:
            return False
        job.cancelled_by = by
        if self.queue.remove(job) or job.state is JobState.QUEUED:
            self._finish(job, JobState.CANCELLED)
            return True
        job.cancel_requested = True
        job.touch()
        backend = next((b for b in self.backends if b.job is job), None)
        if backend is not None:
            await self._interrupt(backend, f"cancel of {job.id}")
        return True

    async def _interrupt(self, backend: _Backend, why: str) -> bool:
        try:
            await backend.client.interrupt()  # this backend only
        except WebUIError as exc:
            log.warning("Interrupting %s (%s) failed: %s", backend.name, why, exc.message)
            return False
        return True

    # ------------------------------------------------------------------ workers
    async def _worker(self, backend: _Backend) -> None:
        while True:
            if backend.draining:
                await self._drain(backend)
                self._notify()
            async with self._wakeup:
                await self._wakeup.wait_for(
                    lambda: self._taking and backend.up and not backend.draining and self._next_for(backend) is not None)
                job = self._next_for(backend)
                if job is not None:
                    self.queue.remove(job)
            if job is None:
                continue
            await self._run(backend, job)
            self._notify()

    def _next_for(self, backend: _Backend) -> Job | None:
        """The first job in fair order that `backend` can run (see `_pick`). O(LOOK_AHEAD)."""
        if not self.queue:
            return None
        if self.router is None:
            return next(self.queue.first(1), None)
        idle = [b for b in self.backends if b is not backend and b.up and b.job is None and not b.draining]
        return self._pick(backend, list(self.queue.first(LOOK_AHEAD)), idle)

    def _pick(self, backend: _Backend, ahead: list[Job], idle: list[_Backend]) -> Job | None:
        """Of `ahead` (waiting jobs in fair order), the one `backend` runs next, with model affinity that
        never breaks fairness: a job another idle backend has the checkpoint for is left to it (it starts
        now, there), and within the head job's fairness round a job whose checkpoint this backend has
        loaded goes first."""
        router = self.router
        if router is None:
            return ahead[0] if ahead else None
        for k, job in enumerate(ahead):
            if not router.fits(backend.name, job):
                continue
            if router.prefers(backend.name, job):
                return job
            if idle and any(router.prefers(b.name, job) and router.fits(b.name, job) for b in idle):
                continue  # another idle backend has its checkpoint loaded and takes it now
            # Within the same fairness round every user still gets their turn, so a job of this round that
            # this backend already has the checkpoint for may go first: no switch, nobody overtaken.
            same_round = (j for j in ahead[k + 1:] if j.key[:2] == job.key[:2])
            return next((j for j in same_round if router.fits(backend.name, j) and router.prefers(backend.name, j)),
                        job)
        return None

    async def _drain(self, backend: _Backend) -> None:
        """Send nothing to `backend` until its /progress shows no job (after a timeout or a restart)."""
        if backend.interrupt_first:
            backend.interrupt_first = False
            await self._interrupt(backend, "left over from before the restart")
        delay = self.drain_interval
        while backend.draining:
            try:
                progress = await backend.client.progress(skip_current_image=True)
            except WebUIConnectionError as exc:
                self._mark_down(backend, exc)
                backend.draining = False  # a restarted WebUI runs nothing; the health check brings it back
                return
            except WebUIError as exc:
                log.info("Backend %s: /progress failed while waiting for it to be idle: %s", backend.name, exc.message)
            else:
                if progress.idle:
                    backend.draining = False
                    log.info("Backend %s is idle again", backend.name)
                    return
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 1.5)

    async def _run(self, backend: _Backend, job: Job) -> None:
        job.state, job.backend, job.started, job.progress = JobState.RUNNING, backend.name, self.clock(), None
        job.waiting_for_backend = False
        job.attempts += 1
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
                job.state, job.backend, job.started, job.front = JobState.QUEUED, None, None, True
                job.attempts -= 1
                job.waiting_for_backend = not any(b.up for b in self.backends)
                self._requeue(job)
                log.info("Job %s requeued: %s was unreachable", job.id, backend.name)
                return
            self._finish(job, JobState.FAILED, error=exc)
        except WebUIError as exc:
            if isinstance(exc, WebUITimeoutError):
                # The WebUI is still rendering it: stop it, and send nothing until it is idle again.
                backend.draining = True
                await self._interrupt(backend, f"timeout of {job.id}")
            if job.cancel_requested:
                self._finish(job, JobState.CANCELLED)
            else:
                self._finish(job, JobState.FAILED, error=exc)
        except asyncio.CancelledError:
            if not job.pausing:  # not a shutdown that keeps it for the next start
                self._finish(job, JobState.FAILED, error=JobInterrupted(T("failure.stopped")))
            raise
        except JobFailed as exc:  # a reason already put in plain words (its input image is gone, ...)
            log.warning("Job %s failed on %s: %s", job.id, backend.name, exc.detail or exc.message)
            self._finish(job, JobState.FAILED, error=exc)
        except Exception as exc:  # noqa: BLE001 - a job's bug must not kill the worker
            log.exception("Job %s failed unexpectedly on %s", job.id, backend.name)
            self._finish(job, JobState.FAILED, error=exc)
        else:
            if job.cancel_requested:
                self._finish(job, JobState.CANCELLED)  # partial result discarded
            else:
                took = self.clock() - (job.started or self.clock())
                self.durations.observe(backend.name, job.request, took)
                if self.router is not None:
                    self.router.loaded(backend.name, job)
                self._finish(job, JobState.DONE, result=result)
        finally:
            poller.cancel()
            backend.job = None

    def _requeue(self, job: Job) -> None:
        """A job whose backend never got it waits again, first in line."""
        self.queue.push(job)
        job.touch()
        self._emit(job)

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
            for job in self.queue:
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
            for listener in self.backend_back:
                listener(backend.name)
            if self._all_down_since is not None:
                self._all_down_since = None
                for job in self.queue:
                    if job.waiting_for_backend:
                        job.waiting_for_backend = False
                        job.touch()
            self._notify()

    async def _supervise(self) -> None:
        """Fail jobs that waited too long while every backend was down, or while no backend that is up could
        run them (the one with their model is down); prune idle rate buckets."""
        while True:
            await asyncio.sleep(1.0)
            self.limiter.prune()
            if self._all_down_since is None:
                self._expire_unrunnable()
                continue
            now = self.clock()
            expired = [j for j in self.queue if now - max(j.created, self._all_down_since) > self.wait_limit]
            for job in expired:
                self.queue.remove(job)
                self._finish(job, JobState.FAILED, error=WebUIError(
                    T("failure.all_down", period=period(self.wait_limit))))

    def _expire_unrunnable(self) -> None:
        if self.router is None:
            return
        now = self.clock()
        up = [b for b in self.backends if b.up]
        for job in list(self.queue.first(LOOK_AHEAD)):
            if now - job.created > self.wait_limit and not any(self.router.fits(b.name, job) for b in up):
                self.queue.remove(job)
                self._finish(job, JobState.FAILED, error=WebUIError(
                    T("failure.no_capable", period=period(self.wait_limit))))

    # ------------------------------------------------------------------ status and estimates
    def backend_status(self) -> list[BackendStatus]:
        return [BackendStatus(b.name, b.up, b.job is not None, b.last_error, b.draining) for b in self.backends]

    def estimate_start(self, job: Job) -> float | None:
        """Seconds until a queued job starts, or None while that is not known (no job of a kind it waits
        for has finished yet, no backend is up, or it is not waiting). The running jobs' remaining time,
        then the jobs ahead, each on the backend that frees first (list scheduling over the backends that
        are up). O(jobs ahead), capped at ESTIMATE_AHEAD simulated jobs; the rest are extrapolated."""
        position = self.position(job)
        if position is None:
            return None
        return self._start_after(position - 1)

    def _start_after(self, ahead: int) -> float | None:
        """Seconds until the first `ahead` waiting jobs have started and a backend is free after them."""
        up = [b for b in self.backends if b.up]
        if not up:
            return None
        now = self.clock()
        free: list[tuple[float, int]] = []  # (seconds until the backend is free, index in `up`)
        for i, backend in enumerate(up):
            left = 0.0 if backend.job is None else self._remaining(backend.job, now)
            if left is None:
                return None
            free.append((left, i))
        heapq.heapify(free)
        first = free[0][0]
        simulated = min(ahead, ESTIMATE_AHEAD)
        for queued in self.queue.first(simulated):  # the first jobs in line, in O(simulated)
            at, i = free[0]
            took = self.durations.predict_anywhere(up[i].name, queued.request)
            if took is None:
                return None
            heapq.heapreplace(free, (at + took, i))
        start = free[0][0]
        if ahead > simulated:  # the pool goes on at the pace of the simulated jobs
            start += (ahead - simulated) * (start - first) / simulated
        return max(0.0, start)

    def _remaining(self, job: Job, now: float) -> float | None:
        """Seconds a running job still needs, or None while its duration is not known. Its progress
        fraction f, when the WebUI reports one, is trusted the more the further it got: the model's
        total x (1 - f), blended (weight f²) with what the job's own pace so far says."""
        total = self.durations.predict_anywhere(job.backend, job.request)
        if total is None:
            return None
        elapsed = max(0.0, now - (job.started if job.started is not None else now))
        p = job.progress
        if p is not None and p.fraction > 0:
            f = min(1.0, p.fraction)
            paced = elapsed * (1 - f) / f
            return (1 - f * f) * total * (1 - f) + f * f * paced
        return max(total - elapsed, 0.25 * total)  # not sampling yet (or loading): most of it is ahead

    def _estimate_first_finish(self, user_id: int) -> float:
        """Seconds until one of the user's jobs ends (for "retry in" when they are at the cap)."""
        best: float | None = None
        now = self.clock()
        first_queued = True
        for job, position in self.user_jobs(user_id):
            left: float | None
            if job.state is JobState.RUNNING:
                left = self._remaining(job, now)
                p = job.progress
                if left is None and p is not None:  # no model yet: what the WebUI says of its pace
                    if p.eta:
                        left = p.eta
                    elif p.fraction >= 0.05 and job.started is not None:
                        left = (now - job.started) * (1 - p.fraction) / p.fraction
            elif first_queued and position is not None:  # later ones start (and mostly end) after it
                first_queued = False
                start = self._start_after(position - 1)
                took = self.durations.predict_anywhere(None, job.request)
                left = None if start is None or took is None else start + took
            else:
                continue
            if left is not None:
                best = left if best is None else min(best, left)
        return max(1.0, FALLBACK_WAIT if best is None else best)
