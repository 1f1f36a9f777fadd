"""The job store: every job recorded in SQLite under SDCORD_DATA_DIR. No Discord imports.

One aiosqlite connection (SQLite in a worker thread, so the event loop never waits on disk), WAL
journal, numbered schema migrations tracked in `PRAGMA user_version`. It survives restarts and
serves /status and the actions on result messages (reroll, variations, upscale, edit, info, delete).
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

__all__ = ["JobRecord", "JobStore", "MIGRATIONS"]

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
)

_JSON_FIELDS = {"payload", "seeds", "infotexts"}


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


_COLUMNS = tuple(f.name for f in fields(JobRecord))


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in _JSON_FIELDS else v for k, v in values.items()}


def _from_row(row: aiosqlite.Row) -> JobRecord:
    data = {k: row[k] for k in _COLUMNS}
    for key in _JSON_FIELDS:
        data[key] = orjson.loads(data[key])
    return JobRecord(**data)


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
        await db.execute("PRAGMA synchronous=NORMAL")
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

    async def add(self, record: JobRecord) -> None:
        values = _to_row({k: getattr(record, k) for k in _COLUMNS})
        names = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        async with self._lock:
            await self._db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", values)  # noqa: S608
            await self._db.commit()

    async def update(self, job_id: str, **changes: Any) -> None:
        unknown = set(changes) - set(_COLUMNS)
        if unknown or "id" in changes:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        values = _to_row(changes)
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        async with self._lock:
            await self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = :id",  # noqa: S608
                                   {**values, "id": job_id})
            await self._db.commit()

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

    async def unfinished(self) -> list[JobRecord]:
        async with self._db.execute(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at"
        ) as cur:
            rows = await cur.fetchall()
        return [_from_row(r) for r in rows]


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
