"""The fair queue: start-time fair queuing over users, O(log n) per operation. No Discord imports.

Each job gets a round, max(the user's last round + 1, the round being served), and a sequence number
(arrival order). The lowest (round, seq) goes next, so a user's second job waits behind every other
user's first job and one person's burst can't hold the GPUs. Jobs resumed after a restart or handed
back by an unreachable backend (`Job.front`) go before all others.

Waiting jobs live in a `SortedList` keyed by `Job.key`: push, remove, pop and a job's position are
O(log n). Per user only the rounds of their unfinished jobs are kept (a handful, bounded by
MAX_QUEUED_PER_USER), in a sorted list of their own: the next round and the user's number of
unfinished jobs come from it in O(log k).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from sortedcontainers import SortedList

from .jobs import Job

__all__ = ["FairQueue"]


class FairQueue:
    def __init__(self) -> None:
        self._order: SortedList[tuple[int, int, int, str]] = SortedList()
        self._waiting: dict[str, Job] = {}
        self._user_rounds: dict[int, SortedList[int]] = {}  # user -> rounds of their unfinished jobs
        self._round = 0  # the round being served
        self._seq = itertools.count()

    # ------------------------------------------------------------------ keys and users
    def next_key(self, user_id: int) -> tuple[int, int]:
        """(round, seq) for a new job of `user_id`."""
        rounds = self._user_rounds.get(user_id)
        last = rounds[-1] if rounds else 0
        return max(last + 1, self._round), next(self._seq)

    def register(self, job: Job) -> None:
        """Count `job` as one of its user's unfinished jobs (new or restored)."""
        rounds = self._user_rounds.get(job.user_id)
        if rounds is None:
            rounds = self._user_rounds[job.user_id] = SortedList()
        rounds.add(job.round)

    def settle(self, job: Job) -> None:
        """`job` ended: it no longer counts for its user's next round. Keeps the table pruned."""
        rounds = self._user_rounds.get(job.user_id)
        if not rounds:
            return
        if job.round not in rounds:
            return
        rounds.remove(job.round)
        if not rounds:
            del self._user_rounds[job.user_id]

    def unfinished(self, user_id: int) -> int:
        """How many of `user_id`'s jobs are waiting or running."""
        return len(self._user_rounds.get(user_id, ()))

    def restored(self, last_seq: int) -> None:
        """After jobs were restored from the store: continue their sequence, serve from their lowest round."""
        self._seq = itertools.count(last_seq + 1)
        if self._order:
            self._round = max(self._round, self._order[0][1])

    # ------------------------------------------------------------------ the waiting line
    def push(self, job: Job) -> None:
        if job.id in self._waiting:
            return
        self._waiting[job.id] = job
        self._order.add((*job.key, job.id))

    def remove(self, job: Job) -> bool:
        """Take a waiting job out of line (cancelled, expired). False when it wasn't waiting."""
        if self._waiting.pop(job.id, None) is None:
            return False
        self._order.remove((*job.key, job.id))
        return True

    def pop(self) -> Job | None:
        """The next job in fair order, or None."""
        if not self._order:
            return None
        *_, job_id = self._order.pop(0)
        job = self._waiting.pop(job_id)
        self._round = max(self._round, job.round)
        return job

    def position(self, job: Job) -> int | None:
        """1-based place in line (1 = next to start), None when not waiting."""
        if job.id not in self._waiting:
            return None
        return self._order.index((*job.key, job.id)) + 1

    def __len__(self) -> int:
        return len(self._order)

    def __bool__(self) -> bool:
        return bool(self._order)

    def __contains__(self, job: Job) -> bool:
        return job.id in self._waiting

    def first(self, count: int) -> Iterator[Job]:
        """The first `count` waiting jobs in order, in O(count)."""
        return (self._waiting[entry[3]] for entry in self._order.islice(0, count))

    def __iter__(self) -> Iterator[Job]:
        """Waiting jobs in fair order (a snapshot)."""
        return iter([self._waiting[entry[3]] for entry in self._order])
