"""One job at a time, in arrival order, like A1111's queue lock; jobs outlive their requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .state import ProgressState

T = TypeVar("T")


class JobQueue:
    """Runs jobs one by one under `state`, counting them for tests."""

    def __init__(self, state: ProgressState):
        self.state = state
        self.in_flight = 0
        self.max_in_flight = 0
        self.jobs_served = 0
        self.asked = 0  # generation requests received and not yet answered (waiting for the lock included)
        self.max_asked = 0
        self._lock = asyncio.Lock()  # FIFO: asyncio.Lock wakes waiters in arrival order and never barges
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, job: str | None, work: Callable[[], Awaitable[T]]) -> T:
        """Queue `work` as shared-state job `job` and wait for its result.

        With `job` None the work holds the queue without touching the shared state (A1111's DeepDanbooru
        interrogation holds the queue lock but never calls `state.begin`, so /progress stays idle).

        The job runs to completion even if the caller is cancelled (A1111 never cancels a job when the
        client goes away); only `cancel_all` stops it.
        """
        self.asked += 1
        self.max_asked = max(self.max_asked, self.asked)
        task = asyncio.ensure_future(self._run(job, work))
        task.add_done_callback(lambda _t: setattr(self, "asked", self.asked - 1))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _run(self, job: str | None, work: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            if job is not None:
                self.state.begin(job)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                result = await work()
                self.jobs_served += 1
                return result
            finally:
                if job is not None:
                    self.state.end()
                self.in_flight -= 1

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
