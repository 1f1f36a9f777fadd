"""End to end, in the user's language and wherever the app is: Korean, Chinese and English replies in every
flow, localized registration, user installs (a server without the bot, a group DM, the bot's DM), the
private-context settings, Retry on a failed job, LoRA tags typed in a prompt."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot.discord_app.catalog import catalogs
from bot.images import png
from tests.support.fixtures import fixture_png
from tests.support.harness import bot_settings, button, has_images, running_bot

pytestmark = pytest.mark.timeout(90)
KO, ZH = "ko", "zh-CN"
BOOKS = catalogs()


def t(lang: str, key: str, **values: Any) -> str:
    return BOOKS.get(lang, key, **values)


def labels(message: Any) -> dict[str, str]:
    """custom id action -> label of every button on a message."""
    out = {}
    for row in message.components:
        for item in row.get("components", []):
            out[str(item.get("custom_id", "")).split(":")[1]] = item.get("label")
    return out


async def answer(ix: Any, timeout: float = 20) -> str:
    await ix.wait_for(lambda i: i.original is not None and i.original.content, timeout=timeout)
    return ix.original.content


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> Any:
    # no guild ids: commands are global, as they must be for user installs
    settings = bot_settings(fake_discord, demo_webui.url, tmp_path, guild_ids=(), rate_limit=(20, 60.0))
    async with running_bot(fake_discord, settings) as bot:
        await fake_discord.wait_for_commands({"draw", "help"})
        fake_discord.bob = fake_discord.add_user("bob")
        fake_discord.add_member(fake_discord.guild, fake_discord.bob)
        yield type("Env", (), {"fake": fake_discord, "demo": demo_webui, "bot": bot, "data": tmp_path})


async def test_commands_are_registered_in_every_language_and_installable_everywhere(env: Any) -> None:
    commands = {c["name"]: c for c in env.fake.commands()}
    draw = commands["draw"]
    assert draw["name_localizations"][KO] == BOOKS.lookup(KO, "command.draw")
    assert draw["name_localizations"][ZH] == BOOKS.lookup(ZH, "command.draw")
    assert draw["description_localizations"][KO] == BOOKS.lookup(KO, "command.draw.description")
    steps = next(o for o in draw["options"] if o["name"] == "steps")
    assert steps["name_localizations"][KO] == BOOKS.lookup(KO, "option.steps")
    assert "1-150" in steps["description"] and "1-150" in steps["description_localizations"][ZH]
    for name in ("draw", "pnginfo", "help", "status", "prefer", "upscale", "Show parameters", "Reroll"):
        assert sorted(commands[name]["integration_types"]) == [0, 1], name
        assert sorted(commands[name]["contexts"]) == [0, 1, 2], name
    assert commands["settings"]["integration_types"] == [0] and commands["settings"]["contexts"] == [0]
    placeholder = [(c["name"], o["name"]) for c in commands.values() for o in c.get("options") or []
                   for o in [o, *(o.get("options") or [])] if o.get("description") in ("…", "...")]
    assert not placeholder


async def test_korean_draw_reply_summary_and_buttons(env: Any) -> None:
    fake = env.fake
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "고양이", "seed": 7, "batch": 2}, locale=KO)
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    msg = ix.original
    assert t(KO, "summary.seeds", count=2, seeds="`7`, `8`") in msg.content
    assert t(KO, "summary.steps", count=20) in msg.content and "512×512" in msg.content
    assert labels(msg)["reroll"] == t(KO, "button.reroll") != t("en", "button.reroll")
    assert labels(msg)["delete"] == t(KO, "button.delete")
    # someone else, in Chinese, rerolls it: their own message is in Chinese
    again = await fake.click(fake.bob, msg, button(msg, "reroll"), locale=ZH)
    await again.wait_for(lambda i: has_images(i.original), timeout=30)
    assert labels(again.original)["edit"] == t(ZH, "button.edit")
    assert t(ZH, "progress.for", user=f"<@{fake.bob.id}>") in again.original.content


async def test_bad_options_are_explained_in_the_users_language_with_its_option_names(env: Any) -> None:
    fake = env.fake
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "width": 1024, "height": 1032},
                           locale=ZH)
    text = await answer(ix)
    assert ix.ephemeral and BOOKS.lookup(ZH, "option.width") in text and "1,056,768" in text
    assert text == t(ZH, "problem.pixels", width=BOOKS.lookup(ZH, "option.width"),
                     height=BOOKS.lookup(ZH, "option.height"), w=1024, h=1032, pixels=1024 * 1032, limit=1048576)
    french = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": " "}, locale="fr")  # no French: English
    assert await answer(french) == "`prompt` can't be empty."
    assert env.demo.received == []  # nothing reached the WebUI


async def test_status_help_and_pnginfo_in_korean_and_chinese(env: Any) -> None:
    fake = env.fake
    status = await fake.invoke(fake.alice, fake.channel, "status", locale=KO)
    text = await answer(status)
    assert t(KO, "status.backends") in text and t(KO, "status.no_jobs") in text
    help_ = await fake.invoke(fake.alice, fake.channel, "help", locale=ZH)
    text = await answer(help_)
    assert help_.ephemeral and "/draw" in text and "🔁" in text
    assert t(ZH, "help.reaction") in text and "≤ 50" in text  # the limits in force (MAX_STEPS 50)
    info = await fake.invoke(fake.alice, fake.channel, "pnginfo",
                             attachments={"image": fake.make_attachment(fixture_png(0), "a.png")},
                             locale=KO)
    await info.wait_for(lambda i: i.original is not None and i.original.embeds, timeout=10)
    embed = info.original.embeds[0]
    assert embed["title"] == t(KO, "params.title")
    assert t(KO, "params.parameters") in [f["name"] for f in embed["fields"]]


async def test_a_failed_job_keeps_its_prompt_and_retry_runs_the_same_request(env: Any) -> None:
    fake, demo = env.fake, env.demo
    demo.inject_error("txt2img", 500)  # out of memory, once
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a lighthouse", "seed": 4242}, locale=KO)
    await ix.wait_for(lambda i: i.original is not None and "❌" in i.original.content, timeout=30)
    failed = ix.original
    assert "**a lighthouse**" in failed.content and t(KO, "failure.oom") in failed.content
    assert "CUDA" not in failed.content  # the WebUI's own text stays in the log
    assert labels(failed) == {"retry": t(KO, "button.retry"), "edit": t(KO, "button.edit")}
    retry = await fake.click(fake.alice, failed, button(failed, "retry"), locale=KO)
    await retry.wait_for(lambda i: has_images(i.original), timeout=30)
    first, second = demo.received[0][1], demo.received[-1][1]
    assert second["seed"] == first["seed"] == 4242 and second["prompt"] == first["prompt"]
    assert png.read_parameters(retry.original.attachments[0].data)
    edit = await fake.click(fake.bob, failed, button(failed, "edit"), locale=ZH)  # Edit works on it too
    await edit.wait_for(lambda i: i.modal is not None, timeout=10)
    assert edit.modal["title"] == t(ZH, "edit.title")
    prompt = next(c for row in edit.modal["components"] for c in row["components"] if c["custom_id"] == "edit:prompt")
    assert prompt["value"] == "a lighthouse" and prompt["label"] == t(ZH, "edit.prompt")


async def test_lora_tags_typed_in_a_prompt_are_checked_like_the_lora_option(env: Any) -> None:
    fake = env.fake
    loud = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat <lora:add_detail:50>"})
    assert "weight of `<lora:add_detail>` must be between -1 and 2 (got 50)" in await answer(loud)
    unknown = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat <lora:evil:0.5>"})
    assert "no LoRA called “evil”" in await answer(unknown)
    assert loud.ephemeral and unknown.ephemeral and env.demo.received == []


async def test_a_reaction_job_speaks_the_servers_language(env: Any) -> None:
    fake = env.fake
    fake.update_guild(fake.guild, preferred_locale=KO)
    await fake.wait_until(lambda: env.bot.get_guild(fake.guild.id).preferred_locale.value == KO)
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a fox"})
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    await fake.add_reaction(fake.bob, ix.original, "🔁")
    reply = await fake.wait_for_message(lambda m: m.author.id == fake.bot_user.id and m.id != ix.original.id
                                        and has_images(m), timeout=30)
    assert labels(reply)["reroll"] == t(KO, "button.reroll")


# ------------------------------------------------------------------------------------------ user installs
async def _draw_through_the_interaction(fake: Any, user: Any, channel: Any, locale: str = "en-US") -> Any:
    ix = await fake.invoke(user, channel, "draw", {"prompt": "a paper boat", "seed": 5}, install="user",
                           locale=locale)
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    return ix


async def test_user_install_in_a_server_without_the_bot_delivers_through_the_interaction(env: Any) -> None:
    fake = env.fake
    foreign = fake.add_guild("Elsewhere", bot_member=False)
    fake.add_member(foreign, fake.alice)
    fake.add_member(foreign, fake.bob)
    channel = fake.add_channel(foreign, "art")
    ix = await _draw_through_the_interaction(fake, fake.alice, channel, KO)
    assert ix.original.attachments[0].data.startswith(b"\x89PNG") and labels(ix.original)["reroll"]
    assert not [m for m in fake.messages(channel) if m.id != ix.original.id]  # no channel message: it can't post
    # the default PRIVATE_NSFW=safe: a safety negative prompt and spoilers outside servers with the bot
    assert "nsfw" in env.demo.received[-1][1]["negative_prompt"]
    assert ix.original.attachments[0].filename.startswith("SPOILER_")
    # buttons work there: a reroll by someone else, answered through their own interaction
    again = await fake.click(fake.bob, ix.original, button(ix.original, "reroll"))
    await again.wait_for(lambda i: has_images(i.original), timeout=30)
    # and Delete deletes through the interaction
    gone = await fake.click(fake.alice, ix.original, button(ix.original, "delete"))
    await fake.wait_until(lambda: ix.original.deleted, timeout=10)
    assert gone.acked


async def test_group_dms_and_the_bots_dm_deliver_through_the_interaction(env: Any) -> None:
    fake = env.fake
    group = fake.group_dm([fake.alice, fake.bob])
    ix = await _draw_through_the_interaction(fake, fake.alice, group, ZH)
    assert labels(ix.original)["reroll"] == t(ZH, "button.reroll")
    dm = await _draw_through_the_interaction(fake, fake.alice, fake.dm_channel(fake.alice))
    assert dm.original.attachments


async def test_private_contexts_off_refuses_outside_servers_with_the_bot(fake_discord: Any, demo_webui: Any,
                                                                         tmp_path: Path) -> None:
    fake = fake_discord
    settings = dataclasses.replace(bot_settings(fake, demo_webui.url, tmp_path, guild_ids=()), private_contexts=False)
    async with running_bot(fake, settings):
        await fake.wait_for_commands({"draw"})
        ix = await fake.invoke(fake.alice, fake.dm_channel(fake.alice), "draw", {"prompt": "x"}, locale=KO)
        assert await answer(ix) == t(KO, "refuse.private") and ix.ephemeral
        ok = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x"})  # the server still works
        await ok.wait_for(lambda i: has_images(i.original), timeout=30)
    assert len(demo_webui.received) == 1


async def test_private_nsfw_refuse_and_off(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    settings = dataclasses.replace(bot_settings(fake, demo_webui.url, tmp_path, guild_ids=()), private_nsfw="refuse")
    async with running_bot(fake, settings):
        await fake.wait_for_commands({"draw"})
        ix = await fake.invoke(fake.alice, fake.dm_channel(fake.alice), "draw", {"prompt": "x"})
        assert await answer(ix) == t("en", "refuse.private_nsfw")
    settings = dataclasses.replace(settings, private_nsfw="off")
    async with running_bot(fake, settings):
        ix = await fake.invoke(fake.alice, fake.dm_channel(fake.alice), "draw", {"prompt": "x"})
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        assert not ix.original.attachments[0].filename.startswith("SPOILER_")
        assert "nsfw" not in demo_webui.received[-1][1]["negative_prompt"]


async def test_queue_progress_and_refusals_in_korean_and_chinese(fake_discord: Any, demo_webui_factory: Any,
                                                                tmp_path: Path) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.1)  # 2 s a job
    settings = bot_settings(fake, demo.url, tmp_path, max_queued_per_user=1)
    async with running_bot(fake, settings):
        running = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "slow one"}, locale=KO)
        await running.wait_for(lambda i: i.original is not None and "%" in i.original.content, timeout=20)
        assert t(KO, "button.cancel") in labels(running.original).values()
        waiting = await fake.invoke(fake.admin, fake.channel, "draw", {"prompt": "next"}, locale=ZH)
        queued = t(ZH, "progress.queued", position=1, total=1)
        await waiting.wait_for(lambda i: i.original is not None and queued in i.original.content, timeout=10)
        refused = await fake.invoke(fake.admin, fake.channel, "draw", {"prompt": "third"}, locale=ZH)
        text = await answer(refused)
        assert refused.ephemeral and t(ZH, "refuse.queue", count=1) in text and "<t:" in text
        await waiting.wait_for(lambda i: has_images(i.original), timeout=30)


async def test_a_private_job_that_cant_start_before_the_token_ends_is_called_off_with_retry(
        fake_discord: Any, demo_webui_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where only the interaction can answer, a job still waiting near the end of its 15-minute token is
    called off (nobody could see its result), with Retry; here the deadline is moved to "now"."""
    from bot.discord_app import delivery

    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.1)
    foreign = fake.add_guild("Elsewhere", bot_member=False)
    fake.add_member(foreign, fake.alice)
    channel = fake.add_channel(foreign, "art")
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path, guild_ids=())):
        await fake.wait_for_commands({"draw"})
        busy = await fake.invoke(fake.admin, fake.channel, "draw", {"prompt": "keeps the WebUI busy"})
        await busy.wait_for(lambda i: i.original is not None and "%" in i.original.content, timeout=20)
        monkeypatch.setattr(delivery, "START_DEADLINE", 15 * 60.0)
        late = await fake.invoke(fake.alice, channel, "draw", {"prompt": "too late"}, install="user", locale=KO)
        await late.wait_for(lambda i: i.original is not None and "❌" in i.original.content, timeout=20)
        assert t(KO, "failure.out_of_time") in late.original.content and "retry" in labels(late.original)
        await busy.wait_for(lambda i: has_images(i.original), timeout=30)
    assert [r[1]["prompt"] for r in demo.received] == ["keeps the WebUI busy"]  # the called-off job never ran


async def test_retry_of_a_failed_upscale_upscales_the_same_image_again(env: Any) -> None:
    fake, demo = env.fake, env.demo
    demo.inject_error("extra-single-image", 500)
    image = fake.make_attachment(fixture_png(0), "source.png")
    ix = await fake.invoke(fake.alice, fake.channel, "upscale", {"scale": 2.0}, attachments={"image": image},
                           locale=ZH)
    await ix.wait_for(lambda i: i.original is not None and "❌" in i.original.content, timeout=30)
    assert labels(ix.original) == {"retry": t(ZH, "button.retry")}  # no Edit: an upscale has no prompt to edit
    retry = await fake.click(fake.alice, ix.original, button(ix.original, "retry"), locale=ZH)
    await retry.wait_for(lambda i: has_images(i.original), timeout=30)
    sent = [body for route, body in demo.received if route == "extra-single-image"]
    assert len(sent) == 2 and sent[0]["image"] == sent[1]["image"] and sent[1]["upscaling_resize"] == 2.0
    assert t(ZH, "summary.upscaled", factor="2", upscaler="R-ESRGAN 4x+") in retry.original.content


async def test_retry_survives_a_restart(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake = fake_discord
    settings = bot_settings(fake, demo_webui.url, tmp_path)
    async with running_bot(fake, settings):
        demo_webui.inject_error("txt2img", 500)
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "after the restart", "seed": 99},
                               locale=KO)
        await ix.wait_for(lambda i: i.original is not None and "❌" in i.original.content, timeout=30)
    async with running_bot(fake, settings):  # a new process's worth of state: only the store and the custom id
        retry = await fake.click(fake.admin, ix.original, button(ix.original, "retry"), locale=KO)
        await retry.wait_for(lambda i: has_images(i.original), timeout=30)
    assert demo_webui.received[-1][1]["seed"] == 99 and demo_webui.received[-1][1]["prompt"] == "after the restart"
