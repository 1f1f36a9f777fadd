"""The job store, alone and as the bot uses it: the contract tests run on both stores, SQLite
(`bot.core.store`) and PostgreSQL (`bot.core.pgstore`, a fresh database per test on the session's
throw-away server); the rest is SQLite's own (WAL, its query plan, its old schemas, the bot's data dir)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.core import pgstore
from bot.core.engine import STORE_FILE
from bot.core.pgstore import PgJobStore
from bot.core.store import MIGRATIONS, UNDELIVERED_QUERY, IdTaken, JobRecord, JobStore, StoreWriter
from bot.images import png
from tests.support.harness import bot_settings, running_bot
from tests.support.postgres import PgServer, fresh_database

pytestmark = pytest.mark.timeout(60)


@dataclass
class Where:
    """Where a test's store lives: `open()` opens it (again), on the same data."""
    kind: str  # "sqlite" or "postgres"
    open: Callable[[], Awaitable[Any]]
    migrations: tuple[str, ...]
    dsn: str = ""  # postgres: the test's own database


@pytest.fixture(params=["sqlite", "postgres"])
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Where]:
    if request.param == "sqlite":
        path = tmp_path / "jobs.db"
        yield Where("sqlite", lambda: JobStore.open(path), MIGRATIONS)
        return
    async with fresh_database(request.getfixturevalue("pg")) as dsn:
        yield Where("postgres", lambda: PgJobStore.open(dsn), pgstore.MIGRATIONS, dsn)


@pytest.fixture
async def store(where: Where) -> AsyncIterator[Any]:
    s = await where.open()
    try:
        yield s
    finally:
        await s.close()


# ---------------------------------------------------------------------- the contract, on both stores
async def test_migrations_once_and_reopening_keeps_data(where: Where) -> None:
    store = await where.open()
    assert await store.schema_version() == len(where.migrations)
    await store.add(JobRecord("abc12345", "txt2img", 7, {"prompt": "x"}, "queued"))
    await store.close()
    store = await where.open()  # reopening keeps data and doesn't migrate again
    try:
        assert await store.schema_version() == len(where.migrations)
        assert (await store.get("abc12345")).payload == {"prompt": "x"}  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_round_trip_update_and_lookup_by_message(store: Any) -> None:
    rec = JobRecord("j1", "txt2img", 1, {"prompt": "猫 🐱", "steps": 20}, "queued", guild_id=5, channel_id=6)
    await store.add(rec)
    await store.update("j1", status="done", seeds=[1, 2], infotexts=["a", "b"], message_id=99,
                       result_message_id=100, backend="http://gpu:7860", finished_at=123.5)
    got = await store.get("j1")
    assert got is not None
    assert (got.payload, got.seeds, got.infotexts, got.status) == ({"prompt": "猫 🐱", "steps": 20}, [1, 2],
                                                                   ["a", "b"], "done")
    assert (await store.by_message(99)).id == "j1" and (await store.by_message(100)).id == "j1"  # type: ignore[union-attr]
    assert await store.by_message(101) is None and await store.get("nope") is None
    with pytest.raises(ValueError, match="unknown job fields"):
        await store.update("j1", bogus=1)
    await store.add(JobRecord("j2", "txt2img", 1, {}, "running"))
    assert [r.id for r in await store.unfinished()] == ["j2"]


async def test_every_field_round_trips(store: Any) -> None:
    rec = JobRecord("f0000001", "img2img", 2**62, {"prompt": "p", "nested": {"a": [1, 2.5, None, True]}}, "done",
                    created_at=1700000000.25, guild_id=2**60, channel_id=3, message_id=4, result_message_id=5,
                    backend="b", started_at=1.5, finished_at=2.5, seeds=[4294967295, 0], infotexts=["i"],
                    error="e", parent_id="p0000001", origin={"kind": "slash", "token": "t"},
                    extra={"notes": [], "spoiler": True}, outcome={"images": 2}, round=3, seq=9, attempts=1,
                    delivered_at=3.5, delivery_error="d")
    await store.add(rec)
    assert await store.get(rec.id) == rec
    await store.update(rec.id, outcome=None, delivered_at=None, error=None)
    got = await store.get(rec.id)
    assert got is not None and (got.outcome, got.delivered_at, got.error) == (None, None, None)
    assert [r.id for r in await store.undelivered()] == [rec.id]


async def test_the_undelivered_come_back_in_arrival_order(store: Any) -> None:
    for i, seq in enumerate((5, 1, 3)):
        await store.add(JobRecord(f"u000000{i}", "txt2img", 1, {}, "queued", seq=seq))
    await store.add(JobRecord("d0000000", "txt2img", 1, {}, "done", seq=2, delivered_at=1.0))
    await store.add(JobRecord("e0000000", "txt2img", 1, {}, "failed", seq=4))  # ended, not yet delivered
    assert [r.id for r in await store.undelivered()] == ["u0000001", "u0000002", "e0000000", "u0000000"]
    assert [r.id for r in await store.unfinished()] == ["u0000001", "u0000002", "u0000000"]


async def test_a_taken_id_is_reported_not_overwritten(store: Any) -> None:
    await store.add(JobRecord("abcd0000", "txt2img", 1, {"prompt": "first"}, "queued"))
    with pytest.raises(IdTaken):
        await store.add(JobRecord("abcd0000", "txt2img", 2, {"prompt": "second"}, "queued"))
    assert (await store.get("abcd0000")).payload == {"prompt": "first"}  # type: ignore[union-attr]


async def test_a_batch_reports_each_ops_error_and_applies_the_others(store: Any) -> None:
    await store.add(JobRecord("b0000000", "txt2img", 1, {}, "queued"))
    results = await store.apply([
        ("add", JobRecord("b0000001", "txt2img", 1, {"n": 1}, "queued")),
        ("update", ("b0000001", {"status": None})),  # refused by the database (NOT NULL)
        ("update", ("b0000001", {"bogus": 1})),  # refused before it
        ("add", JobRecord("b0000000", "txt2img", 1, {}, "queued")),  # taken
        ("update", ("b0000001", {"status": "running"})),
        ("update", ("nothere", {"status": "done"})),  # no such job: nothing to do, not an error
        ("add", JobRecord("b0000002", "txt2img", 1, {}, "queued")),
    ])
    assert results[0] is None and results[1] is not None and isinstance(results[2], ValueError)
    assert isinstance(results[3], IdTaken) and results[4:] == [None, None, None]
    got = await store.get("b0000001")
    assert got is not None and (got.status, got.payload) == ("running", {"n": 1})
    assert await store.get("b0000002") is not None and await store.get("nothere") is None
    assert await store.apply([]) == []


async def test_settings_and_preferences(store: Any) -> None:
    assert await store.guild_settings(10) == {} and await store.user_prefs(7) == {}
    assert await store.all_guild_settings() == {} and await store.all_user_prefs() == {}
    await store.set_guild_settings(10, {"nsfw": False, "max_batch": 4}, by=7, change="max_batch=4")
    await store.set_guild_settings(10, {"nsfw": True, "max_batch": 4}, by=8, change="nsfw=on")
    await store.set_guild_settings(11, {"lang": "fr"}, by=7, change="lang=fr")
    assert await store.guild_settings(10) == {"nsfw": True, "max_batch": 4}
    log = await store.settings_log(10)
    assert [(u, c) for u, _, c in log] == [(8, "nsfw=on"), (7, "max_batch=4")]
    assert all(isinstance(t, float) for _, t, _ in log) and log[0][1] >= log[1][1]
    assert [c for _, _, c in await store.settings_log(10, limit=1)] == ["nsfw=on"]
    await store.set_user_prefs(7, {"steps": 30})
    await store.set_user_prefs(7, {"steps": 40, "negative": "blur"})
    await store.set_user_prefs(2**62, {})
    assert await store.user_prefs(7) == {"steps": 40, "negative": "blur"}
    assert await store.all_guild_settings() == {10: {"nsfw": True, "max_batch": 4}, 11: {"lang": "fr"}}
    assert await store.all_user_prefs() == {7: {"steps": 40, "negative": "blur"}, 2**62: {}}



async def test_history_is_a_users_own_jobs_newest_first_a_page_at_a_time(store: Any) -> None:
    """/history: created_at descending, then seq descending for jobs of the same instant; offset and limit
    page through them; nobody else's jobs, however many there are."""
    for i, (created, seq) in enumerate([(100.0, 1), (300.0, 2), (200.0, 3), (300.0, 4), (50.0, 5), (400.0, 6)]):
        await store.add(JobRecord(f"h000000{i}", "txt2img", 7, {"prompt": f"p{i}"}, "done", created_at=created,
                                  seq=seq, guild_id=1, channel_id=2, message_id=1000 + i))
    await store.add(JobRecord("o0000000", "txt2img", 8, {"prompt": "someone else's"}, "done", created_at=999.0))
    await store.add(JobRecord("o0000001", "txt2img", 2**62, {}, "queued", created_at=1000.0))
    newest_first = ["h0000005", "h0000003", "h0000001", "h0000002", "h0000000", "h0000004"]
    assert [r.id for r in await store.history(7, limit=10)] == newest_first
    assert [r.id for r in await store.history(7, limit=5)] == newest_first[:5]
    assert [r.id for r in await store.history(7, limit=5, offset=5)] == newest_first[5:]
    assert await store.history(7, limit=5, offset=10) == []
    first = (await store.history(7, limit=1))[0]
    assert (first.payload, first.message_id, first.status) == ({"prompt": "p5"}, 1005, "done")  # whole records
    assert [r.id for r in await store.history(8, limit=5)] == ["o0000000"]
    assert await store.history(9, limit=5) == []
    assert (await store.count_jobs(7), await store.count_jobs(8), await store.count_jobs(9)) == (6, 1, 0)
    assert await store.count_jobs(2**62) == 1


async def test_jobs_since_counts_a_users_jobs_from_a_time_optionally_in_one_server(store: Any) -> None:
    jobs = [("s0000000", 7, 10, 100.0), ("s0000001", 7, 10, 200.0), ("s0000002", 7, 11, 250.0),
            ("s0000003", 7, None, 300.0), ("s0000004", 8, 10, 400.0)]
    for job_id, user, guild, created in jobs:
        await store.add(JobRecord(job_id, "txt2img", user, {}, "done", created_at=created, guild_id=guild))
    assert await store.jobs_since(7, 0.0) == 4
    assert await store.jobs_since(7, 200.0) == 3  # from `since` on, that instant included
    assert await store.jobs_since(7, 200.5) == 2
    assert await store.jobs_since(7, 200.0, guild_id=10) == 1
    assert await store.jobs_since(7, 0.0, guild_id=10) == 2
    assert await store.jobs_since(7, 0.0, guild_id=11) == 1
    assert await store.jobs_since(7, 0.0, guild_id=12) == 0
    assert await store.jobs_since(7, 301.0) == 0
    assert await store.jobs_since(8, 0.0) == 1 and await store.jobs_since(9, 0.0) == 0


async def test_the_writer_keeps_order_batches_and_says_when_committed(store: Any) -> None:
    writer = StoreWriter(store)
    writer.start()
    try:
        added = writer.add(JobRecord("aaaa0001", "txt2img", 1, {}, "queued"))
        for status in ("running", "queued", "running", "done"):
            writer.update("aaaa0001", status=status)
        last = writer.update("aaaa0001", delivered_at=5.0)
        clash = writer.add(JobRecord("aaaa0001", "txt2img", 1, {}, "queued"))
        assert await added is None
        await writer.settled("aaaa0001")
        assert last.done() and await last is None
        assert isinstance(await clash, IdTaken)
        got = await store.get("aaaa0001")
        assert got is not None and (got.status, got.delivered_at) == ("done", 5.0)  # the last write won
    finally:
        await writer.close()
    assert isinstance(await StoreWriter(store).update("x", status="done"), RuntimeError)  # closed: said, not hung


async def test_the_writer_commits_what_piled_up_in_one_batch(store: Any, where: Where) -> None:
    """Group commit: changes queued while the writer is busy go in one `apply`, one transaction."""
    calls: list[int] = []
    apply = store.apply

    async def counting(ops: list[tuple[str, Any]]) -> list[BaseException | None]:
        calls.append(len(ops))
        return await apply(ops)

    store.apply = counting
    writer = StoreWriter(store)
    writer.start()
    try:
        futures = [writer.add(JobRecord(f"g{i:07d}", "txt2img", 1, {"i": i}, "queued", seq=i)) for i in range(50)]
        futures += [writer.update(f"g{i:07d}", status="running") for i in range(0, 50, 2)]
        assert [await f for f in futures] == [None] * 75
        assert calls == [75]
        if where.kind == "postgres":  # every row was written by the one transaction
            conn = await asyncpg.connect(where.dsn)
            try:
                assert await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM jobs") == 1
            finally:
                await conn.close()
        futures = [writer.update(f"g{i:07d}", status="running") for i in range(1, 50, 2)]
        futures.insert(3, writer.update("g0000000", status=None))  # refused: does not sink the batch
        futures.append(writer.add(JobRecord("g0000001", "txt2img", 1, {}, "queued")))  # taken
        results = [await f for f in futures]
        assert calls == [75, 27]
        assert results[:3] + results[4:-1] == [None] * 25 and results[3] is not None
        assert isinstance(results[-1], IdTaken)
        assert [r.id for r in await store.unfinished()] == [f"g{i:07d}" for i in range(50)]
        assert {r.status for r in await store.undelivered()} == {"running"}
    finally:
        await writer.close()


# ---------------------------------------------------------------------- PostgreSQL only
async def test_postgres_undelivered_scan_uses_its_partial_index(pg: PgServer) -> None:  # noqa: F811
    """PostgreSQL's `query_plan` is its EXPLAIN; with many delivered jobs, the start-up scan reads the
    partial index in seq order (no table scan, no sort)."""
    async with fresh_database(pg) as dsn:
        store = await PgJobStore.open(dsn)
        try:
            await _check_undelivered_plan(store, dsn)
        finally:
            await store.close()


async def test_postgres_processes_opening_together_migrate_once(pg: PgServer) -> None:  # noqa: F811
    """Several bot processes will share one database: the migrations run under an advisory lock."""
    async with fresh_database(pg) as dsn:
        stores = await asyncio.gather(*(PgJobStore.open(dsn) for _ in range(4)))
        try:
            assert [await s.schema_version() for s in stores] == [len(pgstore.MIGRATIONS)] * 4
            await stores[0].add(JobRecord("c0000001", "txt2img", 1, {}, "queued"))
            assert (await stores[3].get("c0000001")) is not None
        finally:
            await asyncio.gather(*(s.close() for s in stores))


async def _check_undelivered_plan(store: PgJobStore, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO jobs (id, kind, user_id, payload, status, created_at, seq, delivered_at) "
                           "SELECT to_hex(n), 'txt2img', 1, '{}', 'done', 1.0, n, 1.0 "
                           "FROM generate_series(1, 5000) AS n")
        await store.add(JobRecord("ffffffff", "txt2img", 1, {}, "queued", seq=6000))
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()
    plan = "\n".join(await store.query_plan(UNDELIVERED_QUERY))
    assert "Index Scan using jobs_undelivered on jobs" in plan and "Sort" not in plan, plan
    assert [r.id for r in await store.undelivered()] == ["ffffffff"]


# ---------------------------------------------------------------------- SQLite only
async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "s" / "jobs.db"
    store = await JobStore.open(path)  # makes its folder
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_every_draw_is_recorded_and_survives_a_restart(fake_discord: Any, demo_webui: Any,
                                                             tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    async with running_bot(fake, settings) as bot:
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a recorded fox", "batch": 2})
        await ix.wait_for(lambda i: i.original is not None and bool(i.original.attachments), timeout=20)
        await bot.engine.flush()
    store = await JobStore.open(tmp_path / STORE_FILE)
    try:
        rec = await store.by_message(ix.original.id)
        assert rec is not None
        assert (rec.user_id, rec.channel_id, rec.guild_id, rec.status, rec.kind) == (
            fake.alice.id, fake.channel.id, fake.guild.id, "done", "txt2img")
        assert rec.payload == demo_webui.received[-1][1]  # exactly what the WebUI was sent
        assert rec.infotexts == [png.read_parameters(a.data) for a in ix.original.attachments]
        assert rec.seeds == demo_webui.responses[-1].info["all_seeds"]
        assert rec.backend == demo_webui.url and rec.started_at and rec.finished_at >= rec.started_at
    finally:
        await store.close()


async def test_the_start_up_scan_uses_its_partial_index(tmp_path: Path) -> None:
    """The queue is rebuilt from undelivered jobs; however many delivered ones the store holds, the scan
    reads only the index of undelivered jobs."""
    store = await JobStore.open(tmp_path / "jobs.db")
    try:
        plan = " ".join(await store.query_plan(UNDELIVERED_QUERY))
        # walks the partial index (only undelivered rows are in it), in seq order: no table scan, no sort
        assert plan == "SCAN jobs USING INDEX jobs_undelivered", plan
        for i in range(300):
            await store.add(JobRecord(f"{i:08x}", "txt2img", 1, {}, "done", seq=i, delivered_at=1.0))
        await store.add(JobRecord("ffffffff", "txt2img", 1, {}, "queued", seq=301))
        assert [r.id for r in await store.undelivered()] == ["ffffffff"]
    finally:
        await store.close()


async def test_migrating_a_version_2_store_closes_jobs_it_cannot_resume(tmp_path: Path) -> None:
    """Jobs written by the previous release carry no origin; they are closed clearly, not resumed."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(f"BEGIN; {MIGRATIONS[0]}; {MIGRATIONS[1]}; PRAGMA user_version = 2; COMMIT;")
        db.execute("INSERT INTO jobs (id, kind, user_id, payload, status, created_at) VALUES "
                   "('old00001', 'txt2img', 1, '{}', 'queued', 1.0), ('old00002', 'txt2img', 1, '{}', 'done', 1.0)")
    store = await JobStore.open(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.undelivered() == []
        old = await store.get("old00001")
        assert old is not None and old.status == "failed" and "updated" in (old.error or "")
    finally:
        await store.close()


async def test_history_and_quota_counts_use_the_user_and_time_index(tmp_path: Path) -> None:
    """However many jobs the store holds, /history and jobs_since read one user's entries of the index
    `jobs_by_user_created` (version 5), in time order."""
    from bot.core.store import HISTORY_QUERY

    store = await JobStore.open(tmp_path / "jobs.db")
    try:
        plan = " ".join(await store.query_plan(HISTORY_QUERY.replace("?", "1")))
        assert plan.startswith("SEARCH jobs USING INDEX jobs_by_user_created (user_id=?)"), plan  # no table scan
        since = " ".join(await store.query_plan("SELECT COUNT(*) FROM jobs WHERE user_id = 1 AND created_at >= 5"))
        assert "USING COVERING INDEX jobs_by_user_created" in since, since
    finally:
        await store.close()
