"""The queue as it was before issue 8, restated for comparison (bench/scheduler.py, section 4).

This is not code sdcord runs. It restates, minimally and faithfully, the queue algorithm of the flat
`bot/scheduler.py` before the restructuring (`git show fc62863:bot/scheduler.py`), so the bench can
measure the old per-operation costs next to `bot.core.scheduler.Scheduler`:

* `_pending` is a plain list kept sorted by (round, seq); `_insert` finds the place by a linear scan;
* `position()` is `list.index`; taking the next job is `list.pop(0)`;
* admission counts a user's active jobs by scanning every job in `jobs` (`_active_count`), and a job
  that ends rescans every job for the user's round (`_reset_round`);
* every queue event (submit, take-next, cancel) touches every pending job's asyncio.Event
  (`_positions_changed`), and every submit schedules a wake-up task for the workers (`_notify`);
* `user_jobs` scans every job and sorts the user's by `position()`.

Kept as they were: the token bucket (the old `bot/ratelimit.py` is identical to `bot.core.limits`),
tickets, listeners, cancel of a queued job (list.remove + positions changed + forget later).
Left out: the workers, progress polling and backend health, which the bench does not run (it calls
the queue operations directly). Adapted only so `render.status_text` can draw the old jobs: a job
carries its `request` (the old one carried a `payload`) and `backend_status()` returns today's
`BackendStatus`. The retention of finished jobs (300 s hard-coded before) is a parameter, so the
bench can keep exactly n jobs in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.core.limits import RateLimiter
from bot.core.scheduler import BackendStatus
from bot.errors import Refused

__all__ = ["OldJob", "OldScheduler", "OldState", "OldTicket"]


class OldState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({OldState.DONE, OldState.FAILED, OldState.CANCELLED})


@dataclass(eq=False)
class OldJob:
    id: str
    user_id: int
    request: Any  # the old `payload`
    seq: int
    round: int
    created: float
    channel_id: int | None = None
    guild_id: int | None = None
    filesize_limit: int = 10 * 1024 * 1024
    state: OldState = OldState.QUEUED
    backend: str | None = None
    started: float | None = None
    finished: float | None = None
    progress: Any = None
    result: Any = None
    error: BaseException | None = None
    waiting_for_backend: bool = False
    cancel_requested: bool = False
    cancelled_by: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _on_state: Callable[[OldJob], None] | None = field(default=None, repr=False)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def touch(self) -> None:
        self._changed.set()

    def _finish(self, state: OldState, now: float, *, result: Any = None, error: BaseException | None = None) -> None:
        self.state, self.finished, self.result, self.error = state, now, result, error
        self.waiting_for_backend = False
        self.touch()
        self._done.set()
        if self._on_state is not None:
            self._on_state(self)


@dataclass(eq=False)
class OldTicket:
    user_id: int
    used: bool = False


@dataclass(eq=False)
class _Backend:
    name: str
    up: bool = True
    job: OldJob | None = None
    last_error: str = ""


class OldScheduler:
    def __init__(self, backends: int, *, rate: int = 5, per: float = 60.0, max_queued_per_user: int = 3,
                 retention: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limiter = RateLimiter(rate, per, clock=clock)
        self.max_queued_per_user = max_queued_per_user
        self.retention = retention
        self.clock = clock
        self.backends = [_Backend(f"stub{i}") for i in range(backends)]
        self.jobs: dict[str, OldJob] = {}
        self._pending: list[OldJob] = []  # kept sorted by (round, seq)
        self._user_round: dict[int, int] = {}
        self._round = 0
        self._seq = itertools.count()
        self._tickets: dict[int, int] = {}
        self._wakeup = asyncio.Condition()
        self._avg_duration = 20.0
        self.listeners: list[Callable[[OldJob], None]] = []

    def _emit(self, job: OldJob) -> None:
        for listener in self.listeners:
            listener(job)

    # ------------------------------------------------------------------ admission
    def _active_count(self, user_id: int) -> int:
        return sum(1 for j in self.jobs.values() if j.user_id == user_id and not j.is_final) + self._tickets.get(
            user_id, 0)

    def admit(self, user_id: int) -> OldTicket:
        if self._active_count(user_id) >= self.max_queued_per_user:
            wait = self._estimate_first_finish(user_id)
            raise Refused("queue", wait, f"You already have {self.max_queued_per_user} jobs waiting or running.")
        wait = self.limiter.take(user_id)
        if wait > 0:
            raise Refused("rate", wait, f"You've reached the limit of {self.limiter.rate} jobs.")
        self._tickets[user_id] = self._tickets.get(user_id, 0) + 1
        return OldTicket(user_id)

    def release(self, ticket: OldTicket, *, refund: bool = True) -> None:
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

    def submit(self, ticket: OldTicket, request: Any, *, channel_id: int | None = None,
               guild_id: int | None = None) -> OldJob:
        if ticket.used:
            raise RuntimeError("ticket already used")
        ticket.used = True
        self._drop_ticket(ticket.user_id)
        user = ticket.user_id
        job_round = max(self._user_round.get(user, 0) + 1, self._round)
        self._user_round[user] = job_round
        job = OldJob(secrets.token_hex(4), user, request, next(self._seq), job_round, self.clock(),
                     channel_id=channel_id, guild_id=guild_id)
        job.waiting_for_backend = not any(b.up for b in self.backends)
        job._on_state = self._emit
        self.jobs[job.id] = job
        self._emit(job)
        self._insert(job)
        self._positions_changed()
        self._notify()
        return job

    # ------------------------------------------------------------------ the queue
    def _insert(self, job: OldJob) -> None:
        key = (job.round, job.seq)
        index = next((i for i, j in enumerate(self._pending) if (j.round, j.seq) > key), len(self._pending))
        self._pending.insert(index, job)

    def position(self, job: OldJob) -> int | None:
        try:
            return self._pending.index(job) + 1
        except ValueError:
            return None

    def __len__(self) -> int:
        return len(self._pending)

    def user_jobs(self, user_id: int) -> list[OldJob]:
        return sorted((j for j in self.jobs.values() if j.user_id == user_id and not j.is_final),
                      key=lambda j: (j.state != OldState.RUNNING, self.position(j) or 0))

    def _reset_round(self, user_id: int) -> None:
        rounds = [j.round for j in self.jobs.values() if j.user_id == user_id and not j.is_final]
        if rounds:
            self._user_round[user_id] = max(rounds)
        else:
            self._user_round.pop(user_id, None)

    def _positions_changed(self) -> None:
        for job in self._pending:
            job.touch()

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._wakeup:
                self._wakeup.notify_all()

        asyncio.get_running_loop().create_task(wake())

    def take_next(self) -> OldJob | None:
        """The old `_take_next` (what a worker did under the wake-up lock)."""
        if not self._pending:
            return None
        job = self._pending.pop(0)
        self._round = max(self._round, job.round)
        self._positions_changed()
        return job

    # ------------------------------------------------------------------ cancel
    async def cancel(self, job: OldJob, by: int | None = None) -> bool:
        if job.is_final:
            return False
        job.cancelled_by = by
        if job.state is OldState.QUEUED:
            with contextlib.suppress(ValueError):
                self._pending.remove(job)
            job._finish(OldState.CANCELLED, self.clock())
            self._positions_changed()
            self._forget_later(job)
            return True
        job.cancel_requested = True  # a running job: the old code interrupted its backend here
        job.touch()
        return True

    def _forget_later(self, job: OldJob) -> None:
        self._reset_round(job.user_id)
        asyncio.get_running_loop().call_later(self.retention, self.jobs.pop, job.id, None)

    # ------------------------------------------------------------------ status and estimates
    def backend_status(self) -> list[BackendStatus]:
        return [BackendStatus(b.name, b.up, b.job is not None, b.last_error) for b in self.backends]

    def estimate_start(self, job: OldJob) -> float:
        position = self.position(job) or 0
        up = max(1, sum(1 for b in self.backends if b.up))
        return (position - 1) // up * self._avg_duration + self._avg_duration / 2

    def _estimate_first_finish(self, user_id: int) -> float:
        best = self._avg_duration
        for job in self.jobs.values():
            if job.user_id != user_id or job.is_final:
                continue
            left = self.estimate_start(job) + self._avg_duration
            best = min(best, left)
        return max(1.0, best)
