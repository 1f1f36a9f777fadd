"""A server's blocklist (`bot.core.moderation`, `ServerPolicy.check_prompt`) and daily limits (`DailyQuota`,
`ServerPolicy.daily`, `Engine.admit`, and `SharedQueue.admit` on PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.core.engine import Engine
from bot.core.limits import DAY, DailyLimit, DailyQuota, utc_day_start
from bot.core.moderation import MAX_WORD_LENGTH, blocked, normalise, parse_words
from bot.core.policy import ServerPolicy
from bot.errors import OptionError, Refused
from bot.text import T
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------- what counts as a blocked word
@pytest.mark.parametrize("prompt", ["an ASS", "ass", "Ass, portrait", "a donkey's ass.", "(ass)", "ma-ass"])
def test_latin_words_match_as_whole_words_whatever_their_case(prompt: str) -> None:
    assert blocked(prompt, ["ass"])


@pytest.mark.parametrize("prompt", ["glass", "class", "a glass of water", "passing", "assassin", "asses", "ass1"])
def test_latin_words_inside_other_words_are_not_blocked(prompt: str) -> None:
    assert not blocked(prompt, ["ass"])


@pytest.mark.parametrize("prompt", ["a hot dog", "a hot  dog", "HOT DOG", "hot_dog", "hot-dog", "hot\ndog",
                                    "(hot dog:1.2)", "hot _ dog"])
def test_phrases_match_across_spaces_underscores_and_hyphens(prompt: str) -> None:
    assert blocked(prompt, ["hot dog"])


@pytest.mark.parametrize("prompt", ["hotdog", "a hot day, a dog", "hot, dog", "shot dogs"])
def test_a_phrase_is_not_its_words_apart(prompt: str) -> None:
    assert not blocked(prompt, ["hot dog"])


@pytest.mark.parametrize("prompt", ["(nude:1.3)", "[nude]", "<lora:nude:1>", "nude_girl", "{nude}", "((NUDE))",
                                    "masterpiece, nude, 1girl", "nude-art", "1girl,nude", "(nude)"])
def test_prompt_syntax_can_not_hide_a_word(prompt: str) -> None:
    assert blocked(prompt, ["nude"])


@pytest.mark.parametrize("prompt", ["Ｎｕｄｅ", "ＮＵＤＥ girl", "a ｈｏｔ　ｄｏｇ"])  # full-width letters and space
def test_full_width_letters_count(prompt: str) -> None:
    assert blocked(prompt, ["nude", "hot dog"])


def test_full_width_blocked_words_match_plain_prompts() -> None:
    assert blocked("nude", ["Ｎｕｄｅ"]) and blocked("hot dog", ["ｈｏｔ　ｄｏｇ"])


@pytest.mark.parametrize(("prompt", "word"), [
    ("一只猫", "猫"),                    # Chinese: no spaces between words
    ("(猫:1.2), 可爱", "猫"),
    ("かわいい猫です", "猫"),            # Japanese kanji
    ("ねこがすき", "ねこ"),              # hiragana
    ("ﾈｺ", "ネコ"),                      # half-width katakana (NFKC)
    ("고양이를 그려줘", "고양이"),       # Korean: the particle attaches to the word
    ("귀여운 고양이", "고양이"),
    (unicodedata.normalize("NFD", "고양이를"), "고양이"),  # decomposed Hangul
])
def test_chinese_japanese_and_korean_words_match_anywhere(prompt: str, word: str) -> None:
    assert blocked(prompt, [word])


def test_cjk_words_that_are_not_there_are_not_blocked() -> None:
    assert not blocked("一只狗", ["猫"])
    assert not blocked("강아지를 그려줘", ["고양이"])
    assert not blocked("猫", ["一只猫"])  # the whole word must be there


def test_empty_lists_and_empty_words_block_nothing() -> None:
    assert not blocked("anything at all", [])
    assert not blocked("anything at all", ["", "  ", "_"])
    assert not blocked("", ["nude"])


def test_any_word_of_several_blocks() -> None:
    words = ["nude", "hot dog", "고양이"]
    assert blocked("a cute 고양이", words) and blocked("a hot dog", words) and not blocked("a cute dog", words)


@pytest.mark.parametrize("prompt", ["一个nude女孩", "穿着bikini的女孩", "nude猫"])
def test_a_latin_word_between_cjk_characters_is_blocked(prompt: str) -> None:
    assert blocked(prompt, ["nude", "bikini"])


# ---------------------------------------------------------------------- normalise and parse_words
def test_normalise() -> None:
    assert normalise("  Ｈｏｔ__Dog -  Bun ") == "hot dog bun"
    assert normalise("STRASSE") == normalise("Straße") == "strasse"  # case-folded
    assert normalise("a\tb\n\nc") == "a b c"


def test_parse_words_splits_on_commas_new_lines_and_chinese_commas_normalised_without_repeats() -> None:
    assert parse_words("nude, hot dog, 고양이") == ["nude", "hot dog", "고양이"]
    assert parse_words("猫，狗、鸟\nNude,  ,, HOT  DOG, hot_dog,ｎｕｄｅ") == ["猫", "狗", "鸟", "nude", "hot dog"]
    assert parse_words(" , \n ，") == []
    assert parse_words("x" * 100) == ["x" * 100]  # whole: `/settings blocklist add` refuses it (MAX_WORD_LENGTH)


def test_a_long_blocked_phrase_still_blocks_itself() -> None:
    phrase = "a remarkably specific and rather lengthy phrase about unwelcome subjects"  # cut in "unwelcome"
    assert len(phrase) > MAX_WORD_LENGTH
    assert blocked(f"a picture of {phrase}", parse_words(phrase))


# ---------------------------------------------------------------------- the server's policy
def test_check_prompt_refuses_naming_the_option_not_the_word() -> None:
    policy = ServerPolicy(blocklist=("nude", "hot dog"))
    policy.check_prompt("a lighthouse")
    ServerPolicy().check_prompt("nude")  # no blocklist: anything goes
    with pytest.raises(OptionError) as caught:
        policy.check_prompt("a (nude:1.2) statue")
    assert caught.value.problems[0].key == "refuse.blocked"
    assert "nude" not in repr(caught.value.problems) and "hot dog" not in repr(caught.value.problems)


def test_the_blocklist_survives_its_round_trip_through_the_store() -> None:
    policy = ServerPolicy(blocklist=("nude", "고양이"), daily_limit=4)
    again = ServerPolicy.from_dict(policy.to_dict())
    assert again == policy and isinstance(again.blocklist, tuple)


@pytest.mark.parametrize(("own", "bot_wide", "expected"), [
    (None, 0, 0), (3, 0, 3), (None, 5, 5), (3, 5, 3), (8, 5, 5), (0, 5, 5)])
def test_a_servers_daily_limit_never_exceeds_the_bots(own: int | None, bot_wide: int, expected: int) -> None:
    settings = Settings(daily_limit=bot_wide)
    assert ServerPolicy(daily_limit=own).daily(settings) == expected


# ---------------------------------------------------------------------- DailyQuota
class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DAY_START = 1_750_000_000 - 1_750_000_000 % 86400  # some UTC midnight


def test_utc_day_start() -> None:
    assert utc_day_start(DAY_START) == DAY_START
    assert utc_day_start(DAY_START + 86399.5) == DAY_START
    assert utc_day_start(DAY_START + 86400) == DAY_START + 86400


async def test_daily_quota_refuses_the_one_over_until_the_next_utc_day() -> None:
    clock = Clock(DAY_START + 3600)
    stored: dict[tuple[int, int | None], int] = {}

    async def count(user: int, since: float, guild: int | None) -> int:
        assert since == utc_day_start(clock.now)
        return stored.get((user, guild), 0)

    quota = DailyQuota(count, clock=clock)
    limits = [DailyLimit(2)]
    await quota.take(1, limits)
    await quota.take(1, limits)
    with pytest.raises(Refused) as caught:
        await quota.take(1, limits)
    assert caught.value.limit == "daily"
    assert caught.value.retry_in == pytest.approx(DAY - 3600)
    assert caught.value.message == T("refuse.daily", count=2)
    await quota.take(2, limits)  # someone else
    await quota.take(1, [])  # no limit: nothing counted, nothing refused
    clock.now = DAY_START + DAY  # midnight UTC: it starts again
    await quota.take(1, limits)


async def test_daily_quota_counts_what_the_store_holds_and_gives_back() -> None:
    clock = Clock(DAY_START + 10)

    async def count(user: int, since: float, guild: int | None) -> int:
        return {None: 1, 7: 1}.get(guild, 0)  # one job today, in server 7 (before a restart)

    quota = DailyQuota(count, clock=clock)
    taken = await quota.take(1, [DailyLimit(2)])  # the 2nd of the day
    with pytest.raises(Refused):
        await quota.take(1, [DailyLimit(2)])
    quota.give_back(taken, quota.day)  # it was never stored
    taken = await quota.take(1, [DailyLimit(5), DailyLimit(2, 7)])
    assert set(taken) == {(1, None), (1, 7)}
    with pytest.raises(Refused) as caught:
        await quota.take(1, [DailyLimit(5), DailyLimit(2, 7)])
    assert caught.value.message == T("refuse.daily_server", count=2)
    await quota.take(1, [DailyLimit(5), DailyLimit(2, 8)])  # another server's own limit
    # a refusal takes nothing: the bot-wide count is 3 of 5 now
    await quota.take(1, [DailyLimit(5)])
    await quota.take(1, [DailyLimit(5)])
    with pytest.raises(Refused):
        await quota.take(1, [DailyLimit(5)])
    yesterday = quota.day
    clock.now += DAY
    quota.give_back(((1, None),), yesterday)  # yesterday's give-back doesn't touch today's count
    for _ in range(5):
        await quota.take(1, [DailyLimit(5)])


async def test_daily_quota_two_at_once_cannot_both_take_the_last_one() -> None:
    async def slow_count(user: int, since: float, guild: int | None) -> int:
        await asyncio.sleep(0.05)
        return 1

    quota = DailyQuota(slow_count)
    outcomes = await asyncio.gather(*(quota.take(1, [DailyLimit(2)]) for _ in range(3)), return_exceptions=True)
    assert sum(isinstance(o, Refused) for o in outcomes) == 2


# ---------------------------------------------------------------------- Engine.admit in one process
@asynccontextmanager
async def started_engine(data_dir: Path, **overrides: Any) -> AsyncIterator[Engine]:
    settings = dataclasses.replace(Settings(webui_url="http://127.0.0.1:9", data_dir=data_dir), **overrides)
    engine = Engine(settings)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


async def test_engine_admit_a_rate_refusal_or_a_release_gives_the_daily_count_back(tmp_path: Path) -> None:
    async with started_engine(tmp_path, daily_limit=2, rate_limit=(1, 0.5), max_queued_per_user=5) as engine:
        first = await engine.admit(1, None)
        with pytest.raises(Refused) as caught:  # the rate limit (1 per 0.5 s): not a daily count
            await engine.admit(1, None)
        assert caught.value.limit == "rate"
        await asyncio.sleep(0.6)
        second = await engine.admit(1, None)
        engine.release(second)  # never submitted (a bad option after admission): its count comes back
        await asyncio.sleep(0.6)
        third = await engine.admit(1, None)
        await asyncio.sleep(0.6)
        with pytest.raises(Refused) as caught:
            await engine.admit(1, None)
        assert caught.value.limit == "daily" and caught.value.message == T("refuse.daily", count=2)
        expected = utc_day_start(time.time()) + DAY - time.time()
        assert caught.value.retry_in == pytest.approx(expected, abs=5)
        for ticket in (first, third):
            engine.release(ticket)


async def test_engine_admit_a_queue_cap_refusal_takes_no_daily_count(tmp_path: Path) -> None:
    async with started_engine(tmp_path, daily_limit=2, max_queued_per_user=1) as engine:
        held = await engine.admit(1, None)  # admitted, not yet submitted: it holds the one slot (and 1 of 2)
        for _ in range(3):
            with pytest.raises(Refused) as caught:
                await engine.admit(1, None)
            assert caught.value.limit == "queue"
        assert engine.quota is not None
        await engine.quota.take(1, [DailyLimit(2)])  # the refusals took nothing: the 2nd is still there
        with pytest.raises(Refused):
            await engine.quota.take(1, [DailyLimit(2)])
        engine.release(held)
        engine.release(held)  # twice: given back once
        await engine.quota.take(1, [DailyLimit(2)])
        with pytest.raises(Refused):
            await engine.quota.take(1, [DailyLimit(2)])


async def test_engine_admit_counts_a_servers_own_limit_only_there(tmp_path: Path) -> None:
    async with started_engine(tmp_path, rate_limit=(100, 60.0), max_queued_per_user=100) as engine:
        await engine.prefs.set_server_policy(42, ServerPolicy(daily_limit=1), by=0, change="test")
        assert await engine.daily_limits(42) == [DailyLimit(1, 42)]
        assert await engine.daily_limits(None) == []
        await engine.admit(1, 42)
        with pytest.raises(Refused) as caught:
            await engine.admit(1, 42)
        assert caught.value.message == T("refuse.daily_server", count=1)
        await engine.admit(1, None)  # a DM: the server's limit doesn't apply
        await engine.admit(1, 43)  # another server
        await engine.admit(2, 42)  # another user


# ---------------------------------------------------------------------- SharedQueue.admit on PostgreSQL
@pytest.fixture
async def queue(pg: Any) -> AsyncIterator[Any]:
    from bot.core.pgstore import PgJobStore
    from bot.core.shared import SharedQueue

    async with fresh_database(pg) as dsn:
        store = await PgJobStore.open(dsn)
        try:
            q = SharedQueue(store.pool, dsn, role="gateway", rate=100, per=60.0, cap=100)
            await q.register()
            q.store = store
            yield q
        finally:
            await store.close()


async def test_shared_admit_counts_todays_jobs_and_reservations(queue: Any) -> None:
    from bot.core.store import JobRecord

    today = utc_day_start(time.time())
    await queue.store.add(JobRecord("old00001", "txt2img", 5, {"prompt": "x"}, "done", created_at=today - 60))
    limits = [DailyLimit(2)]
    first = await queue.admit(5, limits)  # yesterday's job doesn't count
    second = await queue.admit(5, limits)  # two reservations, not yet stored
    with pytest.raises(Refused) as caught:
        await queue.admit(5, limits)
    assert caught.value.limit == "daily" and caught.value.message == T("refuse.daily", count=2)
    assert caught.value.retry_in == pytest.approx(today + DAY - time.time(), abs=5)
    await queue.admit(6, limits)  # another user
    await queue.release(second, 5, refund=True)  # never stored: it doesn't count
    third = await queue.admit(5, limits)
    # stored jobs count as the reservations did
    for i, key in enumerate((first, third)):
        await queue.insert(JobRecord(f"new0000{i}", "txt2img", 5, {"prompt": "x"}, "queued", guild_id=77), key)
    with pytest.raises(Refused):
        await queue.admit(5, limits)
    with pytest.raises(Refused) as caught:  # a server's own limit counts that server's jobs
        await queue.admit(5, [DailyLimit(2, 77)])
    assert caught.value.message == T("refuse.daily_server", count=2)
    await queue.admit(5, [DailyLimit(2, 78)])  # another server's: none there


async def test_shared_admit_a_reservation_elsewhere_does_not_count_against_a_servers_limit(queue: Any) -> None:
    await queue.admit(5, [])  # a job in a DM, still being prepared (not stored yet)
    await queue.admit(5, [DailyLimit(1, 77)])  # the first job of the day in server 77
