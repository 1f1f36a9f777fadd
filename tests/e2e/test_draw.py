"""End to end: the real discord.py client against the fake Discord and the demo WebUI."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.images import png
from tests.support.harness import bot_settings, running_bot, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> Any:
    async with running_bot(fake_discord, bot_settings(fake_discord, demo_webui.url, tmp_path)) as bot:
        yield type("Env", (), {"fake": fake_discord, "demo": demo_webui, "bot": bot, "data": tmp_path})


async def finished(ix: Any, timeout: float = 20.0) -> Any:
    """Wait until the deferred response has been filled in; return the message."""
    await ix.wait_for(lambda i: i.original is not None and (i.original.attachments or "❌" in i.original.content),
                      timeout=timeout)
    return ix.original


def option_map(command: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in command["options"]}


async def test_draw_is_registered_with_the_documented_options(env: Any) -> None:
    commands = {c["name"]: c for c in env.fake.commands(guild_id=env.fake.guild.id)}
    opts = option_map(commands["draw"])
    assert list(opts) == ["prompt", "ar", "negative_prompt", "model", "sampler", "scheduler", "steps", "cfg_scale",
                          "seed", "width", "height", "batch", "style", "lora", "lora_weight", "hires", "spoiler",
                          "init_image", "strength", "preset", "clip_skip", "tiling", "fix_faces"]
    assert len(opts) <= 25  # Discord's limit for one command
    assert [c["value"] for c in opts["ar"]["choices"]] == ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9"]
    assert (opts["clip_skip"]["min_value"], opts["clip_skip"]["max_value"]) == (1, 12)
    assert opts["tiling"]["type"] == opts["fix_faces"]["type"] == 5
    assert opts["prompt"]["required"] is True and opts["prompt"]["type"] == 3
    assert all(not o.get("required") for n, o in opts.items() if n != "prompt")
    assert {n for n, o in opts.items() if o.get("autocomplete")} == {"model", "sampler", "scheduler", "style", "lora", "preset"}
    assert {n: opts[n]["type"] for n in ("steps", "seed", "width", "height", "batch")} == dict.fromkeys(
        ("steps", "seed", "width", "height", "batch"), 4)
    assert opts["cfg_scale"]["type"] == 10 and opts["init_image"]["type"] == 11
    assert (opts["width"]["min_value"], opts["width"]["max_value"]) == (64, 2048)
    assert (opts["seed"]["min_value"], opts["seed"]["max_value"]) == (-1, 4294967295)


async def test_draw_posts_pngs_carrying_the_webui_infotext_byte_for_byte(env: Any) -> None:
    fake, demo = env.fake, env.demo
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat in a hat", "batch": 2, "seed": 1234})
    assert await ix.wait_ack() < 3.0
    assert ix.deferred and not ix.ephemeral
    msg = await finished(ix)
    assert [a.filename for a in msg.attachments] == ["00001-1234.png", "00002-1235.png"]
    sent = demo.responses[-1]  # what the WebUI answered
    for k, att in enumerate(msg.attachments):
        assert att.data == sent.images[k]  # the WebUI's own PNG bytes, untouched
        assert png.read_parameters(att.data) == sent.infotexts[k]
        with Image.open(io.BytesIO(att.data)) as im:
            assert im.format == "PNG" and im.size == (512, 512)
    assert "a cat in a hat" in msg.content and "`1234`, `1235`" in msg.content
    assert "20 steps" in msg.content and "DPM++ 2M Karras" in msg.content


async def test_payload_sent_has_documented_defaults_and_mappings(env: Any) -> None:
    fake, demo = env.fake, env.demo
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "fox"})
    await finished(ix)
    route, body = demo.received[-1]
    assert route == "txt2img"
    assert body == {"prompt": "fox", "negative_prompt": "", "seed": -1, "sampler_name": "DPM++ 2M",
                    "scheduler": "Karras", "steps": 20, "cfg_scale": 7.0, "width": 512, "height": 512,
                    "batch_size": 1, "n_iter": 1, "send_images": True, "save_images": False}
    models = await env.bot.engine.clients[0].sd_models()
    title = models[-1]["title"]
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {
        "prompt": "fox", "negative_prompt": "blurry", "model": title, "sampler": "Euler a", "scheduler": "Automatic",
        "steps": 12, "cfg_scale": 4.5, "seed": 7, "width": 500, "height": 640})
    msg = await finished(ix)
    body = demo.received[-1][1]
    assert body["override_settings"] == {"sd_model_checkpoint": title}
    assert body["override_settings_restore_afterwards"] is True
    assert (body["negative_prompt"], body["sampler_name"], body["scheduler"], body["steps"]) == (
        "blurry", "Euler a", "Automatic", 12)
    assert (body["cfg_scale"], body["seed"], body["width"], body["height"]) == (4.5, 7, 504, 640)
    assert "width 500 rounded to 504" in msg.content
    assert not any(route == "options" for route, _ in demo.received)  # never switches the model for everyone


async def test_bad_options_get_an_ephemeral_reason_and_cost_the_webui_nothing(env: Any) -> None:
    fake, demo = env.fake, env.demo
    before = len(demo.received)
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "steps": 120, "batch": 9})
    await ix.wait_ack()
    assert ix.ephemeral and not ix.deferred
    assert "`steps` must be between 1 and 50 (got 120)." in ix.original.content
    assert "`batch` must be between 1 and 4 (got 9)." in ix.original.content
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "sampler": "Nonsense 3000"})
    await ix.wait_ack()
    assert ix.ephemeral and "`sampler`: the WebUI has no “Nonsense 3000”" in ix.original.content
    assert len(demo.received) == before


async def test_prompts_never_ping_everyone_or_roles(env: Any) -> None:
    fake = env.fake
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "@everyone @here <@&123> <@456> hi"})
    msg = await finished(ix)
    assert not msg.pings_everyone and not msg.pinged_role_ids and not msg.pinged_user_ids


async def test_autocomplete_answers_with_the_webui_lists(env: Any) -> None:
    fake = env.fake
    choices = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "sampler": "sde"},
                                      focused="sampler")
    assert [c["value"] for c in choices] == ["DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]
    choices = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "scheduler": ""},
                                      focused="scheduler")
    assert 0 < len(choices) <= 25 and choices[0]["value"] == "Automatic"
    models = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "model": ""}, focused="model")
    assert models and all(len(c["value"]) <= 100 for c in models)


async def test_webui_down_the_job_waits_says_so_and_finishes_when_it_is_back(env: Any) -> None:
    fake, demo = env.fake, env.demo
    port = demo.port
    await demo.stop()
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat"})
    assert await ix.wait_ack() < 3.0
    await ix.wait_for(lambda i: i.original is not None and "waiting for an image server" in i.original.content, timeout=10)
    assert not ix.original.attachments
    await demo.start("127.0.0.1", port)
    msg = await finished(ix, timeout=20)
    assert len(msg.attachments) == 1 and png.read_parameters(msg.attachments[0].data)
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a dog"})
    assert (await finished(ix)).attachments


async def test_webui_down_past_the_wait_limit_fails_clearly(fake_discord: Any, demo_webui: Any,
                                                            tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path, backend_wait_limit=1.0)
    async with running_bot(fake, settings):
        await demo_webui.stop()
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat"})
        msg = await finished(ix, timeout=15)
        assert "❌" in msg.content and "No image server has been reachable" in msg.content and "error id" in msg.content


async def test_webui_errors_are_explained(env: Any) -> None:
    fake, demo = env.fake, env.demo
    demo.inject_error("txt2img", 500)  # CUDA out of memory, A1111 body
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat"})
    msg = await finished(ix)
    assert "out of GPU memory" in msg.content and "error id" in msg.content


async def test_unexpected_errors_reach_the_user_with_an_error_id_and_the_log(
    env: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(env.bot.engine.generator, "generate", boom)
    with caplog.at_level(logging.ERROR):
        ix = await env.fake.invoke(env.fake.alice, env.fake.channel, "draw", {"prompt": "a cat"})
        await ix.wait_for(lambda i: any("error id" in m.content for m in [i.original, *i.followups] if m), timeout=10)
    text = " ".join(m.content for m in [ix.original, *ix.followups] if m)
    error_id = text.split("error id `")[1].split("`")[0]
    record = next(r for r in caplog.records if error_id in r.getMessage())
    assert record.exc_info and "kaboom" in str(record.exc_info[1])
    assert "kaboom" not in text  # internals stay in the log


async def test_large_images_are_reencoded_to_fit_and_keep_their_infotext(env: Any) -> None:
    fake = env.fake
    fake.attachment_size_limit = 300_000
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "big", "width": 1024, "height": 1024,
                                                              "seed": 5})
    msg = await finished(ix, timeout=30)
    att = msg.attachments[0]
    assert att.size <= 300_000 and att.filename.startswith("00001-5.") and not att.filename.endswith(".png")
    assert png.read_parameters(att.data) == env.demo.responses[-1].infotexts[0]
    assert "re-encoded" in msg.content


async def test_one_users_big_job_does_not_delay_another_users_acknowledgement(env: Any) -> None:
    fake = env.fake
    big = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "big", "width": 1024, "height": 1024,
                                                               "batch": 4})
    await big.wait_ack()
    small_acks = []
    while big.original is None or not big.original.attachments:
        ix = await fake.invoke(fake.admin, fake.channel, "draw", {"prompt": "small", "steps": 1})
        small_acks.append(await ix.wait_ack())
        await asyncio.sleep(0.05)
        if len(small_acks) > 200:
            break
    await finished(big, timeout=60)
    assert small_acks and max(small_acks) < 1.0


async def test_global_sync_happens_only_when_the_schema_changed(fake_discord: Any, demo_webui: Any,
                                                                tmp_path: Path) -> None:
    settings = bot_settings(fake_discord, demo_webui.url, tmp_path, guild_ids=())

    def global_puts() -> int:
        return sum(1 for _, method, path, _ in fake_discord.requests
                   if method == "PUT" and path.endswith("/commands") and "/guilds/" not in path)

    async with running_bot(fake_discord, settings):
        assert {c["name"] for c in fake_discord.commands()} == {
            "draw", "upscale", "describe", "status", "history", "pnginfo", "settings", "prefer", "help",
            "Show parameters", "Reroll"}
    assert global_puts() == 1
    async with running_bot(fake_discord, settings):
        pass
    assert global_puts() == 1
    (tmp_path / "command-schema.sha256").write_text("stale")
    async with running_bot(fake_discord, settings):
        await wait_until(lambda: global_puts() == 2)
