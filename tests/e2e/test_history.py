"""End to end: /history lists the caller's own jobs newest first with links to their results, pages with
persistent buttons (also after a restart), reruns an entry through the usual path, and speaks the reader's
language."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.core.store import JobRecord
from bot.discord_app.catalog import catalogs
from bot.discord_app.history import HistoryRerunButton
from bot.images import png
from bot.images.infotext import parse_generation_parameters
from tests.support.harness import bot_settings, has_images, running_bot
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.timeout(90)
BOOKS = catalogs()
KO, ZH = "ko", "zh-CN"


def t(lang: str, key: str, **values: Any) -> str:
    return BOOKS.get(lang, key, **values)


async def draw(fake: Any, user: Any, prompt: str, locale: str = "en-US", **options: Any) -> Any:
    ix = await fake.invoke(user, fake.channel, "draw", {"prompt": prompt, **options}, locale=locale)
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    return ix.original


async def history(fake: Any, user: Any, locale: str = "en-US") -> Any:
    ix = await fake.invoke(user, fake.channel, "history", locale=locale)
    await ix.wait_for(lambda i: i.original is not None and i.original.content, timeout=10)
    assert ix.ephemeral
    return ix


def buttons(message: Any) -> dict[str, dict[str, Any]]:
    """custom id -> button, every button of a message."""
    return {str(c["custom_id"]): c for row in message.components for c in row.get("components", [])}


def entries(message: Any) -> list[str]:
    """The job lines of a /history reply (they start with their number on the page)."""
    return [line for line in message.content.splitlines() if line.startswith("`")]


def link(guild: Any, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild.id if guild else '@me'}/{channel_id}/{message_id}"


def seed_of(message: Any) -> str:
    return parse_generation_parameters(png.read_parameters(message.attachments[0].data) or "")["Seed"]


async def test_history_shows_only_the_callers_jobs_newest_first_and_reruns_one(fake_discord: Any, demo_webui: Any,
                                                                               tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        fox = await draw(fake, fake.alice, "a red fox", steps=12)
        await draw(fake, fake.admin, "a secret castle")
        bird = await draw(fake, fake.alice, "a blue bird", steps=9)
        await bot.engine.flush()
        fox_job = await bot.engine.find_job(message_id=fox.id)
        bird_job = await bot.engine.find_job(message_id=bird.id)
        assert fox_job is not None and bird_job is not None

        ix = await history(fake, fake.alice)
        reply = ix.original
        lines = entries(reply)
        assert len(lines) == 2 and "a secret castle" not in reply.content  # never anyone else's
        assert lines[0].startswith("`1.` **a blue bird**") and lines[1].startswith("`2.` **a red fox**")
        for line, message in ((lines[0], bird), (lines[1], fox)):
            assert t("en", "history.state.done") in line and "<t:" in line and ":R>" in line
            assert t("en", "history.link", url=link(fake.guild, fake.channel.id, message.id)) in line
        assert t("en", "history.page", page=1, pages=1) in reply.content
        found = buttons(reply)
        assert found[f"sdcord:rerun:{bird_job.id}"]["label"] == "🔁 1"
        assert found[f"sdcord:rerun:{fox_job.id}"]["label"] == "🔁 2"
        paging = [b for cid, b in found.items() if cid.startswith(f"sdcord:history:{fake.alice.id}:")]
        assert len(paging) == 2 and all(b.get("disabled") for b in paging)  # one page: both ends

        # 🔁 2: the fox again with a new seed, for alice, in a new (public) message
        before = len(demo_webui.received)
        rerun = await fake.click(fake.alice, reply, f"sdcord:rerun:{fox_job.id}")
        await rerun.wait_for(lambda i: has_images(i.original), timeout=30)
        result = rerun.original
        assert result.id not in (reply.id, fox.id) and not result.ephemeral
        assert len(demo_webui.received) == before + 1
        route, body = demo_webui.received[-1]
        assert route == "txt2img" and (body["prompt"], body["steps"]) == ("a red fox", 12)
        assert seed_of(result) != seed_of(fox)
        await bot.engine.flush()
        again = await bot.engine.find_job(message_id=result.id)
        assert again is not None and (again.user_id, again.parent_id) == (fake.alice.id, fox_job.id)

        newer = await history(fake, fake.alice)  # the rerun is alice's newest job now
        assert [line.split("**")[1] for line in entries(newer.original)] == ["a red fox", "a blue bird", "a red fox"]
        assert link(fake.guild, fake.channel.id, result.id) in entries(newer.original)[0]

        bob = fake.add_user("bob")
        fake.add_member(fake.guild, bob)
        empty = await history(fake, bob)
        assert empty.original.content == t("en", "history.empty") and not empty.original.components
    assert not fake.server_errors


def _older_jobs(fake: Any, now: float) -> list[JobRecord]:
    """Six finished jobs of alice's, older than anything drawn in the test, stored directly."""
    user, guild, channel = fake.alice.id, fake.guild.id, fake.channel.id

    def job(n: int, status: str = "done", kind: str = "txt2img", **fields: Any) -> JobRecord:
        created = now - 3600 * (n + 1)
        values: dict[str, Any] = dict(guild_id=guild, channel_id=channel, message_id=9_000_000 + n,
                                      created_at=created, delivered_at=created + 5)
        values.update(fields)
        payload = {"prompt": f"old job {n}", "steps": 20} if kind != "upscale" else {
            "image": "ab" * 32, "infotext": None, "scale": 2.0, "upscaler": "R-ESRGAN 4x+"}
        return JobRecord(f"0000000{n}", kind, user, payload, status, **values)

    return [job(0, "failed"), job(1, "cancelled"), job(2, kind="upscale"), job(3, guild_id=None),
            job(4, message_id=None), job(5, result_message_id=8_000_005)]


async def test_paging_survives_a_restart_and_answers_only_its_owner(fake_discord: Any, demo_webui: Any,
                                                                     tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    async with running_bot(fake, settings) as bot:
        real = await draw(fake, fake.alice, "the newest, drawn for real")
        for record in _older_jobs(fake, time.time()):
            await bot.engine.book.store.add(record)
        await bot.engine.flush()
        real_job = await bot.engine.find_job(message_id=real.id)
        assert real_job is not None
        ix = await history(fake, fake.alice)
        reply = ix.original
        lines = entries(reply)
        assert [line.split("`")[1] for line in lines] == ["1.", "2.", "3.", "4.", "5."]
        assert "**the newest, drawn for real**" in lines[0] and "old job 0" in lines[1]
        assert t("en", "history.state.failed") in lines[1] and t("en", "history.state.cancelled") in lines[2]
        upscale = t("en", "summary.upscale_job", factor="2", upscaler="R-ESRGAN 4x+")
        assert upscale in lines[3] and t("en", "history.state.done") in lines[3]
        assert link(None, fake.channel.id, 9_000_003) in lines[4]  # a DM job: @me
        assert t("en", "history.page", page=1, pages=2) in reply.content
        found = buttons(reply)
        reruns = [cid for cid in found if cid.startswith("sdcord:rerun:")]
        assert f"sdcord:rerun:{real_job.id}" in reruns and "sdcord:rerun:00000002" not in reruns  # no upscale
        assert len(reruns) == 4
        newer, older = f"sdcord:history:{fake.alice.id}:0", f"sdcord:history:{fake.alice.id}:2"
        assert found[newer].get("disabled") and not found[older].get("disabled")
        assert found[older]["label"] == t("en", "history.older")

    async with running_bot(fake, settings):  # a new process: only the store and the custom ids
        page2 = await fake.click(fake.alice, reply, older)
        await page2.wait_ack()
        assert page2.response_type == 7  # the same message, edited in place
        await fake.wait_until(lambda: t("en", "history.page", page=2, pages=2) in reply.content, timeout=10)
        lines = entries(reply)
        assert len(lines) == 2 and lines[0].startswith("`1.` **old job 4**") and "old job 5" in lines[1]
        assert "](" not in lines[0]  # its message is not known: no link
        assert link(fake.guild, fake.channel.id, 8_000_005) in lines[1]  # the result message, when it has one
        found = buttons(reply)
        back = f"sdcord:history:{fake.alice.id}:1"
        assert not found[back].get("disabled") and found[f"sdcord:history:{fake.alice.id}:3"].get("disabled")

        # someone else's click (an ephemeral message has one reader, but it is checked anyway)
        nosy = await fake.click(fake.admin, reply, back)
        await nosy.wait_ack()
        assert nosy.ephemeral and nosy.original.content == t("en", "history.not_yours")
        assert t("en", "history.page", page=2, pages=2) in reply.content

        page1 = await fake.click(fake.alice, reply, back)
        await page1.wait_ack()
        await fake.wait_until(lambda: t("en", "history.page", page=1, pages=2) in reply.content, timeout=10)
        assert "**the newest, drawn for real**" in entries(reply)[0]
    assert not fake.server_errors


async def test_a_rerun_button_refuses_an_unknown_job_and_another_users_job(fake_discord: Any, demo_webui: Any,
                                                                           tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        mine = await draw(fake, fake.alice, "alice's lamp")
        await bot.engine.flush()
        record = await bot.engine.find_job(message_id=mine.id)
        assert record is not None
        view = discord.ui.View(timeout=None)
        view.add_item(HistoryRerunButton("deadbeef", label="unknown"))
        view.add_item(HistoryRerunButton(record.id, label="alice's"))
        sent = await bot.get_channel(fake.channel.id).send("buttons", view=view)
        message = await fake.wait_for_message(lambda m: m.id == sent.id)
        before = len(demo_webui.received)

        unknown = await fake.click(fake.alice, message, "sdcord:rerun:deadbeef")
        nothing = t("en", "problem.nothing_to_rerun")
        await unknown.wait_for(lambda i: any(m.ephemeral and m.content == nothing for m in i.followups), timeout=10)
        assert unknown.original.deleted  # the "thinking…" message goes; the reason is private

        other = await fake.click(fake.admin, message, f"sdcord:rerun:{record.id}")
        await other.wait_ack()
        assert other.ephemeral and other.original.content == t("en", "history.not_yours")
        assert len(demo_webui.received) == before  # nothing ran
    assert not fake.server_errors


async def test_history_in_korean_and_chinese(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        command = next(c for c in fake.commands(guild_id=fake.guild.id) if c["name"] == "history")
        assert command["name_localizations"][KO] == BOOKS.lookup(KO, "command.history")
        assert command["description_localizations"][ZH] == BOOKS.lookup(ZH, "command.history.description")
        drawn = await draw(fake, fake.alice, "고양이", locale=KO)
        await bot.engine.flush()
        ix = await history(fake, fake.alice, locale=KO)
        reply = ix.original
        assert reply.content.startswith(t(KO, "history.title"))
        line = entries(reply)[0]
        assert "**고양이**" in line and t(KO, "history.state.done") in line
        assert t(KO, "history.link", url=link(fake.guild, fake.channel.id, drawn.id)) in line
        assert t(KO, "history.page", page=1, pages=1) in reply.content
        labels = {b["label"] for b in buttons(reply).values()}
        assert labels == {t(KO, "history.rerun", number=1), t(KO, "history.newer"), t(KO, "history.older")}
        assert t(KO, "history.newer") != t("en", "history.newer")
        rerun = next(cid for cid in buttons(reply) if cid.startswith("sdcord:rerun:"))
        nosy = await fake.click(fake.admin, reply, rerun, locale=ZH)  # not admin's job: refused, in Chinese
        await nosy.wait_ack()
        assert nosy.ephemeral and nosy.original.content == t(ZH, "history.not_yours")
        bob = fake.add_user("bob")
        fake.add_member(fake.guild, bob)
        empty = await history(fake, bob, locale=ZH)
        assert empty.original.content == t(ZH, "history.empty") != t("en", "history.empty")
    assert not fake.server_errors


async def test_history_in_a_shared_queue_reads_postgresql_and_says_when_it_is_unreachable(
        fake_discord: Any, demo_webui: Any, tmp_path: Path, pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_discord
    async with fresh_database(pg) as dsn, running_bot(
            fake, bot_settings(fake, demo_webui.url, tmp_path, database_url=dsn)) as bot:
        assert bot.engine.shared
        fox = await draw(fake, fake.alice, "a fox on a shared queue", steps=7)
        await bot.engine.flush()
        ix = await history(fake, fake.alice)
        line = entries(ix.original)[0]
        assert "**a fox on a shared queue**" in line and t("en", "history.state.done") in line
        assert link(fake.guild, fake.channel.id, fox.id) in line
        rerun_id = next(cid for cid in buttons(ix.original) if cid.startswith("sdcord:rerun:"))
        rerun = await fake.click(fake.alice, ix.original, rerun_id)
        await rerun.wait_for(lambda i: has_images(i.original), timeout=30)
        assert demo_webui.received[-1][1]["prompt"] == "a fox on a shared queue"

        async def unreachable(user_id: int) -> int:
            raise OSError("connection refused")

        monkeypatch.setattr(bot.engine.book.store, "count_jobs", unreachable)
        down = await history(fake, fake.alice)
        assert t("en", "refuse.unavailable") in down.original.content
    assert not fake.server_errors
