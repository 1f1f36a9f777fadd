"""End to end: /pnginfo on images from every WebUI and on things that aren't; message context menus."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.images import png
from tests.support.fixtures import fixture_png
from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(60)

FORGE = ("a knight in shining armour\nNegative prompt: blurry\nSteps: 25, Sampler: Euler, Schedule type: Simple, "
         "CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 42, Size: 896x1152, Model hash: 4a2ba3ff5b, "
         "Model: flux1-dev-bnb-nf4-v2, Diffusion in Low Bits: bnb-nf4, Version: f2.0.1v1.10.1-previous-669-gdfdcbab6")
SDNEXT = ("a quiet harbour at dawn\nNegative prompt: people\nSteps: 30, Size: 768x512, Sampler: DPM++ 2M, Seed: 7, "
          "CFG scale: 6, App: SD.Next, Version: 431bcc3, Operations: txt2img, Pipeline: StableDiffusionPipeline")


def plain_png(size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def a1111_png() -> bytes:
    return fixture_png()


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


async def pnginfo(fake: Any, data: bytes, filename: str, content_type: str) -> Any:
    att = fake.make_attachment(data, filename, content_type)
    ix = await fake.invoke(fake.alice, fake.channel, "pnginfo", {"image": att})
    await ix.wait_for(lambda i: i.original is not None and (i.original.content or i.original.embeds), timeout=10)
    assert ix.ephemeral
    return ix.original


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> Any:
    async with running_bot(fake_discord, bot_settings(fake_discord, demo_webui.url, tmp_path)) as bot:
        yield fake_discord, demo_webui, bot


async def test_pnginfo_reads_a1111_forge_and_sdnext_pngs(env: Any) -> None:
    fake, _, _ = env
    msg = await pnginfo(fake, a1111_png(), "fox.png", "image/png")
    embed = msg.embeds[0]
    assert embed["description"] == "a watercolor painting of a red fox in an autumn forest"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Negative prompt"] == "blurry, lowres"
    assert "Steps: 20" in fields["Parameters"] and "Seed: 1234567890" in fields["Parameters"]
    assert embed["footer"]["text"] == "Made with A1111"
    assert "/draw prompt:a watercolor painting of a red fox in an autumn forest" in msg.content
    assert "negative_prompt:blurry, lowres" in msg.content and "seed:1234567890" in msg.content

    forge = png.add_text_chunk(plain_png(), "parameters", FORGE)
    msg = await pnginfo(fake, forge, "knight.png", "image/png")
    assert msg.embeds[0]["footer"]["text"] == "Made with Forge"
    assert "Distilled CFG Scale: 3.5" in msg.embeds[0]["fields"][1]["value"]
    assert "width:896 height:1152" in msg.content

    sdnext = png.add_text_chunk(plain_png(), "parameters", SDNEXT)
    msg = await pnginfo(fake, sdnext, "harbour.png", "image/png")
    assert msg.embeds[0]["footer"]["text"] == "Made with SD.Next"
    assert msg.embeds[0]["description"] == "a quiet harbour at dawn" and "steps:30" in msg.content


@pytest.mark.parametrize(("data", "filename", "content_type", "expected"), [
    (plain_png(), "plain.png", "image/png", "is a PNG without WebUI generation parameters"),
    (jpeg(), "photo.jpg", "image/jpeg", "is a JPG without WebUI generation parameters"),
    (os.urandom(5000), "noise.png", "image/png", "isn't a PNG, JPEG or WebP image"),
    (plain_png()[:60], "cut.png", "image/png", "is damaged"),
])
async def test_pnginfo_explains_images_without_parameters(env: Any, data: bytes, filename: str, content_type: str,
                                                         expected: str) -> None:
    fake, _, _ = env
    msg = await pnginfo(fake, data, filename, content_type)
    assert expected in msg.content and not msg.embeds


async def test_context_menus_on_someone_elses_message(env: Any) -> None:
    fake, demo, _ = env
    att = fake.make_attachment(a1111_png(), "fox.png", "image/png")
    posted = await fake.post_message(fake.admin, fake.channel, "look what I made", attachments=[att])

    ix = await fake.invoke_message_command(fake.alice, "Show parameters", posted)
    await ix.wait_for(lambda i: i.original is not None and bool(i.original.embeds), timeout=10)
    assert ix.ephemeral and ix.original.embeds[0]["description"].startswith("a watercolor painting")

    ix = await fake.invoke_message_command(fake.alice, "Reroll", posted)
    await ix.wait_for(lambda i: i.original is not None and any(a.filename.endswith(".png") and
                                                                not a.filename.startswith("preview")
                                                                for a in i.original.attachments), timeout=30)
    body = demo.received[-1][1]
    assert body["prompt"] == "a watercolor painting of a red fox in an autumn forest" and body["seed"] == -1
    assert (body["steps"], body["sampler_name"], body["width"], body["height"]) == (20, "Euler a", 64, 64)

    plain = await fake.post_message(fake.admin, fake.channel, "no metadata",
                                    attachments=[fake.make_attachment(plain_png(), "p.png", "image/png")])
    ix = await fake.invoke_message_command(fake.alice, "Reroll", plain)
    await ix.wait_for(lambda i: any("no image with WebUI generation parameters" in (m.content or "")
                                    for m in [i.original, *i.followups] if m), timeout=10)
