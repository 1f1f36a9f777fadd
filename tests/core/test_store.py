"""The SQLite job store, alone and as the bot uses it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.core.engine import STORE_FILE
from bot.core.store import MIGRATIONS, JobRecord, JobStore
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
