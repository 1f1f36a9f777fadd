"""End to end: a server's blocked words (/settings blocklist) on every way of starting a job, and daily limits
(DAILY_LIMIT, a server's own in /settings caps) as the user sees them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import MAX_DAILY_LIMIT
from bot.core.moderation import MAX_BLOCKED
from bot.discord_app.catalog import catalogs
from bot.text import Opt
from tests.fakediscord import InvalidInvocation
from tests.support.harness import bot_settings, button, has_images, running_bot

pytestmark = pytest.mark.timeout(90)

KO = "ko"
BOOKS = catalogs()
WORDS = ("nude", "hot dog", "고양이")
REFILL = 1.6  # seconds: a token of RATE_LIMIT 1/1.5 s comes back


def t(lang: str, key: str, **values: Any) -> str:
    return BOOKS.get(lang, key, **values)


def blocked_text(lang: str = "en") -> str:
    return t(lang, "refuse.blocked", option=Opt("prompt"))


def next_utc_midnight() -> float:
    return (time.time() // 86400 + 1) * 86400


@pytest.fixture(autouse=True)
def not_at_midnight() -> None:
    """A daily count that starts again during the test would make it meaningless."""
    if next_utc_midnight() - time.time() < 120:
        pytest.skip("too close to UTC midnight")


def generations(demo: Any) -> list[dict[str, Any]]:
    return [body for route, body in demo.received if route in ("txt2img", "img2img")]


def shown(ix: Any) -> list[Any]:
    """The messages an interaction's user sees now (a refused deferred response is removed, its reason sent
    as an ephemeral follow-up)."""
    return [m for m in [ix.original, *ix.followups] if m is not None and not m.deleted and m.content]


async def private_answer(ix: Any, timeout: float = 20) -> str:
    """The text of an interaction's answer, which must be ephemeral (and be all the user sees)."""
    await ix.wait_for(lambda i: any(m.ephemeral for m in shown(i)), timeout=timeout)
    messages = shown(ix)
    assert messages and all(m.ephemeral for m in messages), [(m.content, m.ephemeral) for m in messages]
    return " ".join(m.content for m in messages)


async def say(fake: Any, user: Any, name: str, options: dict[str, Any], channel: Any = None, **kw: Any) -> str:
    """Run a command whose answer must be private; return its text."""
    ix = await fake.invoke(user, channel or fake.channel, name, options, **kw)
    return await private_answer(ix)


async def draw(fake: Any, user: Any, prompt: str, channel: Any = None, **options: Any) -> Any:
    """/draw that must run: the result message."""
    ix = await fake.invoke(user, channel or fake.channel, "draw", {"prompt": prompt, **options})
    await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    assert not ix.original.ephemeral
    return ix.original


async def refused_draw(fake: Any, user: Any, prompt: str, channel: Any = None, **kw: Any) -> str:
    ix = await fake.invoke(user, channel or fake.channel, "draw", {"prompt": prompt}, **kw)
    return await private_answer(ix)


def retry_epoch(text: str) -> int:
    found = re.findall(r"<t:(\d+):R>", text)
    assert len(found) == 1, text
    return int(found[0])


async def reaction_notice(fake: Any, user: Any, after: Any) -> Any:
    """The bot's short channel notice to `user` after their 🔁 was refused."""
    return await fake.wait_for_message(lambda m: m.author.id == fake.bot_user.id and m.content.startswith(
        f"<@{user.id}>") and not m.attachments, timeout=20, after=after)


@pytest.fixture
async def env(fake_discord: Any, demo_webui: Any, tmp_path: Path) -> AsyncIterator[Any]:
    # global commands (no guild ids): /draw works in the bot's DM too
    settings = bot_settings(fake_discord, demo_webui.url, tmp_path, guild_ids=(), rate_limit=(50, 60.0))
    async with running_bot(fake_discord, settings) as bot:
        await fake_discord.wait_for_commands({"draw", "settings"})
        yield fake_discord, demo_webui, bot


async def block(fake: Any, *words: str) -> str:
    return await say(fake, fake.admin, "settings blocklist add", {"words": ", ".join(words)})


# ---------------------------------------------------------------------- /settings blocklist
async def test_blocklist_add_show_remove_for_admins(env: Any) -> None:
    fake, _, _ = env
    text = await say(fake, fake.admin, "settings blocklist add", {"words": "nude, hot dog, 고양이"})
    assert t("en", "settings.saved") in text and "**Blocked words**: 3 (`/settings blocklist show`)" in text
    assert not any(w in text for w in WORDS)  # a confirmation others may glance at names no word

    text = await say(fake, fake.admin, "settings blocklist show", {})
    assert "**Blocked words** (3): ||nude||, ||hot dog||, ||고양이||" in text

    # the same words again (other spellings) add nothing; a new one is added
    text = await say(fake, fake.admin, "settings blocklist add", {"words": "NUDE, hot_dog, gore"})
    assert "**Blocked words**: 4" in text and "gore" not in text
    text = await say(fake, fake.admin, "settings blocklist remove", {"words": "Hot Dog, gore, not there"})
    assert t("en", "settings.saved") in text and "**Blocked words**: 2" in text and "hot dog" not in text
    text = await say(fake, fake.admin, "settings blocklist show", {})
    assert "||nude||" in text and "||고양이||" in text and "hot dog" not in text and "gore" not in text
    assert "**Blocked words**: 2" in await say(fake, fake.admin, "settings show", {})

    await say(fake, fake.admin, "settings blocklist remove", {"words": "nude, 고양이"})
    assert t("en", "settings.blocklist_empty") in await say(fake, fake.admin, "settings blocklist show", {})


async def test_blocklist_is_for_admins_only(env: Any) -> None:
    fake, _, bot = env
    await block(fake, "nude")
    for name in ("settings blocklist add", "settings blocklist remove", "settings blocklist show"):
        options = {} if name.endswith("show") else {"words": "nude"}
        with pytest.raises(InvalidInvocation):  # hidden from plain members by default permissions
            await fake.invoke(fake.alice, fake.channel, name, options)
        text = await say(fake, fake.alice, name, options, check_permissions=False)  # checked again at run time
        assert "You need the Manage Server permission" in text and "nude" not in text
    policy = await bot.engine.prefs.server_policy(fake.guild.id)
    assert policy is not None and policy.blocklist == ("nude",)
    assert "||nude||" in await say(fake, fake.admin, "settings blocklist show", {})


async def test_the_blocklist_holds_at_most_max_blocked_words(env: Any) -> None:
    fake, _, bot = env
    many = ",".join(f"w{i}" for i in range(MAX_BLOCKED))  # within the option's 1000 characters
    text = await say(fake, fake.admin, "settings blocklist add", {"words": many})
    assert f"**Blocked words**: {MAX_BLOCKED}" in text
    text = await block(fake, "w1", "one more")
    assert t("en", "problem.blocklist_full", option=Opt("words"), limit=MAX_BLOCKED) in text
    assert t("en", "settings.saved") not in text
    policy = await bot.engine.prefs.server_policy(fake.guild.id)
    assert policy is not None and len(policy.blocklist) == MAX_BLOCKED and "one more" not in policy.blocklist
    assert f"**Blocked words**: {MAX_BLOCKED}" in await block(fake, "w1", "W2")  # nothing new: fine


# ---------------------------------------------------------------------- refusals, on every path
async def test_a_blocked_prompt_is_refused_privately_without_naming_the_word(env: Any) -> None:
    fake, demo, _ = env
    await block(fake, *WORDS)
    for prompt in ("a (nude:1.2) statue", "masterpiece, NUDE_girl", "a hot  dog stand", "귀여운 고양이를 그려줘"):
        text = await refused_draw(fake, fake.alice, prompt)
        assert blocked_text() in text and "`prompt`" in text
        assert not any(w in text.lower() for w in WORDS)
    assert generations(demo) == []

    # a blocked word in the negative prompt is what it is for
    await draw(fake, fake.alice, "a marble statue", negative_prompt="nude, lowres")
    assert generations(demo)[-1]["negative_prompt"] == "nude, lowres"
    # and a word merely containing one is fine
    await draw(fake, fake.alice, "a hot dogma, nudes")
    assert len(generations(demo)) == 2


async def test_the_refusal_is_in_the_users_language(env: Any) -> None:
    fake, demo, _ = env
    await block(fake, "고양이")
    text = await refused_draw(fake, fake.alice, "고양이를 그려줘", locale=KO)
    assert text == blocked_text(KO) and "이 서버에서 허용하지 않는 단어" in text
    assert f"`{BOOKS.render(KO, Opt('prompt'))}`" in text
    assert generations(demo) == []


async def test_reroll_vary_and_the_reaction_on_an_image_made_before_the_word_was_blocked_are_refused(
        env: Any) -> None:
    fake, demo, _ = env
    first = await draw(fake, fake.alice, "a nude marble statue", seed=5)
    await block(fake, "nude")
    before = len(generations(demo))

    for action in ("reroll", "vary"):
        ix = await fake.click(fake.admin, first, button(first, action))
        text = await private_answer(ix)
        assert blocked_text() in text and "nude" not in text.lower(), action

    mark = time.monotonic()
    await fake.add_reaction(fake.alice, first, "🔁")
    notice = await reaction_notice(fake, fake.alice, after=mark)  # no interaction: a short channel notice
    assert blocked_text() in notice.content and "nude" not in notice.content.lower()
    assert fake.alice.id in notice.pinged_user_ids
    await fake.wait_until(lambda: notice.deleted, timeout=30)  # it cleans itself up

    assert len(generations(demo)) == before  # the WebUI got nothing new
    assert not [m for m in fake.messages(fake.channel) if m.id != first.id and has_images(m)]


async def test_the_edit_modal_with_a_blocked_prompt_is_refused(env: Any) -> None:
    fake, demo, _ = env
    await block(fake, "nude")
    first = await draw(fake, fake.alice, "a castle", seed=31, steps=9)
    before = len(generations(demo))
    ix = await fake.click(fake.admin, first, button(first, "edit"))
    await ix.wait_ack()
    assert ix.modal is not None
    values = {c["custom_id"]: c.get("value") for row in ix.modal["components"] for c in row["components"]}
    done = await fake.submit_modal(fake.admin, fake.channel, ix.modal["custom_id"], {
        "edit:prompt": "a (nude:1.1) castle", "edit:negative": "", "edit:parameters": values["edit:parameters"]})
    text = await private_answer(done)
    assert blocked_text() in text and "nude" not in text.lower()
    assert len(generations(demo)) == before

    # the same modal with an allowed prompt runs
    ix = await fake.click(fake.admin, first, button(first, "edit"))
    await ix.wait_ack()
    ok = await fake.submit_modal(fake.admin, fake.channel, ix.modal["custom_id"], {
        "edit:prompt": "a castle at night", "edit:negative": "", "edit:parameters": values["edit:parameters"]})
    await ok.wait_for(lambda i: has_images(i.original), timeout=30)
    assert generations(demo)[-1]["prompt"] == "a castle at night"


async def test_a_lora_tag_typed_in_the_prompt_is_checked_and_so_is_its_reroll(env: Any) -> None:
    fake, demo, _ = env
    first = await draw(fake, fake.alice, "a castle", lora="pixel-art-xl")
    assert generations(demo)[-1]["prompt"] == "a castle <lora:pixel-art-xl:1>"
    await block(fake, "pixel art")
    text = await refused_draw(fake, fake.alice, "a castle <lora:pixel-art-xl:0.8>")
    assert blocked_text() in text and "pixel" not in text
    ix = await fake.click(fake.alice, first, button(first, "reroll"))  # its stored prompt has the tag
    assert blocked_text() in await private_answer(ix)
    assert len(generations(demo)) == 1


async def test_the_lora_option_is_checked_like_a_typed_lora_tag(env: Any) -> None:
    fake, demo, _ = env
    await block(fake, "pixel art")
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a castle", "lora": "pixel-art-xl"})
    await ix.wait_ack()
    if not ix.ephemeral:  # it ran: let it finish before the bot stops
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
    assert ix.ephemeral and blocked_text() in ix.original.content
    assert generations(demo) == []


async def test_a_servers_blocklist_does_not_apply_in_dms(env: Any) -> None:
    fake, demo, _ = env
    await block(fake, "nude")
    assert blocked_text() in await refused_draw(fake, fake.alice, "a nude statue")
    await draw(fake, fake.alice, "a nude statue", channel=fake.dm_channel(fake.alice))
    assert [b["prompt"] for b in generations(demo)] == ["a nude statue"]


# ---------------------------------------------------------------------- daily limits
def assert_daily_refusal(text: str, count: int, *, server: bool = False) -> None:
    reason = t("en", "refuse.daily_server" if server else "refuse.daily", count=count)
    assert text.startswith("⏳ ") and reason in text and "Try again <t:" in text, text
    assert abs(retry_epoch(text) - next_utc_midnight()) <= 5  # the next UTC midnight


async def test_the_daily_limit_refuses_the_third_job_by_a_button_also_after_a_restart(
        fake_discord: Any, demo_webui: Any, tmp_path: Path) -> None:
    fake, demo = fake_discord, demo_webui
    settings = bot_settings(fake, demo.url, tmp_path, daily_limit=2, rate_limit=(50, 60.0))
    async with running_bot(fake, settings):
        assert "**Daily limit**: 2 jobs per person per day (UTC)" in await say(fake, fake.admin, "settings show", {})
        first = await draw(fake, fake.alice, "a red fox")
        ix = await fake.click(fake.alice, first, button(first, "reroll"))  # the 2nd, by a button
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        ix = await fake.click(fake.alice, first, button(first, "reroll"))  # the 3rd
        assert_daily_refusal(await private_answer(ix), 2)
        assert_daily_refusal(await refused_draw(fake, fake.alice, "a blue fox"), 2)
        await draw(fake, fake.admin, "someone else's fox")  # others are not affected
        assert [b["prompt"] for b in generations(demo)] == ["a red fox", "a red fox", "someone else's fox"]
    async with running_bot(fake, settings):  # a new process on the same data dir: the count stays
        assert_daily_refusal(await refused_draw(fake, fake.alice, "a green fox"), 2)
        ix = await fake.click(fake.alice, first, button(first, "reroll"))
        assert_daily_refusal(await private_answer(ix), 2)
        await draw(fake, fake.admin, "another fox")
    assert len(generations(demo)) == 4


async def test_the_daily_limit_refuses_the_third_job_by_a_reaction(fake_discord: Any, demo_webui: Any,
                                                                   tmp_path: Path) -> None:
    fake, demo = fake_discord, demo_webui
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path, daily_limit=2, rate_limit=(50, 60.0))):
        first = await draw(fake, fake.alice, "a red fox")
        mark = time.monotonic()
        await fake.add_reaction(fake.alice, first, "🔁")  # the 2nd
        await fake.wait_for_message(lambda m: m.id != first.id and has_images(m), timeout=30, after=mark)
        await fake.remove_reaction(fake.alice, first, "🔁")
        mark = time.monotonic()
        await fake.add_reaction(fake.alice, first, "🔁")  # the 3rd
        notice = await reaction_notice(fake, fake.alice, after=mark)
        assert t("en", "refuse.daily", count=2) in notice.content
        assert "⏳" in notice.content and abs(retry_epoch(notice.content) - next_utc_midnight()) <= 5  # when
        assert len(generations(demo)) == 2
        await fake.add_reaction(fake.admin, first, "🔁")  # someone else's reaction still runs
        await fake.wait_until(lambda: len(generations(demo)) == 3, timeout=30)


async def test_a_servers_own_daily_limit_applies_there_only(env: Any) -> None:
    fake, demo, _ = env
    text = await say(fake, fake.admin, "settings caps", {"daily_limit": 1})
    assert t("en", "settings.saved") in text and "**Daily limit**: 1 job per person per day (UTC)" in text
    assert "**Daily limit**: 1 job per person per day (UTC)" in await say(fake, fake.alice, "help", {})
    await draw(fake, fake.alice, "a red fox")
    assert_daily_refusal(await refused_draw(fake, fake.alice, "a blue fox"), 1, server=True)
    await draw(fake, fake.alice, "a fox in a DM", channel=fake.dm_channel(fake.alice))  # not this server's
    await draw(fake, fake.admin, "the admin's fox")
    assert [b["prompt"] for b in generations(demo)] == ["a red fox", "a fox in a DM", "the admin's fox"]

    text = await say(fake, fake.admin, "settings caps", {"daily_limit": 0})  # 0: the bot's (none here)
    assert t("en", "settings.daily_none") in text
    await draw(fake, fake.alice, "a blue fox")
    text = await say(fake, fake.admin, "settings caps", {"daily_limit": -1})
    assert "`daily_limit` must be between 0 and" in text and "(got -1)" in text


async def test_the_range_of_a_servers_daily_limit_is_told_in_plain_numbers(env: Any) -> None:
    fake, _, _ = env  # without a bot-wide limit, a server may set up to MAX_DAILY_LIMIT
    text = await say(fake, fake.admin, "settings caps", {"daily_limit": MAX_DAILY_LIMIT + 1})
    assert f"`daily_limit` must be between 0 and {MAX_DAILY_LIMIT} (got {MAX_DAILY_LIMIT + 1})." in text


async def test_a_servers_daily_limit_stays_within_the_bots(fake_discord: Any, demo_webui: Any,
                                                           tmp_path: Path) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path, daily_limit=5)):
        text = await say(fake, fake.admin, "settings caps", {"daily_limit": 10})
        assert "`daily_limit` must be between 0 and 5 (got 10)." in text and t("en", "settings.saved") not in text
        assert "**Daily limit**: 5 jobs per person" in await say(fake, fake.admin, "settings show", {})
        assert "**Daily limit**: 3 jobs per person" in await say(fake, fake.admin, "settings caps",
                                                                 {"daily_limit": 3})
        assert "**Daily limit**: 5 jobs per person" in await say(fake, fake.admin, "settings caps",
                                                                 {"daily_limit": 0})
        text = await say(fake, fake.alice, "settings caps", {"daily_limit": 1}, check_permissions=False)
        assert "You need the Manage Server permission" in text


async def test_jobs_refused_by_the_rate_limit_or_a_bad_image_use_no_daily_count(fake_discord: Any, demo_webui: Any,
                                                                                tmp_path: Path) -> None:
    fake, demo = fake_discord, demo_webui
    settings = bot_settings(fake, demo.url, tmp_path, daily_limit=2, rate_limit=(1, REFILL - 0.1))
    async with running_bot(fake, settings):
        await draw(fake, fake.alice, "fox 1")
        text = await refused_draw(fake, fake.alice, "fox 2")  # the rate limit, not a daily count
        assert "⏳" in text and t("en", "refuse.daily", count=2) not in text
        await asyncio.sleep(REFILL)
        # admitted, then the image turns out not to be one (checked after the defer): the count comes back
        junk = fake.make_attachment(b"not a png at all" * 10, "junk.png", "image/png")
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "fox 2"},
                               attachments={"init_image": junk})
        text = await private_answer(ix)
        assert "⏳" not in text and t("en", "refuse.daily", count=2) not in text
        await asyncio.sleep(REFILL)
        await draw(fake, fake.alice, "fox 2")  # the second of the day
        await asyncio.sleep(REFILL)
        assert_daily_refusal(await refused_draw(fake, fake.alice, "fox 3"), 2)
    assert [b["prompt"] for b in generations(demo)] == ["fox 1", "fox 2"]
