"""The job store on PostgreSQL (issue 11: one queue shared by several bot processes), behind the same
interface as `store.JobStore`, the SQLite one. No Discord imports. Chosen by DATABASE_URL; the shared
queue's own operations are in `shared.py`.

An asyncpg pool; JSON fields are `jsonb`, encoded and decoded with orjson by a codec set on every
connection, so values go in and come out as Python objects. Numbered migrations of its own (`MIGRATIONS`
below, not SQLite's), tracked in the one-row table `schema_version` and applied at open in one
transaction under an advisory lock, so processes starting together migrate once. `apply` runs a batch in
one transaction; should an op fail in the server (which aborts a PostgreSQL transaction), the batch is
rolled back and applied again with a savepoint per op, so each op still gets its own error and the others
still apply, as with SQLite. `StoreWriter` (in `store`) works with this store unchanged.

Differences from SQLite: `jsonb` keeps no key order (objects come back with their keys sorted, shortest
first) and refuses the NUL character (`\\u0000`) in strings; values are typed (an int column refuses a
float or a str); `query_plan` gives PostgreSQL's EXPLAIN lines.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
import orjson

from .store import _COLUMNS, UNDELIVERED_QUERY, IdTaken, JobRecord, _check_fields

__all__ = ["MIGRATIONS", "PgJobStore"]

log = logging.getLogger(__name__)

# Numbered migrations: index + 1 is the schema version they lead to. Never edit one that shipped.
# Version 1 is the SQLite store's schema as of its version 3, with PostgreSQL types.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id BIGINT NOT NULL,
        guild_id BIGINT,
        channel_id BIGINT,
        message_id BIGINT,
        result_message_id BIGINT,
        payload JSONB NOT NULL,
        backend TEXT,
        status TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        seeds JSONB NOT NULL DEFAULT '[]',
        infotexts JSONB NOT NULL DEFAULT '[]',
        error TEXT,
        parent_id TEXT,
        origin JSONB NOT NULL DEFAULT '{}',
        extra JSONB NOT NULL DEFAULT '{}',
        outcome JSONB,
        round BIGINT NOT NULL DEFAULT 0,
        seq BIGINT NOT NULL DEFAULT 0,
        attempts BIGINT NOT NULL DEFAULT 0,
        delivered_at DOUBLE PRECISION,
        delivery_error TEXT
    );
    CREATE INDEX jobs_by_message ON jobs (message_id);
    CREATE INDEX jobs_by_result_message ON jobs (result_message_id);
    CREATE INDEX jobs_by_user ON jobs (user_id, status);
    CREATE INDEX jobs_undelivered ON jobs (seq) WHERE delivered_at IS NULL;
    CREATE TABLE guild_settings (
        guild_id BIGINT PRIMARY KEY,
        data JSONB NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        updated_by BIGINT
    );
    CREATE TABLE settings_log (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        guild_id BIGINT NOT NULL,
        user_id BIGINT NOT NULL,
        changed_at DOUBLE PRECISION NOT NULL,
        change TEXT NOT NULL
    );
    CREATE INDEX settings_log_by_guild ON settings_log (guild_id, id);
    CREATE TABLE user_prefs (
        user_id BIGINT PRIMARY KEY,
        data JSONB NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 2: one queue shared by gateways and workers (bot/core/shared.py). The job columns SQLite's version 4
    # adds; the waiting line in fair order (a partial index, so claiming reads only waiting jobs); the served
    # round; processes and their heartbeats; backend leases (one worker runs a WebUI at a time) and what
    # /status shows of them; per-user token buckets and admitted-but-not-yet-stored reservations (limits
    # atomic across gateways); the image counter.
    """
    ALTER TABLE jobs ADD COLUMN front INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_waiting ON jobs (front DESC, round, seq) WHERE status = 'queued';
    CREATE INDEX jobs_unfinished_by_user ON jobs (user_id, round) WHERE status IN ('queued', 'running');
    CREATE INDEX jobs_by_owner ON jobs (owner) WHERE delivered_at IS NULL;
    CREATE SEQUENCE job_seq;
    CREATE TABLE queue_state (id INTEGER PRIMARY KEY CHECK (id = 1), round BIGINT NOT NULL);
    INSERT INTO queue_state VALUES (1, 0);
    CREATE TABLE processes (
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE backends (
        name TEXT PRIMARY KEY,
        holder TEXT,
        expires_at DOUBLE PRECISION NOT NULL,
        up BOOLEAN NOT NULL DEFAULT true,
        busy_job TEXT,
        last_error TEXT
    );
    CREATE TABLE rate_buckets (
        user_id BIGINT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX reservations_by_user ON reservations (user_id);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    """,
    # 3: a user's jobs by time, for /history (newest first, a page at a time) and quotas (jobs since a time);
    # the same index as SQLite's version 5. A reservation's server, for a server's own daily limit. Input
    # images (img2img, Zoom out's canvas and mask, /upscale, /describe) by content, so a worker on another
    # machine can read what a gateway accepted.
    """
    CREATE INDEX jobs_by_user_created ON jobs (user_id, created_at);
    ALTER TABLE reservations ADD COLUMN guild_id BIGINT;
    CREATE TABLE inputs (
        digest TEXT PRIMARY KEY,
        data BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
)

COMMAND_TIMEOUT = 10.0  # seconds
CONNECT_TIMEOUT = 5.0
_MIGRATION_LOCK = 0x5D_C0_4D_01  # pg_advisory_xact_lock key: one process migrates at a time
HISTORY_QUERY = "SELECT * FROM jobs WHERE user_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2 OFFSET $3"
_INSERT = (f"INSERT INTO jobs ({', '.join(_COLUMNS)}) "  # column names are ours
           f"VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))}) ON CONFLICT (id) DO NOTHING")


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)  # jsonb's binary format: a version byte, then the text


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=_jsonb_encode, decoder=_jsonb_decode)


def _from_row(row: asyncpg.Record) -> JobRecord:
    return JobRecord(**{k: row[k] for k in _COLUMNS})


def _update_sql(job_id: str, changes: dict[str, Any]) -> tuple[str, list[Any]]:
    _check_fields(changes)
    names = list(changes)
    assignments = ", ".join(f"{k} = ${i}" for i, k in enumerate(names, start=2))
    return f"UPDATE jobs SET {assignments} WHERE id = $1", [job_id, *(changes[k] for k in names)]


class PgJobStore:
    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self.dsn = dsn

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 4) -> PgJobStore:
        # Bounded waits: a server that stops answering costs a command at most COMMAND_TIMEOUT, a connection
        # attempt CONNECT_TIMEOUT; the pool makes new connections by itself once the server is back.
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                         command_timeout=COMMAND_TIMEOUT, timeout=CONNECT_TIMEOUT)
        store = cls(pool, dsn)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def take_numbers(self, n: int) -> int:
        """Reserve n image numbers (one counter for every process); returns the first."""
        last = await self._pool.fetchval(
            "INSERT INTO counters (name, value) VALUES ('images', $1) ON CONFLICT (name) "
            "DO UPDATE SET value = counters.value + excluded.value RETURNING value", n)
        return int(last) - n + 1

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await conn.fetchval("SELECT version FROM schema_version")
            if version is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                await conn.execute(script)
                await conn.execute("UPDATE schema_version SET version = $1", number)
                log.info("Job store (PostgreSQL) migrated to schema version %d", number)

    async def schema_version(self) -> int:
        async with self._pool.acquire() as conn:
            if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
                return 0
            return int(await conn.fetchval("SELECT version FROM schema_version") or 0)

    async def close(self) -> None:
        await self._pool.close()

    # ------------------------------------------------------------------ jobs
    async def add(self, record: JobRecord) -> None:
        """Insert one job (committed on return). Raises IdTaken when its id is in use."""
        status = await self._pool.execute(_INSERT, *(getattr(record, k) for k in _COLUMNS))
        if status != "INSERT 0 1":
            raise IdTaken(record.id)

    async def update(self, job_id: str, **changes: Any) -> None:
        sql, args = _update_sql(job_id, changes)
        await self._pool.execute(sql, *args)

    async def apply(self, ops: list[tuple[str, Any]]) -> list[BaseException | None]:
        """Apply ("add", JobRecord) and ("update", (job_id, changes)) in order, in one transaction.
        Returns, per op, None or the error it met (IdTaken for a taken id); the others still apply."""
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return await self._apply(conn, ops, savepoints=False)
            except Exception:  # an op failed and aborted the transaction: again, op by op
                log.debug("Job store batch of %d failed; applying it op by op", len(ops), exc_info=True)
            async with conn.transaction():
                return await self._apply(conn, ops, savepoints=True)

    @staticmethod
    async def _apply(conn: asyncpg.Connection, ops: list[tuple[str, Any]], *,
                     savepoints: bool) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        for op, arg in ops:
            try:  # checked here, before the server sees anything
                if op == "add":
                    sql, args = _INSERT, [getattr(arg, k) for k in _COLUMNS]
                else:
                    sql, args = _update_sql(*arg)
            except Exception as exc:  # noqa: BLE001 - reported to the op's caller
                results.append(exc)
                continue
            if savepoints:
                try:
                    async with conn.transaction():  # nested: a savepoint
                        status = await conn.execute(sql, *args)
                except Exception as exc:  # noqa: BLE001 - reported to the op's caller
                    results.append(exc)
                    continue
            else:
                status = await conn.execute(sql, *args)
            results.append(IdTaken(arg.id) if op == "add" and status != "INSERT 0 1" else None)
        return results

    async def get(self, job_id: str) -> JobRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        return _from_row(row) if row else None

    async def by_message(self, message_id: int) -> JobRecord | None:
        """The job whose job message or result message this is."""
        row = await self._pool.fetchrow(
            "SELECT * FROM jobs WHERE message_id = $1 OR result_message_id = $1 ORDER BY created_at DESC LIMIT 1",
            message_id)
        return _from_row(row) if row else None

    async def undelivered(self) -> list[JobRecord]:
        """Every job whose user has not seen its end yet (queued, running, or ended but not delivered),
        in arrival order. The partial index `jobs_undelivered` serves it."""
        return [_from_row(r) for r in await self._pool.fetch(UNDELIVERED_QUERY)]

    async def unfinished(self) -> list[JobRecord]:
        """Jobs still queued or running."""
        return [r for r in await self.undelivered() if r.status in ("queued", "running")]

    async def put_input(self, digest: str, data: bytes) -> None:
        """Keep a job's input image (its sha256 `digest`) where every process can read it."""
        await self._pool.execute("INSERT INTO inputs (digest, data, created_at) VALUES ($1, $2, $3) "
                                 "ON CONFLICT (digest) DO NOTHING", digest, data, time.time())

    async def get_input(self, digest: str) -> bytes | None:
        data = await self._pool.fetchval("SELECT data FROM inputs WHERE digest = $1", digest)
        return bytes(data) if data is not None else None

    async def history(self, user_id: int, *, limit: int, offset: int = 0) -> list[JobRecord]:
        """A user's jobs, newest first (created_at, then seq, descending): `limit` of them after `offset`.
        The index `jobs_by_user_created` serves it."""
        rows = await self._pool.fetch(HISTORY_QUERY, user_id, max(0, limit), max(0, offset))
        return [_from_row(r) for r in rows]

    async def count_jobs(self, user_id: int) -> int:
        """How many jobs a user has in the store (how many pages /history has)."""
        return int(await self._pool.fetchval("SELECT COUNT(*) FROM jobs WHERE user_id = $1", user_id) or 0)

    async def jobs_since(self, user_id: int, since: float, *, guild_id: int | None = None) -> int:
        """How many jobs a user started at or after `since` (epoch seconds), only in `guild_id` when given:
        what a quota per day counts."""
        sql = "SELECT COUNT(*) FROM jobs WHERE user_id = $1 AND created_at >= $2"
        args: list[Any] = [user_id, float(since)]
        if guild_id is not None:
            sql += " AND guild_id = $3"
            args.append(guild_id)
        return int(await self._pool.fetchval(sql, *args) or 0)

    async def query_plan(self, sql: str) -> list[str]:
        """PostgreSQL's plan for `sql` (EXPLAIN, not run), a line per row."""
        return [str(r[0]) for r in await self._pool.fetch(f"EXPLAIN {sql}")]

    # ------------------------------------------------------------------ server settings, user preferences
    async def guild_settings(self, guild_id: int) -> dict[str, Any]:
        data = await self._pool.fetchval("SELECT data FROM guild_settings WHERE guild_id = $1", guild_id)
        return data if data is not None else {}

    async def set_guild_settings(self, guild_id: int, data: dict[str, Any], *, by: int, change: str) -> None:
        """Replace a server's settings and log who changed what."""
        async with self._pool.acquire() as conn, conn.transaction():
            now = time.time()
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at, updated_by) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by", guild_id, data, now, by)
            await conn.execute("INSERT INTO settings_log (guild_id, user_id, changed_at, change) "
                               "VALUES ($1, $2, $3, $4)", guild_id, by, now, change)

    async def settings_log(self, guild_id: int, limit: int = 20) -> list[tuple[int, float, str]]:
        rows = await self._pool.fetch(
            "SELECT user_id, changed_at, change FROM settings_log WHERE guild_id = $1 ORDER BY id DESC LIMIT $2",
            guild_id, limit)
        return [(int(r[0]), float(r[1]), str(r[2])) for r in rows]

    async def user_prefs(self, user_id: int) -> dict[str, Any]:
        data = await self._pool.fetchval("SELECT data FROM user_prefs WHERE user_id = $1", user_id)
        return data if data is not None else {}

    async def set_user_prefs(self, user_id: int, data: dict[str, Any]) -> None:
        await self._pool.execute(
            "INSERT INTO user_prefs (user_id, data, updated_at) VALUES ($1, $2, $3) ON CONFLICT (user_id) "
            "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            user_id, data, time.time())

    async def all_guild_settings(self) -> dict[int, dict[str, Any]]:
        return {int(r[0]): r[1] for r in await self._pool.fetch("SELECT guild_id, data FROM guild_settings")}

    async def all_user_prefs(self) -> dict[int, dict[str, Any]]:
        return {int(r[0]): r[1] for r in await self._pool.fetch("SELECT user_id, data FROM user_prefs")}
