"""End to end: /settings (admins only), the NSFW policy, /prefer presets and their precedence, and
autocomplete that answers in time whatever the WebUI does."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.core.engine import STORE_FILE
from bot.core.store import JobStore
from tests.fakediscord import InvalidInvocation
from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> Any:
    async with running_bot(fake_discord, bot_settings(fake_discord, demo_webui.url, tmp_path)) as bot:
        yield fake_discord, demo_webui, bot


async def say(fake: Any, user: Any, name: str, options: dict[str, Any], channel: Any = None, **kw: Any) -> str:
    """Run a command; return the text its user sees (ephemeral or not)."""
    ix = await fake.invoke(user, channel or fake.channel, name, options, **kw)
    await ix.wait_for(lambda i: any(m.content for m in [i.original, *i.followups] if m), timeout=20)
    return " ".join(m.content for m in [ix.original, *ix.followups] if m)


async def draw(fake: Any, user: Any, channel: Any = None, **options: Any) -> Any:
    ix = await fake.invoke(user, channel or fake.channel, "draw", {"prompt": "a lighthouse", **options})
    await ix.wait_ack()
    if not ix.ephemeral:
        await ix.wait_for(lambda i: i.original is not None and bool(i.original.attachments) and
                          "%" not in i.original.content, timeout=30)
    return ix


async def test_settings_is_for_admins_only(env: Any) -> None:
    fake, _, _ = env
    with pytest.raises(InvalidInvocation):  # hidden from plain members by default permissions
        await fake.invoke(fake.alice, fake.channel, "settings show", {})
    text = await say(fake, fake.alice, "settings nsfw", {"mode": "refuse"}, check_permissions=False)
    assert "You need the Manage Server permission" in text  # and checked again at run time
    assert "Refuse" not in await say(fake, fake.admin, "settings show", {})
    assert "**NSFW policy**: off" in await say(fake, fake.admin, "settings show", {})


async def test_server_defaults_channels_caps_and_log(env: Any, tmp_path: Path) -> None:
    fake, demo, bot = env
    text = await say(fake, fake.admin, "settings defaults", {"steps": 30, "sampler": "euler a",
                                                             "negative_prefix": "watermark"})
    assert "Saved" in text and "sampler Euler a" in text
    await draw(fake, fake.alice)
    body = demo.received[-1][1]
    assert (body["steps"], body["sampler_name"], body["negative_prompt"]) == (30, "Euler a", "watermark")

    assert "between 1 and 50" in await say(fake, fake.admin, "settings caps", {"max_steps": 80})
    await say(fake, fake.admin, "settings caps", {"max_steps": 25})
    ix = await draw(fake, fake.alice)
    assert not ix.ephemeral and demo.received[-1][1]["steps"] == 25  # the server default follows the cap
    ix = await draw(fake, fake.alice, steps=40)
    assert ix.ephemeral and "`steps` must be between 1 and 25 (got 40)" in ix.original.content

    art = fake.add_channel(fake.guild, "art")
    await say(fake, fake.admin, "settings channels", {"action": "add", "channel": art})
    before = len(demo.received)
    ix = await draw(fake, fake.alice)
    assert ix.ephemeral and f"<#{art.id}>" in ix.original.content and len(demo.received) == before
    ix = await draw(fake, fake.alice, channel=art)
    assert not ix.ephemeral and len(demo.received) == before + 1

    # Upscaling is generating too: the same channel rules apply to /upscale and the Upscale button.
    source = ix.original
    assert "isn't allowed in this channel" in await say(fake, fake.alice, "upscale", {
        "image": fake.make_attachment(source.attachments[0].data, "a.png", "image/png")})
    await say(fake, fake.admin, "settings channels", {"action": "clear"})
    plain = await draw(fake, fake.alice)
    await say(fake, fake.admin, "settings channels", {"action": "add", "channel": art})
    upscale = next(c["custom_id"] for row in plain.original.components for c in row["components"]
                   if c["custom_id"].startswith("sdcord:upscale:"))
    click = await fake.click(fake.alice, plain.original, upscale)
    await click.wait_ack()
    assert click.ephemeral and "isn't allowed in this channel" in click.original.content
    assert len(demo.received) == before + 2  # the draw in #art and the unrestricted one; no upscale
    await say(fake, fake.admin, "settings channels", {"action": "clear"})

    await bot.engine.flush()
    store = bot.engine.book.store
    log = await store.settings_log(fake.guild.id)
    assert [c for _, _, c in log][::-1] == ["sampler=Euler a, steps=30, negative_prefix=watermark", "max_steps=25",
                                            "channels add #art", "channels clear", "channels add #art",
                                            "channels clear"]
    assert all(u == fake.admin.id for u, _, _ in log)


async def test_nsfw_policy_safe_adds_the_safety_prompt_and_spoilers_outside_nsfw_channels(env: Any) -> None:
    fake, demo, _ = env
    await say(fake, fake.admin, "settings nsfw", {"mode": "safe", "safety_negative": "nsfw, nude"})
    ix = await draw(fake, fake.alice, negative_prompt="blurry")
    assert demo.received[-1][1]["negative_prompt"] == "nsfw, nude, blurry"
    assert all(a.filename.startswith("SPOILER_") for a in ix.original.attachments)
    adult = fake.add_channel(fake.guild, "after-dark", nsfw=True)
    ix = await draw(fake, fake.alice, channel=adult, negative_prompt="blurry")
    assert demo.received[-1][1]["negative_prompt"] == "blurry"  # NSFW channels get neither
    assert not any(a.filename.startswith("SPOILER_") for a in ix.original.attachments)

    await say(fake, fake.admin, "settings nsfw", {"mode": "refuse"})
    ix = await draw(fake, fake.alice)
    assert ix.ephemeral and "only in channels marked NSFW" in ix.original.content
    ix = await draw(fake, fake.alice, channel=adult)
    assert not ix.ephemeral


async def test_presets_resolve_explicit_then_preset_then_user_then_server_then_global(env: Any) -> None:
    fake, demo, _ = env
    await say(fake, fake.admin, "settings defaults", {"steps": 30, "sampler": "Euler a", "width": 448})
    await say(fake, fake.alice, "prefer defaults", {"steps": 25, "negative_prompt": "lowres"})
    text = await say(fake, fake.alice, "prefer save", {"name": "fast", "steps": 8, "width": 640})
    assert "Preset **fast** saved" in text

    ix = await draw(fake, fake.alice, preset="fast", steps=12)
    b = demo.received[-1][1]
    assert (b["steps"], b["width"], b["negative_prompt"], b["sampler_name"], b["height"]) == (
        12, 640, "lowres", "Euler a", 512)  # explicit, preset, user, server, global
    assert "preset “fast”" in ix.original.content
    await draw(fake, fake.alice, preset="fast")
    assert demo.received[-1][1]["steps"] == 8
    await draw(fake, fake.alice)
    assert (demo.received[-1][1]["steps"], demo.received[-1][1]["width"]) == (25, 448)
    await draw(fake, fake.admin)  # someone without preferences gets the server's defaults
    assert (demo.received[-1][1]["steps"], demo.received[-1][1]["negative_prompt"]) == (30, "")

    ix = await draw(fake, fake.alice, preset="nope")
    assert ix.ephemeral and "no preset called “nope”" in ix.original.content
    choices = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "preset": "fa"},
                                      focused="preset")
    assert [c["value"] for c in choices] == ["fast"]
    assert "deleted" in await say(fake, fake.alice, "prefer delete", {"name": "fast"})
    assert "`sampler`: the WebUI has no “Bogus”" in await say(fake, fake.alice, "prefer save", {"name": "x", "sampler": "Bogus"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("webui", ["down", "slow"])
async def test_autocomplete_answers_in_time_when_the_webui_is_slow_or_down(fake_discord: Any, tmp_path: Path,
                                                                           webui: str) -> None:
    runner = None
    if webui == "slow":
        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(20)
            return web.json_response([])

        app = web.Application()
        app.router.add_get("/{tail:.*}", slow)
        runner = web.AppRunner(app, shutdown_timeout=0.5)  # don't wait for the sleeping handler
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # noqa: SLF001
    else:
        url = f"http://127.0.0.1:{free_port()}"
    try:
        async with running_bot(fake_discord, bot_settings(fake_discord, url, tmp_path)):
            for option in ("model", "sampler", "lora"):
                started = time.monotonic()
                choices = await fake_discord.autocomplete(fake_discord.alice, fake_discord.channel, "draw",
                                                          {"prompt": "x", option: ""}, focused=option)
                assert time.monotonic() - started < 2.5 and choices == []  # empty, not an error
    finally:
        if runner is not None:
            await runner.cleanup()


async def test_settings_survive_a_restart(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    async with running_bot(fake, settings):
        await say(fake, fake.admin, "settings defaults", {"steps": 14})
        await say(fake, fake.alice, "prefer save", {"name": "wide", "width": 768})
    store = await JobStore.open(tmp_path / STORE_FILE)
    try:
        assert (await store.guild_settings(fake.guild.id))["defaults"] == {"steps": 14}
        assert (await store.user_prefs(fake.alice.id))["presets"]["wide"] == {"width": 768}
    finally:
        await store.close()
    async with running_bot(fake, settings):
        await draw(fake, fake.alice, preset="wide")
        assert (demo_webui.received[-1][1]["steps"], demo_webui.received[-1][1]["width"]) == (14, 768)
