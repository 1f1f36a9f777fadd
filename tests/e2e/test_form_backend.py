"""End to end through a form API server backend (`WEBUI_URL=form+http://…`): /draw, img2img, Reroll and
/pnginfo; options it has no field for are refused privately, or go to a WebUI in a mixed pool."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bot.images import png
from bot.images.infotext import parse_generation_parameters
from tests.support.fixtures import fixture_png
from tests.support.harness import bot_settings, button, has_images, running_bot

pytestmark = pytest.mark.timeout(90)


async def drawn(fake: Any, options: dict[str, Any], **kw: Any) -> Any:
    ix = await fake.invoke(fake.alice, fake.channel, "draw", options, **kw)
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    return ix


async def test_draw_img2img_reroll_and_pnginfo_through_a_form_server(fake_discord: Any, demo_form_server: Any,
                                                                     tmp_path: Path) -> None:
    fake, form = fake_discord, demo_form_server
    settings = bot_settings(fake, form.backend_url, tmp_path, rate_limit=(20, 60.0))
    async with running_bot(fake, settings):
        ix = await drawn(fake, {"prompt": "a red kite", "steps": 12, "cfg_scale": 6.5, "batch": 2,
                                "width": 512, "height": 384})
        route, sent = form.received[-1]
        assert route == "txt2img"
        assert (sent["num_outputs"], sent["num_inference_steps"], sent["guidance_scale"]) == ("2", "12", "6.5")
        assert (sent["width"], sent["height"]) == ("512", "384") and int(sent["seed"]) >= 0  # the bot picked it
        assert "negative_prompt" not in sent and "sampler" not in str(sent)
        msg = ix.original
        params = parse_generation_parameters(png.read_parameters(msg.attachments[0].data) or "")
        assert (params["Steps"], params["CFG scale"], params["Size-1"], params["Size-2"]) == ("12", "6.5", "512", "384")
        assert str(params["Seed"]) in msg.content and "DPM++" not in msg.content  # no sampler claimed
        # Reroll: a new seed, through the same server
        again = await fake.click(fake.alice, msg, button(msg, "reroll"))
        await again.wait_for(lambda i: has_images(i.original), timeout=30)
        assert form.received[-1][1]["seed"] != sent["seed"] and form.received[-1][1]["prompt"] == "a red kite"
        # /pnginfo reads the infotext the bot wrote
        info = await fake.invoke(fake.alice, fake.channel, "pnginfo",
                                 attachments={"image": fake.make_attachment(msg.attachments[0].data, "k.png")})
        await info.wait_for(lambda i: i.original is not None and i.original.embeds, timeout=10)
        assert "Steps: 12" in str(info.original.embeds[0]) and "Server: form" in str(info.original.embeds[0])
        # img2img: strength and the image as base64
        init = fake.make_attachment(fixture_png(0), "init.png")
        await drawn(fake, {"prompt": "the same kite, at night", "strength": 0.4}, attachments={"init_image": init})
        route, sent = form.received[-1]
        assert route == "img2img" and sent["strength"] == "0.4"
        assert png.check_upload(base64.b64decode(sent["init_image"]), max_pixels=1 << 24)[1:] == (64, 64)
        # what it has no field for is refused privately, before anything is sent
        count = len(form.received)
        refused = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "negative_prompt": "blurry"})
        await refused.wait_for(lambda i: i.original is not None, timeout=10)
        assert refused.ephemeral and "None of the image servers can do this: `negative_prompt`" in refused.original.content
        assert len(form.received) == count


async def test_a_mixed_pool_sends_what_only_the_webui_can_do_to_the_webui(fake_discord: Any, demo_form_server: Any,
                                                                           demo_webui: Any, tmp_path: Path) -> None:
    fake, form = fake_discord, demo_form_server
    settings = bot_settings(fake, f"{form.backend_url},{demo_webui.url}", tmp_path, rate_limit=(20, 60.0))
    async with running_bot(fake, settings):
        await drawn(fake, {"prompt": "a castle", "negative_prompt": "fog", "hires": 1.5, "width": 256, "height": 256})
        assert [r for r, _ in demo_webui.received] == ["txt2img"] and form.received == []
        assert demo_webui.received[0][1]["negative_prompt"] == "fog" and demo_webui.received[0][1]["enable_hr"]
