"""End to end: img2img from an attachment, /upscale, and what bad attachments get."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.images import png
from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(60)


def noisy_png(size: tuple[int, int]) -> bytes:
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> Any:
    settings = bot_settings(fake_discord, demo_webui.url, tmp_path, max_input_image_bytes=1024 * 1024,
                            max_upscale_pixels=1024 * 1024)
    async with running_bot(fake_discord, settings) as bot:
        yield fake_discord, demo_webui, bot


def finished(ix: Any) -> bool:
    m = ix.original
    return m is not None and (bool(m.attachments) and "%" not in m.content or "❌" in m.content)


async def answer(ix: Any) -> str:
    """The text the user ends up seeing (an ephemeral refusal, or the job message)."""
    await ix.wait_for(lambda i: any(m.ephemeral for m in [i.original, *i.followups] if m) or finished(i),
                      timeout=20)
    return " ".join(m.content for m in [ix.original, *ix.followups] if m and m.ephemeral)


async def test_img2img_sends_the_uploaded_image_with_the_strength(env: Any) -> None:
    fake, demo, bot = env
    upload = noisy_png((300, 200))
    att = fake.make_attachment(upload, "photo.png", "image/png")
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "make it a painting", "init_image": att,
                                                              "strength": 0.35})
    await ix.wait_for(finished, timeout=30)
    route, body = demo.received[-1]
    assert route == "img2img"
    assert base64.b64decode(body["init_images"][0]) == upload  # exactly what the user uploaded
    assert (body["denoising_strength"], body["width"], body["height"]) == (0.35, 296, 200)  # own size, rounded
    result = ix.original.attachments[0]
    assert png.png_dimensions(result.data) == (296, 200)
    assert "Denoising strength: 0.35" in (png.read_parameters(result.data) or "")
    # Reroll of an img2img result reruns img2img with the same input (kept beside the store).
    await bot.engine.flush()
    button = next(c["custom_id"] for row in ix.original.components for c in row["components"]
                  if c["custom_id"].startswith("sdcord:reroll:"))
    again = await fake.click(fake.admin, ix.original, button)
    await again.wait_for(finished, timeout=30)
    route, body = demo.received[-1]
    assert route == "img2img" and base64.b64decode(body["init_images"][0]) == upload


def chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


async def test_img2img_sends_the_upload_without_its_metadata(fake_discord: Any, demo_webui: Any,
                                                            tmp_path: Path) -> None:
    """An 8 MB text chunk (or any other metadata) in an upload is not sent to the WebUI, nor kept as the
    job's input: only the chunks that make the picture, byte for byte."""
    fake, demo = fake_discord, demo_webui
    clean = noisy_png((160, 120))
    source = png.add_text_chunk(clean, "parameters", "an old prompt\nSteps: 20, Sampler: Euler a, Seed: 7")
    source = source[:33] + chunk(b"tEXt", b"Huge\x00" + b"x" * (8 * 1024 * 1024)) + chunk(b"tIME", bytes(7)) \
        + source[33:]
    settings = bot_settings(fake, demo.url, tmp_path, max_input_image_bytes=16 * 1024 * 1024)
    async with running_bot(fake, settings) as bot:
        att = fake.make_attachment(source, "huge.png", "image/png")
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a painting", "init_image": att})
        await ix.wait_for(finished, timeout=30)
        route, body = demo.received[-1]
        assert route == "img2img"
        sent = base64.b64decode(body["init_images"][0])
        assert {c.type for c in png.iter_chunks(sent)} == {b"IHDR", b"IDAT", b"IEND"}  # CRCs checked too
        assert sent == clean and pixels(sent) == pixels(source)
        assert len(body["init_images"][0]) < len(clean) * 4 // 3 + 4
        await bot.engine.flush()
        stored = [p.read_bytes() for p in (tmp_path / "inputs").iterdir()]
        assert stored == [clean]  # the job's input, for Reroll, is the stripped image too
        assert ix.original.attachments and "❌" not in ix.original.content


@pytest.mark.parametrize(("data", "filename", "content_type", "expected"), [
    (b"hello, I am text", "notes.txt", "text/plain", "`init_image` must be a PNG, JPEG or WebP image"),
    (os.urandom(2 * 1024 * 1024), "huge.png", "image/png", "`init_image` is 2.0 MiB; the limit is 1 MiB."),
    (b"hello, I am text", "sneaky.png", "image/png", "`init_image` isn't a PNG, JPEG or WebP image."),
    ("truncated", "cut.png", "image/png", "`init_image` is damaged or incomplete"),
    ("bomb", "bomb.png", "image/png", "`init_image` is too large to process"),
])
async def test_bad_attachments_are_refused_without_a_webui_call(env: Any, data: Any, filename: str,
                                                               content_type: str, expected: str) -> None:
    fake, demo, _ = env
    if data == "truncated":
        whole = noisy_png((200, 200))
        data = whole[: len(whole) // 2]
    elif data == "bomb":
        buf = io.BytesIO()
        Image.new("L", (6000, 5000), 0).save(buf, format="PNG")  # 30 MP that compress to a few KB
        data = buf.getvalue()
        assert len(data) < 1024 * 1024
    before = len(demo.received)
    att = fake.make_attachment(data, filename, content_type)
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "init_image": att})
    text = await answer(ix)
    assert expected in text
    assert len(demo.received) == before
    assert ix.original is None or ix.original.ephemeral or ix.original.deleted


async def test_upscale_command_keeps_the_infotext(env: Any) -> None:
    fake, demo, _ = env
    source = png.add_text_chunk(noisy_png((128, 96)), "parameters", "a fox\nSteps: 20, Sampler: Euler a, Seed: 5, "
                                                                    "Size: 128x96")
    att = fake.make_attachment(source, "fox.png", "image/png")
    ix = await fake.invoke(fake.alice, fake.channel, "upscale", {"image": att, "scale": 3, "upscaler": "Lanczos"})
    await ix.wait_for(finished, timeout=30)
    route, body = demo.received[-1]
    assert route == "extra-single-image"
    assert (body["upscaling_resize"], body["upscaler_1"]) == (3.0, "Lanczos")
    sent = base64.b64decode(body["image"])
    assert png.read_parameters(sent) is None and pixels(sent) == pixels(source)  # the WebUI gets no metadata
    result = ix.original.attachments[0]
    assert png.png_dimensions(result.data) == (384, 288)
    assert png.read_parameters(result.data) == png.read_parameters(source)  # read from the upload before

    before = len(demo.received)
    big = fake.make_attachment(noisy_png((400, 400)), "big.png", "image/png")
    ix = await fake.invoke(fake.alice, fake.channel, "upscale", {"image": big, "scale": 4})
    assert "`scale` 4× of 400×400 makes 1600×1600" in await answer(ix)
    ix = await fake.invoke(fake.alice, fake.channel, "upscale", {"image": att, "upscaler": "Magic 9000"})
    assert "`upscaler`: the WebUI has no “Magic 9000”" in await answer(ix)
    assert len(demo.received) == before


async def test_upscaler_autocomplete(env: Any) -> None:
    fake, _, _ = env
    att = fake.make_attachment(noisy_png((8, 8)), "x.png", "image/png")
    choices = await fake.autocomplete(fake.alice, fake.channel, "upscale", {"image": att, "upscaler": "esr"},
                                      focused="upscaler")
    assert choices and all("esr" in c["value"].lower() for c in choices)
