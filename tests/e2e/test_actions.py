"""End to end: rerun by reaction and buttons, surviving restarts and a lost store; Info; Delete."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import discord
import pytest
from PIL import Image

from bot.core.engine import STORE_FILE
from bot.discord_app.components import result_view
from bot.images import png
from bot.images.infotext import parse_generation_parameters
from tests.support.fixtures import fixture_png
from tests.support.harness import bot_settings, button, has_images, running_bot

pytestmark = pytest.mark.timeout(90)


async def draw(fake: Any, user: Any, prompt: str, **options: Any) -> Any:
    ix = await fake.invoke(user, fake.channel, "draw", {"prompt": prompt, **options})
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    return ix.original


def params_of(message: Any) -> dict[str, Any]:
    return parse_generation_parameters(png.read_parameters(message.attachments[0].data) or "")


def same_request(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("Prompt", "Negative prompt", "Steps", "Sampler", "Schedule type", "CFG scale", "Size-1", "Size-2",
            "Model")
    return all(a.get(k) == b.get(k) for k in keys)


async def reroll_by_click(fake: Any, user: Any, message: Any) -> Any:
    ix = await fake.click(user, message, button(message, "reroll"))
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    return ix.original


async def test_reaction_reruns_with_a_new_seed_for_the_reacting_user(fake_discord: Any, demo_webui: Any,
                                                                      tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        first = await draw(fake, fake.alice, "a red fox", steps=12, width=576, height=448)
        before = len(demo_webui.received)
        await fake.add_reaction(fake.admin, first, "🔁")
        rerun = await fake.wait_for_message(lambda m: m.id != first.id and has_images(m), timeout=30)
        old, new = params_of(first), params_of(rerun)
        assert same_request(old, new) and old["Seed"] != new["Seed"]
        assert (new["Steps"], new["Size-1"], new["Size-2"]) == ("12", "576", "448")
        assert f"<@{fake.admin.id}>" in rerun.content and not rerun.pinged_user_ids  # credited, not pinged
        assert int(rerun.message_reference["message_id"]) == first.id
        await bot.engine.flush()
        record = await bot.engine.find_job(message_id=rerun.id)
        assert record is not None and record.user_id == fake.admin.id and record.parent_id
        assert len(demo_webui.received) == before + 1

        # The bot's own 🔁 does nothing.
        channel = bot.get_channel(fake.channel.id)
        await channel.get_partial_message(first.id).add_reaction("🔁")
        await fake.wait_until(lambda: fake.bot_user.id in first.reactions.get("🔁", []), timeout=5)
        await asyncio.sleep(1.0)  # give a wrongly triggered rerun time to reach the WebUI
        assert len(demo_webui.received) == before + 1


async def test_reroll_info_and_delete_buttons(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        first = await draw(fake, fake.alice, "a lighthouse at dusk", batch=2, seed=99)
        rerun = await reroll_by_click(fake, fake.admin, first)
        assert same_request(params_of(first), params_of(rerun)) and len(rerun.attachments) == 2
        assert params_of(rerun)["Seed"] not in ("99", "100")

        info = await fake.click(fake.owner, first, button(first, "info"))
        await info.wait_for(lambda i: any(m.embeds for m in [i.original, *i.followups] if m), timeout=10)
        shown = next(m for m in [info.original, *info.followups] if m and m.embeds)
        assert shown.ephemeral
        embed = shown.embeds[0]
        fields = {f["name"]: f["value"] for f in embed["fields"]}
        assert embed["description"] == "a lighthouse at dusk" and "Seed: 99" in fields["Parameters"]
        assert fields["Seeds"] == "`99`, `100`"
        assert "/draw prompt:a lighthouse at dusk" in shown.content

        bob = fake.add_user("bob")
        fake.add_member(fake.guild, bob, permissions=0)
        refused = await fake.click(bob, first, button(first, "delete"))
        await refused.wait_ack()
        assert refused.ephemeral and "Only the person who made this image" in refused.original.content
        assert not first.deleted
        ok = await fake.click(fake.alice, first, button(first, "delete"))
        await ok.wait_ack()
        await fake.wait_until(lambda: first.deleted, timeout=5)


async def test_reroll_after_a_restart_and_after_losing_the_store(fake_discord: Any, demo_webui: Any,
                                                                 tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    async with running_bot(fake, settings):
        first = await draw(fake, fake.alice, "an old photograph of a cat", steps=9, cfg_scale=5.5)
    async with running_bot(fake, settings):  # a new process on the same data dir
        rerun = await reroll_by_click(fake, fake.admin, first)
        assert same_request(params_of(first), params_of(rerun))
    (tmp_path / STORE_FILE).unlink()
    for extra in tmp_path.glob(STORE_FILE + "-*"):
        extra.unlink()
    async with running_bot(fake, settings) as bot:  # the store is gone: the PNG's own chunk is enough
        assert await bot.engine.find_job(message_id=first.id) is None
        rerun = await reroll_by_click(fake, fake.alice, first)
        old, new = params_of(first), params_of(rerun)
        assert same_request(old, new) and (new["Steps"], new["CFG scale"]) == ("9", "5.5")
        assert old["Seed"] != new["Seed"]


async def test_reroll_of_a_png_made_elsewhere(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    """A result message whose store record is unknown and whose image came from another WebUI."""
    fake = fake_discord
    data = fixture_png()
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        channel = bot.get_channel(fake.channel.id)
        sent = await channel.send("posted earlier", file=discord.File(io.BytesIO(data), filename="fox.png"),
                                  view=result_view("0123abcd"))
        message = await fake.wait_for_message(lambda m: m.id == sent.id)
        rerun = await reroll_by_click(fake, fake.alice, message)
        body = demo_webui.received[-1][1]
        assert body["prompt"] == "a watercolor painting of a red fox in an autumn forest"
        assert (body["negative_prompt"], body["steps"], body["sampler_name"], body["width"]) == (
            "blurry, lowres", 20, "Euler a", 64)
        assert body["seed"] == -1 and params_of(rerun)["Prompt"] == body["prompt"]


async def test_variations_keep_the_chosen_images_seed(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        first = await draw(fake, fake.alice, "a paper boat", batch=2, seed=500)
        ix = await fake.click(fake.admin, first, button(first, "vary").rsplit(":", 1)[0] + ":1")  # V2
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        body = demo_webui.received[-1][1]
        assert (body["seed"], body["subseed"], body["subseed_strength"], body["batch_size"]) == (501, -1, 0.15, 2)
        assert body["prompt"] == "a paper boat"
        new = params_of(ix.original)
        assert new["Seed"] == "501" and new["Variation seed strength"] == "0.15"
        assert "Variation seed" in new and len(ix.original.attachments) == 2
        single = await draw(fake, fake.alice, "a paper plane", seed=7)
        ix = await fake.click(fake.admin, single, button(single, "vary"))
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        assert (demo_webui.received[-1][1]["seed"], demo_webui.received[-1][1]["subseed_strength"]) == (7, 0.15)


async def test_upscale_doubles_the_chosen_image_and_keeps_its_infotext(fake_discord: Any, demo_webui: Any,
                                                                      tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        first = await draw(fake, fake.alice, "a tiny house", batch=2, width=256, height=192)
        ix = await fake.click(fake.admin, first, button(first, "upscale").rsplit(":", 1)[0] + ":1")  # U2
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        route, body = demo_webui.received[-1]
        assert route == "extra-single-image"
        assert (body["upscaling_resize"], body["upscaler_1"], body["resize_mode"]) == (2.0, "R-ESRGAN 4x+", 0)
        sent, chosen = base64.b64decode(body["image"]), first.attachments[1].data
        assert png.read_parameters(sent) is None  # the chosen image without its metadata (its infotext read first)
        with Image.open(io.BytesIO(sent)) as a, Image.open(io.BytesIO(chosen)) as b:
            assert (a.mode, a.size, a.tobytes()) == (b.mode, b.size, b.tobytes())
        result = ix.original.attachments[0]
        assert png.png_dimensions(result.data) == (512, 384)
        assert png.read_parameters(result.data) == png.read_parameters(first.attachments[1].data)
        assert "Upscaled 2× with R-ESRGAN 4x+" in ix.original.content
        ids = [c["custom_id"] for row in ix.original.components for c in row["components"]]
        assert [i.split(":")[1] for i in ids] == ["info", "delete"]


async def test_edit_opens_a_prefilled_modal_and_runs_the_edited_request(fake_discord: Any, demo_webui: Any,
                                                                        tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)):
        first = await draw(fake, fake.alice, "a castle", negative_prompt="fog", seed=31, steps=15)
        ix = await fake.click(fake.admin, first, button(first, "edit"))
        await ix.wait_ack()
        assert ix.modal is not None
        values = {c["custom_id"]: c.get("value") for row in ix.modal["components"] for c in row["components"]}
        assert values["edit:prompt"] == "a castle" and values["edit:negative"] == "fog"
        assert "Steps: 15" in values["edit:parameters"] and "Seed: 31" in values["edit:parameters"]

        before = len(demo_webui.received)
        bad = await fake.submit_modal(fake.admin, fake.channel, ix.modal["custom_id"], {
            "edit:prompt": "a castle", "edit:negative": "", "edit:parameters": "make it nice"})
        await bad.wait_ack()
        assert bad.ephemeral and "Parameters must be a line like" in bad.original.content
        assert len(demo_webui.received) == before

        ix = await fake.click(fake.admin, first, button(first, "edit"))
        await ix.wait_ack()
        done = await fake.submit_modal(fake.admin, fake.channel, ix.modal["custom_id"], {
            "edit:prompt": "a castle at night", "edit:negative": "",
            "edit:parameters": "Steps: 7, Sampler: Euler a, CFG scale: 3, Seed: 77, Size: 320x256"})
        await done.wait_for(lambda i: has_images(i.original), timeout=30)
        body = demo_webui.received[-1][1]
        assert (body["prompt"], body["negative_prompt"], body["steps"], body["sampler_name"]) == (
            "a castle at night", "", 7, "Euler a")
        assert (body["cfg_scale"], body["seed"], body["width"], body["height"]) == (3.0, 77, 320, 256)
