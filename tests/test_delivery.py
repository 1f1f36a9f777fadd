"""JobMessage rendering in isolation: what it sends, and that it never sends the same thing twice."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock

from bot.delivery import JobMessage, bar, progress_text
from bot.payload import BuiltPayload
from bot.scheduler import Job, JobProgress, JobState


def job() -> Job:
    return Job("0123abcd", 42, BuiltPayload({"prompt": "a **kite**"}), seq=0, round=1, created=0.0)


def message(j: Job) -> JobMessage:
    scheduler = SimpleNamespace(position=lambda _: 2, queued=[j, j], estimate_start=lambda _: 30.0)
    bot: Any = SimpleNamespace(engine=SimpleNamespace(scheduler=scheduler, note_messages=lambda *a, **k: None))
    jm = JobMessage(bot, j, channel_id=1)  # no interaction (a reaction): the requester is credited
    jm._edit = AsyncMock(return_value=True)  # type: ignore[method-assign]
    return jm


async def test_an_unchanged_state_is_not_edited_again() -> None:
    j = job()
    jm = message(j)
    await jm._render_progress()
    await jm._render_progress()
    assert jm._edit.await_count == 1
    sent = jm._edit.await_args.kwargs["content"]
    assert sent == "**a \\*\\*kite\\*\\***\n⏳ Queued — position 2 of 2 · starts in about 30 s\n-# for <@42>"
    j.state, j.progress = JobState.RUNNING, JobProgress(0.5, 10, 20, 4.0, b"PNG")
    await jm._render_progress()
    await jm._render_progress()
    assert jm._edit.await_count == 2
    kwargs = jm._edit.await_args.kwargs
    assert kwargs["content"].startswith(f"**a \\*\\*kite\\*\\***\n🎨 `{bar(0.5)}` 50% · step 10/20 · ETA 4 s")
    assert [f.filename for f in kwargs["attachments"]] == ["preview.png"]


def test_waiting_for_a_backend_is_said() -> None:
    j = job()
    j.waiting_for_backend = True
    assert "waiting for a WebUI to come back" in progress_text(j, 1, 1, None)
