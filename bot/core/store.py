"""The job store: every job recorded in SQLite under SDCORD_DATA_DIR, the source of truth for the
queue. No Discord imports.

One aiosqlite connection (SQLite in a worker thread, so the event loop never waits on disk), WAL
journal with `synchronous=FULL` (a committed job survives a power cut), numbered schema migrations
tracked in `PRAGMA user_version`. A job is written before its user is told it is queued; at start the
queue is rebuilt from the jobs not yet delivered (a partial index, so the scan stays cheap however
many jobs the store holds). `StoreWriter` applies changes in order from one task, a batch per
transaction (group commit), and tells each caller when its change is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from bot.errors import SdcordError

__all__ = ["IdTaken", "JobRecord", "JobStore", "MIGRATIONS", "StoreWriter"]

log = logging.getLogger(__name__)

# Numbered migrations: index + 1 is the schema version they lead to. Never edit one that shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        guild_id INTEGER,
        channel_id INTEGER,
        message_id INTEGER,
        result_message_id INTEGER,
        payload TEXT NOT NULL,
        backend TEXT,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        seeds TEXT NOT NULL DEFAULT '[]',
        infotexts TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        parent_id TEXT
    );
    CREATE INDEX jobs_by_message ON jobs (message_id);
    CREATE INDEX jobs_by_result_message ON jobs (result_message_id);
    CREATE INDEX jobs_by_user ON jobs (user_id, status);
    """,
    """
    CREATE TABLE guild_settings (
        guild_id INTEGER PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL,
        updated_by INTEGER
    );
    CREATE TABLE settings_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        changed_at REAL NOT NULL,
        change TEXT NOT NULL
    );
    CREATE TABLE user_prefs (
        user_id INTEGER PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 3: durable jobs. Where and how to answer (origin), what to show (extra: notes, spoiler), the result
    # (outcome), the fair-queue place (round, seq), restarts (attempts) and delivery.
    """
    ALTER TABLE jobs ADD COLUMN origin TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE jobs ADD COLUMN outcome TEXT;
    ALTER TABLE jobs ADD COLUMN round INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN delivered_at REAL;
    ALTER TABLE jobs ADD COLUMN delivery_error TEXT;
    UPDATE jobs SET status = 'failed', error = 'The bot was updated before the job finished.',
        finished_at = COALESCE(finished_at, created_at) WHERE status IN ('queued', 'running');
    UPDATE jobs SET delivered_at = COALESCE(finished_at, created_at);
    CREATE INDEX jobs_undelivered ON jobs (seq) WHERE delivered_at IS NULL;
    """,
    # 4: the columns a queue shared by several processes needs (PostgreSQL, issue 11), kept here too so
    # both stores hold the same record: first in line (front), the process keeping the job's message
    # current (owner), and a cancel asked of the process running it (cancel_requested).
    """
    ALTER TABLE jobs ADD COLUMN front INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: a user's jobs by time, for /history (newest first, a page at a time) and quotas (jobs since a time).
    """
    CREATE INDEX jobs_by_user_created ON jobs (user_id, created_at);
    """,
)


_JSON_FIELDS = {"payload", "seeds", "infotexts", "origin", "extra", "outcome"}
UNDELIVERED_QUERY = "SELECT * FROM jobs WHERE delivered_at IS NULL ORDER BY seq"
# A user's jobs, newest first (ties, in the same clock tick: the later arrival first), a page at a time.
HISTORY_QUERY = "SELECT * FROM jobs WHERE user_id = ? ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?"


class IdTaken(SdcordError):
    """A job id is already in the store (ids are 8 hex digits, so this can happen): pick another."""


@dataclass(slots=True)
class JobRecord:
    id: str
    kind: str
    user_id: int
    payload: dict[str, Any]
    status: str
    created_at: float = field(default_factory=time.time)
    guild_id: int | None = None
    channel_id: int | None = None
    message_id: int | None = None
    result_message_id: int | None = None
    backend: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    seeds: list[int] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    error: str | None = None
    parent_id: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] | None = None
    round: int = 0
    seq: int = 0
    attempts: int = 0
    delivered_at: float | None = None
    delivery_error: str | None = None
    front: int = 0
    owner: str | None = None
    cancel_requested: int = 0


_COLUMNS = tuple(f.name for f in fields(JobRecord))


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in _JSON_FIELDS and v is not None else v for k, v in values.items()}


def _from_row(row: aiosqlite.Row) -> JobRecord:
    data = {k: row[k] for k in _COLUMNS}
    for key in _JSON_FIELDS:
        if data[key] is not None:
            data[key] = orjson.loads(data[key])
    return JobRecord(**data)


def _check_fields(changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(_COLUMNS)
    if unknown or "id" in changes:
        raise ValueError(f"unknown job fields: {sorted(unknown | ({'id'} & set(changes)))}")


class JobStore:
    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> JobStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA foreign_keys=ON")
        store = cls(db, path)
        await store._migrate()
        return store

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
            log.info("Job store migrated to schema version %d", number)

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self._db.close()

    # ------------------------------------------------------------------ jobs
    async def _insert(self, record: JobRecord) -> bool:
        values = _to_row({k: getattr(record, k) for k in _COLUMNS})
        names = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        cur = await self._db.execute(f"INSERT OR IGNORE INTO jobs ({names}) VALUES ({marks})", values)  # noqa: S608
        return cur.rowcount == 1

    async def _update(self, job_id: str, changes: dict[str, Any]) -> None:
        _check_fields(changes)
        values = _to_row(changes)
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        await self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = :id", {**values, "id": job_id})  # noqa: S608

    async def add(self, record: JobRecord) -> None:
        """Insert one job (committed on return). Raises IdTaken when its id is in use."""
        async with self._lock:
            inserted = await self._insert(record)
            await self._db.commit()
        if not inserted:
            raise IdTaken(record.id)

    async def update(self, job_id: str, **changes: Any) -> None:
        _check_fields(changes)
        async with self._lock:
            await self._update(job_id, changes)
            await self._db.commit()

    async def apply(self, ops: list[tuple[str, Any]]) -> list[BaseException | None]:
        """Apply ("add", JobRecord) and ("update", (job_id, changes)) in order, in one transaction.
        Returns, per op, None or the error it met (IdTaken for a taken id); the others still apply."""
        results: list[BaseException | None] = []
        async with self._lock:
            for op, arg in ops:
                try:
                    if op == "add":
                        results.append(None if await self._insert(arg) else IdTaken(arg.id))
                    else:
                        await self._update(*arg)
                        results.append(None)
                except Exception as exc:  # noqa: BLE001 - reported to the op's caller
                    results.append(exc)
            await self._db.commit()
        return results

    async def get(self, job_id: str) -> JobRecord | None:
        async with self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return _from_row(row) if row else None

    async def by_message(self, message_id: int) -> JobRecord | None:
        """The job whose job message or result message this is."""
        async with self._db.execute(
            "SELECT * FROM jobs WHERE message_id = ? OR result_message_id = ? ORDER BY created_at DESC LIMIT 1",
            (message_id, message_id),
        ) as cur:
            row = await cur.fetchone()
        return _from_row(row) if row else None

    async def undelivered(self) -> list[JobRecord]:
        """Every job whose user has not seen its end yet (queued, running, or ended but not delivered),
        in arrival order. Uses the partial index `jobs_undelivered`."""
        async with self._db.execute(UNDELIVERED_QUERY) as cur:
            rows = await cur.fetchall()
        return [_from_row(r) for r in rows]

    async def unfinished(self) -> list[JobRecord]:
        """Jobs still queued or running."""
        return [r for r in await self.undelivered() if r.status in ("queued", "running")]

    async def history(self, user_id: int, *, limit: int, offset: int = 0) -> list[JobRecord]:
        """A user's jobs, newest first (created_at, then seq, descending): `limit` of them after `offset`.
        The index `jobs_by_user_created` serves it."""
        async with self._db.execute(HISTORY_QUERY, (user_id, max(0, limit), max(0, offset))) as cur:
            rows = await cur.fetchall()
        return [_from_row(r) for r in rows]

    async def count_jobs(self, user_id: int) -> int:
        """How many jobs a user has in the store (how many pages /history has)."""
        async with self._db.execute("SELECT COUNT(*) FROM jobs WHERE user_id = ?", (user_id,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def jobs_since(self, user_id: int, since: float, *, guild_id: int | None = None) -> int:
        """How many jobs a user started at or after `since` (epoch seconds), only in `guild_id` when given:
        what a quota per day counts."""
        sql = "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ?"
        args: tuple[Any, ...] = (user_id, since)
        if guild_id is not None:
            sql, args = sql + " AND guild_id = ?", (*args, guild_id)
        async with self._db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def query_plan(self, sql: str) -> list[str]:
        async with self._db.execute(f"EXPLAIN QUERY PLAN {sql}") as cur:
            return [str(row[3]) for row in await cur.fetchall()]

    # ------------------------------------------------------------------ server settings, user preferences
    async def guild_settings(self, guild_id: int) -> dict[str, Any]:
        async with self._db.execute("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,)) as cur:
            row = await cur.fetchone()
        return orjson.loads(row[0]) if row else {}

    async def set_guild_settings(self, guild_id: int, data: dict[str, Any], *, by: int, change: str) -> None:
        """Replace a server's settings and log who changed what."""
        now = time.time()
        async with self._lock:
            await self._db.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by", (guild_id, orjson.dumps(data).decode(), now, by))
            await self._db.execute("INSERT INTO settings_log (guild_id, user_id, changed_at, change) VALUES (?, ?, ?, ?)",
                                   (guild_id, by, now, change))
            await self._db.commit()

    async def settings_log(self, guild_id: int, limit: int = 20) -> list[tuple[int, float, str]]:
        async with self._db.execute(
            "SELECT user_id, changed_at, change FROM settings_log WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, limit),
        ) as cur:
            return [(int(r[0]), float(r[1]), str(r[2])) for r in await cur.fetchall()]

    async def user_prefs(self, user_id: int) -> dict[str, Any]:
        async with self._db.execute("SELECT data FROM user_prefs WHERE user_id = ?", (user_id,)) as cur:
            row = await cur.fetchone()
        return orjson.loads(row[0]) if row else {}

    async def set_user_prefs(self, user_id: int, data: dict[str, Any]) -> None:
        async with self._lock:
            await self._db.execute(
                "INSERT INTO user_prefs (user_id, data, updated_at) VALUES (?, ?, ?) ON CONFLICT (user_id) "
                "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (user_id, orjson.dumps(data).decode(), time.time()))
            await self._db.commit()

    async def all_guild_settings(self) -> dict[int, dict[str, Any]]:
        async with self._db.execute("SELECT guild_id, data FROM guild_settings") as cur:
            return {int(r[0]): orjson.loads(r[1]) for r in await cur.fetchall()}

    async def all_user_prefs(self) -> dict[int, dict[str, Any]]:
        async with self._db.execute("SELECT user_id, data FROM user_prefs") as cur:
            return {int(r[0]): orjson.loads(r[1]) for r in await cur.fetchall()}


def transient(exc: BaseException) -> bool:
    """A database that is unreachable for now (a network error, a restarting server), not a bad change."""
    state = str(getattr(exc, "sqlstate", "") or "")
    return isinstance(exc, OSError | ConnectionError) or state.startswith(("08", "57P"))


class StoreWriter:
    """Job changes in the order they happened, from one task, a batch per transaction.

    `add` and `update` return a future that resolves (None, or the op's error) once the change is
    committed; callers that must not go on before that (a job being accepted, a result being posted)
    await it, the others don't. Storage trouble is logged and never breaks a job."""

    def __init__(self, store: JobStore, *, max_batch: int = 256, retry_for: float = 300.0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.retry_for = retry_for
        self._queue: asyncio.Queue[tuple[str, Any, asyncio.Future[BaseException | None]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, asyncio.Future[BaseException | None]] = {}  # job id -> its latest write

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="job store writer")

    def add(self, record: JobRecord) -> asyncio.Future[BaseException | None]:
        return self._put("add", record, record.id)

    def update(self, job_id: str, **changes: Any) -> asyncio.Future[BaseException | None]:
        _check_fields(changes)
        return self._put("update", (job_id, changes), job_id)

    def _put(self, op: str, arg: Any, job_id: str) -> asyncio.Future[BaseException | None]:
        future: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():
            future.set_result(RuntimeError("the job store is closed"))
            return future
        self._queue.put_nowait((op, arg, future))
        self._last[job_id] = future
        future.add_done_callback(lambda f, j=job_id: self._last.pop(j, None) if self._last.get(j) is f else None)
        return future

    async def settled(self, job_id: str) -> None:
        """Wait until every change queued so far for `job_id` is committed."""
        future = self._last.get(job_id)
        if future is not None:
            await asyncio.shield(future)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._task is None or self._task.done():
            return
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(("flush", None, done))
        await asyncio.shield(done)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            log.error("The job store writer did not finish in 10 s")
            task.cancel()

    async def _apply(self, ops: list[tuple[str, Any]]) -> list[BaseException | None]:
        """Apply a batch; while the database is unreachable (a shared server restarting), try again with back-off
        for up to RETRY_FOR seconds, so no change is lost to an outage."""
        delay, waited = 0.5, 0.0
        while True:
            try:
                return await self.store.apply(ops)
            except Exception as exc:  # noqa: BLE001 - storage trouble must never break a job
                if transient(exc) and waited < self.retry_for:
                    log.warning("Job store unreachable (%r); writing %d change(s) again in %.1f s", exc, len(ops), delay)
                    await asyncio.sleep(delay)
                    waited += delay
                    delay = min(5.0, delay * 2)
                    continue
                log.exception("Job store write failed (%d changes)", len(ops))
                return [exc] * len(ops)

    async def _run(self) -> None:
        stop = False
        while not stop:
            first = await self._queue.get()
            batch = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while not stop and len(batch) < self.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            ops = [(op, arg) for op, arg, _ in batch if op != "flush"]
            results = await self._apply(ops) if ops else []
            it = iter(results)
            for op, arg, future in batch:
                outcome = None if op == "flush" else next(it)
                if outcome is not None and not isinstance(outcome, IdTaken):
                    log.error("Job store write failed (%s %s): %r", op, getattr(arg, "id", arg[0] if arg else "?"),
                              outcome)
                if not future.done():
                    future.set_result(outcome)
