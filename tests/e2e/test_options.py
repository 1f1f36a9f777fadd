"""End to end: style, LoRA, hires fix and spoiler options of /draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.images import png
from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> Any:
    async with running_bot(fake_discord, bot_settings(fake_discord, demo_webui.url, tmp_path)) as bot:
        yield fake_discord, demo_webui, bot


async def run(fake: Any, **options: Any) -> Any:
    ix = await fake.invoke(fake.alice, fake.channel, "draw", options)
    await ix.wait_ack()
    if ix.ephemeral:
        return ix.original
    await ix.wait_for(lambda i: i.original is not None and bool(i.original.attachments) and
                      "%" not in i.original.content, timeout=30)
    return ix.original


async def test_style_lora_and_hires_land_in_the_payload(env: Any) -> None:
    fake, demo, _ = env
    msg = await run(fake, prompt="a harbour", style="cinematic", lora="add_detail", lora_weight=0.6, hires=1.5,
                    width=512, height=384)
    body = demo.received[-1][1]
    assert body["styles"] == ["Cinematic"]
    assert body["prompt"] == "a harbour <lora:add_detail:0.6>"
    assert (body["enable_hr"], body["hr_scale"], body["denoising_strength"], body["hr_upscaler"]) == (
        True, 1.5, 0.5, "Latent")
    assert body["hr_sampler_name"] is None
    assert png.png_dimensions(msg.attachments[0].data) == (768, 576)  # the hires pass really ran
    info = png.read_parameters(msg.attachments[0].data) or ""
    assert "Hires upscale: 1.5" in info and "Denoising strength: 0.5" in info


async def test_hires_cannot_bypass_the_pixel_limit(env: Any) -> None:
    fake, demo, _ = env
    before = len(demo.received)
    msg = await run(fake, prompt="big", width=768, height=768, hires=2.0)
    assert "`hires` 2× of 768×768 makes 1536×1536 = 2,359,296 pixels; the limit is 1,048,576" in msg.content
    msg = await run(fake, prompt="x", lora="no-such-lora", style="Nope")
    assert "`lora`: the WebUI has no “no-such-lora”" in msg.content and "`style`: the WebUI has no “Nope”" in msg.content
    assert len(demo.received) == before


async def test_spoiler_marks_every_image(env: Any) -> None:
    fake, _, _ = env
    msg = await run(fake, prompt="a surprise", batch=2, spoiler=True)
    assert [a.filename.startswith("SPOILER_") for a in msg.attachments] == [True, True]
    assert png.read_parameters(msg.attachments[0].data)


async def test_style_and_lora_autocomplete(env: Any) -> None:
    fake, _, _ = env
    styles = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "style": "c"},
                                     focused="style")
    assert [c["value"] for c in styles] == ["Cinematic", "Clean", "Watercolor"]  # substring, prefixes first
    loras = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "lora": "pix"},
                                    focused="lora")
    assert [c["value"] for c in loras] == ["pixel-art-xl"]
