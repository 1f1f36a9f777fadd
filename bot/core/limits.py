"""Per-user token buckets (`rate` jobs per `per` seconds, refilled continuously) and daily quotas (jobs per
user per UTC day). No Discord imports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.errors import Refused
from bot.text import T

__all__ = ["DAY", "DailyLimit", "DailyQuota", "RateLimiter", "utc_day_start"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key. A full bucket holds `rate` tokens; one job costs one token."""

    def __init__(self, rate: int, per: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 1 or per <= 0:
            raise ValueError("rate must be >= 1 and per > 0")
        self.rate = rate
        self.per = per
        self.clock = clock
        self._refill = rate / per  # tokens per second
        self._buckets: dict[int, _Bucket] = {}

    def _bucket(self, key: int) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.rate), now)
        else:
            bucket.tokens = min(float(self.rate), bucket.tokens + (now - bucket.updated) * self._refill)
            bucket.updated = now
        return bucket

    def retry_after(self, key: int) -> float:
        """Seconds until `key` may start a job (0 when it may now). Consumes nothing."""
        bucket = self._bucket(key)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self._refill

    def take(self, key: int) -> float:
        """Consume a token and return 0, or return the seconds to wait (consuming nothing)."""
        bucket = self._bucket(key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._refill

    def refund(self, key: int) -> None:
        """Give back a token (the job was never sent to a WebUI)."""
        bucket = self._bucket(key)
        bucket.tokens = min(float(self.rate), bucket.tokens + 1)

    def prune(self) -> None:
        """Forget full buckets (keeps memory bounded on a busy server)."""
        for key in [k for k in self._buckets if self.retry_after(k) == 0 and self._buckets[k].tokens >= self.rate]:
            del self._buckets[key]


DAY = 86400.0


def utc_day_start(now: float) -> float:
    """The epoch second at which the UTC day holding `now` began."""
    return now - now % DAY


@dataclass(frozen=True, slots=True)
class DailyLimit:
    """At most `limit` jobs per user per UTC day, counted everywhere (`guild_id` None) or in one server."""

    limit: int
    guild_id: int | None = None


class DailyQuota:
    """Jobs per user per UTC day, for one process (a shared queue counts in its database instead).

    A user's count for a day is read from the job store the first time it is needed (so a restart counts the
    jobs from before it) and kept in memory from then on: admission takes one, a job that never got stored
    gives it back. Reading happens under a per-key lock, before the check, so two commands at once can't both
    take the last one."""

    def __init__(self, count: Callable[[int, float, int | None], Awaitable[int]], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._count = count  # (user_id, since, guild_id or None) -> jobs stored since then
        self.clock = clock
        self._day = utc_day_start(clock())
        self._used: dict[tuple[int, int | None], int] = {}
        self._locks: dict[tuple[int, int | None], asyncio.Lock] = {}

    @property
    def day(self) -> float:
        """The UTC day the counts are for (epoch seconds of its start)."""
        return self._roll()

    def _roll(self) -> float:
        day = utc_day_start(self.clock())
        if day != self._day:  # a new UTC day: every count starts again
            self._day, self._used = day, {}
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return day

    async def _load(self, key: tuple[int, int | None]) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._used:
                day = self._roll()
                counted = await self._count(key[0], day, key[1])
                if self._day == day:
                    self._used.setdefault(key, counted)

    async def take(self, user_id: int, limits: Sequence[DailyLimit]) -> tuple[tuple[int, int | None], ...]:
        """Count one job of `user_id` against each limit, or raise Refused (taking nothing) with the seconds
        until the next UTC day. Returns what was taken, for `give_back`."""
        keys = [((user_id, d.guild_id), d.limit) for d in limits if d.limit > 0]
        for key, _ in keys:
            await self._load(key)
        day = self._roll()
        for key, limit in keys:
            if self._used.get(key, 0) >= limit:
                text = T("refuse.daily_server" if key[1] is not None else "refuse.daily", count=limit)
                raise Refused("daily", day + DAY - self.clock(), text)
        for key, _ in keys:
            self._used[key] = self._used.get(key, 0) + 1
        return tuple(key for key, _ in keys)

    def give_back(self, taken: Sequence[tuple[int, int | None]], day: float | None = None) -> None:
        """A job that was admitted but never stored: it doesn't count."""
        if day is not None and day != self._day:
            return
        for key in taken:
            if self._used.get(key, 0) > 0:
                self._used[key] -= 1
