"""Per-user token buckets: `rate` jobs per `per` seconds, refilled continuously. No Discord imports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]


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
