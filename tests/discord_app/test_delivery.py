"""Job message text and rendering in isolation: what is sent, and never the same thing twice."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock

from bot.core.jobs import DrawRequest, Job, JobProgress, JobState, Origin
from bot.discord_app.delivery import JobMessage
from bot.discord_app.render import bar, progress_text


def job(**origin: Any) -> Job:
    return Job("0123abcd", Origin(42, 1, **origin), DrawRequest({"prompt": "a **kite**"}), seq=0, round=1, created=0.0)


def message(j: Job) -> JobMessage:
    engine = SimpleNamespace(position=lambda _: 2, queue_length=lambda: 2, estimate_start=lambda _: 30.0,
                             note_message=lambda *a: None)
    bot: Any = SimpleNamespace(engine=engine)
    jm = JobMessage(bot, j)
    jm._edit = AsyncMock(return_value=True)  # type: ignore[method-assign]
    return jm


async def test_an_unchanged_state_is_not_edited_again() -> None:
    j = job(credit=True)  # started by a reaction: the requester is credited
    jm = message(j)
    await jm.render()
    await jm.render()
    assert jm._edit.await_count == 1
    sent = jm._edit.await_args.kwargs["content"]
    assert sent == "**a \\*\\*kite\\*\\***\n⏳ Queued — position 2 of 2 · starts in about 30 s\n-# for <@42>"
    j.state, j.progress = JobState.RUNNING, JobProgress(0.5, 10, 20, 4.0, b"PNG")
    await jm.render()
    await jm.render()
    assert jm._edit.await_count == 2
    kwargs = jm._edit.await_args.kwargs
    assert kwargs["content"].startswith(f"**a \\*\\*kite\\*\\***\n🎨 `{bar(0.5)}` 50% · step 10/20 · ETA 4 s")
    assert [f.filename for f in kwargs["attachments"]] == ["preview.png"]


def test_waiting_for_a_backend_is_said() -> None:
    j = job()
    j.waiting_for_backend = True
    assert "waiting for an image server to come back" in progress_text("en", j, 1, 1, None)


def test_a_resumed_job_says_the_bot_restarted() -> None:
    j = job()
    j.resumed = True
    assert progress_text("en", j, 1, 3, None).endswith("The bot restarted; running again.")
    j.state = JobState.RUNNING
    assert "The bot restarted; running again." in progress_text("en", j, None, 3, None)


def test_a_paused_job_says_it_continues_after_the_restart() -> None:
    j = job()
    j.pausing = True
    text = progress_text("en", j, 1, 3, None)
    assert "The bot is restarting" in text and "continues after the restart" in text
    assert "Queued — position" not in text
