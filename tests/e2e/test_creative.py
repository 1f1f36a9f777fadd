"""End to end: the creative controls — /draw ar, clip_skip, tiling, fix_faces (ADetailer); Vary (Subtle/Strong);
Zoom out; /describe — through the real bot, the fake Discord and the demo WebUI: what the WebUI receives, what
the user sees, and that the new buttons keep working after a restart."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.images import png
from bot.images.infotext import parse_generation_parameters
from tests.support.harness import bot_settings, button, has_images, running_bot

pytestmark = pytest.mark.timeout(90)


async def draw(fake: Any, user: Any, prompt: str, **options: Any) -> Any:
    ix = await fake.invoke(user, fake.channel, "draw", {"prompt": prompt, **options})
    await ix.wait_for(lambda i: has_images(i.original) or bool(i.ephemeral and i.original), timeout=30)
    return ix.original


async def click_for_result(fake: Any, user: Any, message: Any, custom_id: str) -> Any:
    ix = await fake.click(user, message, custom_id)
    await ix.wait_for(lambda i: has_images(i.original) or bool(i.ephemeral and i.original), timeout=30)
    return ix.original


def params_of(message: Any, index: int = 0) -> dict[str, Any]:
    return parse_generation_parameters(png.read_parameters(message.attachments[index].data) or "")


def labels(message: Any) -> dict[str, str]:
    """custom id -> label of every button on a message."""
    return {c["custom_id"]: c.get("label", "") for row in message.components for c in row["components"]}


def decoded(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


async def test_ar_picks_a_size_for_the_model_and_width_height_win(fake_discord: Any, demo_webui: Any,
                                                                   tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        wide = await draw(fake, fake.alice, "a harbour", ar="16:9")
        body = demo_webui.received[-1][1]
        assert (body["width"], body["height"]) == (704, 384)  # 512²-class default, multiples of 64, ratio 1.83
        assert "704×384" in wide.content and png.png_dimensions(wide.attachments[0].data) == (704, 384)
        await draw(fake, fake.alice, "a harbour", ar="9:16", model="sd_xl_base_1.0")
        body = demo_webui.received[-1][1]
        assert (body["width"], body["height"]) == (768, 1344)  # SDXL: near 1024²
        await draw(fake, fake.alice, "a harbour", ar="21:9", height=512)
        body = demo_webui.received[-1][1]
        assert (body["width"], body["height"]) == (1192, 512)  # the side not given follows the ratio


async def test_clip_skip_and_tiling_reach_the_webui_and_survive_reroll_edit_and_a_lost_store(
        fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        first = await draw(fake, fake.alice, "a tiled floor", clip_skip=2, tiling=True, seed=5)
        body = demo_webui.received[-1][1]
        assert body["override_settings"]["CLIP_stop_at_last_layers"] == 2 and body["tiling"] is True
        assert body["override_settings_restore_afterwards"] is True  # per request, never the WebUI's setting
        params = params_of(first)
        assert (params["Clip skip"], params["Tiling"]) == ("2", "True")
        assert "clip skip 2" in first.content and "tiling" in first.content

        await click_for_result(fake, fake.admin, first, button(first, "reroll"))
        again = demo_webui.received[-1][1]
        assert again["override_settings"]["CLIP_stop_at_last_layers"] == 2 and again["tiling"] is True

        ix = await fake.click(fake.admin, first, button(first, "edit"))
        await ix.wait_ack()
        values = {c["custom_id"]: c.get("value") for row in ix.modal["components"] for c in row["components"]}
        assert "Clip skip: 2" in values["edit:parameters"] and "Tiling: True" in values["edit:parameters"]
        done = await fake.submit_modal(fake.admin, fake.channel, ix.modal["custom_id"], {
            **values, "edit:parameters": values["edit:parameters"].replace("Clip skip: 2", "Clip skip: 3")})
        await done.wait_for(lambda i: has_images(i.original), timeout=30)
        edited = demo_webui.received[-1][1]
        assert edited["override_settings"]["CLIP_stop_at_last_layers"] == 3 and edited["tiling"] is True

        record = await bot.engine.find_job(message_id=first.id)
        assert record is not None
    (tmp_path / "sdcord.db").unlink()  # the store is gone: the PNG's own parameters carry the options
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        await click_for_result(fake, fake.alice, first, button(first, "reroll"))
        body = demo_webui.received[-1][1]
        assert body["override_settings"]["CLIP_stop_at_last_layers"] == 2 and body["tiling"] is True


async def test_fix_faces_uses_adetailer_where_the_webui_has_it_and_is_refused_where_not(
        fake_discord: Any, demo_webui: Any, demo_webui_factory: Any, tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path / "a")):
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a portrait", "fix_faces": True})
        await ix.wait_for(lambda i: i.original is not None, timeout=20)
        assert ix.ephemeral and "ADetailer" in ix.original.content and "`fix_faces`" in ix.original.content
        assert not demo_webui.received  # refused before anything reached the WebUI

    with_adetailer = await demo_webui_factory(extensions=("adetailer",))
    async with running_bot(fake, bot_settings(fake, with_adetailer.url, tmp_path / "b")):
        first = await draw(fake, fake.alice, "a portrait", fix_faces=True, seed=9)
        body = with_adetailer.received[-1][1]
        script = body["alwayson_scripts"]["ADetailer"]["args"]
        assert script[0] is True and script[2]["ad_model"] == "face_yolov8n.pt"
        params = params_of(first)
        assert params["ADetailer model"] == "face_yolov8n.pt" and "faces fixed" in first.content
        await click_for_result(fake, fake.admin, first, button(first, "reroll"))  # the rerun keeps it
        assert "ADetailer" in with_adetailer.received[-1][1]["alwayson_scripts"]
        ix = await fake.click(fake.admin, first, button(first, "edit"))  # and so does Edit, through the infotext
        await ix.wait_ack()
        values = {c["custom_id"]: c.get("value") for row in ix.modal["components"] for c in row["components"]}
        assert "ADetailer model: face_yolov8n.pt" in values["edit:parameters"]
        done = await fake.submit_modal(fake.admin, fake.channel, ix.modal["custom_id"],
                                       {**values, "edit:prompt": "a portrait, smiling"})
        await done.wait_for(lambda i: has_images(i.original), timeout=30)
        body = with_adetailer.received[-1][1]
        assert body["prompt"] == "a portrait, smiling" and "ADetailer" in body["alwayson_scripts"]


async def test_vary_subtle_and_strong_keep_the_seed_with_their_strengths(fake_discord: Any, demo_webui: Any,
                                                                        tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        first = await draw(fake, fake.alice, "a meadow", seed=404)
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):  # the buttons survive a restart
        shown = labels(first)
        assert shown[button(first, "vary")] == "Vary (Subtle)" and shown[button(first, "strong")] == "Vary (Strong)"
        assert "strong" in button(first, "strong") and "zoom" in button(first, "zoom15")
        subtle = await click_for_result(fake, fake.admin, first, button(first, "vary"))
        body = demo_webui.received[-1][1]
        assert (body["seed"], body["subseed"], body["subseed_strength"]) == (404, -1, 0.15)
        strong = await click_for_result(fake, fake.admin, first, button(first, "strong"))
        body = demo_webui.received[-1][1]
        assert (body["seed"], body["subseed_strength"]) == (404, 0.35)
        assert params_of(strong)["Variation seed strength"] == "0.35" and params_of(subtle)["Seed"] == "404"

        batch = await draw(fake, fake.alice, "a meadow", seed=7, batch=2)
        rows = [[c["label"] for c in row["components"]] for row in batch.components]
        assert rows[1:] == [["V1", "V2"], ["S1", "S2"], ["U1", "U2"], ["Z1", "Z2"]]
        await click_for_result(fake, fake.admin, batch, button(batch, "strong").replace(":0", ":1"))
        body = demo_webui.received[-1][1]
        assert (body["seed"], body["subseed_strength"]) == (8, 0.35)  # the second image's seed


async def test_zoom_out_outpaints_a_wider_view_and_works_after_a_restart(fake_discord: Any, demo_webui: Any,
                                                                        tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    async with running_bot(fake, settings):
        first = await draw(fake, fake.alice, "a lighthouse on a cliff", seed=123, width=512, height=384,
                           steps=12)
    async with running_bot(fake, settings):  # a restart: the buttons are persistent
        zoomed = await click_for_result(fake, fake.admin, first, button(first, "zoom2"))
        route, body = demo_webui.received[-1]
        assert route == "img2img" and (body["width"], body["height"]) == (1024, 768)
        assert (body["prompt"], body["seed"], body["steps"]) == ("a lighthouse on a cliff", 123, 12)
        assert body["inpainting_fill"] == 0 and body["mask_blur"] == 8 and body["inpaint_full_res"] is False
        assert body["denoising_strength"] == 0.95
        canvas, mask = decoded(body["init_images"][0]), decoded(body["mask"])
        assert canvas.size == mask.size == (1024, 768)
        source = Image.open(io.BytesIO(first.attachments[0].data)).convert("RGB")
        assert canvas.crop((256, 192, 768, 576)).tobytes() == source.tobytes()  # centred, unscaled
        assert mask.getpixel((10, 10)) == (255, 255, 255) and mask.getpixel((512, 384)) == (0, 0, 0)

        result = zoomed.attachments[0]
        assert png.png_dimensions(result.data) == (1024, 768)
        params = parse_generation_parameters(png.read_parameters(result.data) or "")
        assert params["Prompt"] == "a lighthouse on a cliff" and params["Seed"] == "123"
        assert "zoomed out" in zoomed.content and f"<@{fake.admin.id}>" in zoomed.content
        picture = Image.open(io.BytesIO(result.data)).convert("RGB")
        centre = picture.crop((400, 300, 624, 468)).tobytes()
        assert centre == source.crop((144, 108, 368, 276)).tobytes()  # the old picture is kept

        # 1.5× of the zoomed image would pass MAX_PIXELS (1024²): the canvas is scaled down to fit.
        await click_for_result(fake, fake.alice, zoomed, button(zoomed, "zoom15"))
        body = demo_webui.received[-1][1]
        assert body["width"] * body["height"] <= 1024 * 1024 and body["width"] % 8 == body["height"] % 8 == 0
        assert abs(body["width"] / body["height"] - 4 / 3) < 0.02


async def test_describe_suggests_prompts_that_anyone_can_draw(fake_discord: Any, demo_webui: Any,
                                                             tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    source = Image.new("RGB", (320, 256), (200, 40, 30))
    buf = io.BytesIO()
    source.save(buf, format="PNG")
    async with running_bot(fake, settings):
        att = fake.make_attachment(buf.getvalue(), "red.png", "image/png")
        ix = await fake.invoke(fake.alice, fake.channel, "describe", {"image": att})
        await ix.wait_for(lambda i: i.original is not None and "🖌️" in str(i.original.components), timeout=30)
        asked = [(route, body) for route, body in demo_webui.received if route == "interrogate"]
        assert [body["model"] for _, body in asked] == ["clip", "deepdanbooru"]
        assert decoded(asked[0][1]["image"]).tobytes() == source.tobytes()
        message = ix.original
        found = re.findall(r"^\*\*(\d)\.\*\* (.+)$", message.content, re.M)
        assert [n for n, _ in found] == ["1", "2", "3", "4"]
        suggestions = [text for _, text in found]
        assert "red" in suggestions[0] and "red sky" in suggestions[2]  # from CLIP; deepdanbooru's tags
        ids = [c for c in labels(message) if c.startswith("sdcord:prompt:")]
        assert len(ids) == len(suggestions)
    async with running_bot(fake, settings):  # the suggestion buttons work after a restart
        drawn = await click_for_result(fake, fake.admin, message, ids[1])
        route, body = demo_webui.received[-1]
        assert route == "txt2img" and body["prompt"] == suggestions[1].replace("\\", "")
        assert f"<@{fake.admin.id}>" in drawn.content


async def test_describe_leaves_out_blocked_suggestions_and_works_without_deepdanbooru(
        fake_discord: Any, demo_webui_factory: Any, tmp_path: Path) -> None:
    fake = fake_discord
    plain = await demo_webui_factory(deepdanbooru=False)
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (20, 60, 220)).save(buf, format="PNG")
    async with running_bot(fake, bot_settings(fake, plain.url, tmp_path)):
        ix = await fake.invoke(fake.alice, fake.channel, "describe",
                               {"image": fake.make_attachment(buf.getvalue(), "blue.png", "image/png")})
        await ix.wait_for(lambda i: i.original is not None and "🖌️" in str(i.original.components), timeout=30)
        caption = re.findall(r"^\*\*1\.\*\* (.+)$", ix.original.content, re.M)[0]
        assert len(re.findall(r"^\*\*\d\.\*\* ", ix.original.content, re.M)) == 4  # the caption and its looks

        word = caption.split(",")[0].split()[-1]  # a word of the caption: every suggestion has it
        admin = await fake.invoke(fake.admin, fake.channel, "settings blocklist add", {"words": word})
        await admin.wait_for(lambda i: i.original is not None, timeout=10)
        ix = await fake.invoke(fake.alice, fake.channel, "describe",
                               {"image": fake.make_attachment(buf.getvalue(), "blue.png", "image/png")})
        await ix.wait_for(lambda i: i.original is not None and bool(i.original.content)
                          and "Describing an image" not in i.original.content, timeout=30)
        assert "saw nothing it could put into words" in ix.original.content
        assert word not in ix.original.content.casefold() and "sdcord:prompt:" not in str(ix.original.components)

        bad = await fake.invoke(fake.alice, fake.channel, "describe",
                                {"image": fake.make_attachment(b"not an image", "x.png", "image/png")})
        await bad.wait_for(lambda i: any(m.ephemeral for m in [i.original, *i.followups] if m), timeout=10)
        told = " ".join(m.content for m in [bad.original, *bad.followups] if m and m.ephemeral)
        assert "`image` isn't a PNG, JPEG or WebP image." in told  # checked as for img2img, privately
        assert bad.original is None or bad.original.ephemeral or bad.original.deleted
        asked = [b["model"] for r, b in plain.received if r == "interrogate"]
        assert asked == ["clip", "deepdanbooru", "clip"]  # a WebUI without deepdanbooru is asked once


async def test_a_failed_describe_offers_retry_which_runs_it_again(fake_discord: Any, demo_webui: Any,
                                                                 tmp_path: Path) -> None:
    fake = fake_discord
    buf = io.BytesIO()
    Image.new("RGB", (128, 128), (90, 90, 90)).save(buf, format="PNG")
    demo_webui.inject_error("interrogate", 500)  # the WebUI fails once (out of memory)
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        ix = await fake.invoke(fake.alice, fake.channel, "describe",
                               {"image": fake.make_attachment(buf.getvalue(), "grey.png", "image/png")})
        await ix.wait_for(lambda i: i.original is not None and "❌" in i.original.content, timeout=30)
        failed = ix.original
        assert "Describing an image" in failed.content
        ids = list(labels(failed))
        assert [i.split(":")[1] for i in ids] == ["retry"]  # no Edit: there is no prompt to edit
        again = await fake.click(fake.admin, failed, ids[0])
        await again.wait_for(lambda i: i.original is not None and "sdcord:prompt:" in str(i.original.components),
                             timeout=30)
        asked = [body for route, body in demo_webui.received if route == "interrogate"]
        assert asked[0]["image"] == asked[-2]["image"]  # the same stored image, sent again
        assert f"<@{fake.admin.id}>" in again.original.content
