"""The SQLite job store, alone and as the bot uses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.core.engine import STORE_FILE
from bot.core.store import MIGRATIONS, UNDELIVERED_QUERY, IdTaken, JobRecord, JobStore, StoreWriter
from bot.images import png
from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(60)


async def test_schema_wal_and_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "s" / "jobs.db"
    store = await JobStore.open(path)
    assert await store.schema_version() == len(MIGRATIONS)
    await store.add(JobRecord("abc12345", "txt2img", 7, {"prompt": "x"}, "queued"))
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store = await JobStore.open(path)  # reopening keeps data and doesn't migrate again
    assert (await store.get("abc12345")).payload == {"prompt": "x"}  # type: ignore[union-attr]
    await store.close()


async def test_round_trip_update_and_lookup_by_message(tmp_path: Path) -> None:
    store = await JobStore.open(tmp_path / "jobs.db")
    try:
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
    finally:
        await store.close()


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


async def test_a_taken_id_is_reported_not_overwritten(tmp_path: Path) -> None:
    store = await JobStore.open(tmp_path / "jobs.db")
    try:
        await store.add(JobRecord("abcd0000", "txt2img", 1, {"prompt": "first"}, "queued"))
        with pytest.raises(IdTaken):
            await store.add(JobRecord("abcd0000", "txt2img", 2, {"prompt": "second"}, "queued"))
        assert (await store.get("abcd0000")).payload == {"prompt": "first"}  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_the_writer_keeps_order_batches_and_says_when_committed(tmp_path: Path) -> None:
    store = await JobStore.open(tmp_path / "jobs.db")
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
        await store.close()
    assert isinstance(await StoreWriter(store).update("x", status="done"), RuntimeError)  # closed: said, not hung


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
