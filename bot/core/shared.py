"""One fair queue in PostgreSQL, shared by every sdcord process (DATABASE_URL). No Discord imports.

Gateways admit and store jobs; workers (a `sdcord worker` beside each GPU, or a gateway with WEBUI_URL)
run them. The rules are the in-process scheduler's, held by the database instead of one process's memory:

* Admission is one transaction per user under the row lock of their token bucket (`rate_buckets`): the
  bucket, the user's waiting and running jobs and their reservations (admitted, not yet stored: a job
  whose options are still being checked) are read and changed together, so two gateways can't both
  admit a user's fourth job. A reservation a crashed gateway leaves behind expires (RESERVATION_TTL).
* A stored job gets its fair place there: round = max(the user's last unfinished round + 1, the round
  being served), seq from a sequence. Waiting jobs are read in (front, round, seq) order through a
  partial index.
* A worker holds each of its backends through a lease (`backends`, renewed every LEASE_TTL / 3), so at
  most one generation is in flight per WebUI however many workers know it. To take a job it reads the
  first LOOK_AHEAD waiting jobs (no lock), picks by the scheduler's own rules (routing, model affinity
  within a fairness round), and claims that one row with `FOR UPDATE SKIP LOCKED`: taken by someone else
  meanwhile, it looks again. Nobody skips ahead of a job another worker is merely looking at.
* Every process heartbeats (`processes`). The jobs whose owner (the process keeping their message
  current) stopped beating for LEASE_TTL are adopted by a live process: a running one runs again once,
  first in line (a second loss fails it clearly), a finished one is delivered (or run again when its
  images were on the lost machine), a waiting one gets its message kept current again. A worker taking a
  backend whose last holder died with a job on it interrupts it and waits until it is idle.
* One writer per job message: the process that owns the job. A worker claiming a job becomes its owner;
  the gateway that showed it waiting sees it leave the line and stops. Positions come from one read of
  the waiting line per process per second, shared by all its messages.
* Cancel: a waiting job is cancelled in the row (a worker can't claim it after that); a running one is
  marked and its worker told (NOTIFY, and its heartbeat looks too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from bot.errors import JobFailed, Refused, StorageError, WebUIError
from bot.text import T, period

from .book import reason_from_store, stored_reason
from .jobs import Job, JobState, Origin, Request, Ticket
from .limits import DAY, DailyLimit, utc_day_start
from .pgstore import _INSERT, _from_row
from .scheduler import FALLBACK_WAIT, LOOK_AHEAD, BackendStatus, Scheduler, StatusView, _Backend
from .store import _COLUMNS, IdTaken, JobRecord

__all__ = ["LEASE_TTL", "SharedQueue", "SharedScheduler"]

log = logging.getLogger(__name__)

LEASE_TTL = 15.0  # seconds: a worker that stops renewing loses its backends and jobs after this
RESERVATION_TTL = 300.0  # an admitted job not stored by then (its gateway died) stops counting
WAITING_REFRESH = 1.0  # seconds between reads of the waiting line (positions) per process
ADMIT_TIMEOUT = 2.0  # seconds admission may take before the user is told the bot is unavailable
CLAIM_POLL = 1.0  # an idle worker looks for work at least this often (NOTIFY wakes it at once)
CHANNEL = "sdcord"  # NOTIFY channel: "job" (a job is waiting), "cancel:<id>"
NOW = "extract(epoch from clock_timestamp())::float8"  # the database's clock: one clock for every machine


def unavailable(exc: BaseException) -> StorageError:
    """The database can't be reached or refused: what the user is told (the detail goes to the log)."""
    return StorageError(T("refuse.unavailable"), detail=repr(exc))


DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)


class SharedQueue:
    """The shared queue's statements. `pool` is the job store's (PgJobStore)."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, role: str, lease_ttl: float = LEASE_TTL,
                 rate: int = 5, per: float = 60.0, cap: int = 3) -> None:
        self.pool = pool
        self.dsn = dsn
        self.role = role
        self.id = f"{role}-{socket.gethostname()}-{secrets.token_hex(3)}"
        self.lease_ttl = lease_ttl
        self.rate, self.per, self.cap = rate, per, cap
        self._listener: asyncpg.Connection | None = None

    # ------------------------------------------------------------------ this process
    async def register(self) -> None:
        await self.pool.execute(f"INSERT INTO processes (id, role, started_at, seen_at) VALUES ($1, $2, {NOW}, {NOW}) "
                                "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at", self.id, self.role)

    async def heartbeat(self) -> None:
        await self.pool.execute(f"UPDATE processes SET seen_at = {NOW} WHERE id = $1", self.id)
        await self.pool.execute(f"DELETE FROM processes WHERE seen_at < {NOW} - $1", self.lease_ttl * 20)
        await self.pool.execute(f"DELETE FROM reservations WHERE expires_at < {NOW}")

    async def unregister(self, leases: list[str]) -> None:
        """A clean stop: jobs still running here go back first in line, every job of ours is left for another
        process to adopt at once, our leases are given up."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE jobs SET status = 'queued', front = 1, backend = NULL "
                               "WHERE owner = $1 AND status = 'running' AND delivered_at IS NULL", self.id)
            await conn.execute("UPDATE jobs SET owner = NULL WHERE owner = $1 AND delivered_at IS NULL", self.id)
            await conn.execute("UPDATE backends SET holder = NULL, expires_at = 0, busy_job = NULL "
                               "WHERE holder = $1 AND name = ANY($2::text[])", self.id, leases)
            await conn.execute("DELETE FROM processes WHERE id = $1", self.id)
        await self.notify("job")

    async def notify(self, message: str) -> None:
        await self.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, message)

    async def listen(self, callback: Callable[[str], None]) -> None:
        """Call `callback(payload)` for every NOTIFY on our channel (a dedicated connection)."""
        await self.stop_listening()
        conn = await asyncpg.connect(self.dsn, timeout=5)
        await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: callback(payload))
        self._listener = conn

    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def stop_listening(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*DB_ERRORS):
                await conn.close(timeout=2)

    # ------------------------------------------------------------------ admission
    async def admit(self, user_id: int, daily: Sequence[DailyLimit] = (), guild_id: int | None = None) -> str:
        """Take a token and reserve a slot for a job of `user_id` (in server `guild_id`, by default the one of
        a server's daily limit); returns the reservation's key. Raises Refused (which limit, when to try
        again). `daily`: the user's jobs since the UTC day began, with reservations not yet stored, must stay
        under each limit, everywhere or in one server."""
        key = secrets.token_hex(8)
        if guild_id is None:
            guild_id = next((d.guild_id for d in daily if d.guild_id is not None), None)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"INSERT INTO rate_buckets (user_id, tokens, updated_at) VALUES ($1, $2, {NOW}) "
                               "ON CONFLICT (user_id) DO NOTHING", user_id, float(self.rate))
            bucket = await conn.fetchrow(f"SELECT tokens, updated_at, {NOW} AS now FROM rate_buckets "
                                         "WHERE user_id = $1 FOR UPDATE", user_id)
            active = await conn.fetchval(
                "SELECT (SELECT count(*) FROM jobs WHERE user_id = $1 AND status IN ('queued', 'running')) + "
                f"(SELECT count(*) FROM reservations WHERE user_id = $1 AND expires_at > {NOW})", user_id)
            if active >= self.cap:
                raise Refused("queue", FALLBACK_WAIT, T("refuse.queue", count=self.cap))
            now = time.time()
            day = utc_day_start(now)
            for limit in daily:
                used = await conn.fetchval(
                    "SELECT (SELECT count(*) FROM jobs WHERE user_id = $1 AND created_at >= $2 "
                    "AND ($3::bigint IS NULL OR guild_id = $3)) + "
                    f"(SELECT count(*) FROM reservations WHERE user_id = $1 AND expires_at > {NOW} "
                    "AND ($3::bigint IS NULL OR guild_id = $3))",
                    user_id, day, limit.guild_id)
                if used >= limit.limit:
                    key_name = "refuse.daily_server" if limit.guild_id is not None else "refuse.daily"
                    raise Refused("daily", day + DAY - now, T(key_name, count=limit.limit))
            refill = self.rate / self.per
            tokens = min(float(self.rate), bucket["tokens"] + (bucket["now"] - bucket["updated_at"]) * refill)
            if tokens < 1:
                raise Refused("rate", (1 - tokens) / refill,
                              T("refuse.rate", count=self.rate, period=period(self.per)))
            await conn.execute("UPDATE rate_buckets SET tokens = $2, updated_at = $3 WHERE user_id = $1",
                               user_id, tokens - 1, bucket["now"])
            await conn.execute("INSERT INTO reservations (id, user_id, expires_at, guild_id) "
                               f"VALUES ($1, $2, {NOW} + $3, $4)", key, user_id, RESERVATION_TTL, guild_id)
        return key

    async def release(self, key: str, user_id: int, *, refund: bool) -> None:
        """An admitted job that was never stored: its slot (and, with `refund`, its token) come back."""
        async with self.pool.acquire() as conn, conn.transaction():
            gone = await conn.execute("DELETE FROM reservations WHERE id = $1", key)
            if refund and gone == "DELETE 1":
                await conn.execute("UPDATE rate_buckets SET tokens = LEAST($2, tokens + 1) WHERE user_id = $1",
                                   user_id, float(self.rate))

    async def insert(self, record: JobRecord, key: str | None) -> tuple[int, int]:
        """Store a new job in its fair place (round, seq, returned) and wake the workers. Raises IdTaken."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT 1 FROM rate_buckets WHERE user_id = $1 FOR UPDATE", record.user_id)
                served = await conn.fetchval("SELECT round FROM queue_state WHERE id = 1")
                last = await conn.fetchval("SELECT max(round) FROM jobs WHERE user_id = $1 "
                                           "AND status IN ('queued', 'running')", record.user_id)
                record.round = max((last or 0) + 1, served)
                record.seq = await conn.fetchval("SELECT nextval('job_seq')")
                record.owner = self.id
                status = await conn.execute(_INSERT, *(getattr(record, k) for k in _COLUMNS))
                if status != "INSERT 0 1":
                    raise IdTaken(record.id)
                if key is not None:
                    await conn.execute("DELETE FROM reservations WHERE id = $1", key)
            await conn.execute("SELECT pg_notify($1, 'job')", CHANNEL)
        return record.round, record.seq

    # ------------------------------------------------------------------ the waiting line
    async def waiting(self) -> list[str]:
        """Ids of every waiting job in fair order."""
        rows = await self.pool.fetch("SELECT id FROM jobs WHERE status = 'queued' ORDER BY front DESC, round, seq")
        return [r[0] for r in rows]

    async def head(self, limit: int = LOOK_AHEAD) -> list[JobRecord]:
        rows = await self.pool.fetch("SELECT * FROM jobs WHERE status = 'queued' ORDER BY front DESC, round, seq "
                                     "LIMIT $1", limit)
        return [_from_row(r) for r in rows]

    async def claim(self, job_id: str, backend: str) -> JobRecord | None:
        """Take waiting job `job_id` for `backend`: None when another worker has it (or it left the line)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT id FROM jobs WHERE id = $1 AND status = 'queued' "
                                      "FOR UPDATE SKIP LOCKED", job_id)
            if row is None:
                return None
            claimed = await conn.fetchrow(
                "UPDATE jobs SET status = 'running', backend = $2, owner = $3, front = 0 WHERE id = $1 RETURNING *",
                job_id, backend, self.id)
            await conn.execute("UPDATE queue_state SET round = GREATEST(round, $1) WHERE id = 1", claimed["round"])
            await conn.execute("UPDATE backends SET busy_job = $2 WHERE name = $1", backend, job_id)
        return _from_row(claimed)

    async def records(self, ids: list[str]) -> list[JobRecord]:
        rows = await self.pool.fetch("SELECT * FROM jobs WHERE id = ANY($1::text[])", ids)
        return [_from_row(r) for r in rows]

    async def unfinished_of(self, user_id: int) -> list[JobRecord]:
        rows = await self.pool.fetch("SELECT * FROM jobs WHERE user_id = $1 AND status IN ('queued', 'running') "
                                     "ORDER BY status = 'queued', front DESC, round, seq", user_id)
        return [_from_row(r) for r in rows]

    async def cancel(self, job_id: str) -> str:
        """'queued' (cancelled here and now), 'running' (its worker is told), or 'ended'."""
        async with self.pool.acquire() as conn:
            done = await conn.fetchval(f"UPDATE jobs SET status = 'cancelled', finished_at = {NOW} "
                                       "WHERE id = $1 AND status = 'queued' RETURNING id", job_id)
            if done is not None:
                return "queued"
            running = await conn.fetchval("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'running' "
                                          "RETURNING id", job_id)
            if running is None:
                return "ended"
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"cancel:{job_id}")
            return "running"

    async def live_backends(self) -> int:
        """Backends a live worker holds and can reach."""
        return int(await self.pool.fetchval(f"SELECT count(*) FROM backends WHERE holder IS NOT NULL "
                                            f"AND expires_at > {NOW} AND up"))

    async def fail_waiting(self, job_id: str, error: str) -> bool:
        """Fail a job that is still waiting (False: a worker took it meanwhile)."""
        done = await self.pool.fetchval(f"UPDATE jobs SET status = 'failed', error = $2, finished_at = {NOW} "
                                        "WHERE id = $1 AND status = 'queued' RETURNING id", job_id, error)
        return done is not None

    async def cancels_asked(self) -> list[str]:
        rows = await self.pool.fetch("SELECT id FROM jobs WHERE owner = $1 AND status = 'running' "
                                     "AND cancel_requested = 1", self.id)
        return [r[0] for r in rows]

    async def adopt(self, limit: int = 100) -> list[JobRecord]:
        """Take over undelivered jobs whose owner is gone (stopped heartbeating for a lease, or stopped
        cleanly). Returns them as they were (status included)."""
        rows = await self.pool.fetch(
            f"""UPDATE jobs SET owner = $1 WHERE id IN (
                    SELECT j.id FROM jobs j WHERE j.delivered_at IS NULL AND (j.owner IS NULL OR NOT EXISTS (
                        SELECT 1 FROM processes p WHERE p.id = j.owner AND p.seen_at > {NOW} - $2))
                    ORDER BY j.seq LIMIT $3 FOR UPDATE SKIP LOCKED)
                RETURNING *""", self.id, self.lease_ttl, limit)
        return sorted((_from_row(r) for r in rows), key=lambda r: r.seq)

    # ------------------------------------------------------------------ backend leases
    async def acquire(self, name: str) -> tuple[bool, str | None]:
        """Hold `name` for LEASE_TTL (also: renew). Returns (held, a job another holder left running there)."""
        row = await self.pool.fetchrow(
            f"""WITH prev AS (SELECT holder, busy_job FROM backends WHERE name = $1)
                INSERT INTO backends (name, holder, expires_at) VALUES ($1, $2, {NOW} + $3)
                ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                    WHERE backends.holder = excluded.holder OR backends.holder IS NULL
                       OR backends.expires_at < {NOW}
                RETURNING (SELECT holder FROM prev) AS previous, (SELECT busy_job FROM prev) AS busy""",
            name, self.id, self.lease_ttl)
        if row is None:
            return False, None
        left = row["busy"] if row["previous"] not in (None, self.id) else None
        return True, left

    async def renew(self, names: list[str]) -> set[str]:
        rows = await self.pool.fetch(f"UPDATE backends SET expires_at = {NOW} + $3 WHERE holder = $1 "
                                     "AND name = ANY($2::text[]) RETURNING name", self.id, names, self.lease_ttl)
        return {r[0] for r in rows}

    async def backend_state(self, name: str, *, up: bool, busy_job: str | None, last_error: str) -> None:
        await self.pool.execute("UPDATE backends SET up = $3, busy_job = $4, last_error = $5 "
                                "WHERE name = $1 AND holder = $2", name, self.id, up, busy_job, last_error)

    async def backends(self) -> list[asyncpg.Record]:
        """Every backend a live worker holds."""
        return await self.pool.fetch(f"SELECT name, up, busy_job, last_error FROM backends "
                                     f"WHERE holder IS NOT NULL AND expires_at > {NOW} ORDER BY name")


class SharedScheduler(Scheduler):
    """The scheduler over the shared queue: the same job life cycle (`_run`: timeouts, unreachable
    backends, cancels, progress) with the waiting line, limits and leases in PostgreSQL. A process without
    backends (a gateway alone) admits, stores and shows jobs; workers run them."""

    requires_backends = False

    def __init__(self, clients: list[Any], runner: Any, *, lease_ttl: float = LEASE_TTL, **kwargs: Any) -> None:
        super().__init__(clients, runner, **kwargs)
        self.lease_ttl = lease_ttl
        self.shared: SharedQueue | None = None
        self.book: Any = None
        self.adopted: list[Callable[[Job], None]] = []  # told of every job this process starts to follow
        self._positions: dict[str, int] = {}
        self._waiting_count = 0
        self._held: dict[str, float] = {}  # backend -> when its lease was last renewed
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh_now = asyncio.Event()

    def attach(self, shared: SharedQueue, book: Any) -> None:
        self.shared, self.book = shared, book

    @property
    def q(self) -> SharedQueue:
        if self.shared is None:
            raise RuntimeError("the shared queue is not attached")
        return self.shared

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._shared_worker(b), name=f"worker {b.name}") for b in self.backends]
        self._tasks = [loop.create_task(self._keep_alive(), name="shared queue heartbeat"),
                       loop.create_task(self._follow_line(), name="shared queue positions")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await super().stop()

    async def leave(self) -> None:
        """After `stop`: hand every job and lease of this process to the others."""
        if self.shared is None:
            return
        await self.q.stop_listening()
        try:
            await self.q.unregister([b.name for b in self.backends])
        except DB_ERRORS as exc:
            log.warning("Could not hand this process's jobs over cleanly (they are adopted after %g s): %r",
                        self.lease_ttl, exc)

    async def _keep_alive(self) -> None:
        """Heartbeat, leases, adoption, cancels asked, the NOTIFY listener: every LEASE_TTL / 3."""
        while True:
            try:
                if not self.q.listening():
                    await self.q.listen(self._notified)
                await self.q.heartbeat()
                if self._held:
                    renewed = await self.q.renew(list(self._held))
                    for backend in self.backends:
                        if backend.name in renewed:
                            await self._publish(backend)
                    now = self.clock()
                    for name in list(self._held):
                        if name in renewed:
                            self._held[name] = now
                        else:
                            log.warning("Lost the lease on backend %s", name)
                            del self._held[name]
                for job_id in await self.q.cancels_asked():
                    await self._cancel_local(job_id)
                await self._adopt()
                await self._expire_waiting()
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                log.warning("Shared queue: the database is unreachable (%r); retrying", exc)
                now = self.clock()
                for name, renewed_at in list(self._held.items()):  # can't renew: stop taking jobs there
                    if now - renewed_at > self.lease_ttl:
                        del self._held[name]
                await self.q.stop_listening()
            except Exception:  # noqa: BLE001 - keep beating
                log.exception("Shared queue heartbeat failed")
            await asyncio.sleep(self.lease_ttl / 3)

    def _notified(self, payload: str) -> None:
        if payload.startswith("cancel:"):
            asyncio.get_running_loop().create_task(self._cancel_local(payload[7:]))
        else:
            self._wake.set()
            self._refresh_now.set()

    async def _cancel_local(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and not job.is_final and job.state is JobState.RUNNING:
            await super().cancel(job)

    async def _adopt(self) -> None:
        records = await self.q.adopt()
        if not records:
            return
        jobs = await self.book.restore_records(records)
        for job in jobs:
            log.info("Adopted job %s (%s) from a process that stopped", job.id, job.state.value)
            self._take(job)
        if any(j.state is JobState.QUEUED for j in jobs):
            await self.book.flush()
            await self.q.notify("job")

    async def _expire_waiting(self) -> None:
        """While no worker holds a backend that is up, our waiting jobs say so; after BACKEND_WAIT_LIMIT of
        that they fail clearly (each process for the jobs it keeps the messages of)."""
        now = self.clock()
        down = await self.q.live_backends() == 0
        if not down:
            self._all_down_since = None
        elif self._all_down_since is None:
            self._all_down_since = now
        for job in [j for j in self.jobs.values() if j.state is JobState.QUEUED]:
            if job.waiting_for_backend != down:
                job.waiting_for_backend = down
                job.touch()
            since = self._all_down_since
            if down and since is not None and now - max(job.created, since) > self.wait_limit:
                error = WebUIError(T("failure.all_down", period=period(self.wait_limit)))
                if await self.q.fail_waiting(job.id, stored_reason(error.message)):
                    job.finish(JobState.FAILED, now, error=error)
                    self._forget_later(job)

    def _take(self, job: Job) -> None:
        """This process now keeps `job`'s message current."""
        self._track(job)
        if job.is_final:
            self._forget_later(job)
        for listener in self.adopted:
            listener(job)

    async def _follow_line(self) -> None:
        """Read the waiting line once a second: positions for every waiting job's message, and which of our
        waiting jobs left it (taken by a worker elsewhere, cancelled from another gateway, expired)."""
        while True:
            try:
                ids = await self.q.waiting()
                self._positions = {job_id: i for i, job_id in enumerate(ids, start=1)}
                self._waiting_count = len(ids)
                gone = [j.id for j in self.jobs.values() if j.state is JobState.QUEUED and j.id not in self._positions]
                if gone:
                    await self._left_line(await self.q.records(gone))
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                log.debug("Shared queue: reading the waiting line failed: %r", exc)
            except Exception:  # noqa: BLE001 - keep reading
                log.exception("Shared queue: reading the waiting line failed")
            self._refresh_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), WAITING_REFRESH)

    async def _left_line(self, records: list[JobRecord]) -> None:
        for record in records:
            job = self.jobs.get(record.id)
            if job is None or job.state is not JobState.QUEUED or record.status == "queued":
                continue
            if record.owner != self.q.id:  # a worker elsewhere runs it and keeps its message current now
                job.handed_over = True
                job.touch()
                self._untrack(job)
            elif record.status in ("cancelled", "failed"):
                error = JobFailed(reason_from_store(record.error)) if record.status == "failed" else None
                job.finish(JobState(record.status), self.clock(), error=error)
                self._forget_later(job)

    # ------------------------------------------------------------------ admission and storing
    async def reserve(self, user_id: int, daily: Sequence[DailyLimit] = (), guild_id: int | None = None) -> Ticket:
        if not self.accepting:
            raise Refused("shutdown", 60.0, T("refuse.restarting"))
        try:  # within Discord's 3 s to acknowledge, whatever the database does
            key = await asyncio.wait_for(self.q.admit(user_id, daily, guild_id), ADMIT_TIMEOUT)
        except Refused:
            raise
        except DB_ERRORS as exc:
            log.error("Admission failed: the database is unreachable: %r", exc)
            raise unavailable(exc) from exc
        return Ticket(user_id, key=key)

    def release(self, ticket: Ticket, *, refund: bool = True) -> None:
        if ticket.used:
            return
        ticket.used = True
        if ticket.key is not None:
            asyncio.get_running_loop().create_task(self._release(ticket, refund))

    async def _release(self, ticket: Ticket, refund: bool) -> None:
        try:
            await self.q.release(ticket.key or "", ticket.user_id, refund=refund)
        except DB_ERRORS as exc:  # the reservation expires by itself
            log.warning("Could not give a reservation back: %r", exc)

    def new_job(self, ticket: Ticket, request: Request, origin: Origin) -> Job:
        if ticket.used:
            raise RuntimeError("ticket already used")
        if origin.user_id != ticket.user_id:
            raise ValueError("the ticket belongs to another user")
        job = Job(secrets.token_hex(4), origin, request, 0, 0, self.clock())
        job.ticket = ticket
        return job

    async def store_new(self, job: Job, record: JobRecord) -> BaseException | None:
        """Store a new job in the shared line (its round and seq come from there)."""
        ticket = job.ticket
        try:
            job.round, job.seq = await self.q.insert(record, ticket.key if ticket else None)
        except IdTaken as exc:
            return exc
        except DB_ERRORS as exc:
            return exc
        if ticket is not None:
            ticket.used = True
        return None

    def discard(self, job: Job) -> None:
        ticket = job.ticket
        if ticket is not None and not ticket.used:
            self.release(ticket, refund=True)

    def enqueue(self, job: Job) -> None:
        self._track(job)
        self._refresh_now.set()

    def position(self, job: Job) -> int | None:
        return self._positions.get(job.id) if job.state is JobState.QUEUED else None

    def queue_length(self) -> int:
        return self._waiting_count

    def estimate_start(self, job: Job) -> float | None:
        return None  # durations are measured where the jobs run; no estimate across processes yet

    # ------------------------------------------------------------------ cancel
    async def cancel(self, job: Job, by: int | None = None) -> bool:
        if job.is_final:
            return False
        if job.state is JobState.RUNNING and any(b.job is job for b in self.backends):
            return await super().cancel(job, by)
        return await self.cancel_id(job.id, by)

    async def cancel_id(self, job_id: str, by: int | None = None) -> bool:
        """Cancel a job wherever it is. False when it had already ended."""
        job = self.jobs.get(job_id)
        if job is not None and job.state is JobState.RUNNING and any(b.job is job for b in self.backends):
            return await super().cancel(job, by)
        outcome = await self.q.cancel(job_id)
        if outcome == "queued" and job is not None and not job.is_final:
            job.cancelled_by = by
            job.finish(JobState.CANCELLED, self.clock())
            self._forget_later(job)
        return outcome != "ended"

    # ------------------------------------------------------------------ workers
    async def _shared_worker(self, backend: _Backend) -> None:
        while True:
            try:
                await self._work_once(backend)
            except asyncio.CancelledError:
                raise
            except DB_ERRORS as exc:
                log.warning("Worker %s: the database is unreachable (%r); retrying", backend.name, exc)
                await asyncio.sleep(1.0)
            except Exception:  # noqa: BLE001 - a worker never dies
                log.exception("Worker %s failed; going on", backend.name)
                await asyncio.sleep(1.0)

    async def _work_once(self, backend: _Backend) -> None:
        if backend.name not in self._held:
            held, left = await self.q.acquire(backend.name)
            if not held:
                await asyncio.sleep(self.lease_ttl / 3)  # another worker runs it
                return
            self._held[backend.name] = self.clock()
            log.info("Worker %s holds backend %s", self.q.id, backend.name)
            if left is not None:  # its last holder died running a job there
                backend.draining = backend.interrupt_first = True
        if backend.draining:
            await self._drain(backend)
        if not (self._taking and backend.up):
            await self._idle()
            return
        job = await self._claim(backend)
        if job is None:
            await self._idle()
            return
        await self._publish(backend, busy_job=job.id)
        try:
            await self._run(backend, job)
        finally:
            if job.is_final:
                await self.book.settled(job)
            with contextlib.suppress(*DB_ERRORS):
                await self._publish(backend)

    async def _publish(self, backend: _Backend, *, busy_job: str | None = None) -> None:
        """What /status shows of a backend this process holds, on any gateway."""
        if busy_job is None and backend.job is not None:
            busy_job = backend.job.id
        await self.q.backend_state(backend.name, up=backend.up, busy_job=busy_job,
                                   last_error=stored_reason(backend.last_error) if backend.last_error else "")

    async def _idle(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), CLAIM_POLL)

    async def _claim(self, backend: _Backend) -> Job | None:
        """The first waiting job (in fair order) this backend can run, claimed; None when there is none."""
        for _ in range(8):  # another worker took our pick meanwhile: look again
            records = await self.q.head()
            if not records:
                return None
            candidates = [self.jobs.get(r.id) or self.book.job_from_record(r, self.clock()) for r in records]
            idle = [b for b in self.backends if b is not backend and b.up and b.job is None and not b.draining]
            job = self._pick(backend, candidates, idle)
            if job is None:
                return None
            record = await self.q.claim(job.id, backend.name)
            if record is None:
                continue
            known = self.jobs.get(job.id)
            if known is not None:
                job = known
            else:
                job.resumed = record.attempts > 0
                self._take(job)
            job.front = False
            return job
        return None

    def _requeue(self, job: Job) -> None:
        """The backend never got the job: it goes back first in line for any worker."""
        job.front = True
        job.touch()
        self._emit(job)
        asyncio.get_running_loop().create_task(self._wake_others(job))

    async def _wake_others(self, job: Job) -> None:
        await self.book.settled(job)
        with contextlib.suppress(*DB_ERRORS):
            await self.q.notify("job")

    async def _supervise(self) -> None:
        return  # waiting jobs are the database's: `_expire_waiting`, at each heartbeat

    # ------------------------------------------------------------------ status
    async def status_of(self, user_id: int, limit: int) -> StatusView:
        records = await self.q.unfinished_of(user_id)
        mine = []
        for record in records:
            job = self.jobs.get(record.id) or self.book.job_from_record(record, self.clock())
            mine.append((job, self._positions.get(record.id) if record.status == "queued" else None))
        backends = [BackendStatus(r["name"], r["up"], r["busy_job"] is not None,
                                  reason_from_store(r["last_error"]) if r["last_error"] else "")
                    for r in await self.q.backends()]
        return StatusView(backends, self._waiting_count, mine[:limit], len(mine))
