"""Restarts as an operator does them: the real `sdcord` process against the fake Discord and a demo WebUI
that outlives it (a real WebUI keeps rendering a request whose client died).

An accepted job is never lost and each result is posted once: after SIGKILL queued jobs resume in
their fair order and the running one runs again (its message says so); SIGTERM lets running jobs
finish within SHUTDOWN_GRACE, leaves the rest queued, and exits 0 without a traceback; a pre-restart
Cancel button works; a job whose token expired meanwhile is finished through the channel.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.images import png
from tests.support.harness import results, said
from tests.support.processes import BotProcess

pytestmark = pytest.mark.timeout(150)


def posted_results(fake: Any) -> list[Any]:
    """Every live message of the bot that carries result images."""
    return [m for m in fake.messages() if not m.deleted and m.author_id == fake.bot_user.id and results(m)]


async def draw(fake: Any, user: Any, prompt: str, **options: Any) -> Any:
    ix = await fake.invoke(user, fake.channel, "draw", {"prompt": prompt, **options})
    await ix.wait_ack()
    return ix


def users(fake: Any) -> tuple[Any, Any, Any]:
    bob, carol = fake.add_user("bob"), fake.add_user("carol")
    fake.add_member(fake.guild, bob)
    fake.add_member(fake.guild, carol)
    return fake.alice, bob, carol


def prompts(demo: Any) -> list[str]:
    return [body["prompt"] for route, body in demo.received if route == "txt2img"]


def store_statuses(tmp_path: Path) -> dict[str, tuple[str, float | None]]:
    """prompt -> (status, delivered_at) of every stored job."""
    with sqlite3.connect(tmp_path / "data" / "sdcord.db") as db:
        rows = db.execute("SELECT payload, status, delivered_at FROM jobs").fetchall()
    return {json.loads(payload)["prompt"]: (status, delivered) for payload, status, delivered in rows}


async def test_sigkill_with_one_running_and_five_queued_loses_nothing(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    alice, bob, carol = users(fake)
    demo = await demo_webui_factory(step_delay=0.1)  # 20 steps: 2 s a job
    bot = BotProcess.for_fake(fake, tmp_path, demo.url)
    await bot.start()
    try:
        # alice's burst first, then bob and carol: fair order is j0 (running), j3, j5, j1, j4, j2
        plan = [(alice, "j0"), (alice, "j1"), (alice, "j2"), (bob, "j3"), (bob, "j4"), (carol, "j5")]
        ixs = {name: await draw(fake, user, name, seed=7) for user, name in plan}
        await ixs["j0"].wait_for(lambda i: said(i.original, "🎨"), timeout=20)
        await ixs["j2"].wait_for(lambda i: said(i.original, "Queued — position 5 of 5"), timeout=20)
        await bot.kill()
        assert posted_results(fake) == [] and prompts(demo) == ["j0"]

        await bot.start()  # same SDCORD_DATA_DIR
        for name, ix in ixs.items():
            await ix.wait_for(lambda i: bool(results(i.original)), timeout=60)
        assert await bot.terminate() == 0
    finally:
        await bot.stop_quietly()
    # the running job ran once more, first; the queued ones kept their fair order
    assert prompts(demo) == ["j0", "j0", "j3", "j5", "j1", "j4", "j2"]
    assert demo.max_in_flight == 1  # the orphaned j0 was interrupted and waited for, never overlapped
    # each result posted exactly once, in the job's own message, with the WebUI's infotext
    assert len(posted_results(fake)) == 6
    for name, ix in ixs.items():
        (att,) = results(ix.original)
        assert (png.read_parameters(att.data) or "").startswith(name)
    assert said(ixs["j0"].original, "The bot restarted; running again.")
    assert not said(ixs["j3"].original, "running again")
    assert "Traceback" not in bot.text and fake.token not in bot.text
    assert {status for status, _ in store_statuses(tmp_path).values()} == {"done"}
    assert all(delivered for _, delivered in store_statuses(tmp_path).values())
    assert not fake.server_errors


async def test_sigterm_lets_the_running_job_finish_and_keeps_the_queue(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    alice, bob, carol = users(fake)
    demo = await demo_webui_factory(step_delay=0.1)  # 2 s a job
    bot = BotProcess.for_fake(fake, tmp_path, demo.url, SHUTDOWN_GRACE="15")
    await bot.start()
    try:
        first = await draw(fake, alice, "finish me")
        waiting = [await draw(fake, bob, "wait one"), await draw(fake, carol, "wait two")]
        await first.wait_for(lambda i: said(i.original, "🎨"), timeout=20)
        code = await bot.terminate()
        assert code == 0, bot.text
        assert "Traceback" not in bot.text and "Unclosed" not in bot.text, bot.text
        assert "sdcord stopped" in bot.text
        assert len(results(first.original)) == 1  # finished within the grace and delivered before exit
        assert prompts(demo) == ["finish me"]  # nothing new was started
        for ix in waiting:
            assert "The bot is restarting" in ix.original.content and not results(ix.original)
        await bot.start()
        for ix in waiting:
            await ix.wait_for(lambda i: bool(results(i.original)), timeout=60)
    finally:
        await bot.stop_quietly()
    assert prompts(demo) == ["finish me", "wait one", "wait two"]
    assert len(posted_results(fake)) == 3


async def test_sigterm_after_a_short_grace_runs_the_job_again_at_the_next_start(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.25)  # 5 s a job: longer than the grace
    bot = BotProcess.for_fake(fake, tmp_path, demo.url, SHUTDOWN_GRACE="0.5")
    await bot.start()
    try:
        ix = await draw(fake, fake.alice, "long one")
        await ix.wait_for(lambda i: said(i.original, "🎨"), timeout=20)
        code = await bot.terminate(timeout=30)
        assert code == 0 and "Traceback" not in bot.text, bot.text
        assert "The bot is restarting" in ix.original.content
        assert demo.in_flight == 0  # interrupted on the WebUI, not left rendering for nobody
        await bot.start()
        await ix.wait_for(lambda i: bool(results(i.original)), timeout=60)
    finally:
        await bot.stop_quietly()
    assert prompts(demo) == ["long one", "long one"]
    assert said(ix.original, "The bot restarted; running again.") and len(posted_results(fake)) == 1


async def test_cancel_of_a_job_from_before_the_restart(fake_discord: Any, demo_webui_factory: Any,
                                                       tmp_path: Path) -> None:
    fake = fake_discord
    alice, bob, _ = users(fake)
    demo = await demo_webui_factory(step_delay=0.2)  # 4 s a job
    bot = BotProcess.for_fake(fake, tmp_path, demo.url)
    await bot.start()
    try:
        running = await draw(fake, alice, "keep me")
        queued = await draw(fake, bob, "cancel me")
        await queued.wait_for(lambda i: said(i.original, "Queued — position 1"), timeout=20)
        cancel_id = next(c["custom_id"] for row in queued.original.components for c in row["components"])
        assert cancel_id.startswith("sdcord:cancel:")
        await bot.kill()
        await bot.start()
        await queued.wait_for(lambda i: said(i.original, "position 1 of 1") and i.original.edits, timeout=20)
        click = await fake.click(bob, queued.original, cancel_id)
        await click.wait_ack()
        await queued.wait_for(lambda i: "Cancelled" in i.original.content, timeout=20)
        await running.wait_for(lambda i: bool(results(i.original)), timeout=60)
    finally:
        await bot.stop_quietly()
    assert "cancel me" not in prompts(demo)
    statuses = store_statuses(tmp_path)
    assert statuses["cancel me"][0] == "cancelled" and statuses["cancel me"][1] is not None
    assert statuses["keep me"][0] == "done"


async def test_a_job_whose_token_expired_while_the_bot_was_down_ends_through_the_channel(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.2)
    bot = BotProcess.for_fake(fake, tmp_path, demo.url)
    await bot.start()
    try:
        await draw(fake, fake.alice, "before")
        late = await draw(fake, fake.alice, "after the outage")
        await late.wait_for(lambda i: said(i.original, "Queued — position 1"), timeout=20)
        await bot.kill()
        fake.token_lifetime = 0.0  # every token is past its 15 minutes now
        await bot.start()
        reply = await fake.wait_for_message(
            lambda m: results(m) and m.interaction_id is None and "after the outage" in m.content, timeout=60)
        await fake.wait_for_message(lambda m: results(m) and "before" in m.content, timeout=60)
        await late.wait_for(lambda i: "images are in the reply below" in i.original.content, timeout=10)
        assert await bot.terminate() == 0
    finally:
        await bot.stop_quietly()
    assert reply.message_reference["message_id"] == str(late.original.id)  # a reply to the job message
    assert set(reply.pinged_user_ids) == {fake.alice.id}
    assert "images are in the reply below" in late.original.content  # the job message, edited as a channel message
    assert len(posted_results(fake)) == 2


async def test_a_result_finished_before_a_crash_is_posted_not_rendered_again(
    fake_discord: Any, demo_webui: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The images are kept in the data dir before a job counts as done: a stop between "done" and
    "posted" posts them at the next start, without asking the WebUI again."""
    from bot.discord_app.delivery import JobMessage
    from tests.support.harness import bot_settings, running_bot

    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)

    async def lost(self: JobMessage) -> None:  # the process died right after the WebUI answered
        self.finished.set()

    with monkeypatch.context() as m:
        m.setattr(JobMessage, "deliver", lost)
        async with running_bot(fake, settings) as bot:
            ix = await draw(fake, fake.alice, "kept on disk", seed=11)
            await fake.wait_until(lambda: any(j.state.value == "done" for j in bot.engine.scheduler.jobs.values()),
                                  timeout=20)
            await bot.engine.flush()
    assert not results(ix.original)
    kept = list((tmp_path / "results").iterdir())
    assert len(kept) == 1 and len(list(kept[0].iterdir())) == 1
    async with running_bot(fake, settings):
        await ix.wait_for(lambda i: bool(results(i.original)), timeout=20)
    assert prompts(demo_webui) == ["kept on disk"]
    (att,) = results(ix.original)
    assert att.filename.endswith("-11.png") and att.data == demo_webui.responses[-1].images[0]
    assert list((tmp_path / "results").iterdir()) == []  # delivered: the copy is gone

