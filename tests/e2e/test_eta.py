"""End to end: a queued job's "starts in" comes from measured job durations, and only once they are known."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(90)

STEPS = 30
STEP_DELAY = 0.1  # a job runs ~3 s on the demo


def done(ix: Any) -> bool:
    m = ix.original
    return m is not None and bool(m.attachments) and "preview.png" not in [a.filename for a in m.attachments]


async def draw(fake: Any, user: Any, prompt: str) -> Any:
    ix = await fake.invoke(user, fake.channel, "draw", {"prompt": prompt, "steps": STEPS})
    await ix.wait_ack()
    return ix


def texts(message: Any) -> list[tuple[float, str]]:
    return [(t, fields.get("content") or "") for t, fields in message.edits]


async def test_starts_in_is_shown_once_jobs_finished_and_is_close_to_the_real_wait(
    fake_discord: Any, demo_webui_factory: Any, tmp_path: Path
) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=STEP_DELAY)
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path)) as bot:
        first = await draw(fake, fake.alice, "first")
        second = await draw(fake, fake.admin, "second")
        await second.wait_for(lambda i: i.original is not None and "Queued — position 1 of 1" in i.original.content,
                              timeout=5)
        for ix in (first, second):
            await ix.wait_for(done, timeout=30)
        queued = [text for _, text in texts(second.original) if "Queued" in text]
        assert queued and not any("starts in" in text for text in queued), queued  # nothing finished yet

        third = await draw(fake, fake.alice, "third")
        fourth = await draw(fake, fake.admin, "fourth")
        for ix in (third, fourth):
            await ix.wait_for(done, timeout=30)
        job = next(j for j in bot.engine.scheduler.jobs.values() if j.request.title == "fourth")
        shown = [(t, int(m[1])) for t, text in texts(fourth.original)
                 if (m := re.search(r"starts in about (\d+) s", text))]
        assert shown, texts(fourth.original)
        at, eta = shown[0]
        real = job.started - at  # the scheduler's clock is time.monotonic, as the fake's
        assert real > 1.0 and real / 2 <= eta <= real * 2, (eta, real)
