"""End to end: rate limits, the fair queue, live progress, cancel, the pool and late delivery."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot.images import png
from tests.support.harness import bot_settings, running_bot, wait_until

pytestmark = pytest.mark.timeout(90)


def done(ix: Any) -> bool:
    m = ix.original
    return m is not None and (bool(m.attachments) and "preview.png" not in [a.filename for a in m.attachments]
                              or any(w in m.content for w in ("❌", "Cancelled", "Done —")))


async def finished(ix: Any, timeout: float = 30.0) -> Any:
    await ix.wait_for(done, timeout=timeout)
    return ix.original


async def draw(fake: Any, user: Any, prompt: str, **options: Any) -> Any:
    ix = await fake.invoke(user, fake.channel, "draw", {"prompt": prompt, **options})
    await ix.wait_ack()
    return ix


def prompts_received(demo: Any) -> list[str]:
    return [body["prompt"] for route, body in demo.received if route == "txt2img"]


async def test_one_user_firing_ten_draws_gets_the_allowed_number_and_clear_refusals(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.05)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path, rate_limit=(5, 60.0),
                                              max_queued_per_user=3)):
        ixs = await asyncio.gather(*(fake.invoke(fake.alice, fake.channel, "draw", {"prompt": f"cat {i}"})
                                     for i in range(10)))
        await asyncio.gather(*(ix.wait_ack() for ix in ixs))
        accepted = [ix for ix in ixs if ix.deferred]
        refused = [ix for ix in ixs if not ix.deferred]
        assert len(accepted) == 3 and len(refused) == 7
        for ix in refused:
            assert ix.ephemeral
            assert "You already have 3 jobs waiting or running" in ix.original.content
            assert re.search(r"Try again <t:\d+:R>\.", ix.original.content)
        await asyncio.gather(*(finished(ix) for ix in accepted))
        assert sorted(prompts_received(demo)) == sorted(ix.original.content.split("**")[1] for ix in accepted)

        # Now the time-based limit: 2 more are allowed (5 per minute), then refusals say when.
        ixs = [await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": f"dog {i}"}) for i in range(3)]
        await asyncio.gather(*(ix.wait_ack() for ix in ixs))
        assert [ix.deferred for ix in ixs] == [True, True, False]
        assert "5 jobs per person in 1 minute" in ixs[2].original.content
        assert re.search(r"Try again <t:\d+:R>\.", ixs[2].original.content)
        await asyncio.gather(*(finished(ix) for ix in ixs[:2]))
        assert len(prompts_received(demo)) == 5  # refusals cost the WebUI nothing


async def test_a_second_users_job_starts_before_the_first_users_third(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.03)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)):
        a = [await draw(fake, fake.alice, f"alice {i}", steps=10) for i in (1, 2, 3)]
        b = await draw(fake, fake.admin, "bob 1", steps=10)
        await asyncio.gather(*(finished(ix) for ix in [*a, b]))
        assert prompts_received(demo) == ["alice 1", "bob 1", "alice 2", "alice 3"]
        assert demo.max_in_flight == 1


async def test_progress_is_shown_in_the_job_message_and_edits_are_throttled(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.25)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)):
        queued_behind = await draw(fake, fake.admin, "first", steps=8)
        ix = await draw(fake, fake.alice, "a slow fox", steps=20)
        await ix.wait_for(lambda i: i.original is not None and "Queued — position 1 of 1" in i.original.content,
                          timeout=5)
        msg = await finished(ix, timeout=40)
        await finished(queued_behind)
        assert msg.attachments[0].filename.endswith(".png") and png.read_parameters(msg.attachments[0].data)
        edits = msg.edits
        texts = [e[1].get("content") or "" for e in edits]
        progress = [i for i, t in enumerate(texts) if re.search(r"`[▰▱]+` \d+% · step \d+/20", t)]
        assert progress and progress[0] < len(edits) - 1  # progress shown before the final images
        previews = [i for i in progress if "preview.png" in edits[i][1].get("_files", [])]
        assert previews, "the live preview is attached while running"
        times = [t for t, _ in edits[:-1]]  # the final delivery is immediate
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps and min(gaps) >= 1.4, gaps


async def test_cancel_a_queued_and_a_running_job(fake_discord: Any, demo_webui_factory: Any,
                                                 tmp_path: Path) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.2)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)):
        running = await draw(fake, fake.alice, "running job", steps=30)
        queued = await draw(fake, fake.alice, "queued job")
        await queued.wait_for(lambda i: i.original is not None and "Queued" in i.original.content, timeout=5)
        await running.wait_for(lambda i: "Queued" not in (i.original.content if i.original else "Queued"),
                               timeout=5)

        bob = fake.add_user("bob")
        fake.add_member(fake.guild, bob, permissions=0)
        other = await fake.click(bob, queued.original, f"sdcord:cancel:{_job_id(queued.original)}")
        await other.wait_ack()
        assert other.ephemeral and "Only the person who started this job" in other.original.content

        click = await fake.click(fake.alice, queued.original, f"sdcord:cancel:{_job_id(queued.original)}")
        await click.wait_ack()
        msg = await finished(queued)
        assert "✖️ Cancelled" in msg.content and not msg.attachments

        await running.wait_for(lambda i: "%" in i.original.content, timeout=10)
        click = await fake.click(fake.admin, running.original, f"sdcord:cancel:{_job_id(running.original)}")
        await click.wait_ack()
        msg = await finished(running)
        assert f"Cancelled by <@{fake.admin.id}>" in msg.content and not msg.attachments
        assert demo.state.interrupted  # the backend running it was interrupted
        assert prompts_received(demo) == ["running job"]  # the queued one never reached the WebUI


def _job_id(message: Any) -> str:
    for row in message.components:
        for item in row.get("components", []):
            if str(item.get("custom_id", "")).startswith("sdcord:cancel:"):
                return str(item["custom_id"]).rsplit(":", 1)[1]
    raise AssertionError("no Cancel button")


async def test_a_backend_killed_mid_run(fake_discord: Any, demo_webui_factory: Any, tmp_path: Path) -> None:
    fake = fake_discord
    one = await demo_webui_factory(step_delay=0.1)
    two = await demo_webui_factory(step_delay=0.1)
    async with running_bot(fake, bot_settings(fake, f"{one.url},{two.url}", tmp_path)):
        ix = await draw(fake, fake.alice, "doomed", steps=30)
        await wait_until(lambda: one.in_flight or two.in_flight, timeout=10)
        victim, survivor = (one, two) if one.in_flight else (two, one)
        await asyncio.sleep(0.3)
        await victim.stop()
        msg = await finished(ix)
        assert "❌" in msg.content and "error id" in msg.content and not msg.attachments
        assert "doomed" not in prompts_received(survivor)  # never run twice by accident
        ix = await draw(fake, fake.alice, "after", steps=5)
        msg = await finished(ix)
        assert msg.attachments and prompts_received(survivor) == ["after"]


async def test_jobs_go_to_the_idle_backend(fake_discord: Any, demo_webui_factory: Any, tmp_path: Path) -> None:
    fake = fake_discord
    one = await demo_webui_factory(step_delay=0.05)
    two = await demo_webui_factory(step_delay=0.05)
    async with running_bot(fake, bot_settings(fake, f"{one.url},{two.url}", tmp_path)):
        ixs = [await draw(fake, user, f"job {i}", steps=20) for i, user in enumerate((fake.alice, fake.admin))]
        await asyncio.gather(*(finished(ix) for ix in ixs))
        assert len(prompts_received(one)) == len(prompts_received(two)) == 1
        assert one.max_in_flight == two.max_in_flight == 1


async def test_a_result_after_the_token_expired_arrives_as_a_channel_message(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    fake.token_lifetime = 2.0
    demo = await demo_webui_factory(step_delay=0.2)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)):
        ix = await draw(fake, fake.alice, "a slow lighthouse", steps=20)
        reply = await fake.wait_for_message(
            lambda m: m.attachments and m.interaction_id is None and m.channel_id == fake.channel.id, timeout=30)
        assert reply.message_reference and int(reply.message_reference["message_id"]) == ix.original.id
        assert set(reply.pinged_user_ids) == {fake.alice.id} and not reply.pings_everyone
        assert png.read_parameters(reply.attachments[0].data)
        await ix.wait_for(lambda i: "Done — the images are in the reply below" in i.original.content, timeout=10)


async def test_a_deleted_job_message_does_not_lose_the_result(fake_discord: Any, demo_webui_factory: Any,
                                                              tmp_path: Path) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.1)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)) as bot:
        ix = await draw(fake, fake.alice, "ephemeral thoughts", steps=20)
        await ix.wait_for(lambda i: i.original is not None and "%" in i.original.content, timeout=10)
        channel = bot.get_channel(fake.channel.id)
        await channel.get_partial_message(ix.original.id).delete()
        reply = await fake.wait_for_message(lambda m: m.attachments and m.interaction_id is None, timeout=30)
        assert f"<@{fake.alice.id}>" in reply.content and set(reply.pinged_user_ids) == {fake.alice.id}
        assert not fake.server_errors


async def test_status_shows_backends_queue_and_my_jobs(fake_discord: Any, demo_webui_factory: Any,
                                                       tmp_path: Path) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.2)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)):
        first = await draw(fake, fake.admin, "busy", steps=20)
        mine = await draw(fake, fake.alice, "my queued job")
        await first.wait_for(lambda i: i.original is not None and "🎨" in i.original.content, timeout=5)
        await mine.wait_for(lambda i: i.original is not None and "Queued" in i.original.content, timeout=5)
        ix = await fake.invoke(fake.alice, fake.channel, "status", {})
        await ix.wait_ack()
        text = ix.original.content
        assert ix.ephemeral
        assert "`#1` 🟢 up, busy" in text and "**Queue**: 1 job waiting" in text
        assert "queued, position 1 — my queued job" in text and "busy" not in text.split("**Your jobs**")[1]
        # Any kind of job is listed by what it is, upscales included.
        await finished(first)
        upscale = next(c["custom_id"] for row in first.original.components for c in row["components"]
                       if c["custom_id"].startswith("sdcord:upscale:"))
        up = await fake.click(fake.alice, first.original, upscale)
        await up.wait_for(lambda i: i.original is not None and "Upscale 2×" in i.original.content, timeout=10)
        ix = await fake.invoke(fake.alice, fake.channel, "status", {})
        await ix.wait_ack()
        assert "Upscale 2× with R-ESRGAN 4x+" in ix.original.content, ix.original.content
        for job in (mine, up):
            await finished(job)


async def test_a_result_that_can_be_shown_nowhere_ends_in_a_clear_record(fake_discord: Any, demo_webui: Any,
                                                                          tmp_path: Path) -> None:
    """Token expired and the channel refuses the bot (deleted, or its permissions taken away): the job
    still ends, as done with the reason it couldn't be shown; nothing stays queued or running."""
    from bot.core.engine import STORE_FILE
    from bot.core.store import JobStore

    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        fake.token_lifetime = 0.0
        fake.inject_error("*", r"^/channels/\d+/messages", 403, 50001, "Missing Access", count=50)
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "nowhere to go"})
        await ix.wait_ack()
        job = await wait_for_job(bot)
        await job.wait_done(20)
        await wait_until(lambda: not bot.deliveries.messages, timeout=20)
        await bot.engine.flush()
    store = await JobStore.open(tmp_path / STORE_FILE)
    try:
        record = await store.get(job.id)
        assert record is not None and record.status == "done" and record.delivered_at is not None
        assert "Missing Access" in (record.delivery_error or "") and await store.unfinished() == []
        assert record.origin.get("interaction") is None  # the token is not kept once it is of no use
    finally:
        await store.close()
    assert list((tmp_path / "results").iterdir()) == []


async def wait_for_job(bot: Any) -> Any:
    await wait_until(lambda: bool(bot.engine.scheduler.jobs), timeout=10)
    return next(iter(bot.engine.scheduler.jobs.values()))


async def test_a_timed_out_generation_is_interrupted_and_never_overlaps_the_next(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    """WEBUI_TIMEOUT passes while the WebUI still renders (it never drops a request whose client left):
    the job fails clearly, that WebUI is interrupted, and the next job is sent only once it is idle."""
    import dataclasses

    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.1)  # 2 s a job
    settings = dataclasses.replace(bot_settings(fake, demo.url, tmp_path), generation_timeout=0.6)
    async with running_bot(fake, settings):
        slow = await draw(fake, fake.alice, "too slow", steps=20)
        quick = await draw(fake, fake.admin, "quick one", steps=2)
        await slow.wait_for(lambda i: i.original is not None and "didn't finish the job" in i.original.content, timeout=20)
        await finished(quick)
    assert demo.max_in_flight == 1  # the abandoned generation was stopped before the next was sent
    assert prompts_received(demo) == ["too slow", "quick one"]
    assert quick.original.attachments and not fake.server_errors
