"""The text of job messages and of /status: pure functions of the engine's state, no I/O.

Everything a user typed goes through `escape`: no markdown tricks, no mention syntax, bounded length.
"""

from __future__ import annotations

import discord

from bot.core.generate import Outcome
from bot.core.jobs import Job, JobState
from bot.core.scheduler import StatusView

__all__ = ["bar", "escape", "final_text", "progress_text", "prompt_line", "render_summary", "status_text",
           "PROMPT_CHARS"]

PROMPT_CHARS = 200
RESUMED_NOTE = "-# 🔄 The bot restarted; running again."


def bar(fraction: float, width: int = 12) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "▰" * filled + "▱" * (width - filled)


def seconds(value: float) -> str:
    value = max(0, round(value))
    return f"{value // 60} min {value % 60:02d} s" if value >= 60 else f"{value} s"


def escape(text: str, limit: int = PROMPT_CHARS) -> str:
    """User text made safe to echo: no markdown tricks, no mention syntax, bounded length."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def prompt_line(job: Job) -> str:
    title = job.request.title
    return f"**{escape(title)}**" if title else ""


def render_summary(outcome: Outcome) -> str:
    """The result message: prompt, seed(s), steps, sampler, model, time, and any notes."""
    seeds = ", ".join(f"`{s}`" for s in outcome.seeds) or "?"
    sampler = " ".join(p for p in (outcome.sampler, outcome.scheduler) if p and p != "Automatic")
    facts = [
        f"seed{'s' if len(outcome.seeds) > 1 else ''} {seeds}",
        f"{outcome.steps} steps" if outcome.steps else None,
        sampler or None,
        escape(outcome.model, 80) if outcome.model else None,
        f"{outcome.elapsed:.1f} s",
    ]
    lines = [f"**{escape(outcome.prompt, 300)}**", " · ".join(f for f in facts if f)]
    if outcome.notes:
        lines.append("-# " + "; ".join(outcome.notes))
    return "\n".join(lines)[:1900]


def progress_text(job: Job, position: int | None, queue_length: int, estimate: float | None) -> str:
    """The job message's text for a job that has not ended."""
    head = prompt_line(job) + "\n" if prompt_line(job) else ""
    tail = f"\n{RESUMED_NOTE}" if job.resumed else ""
    if job.pausing:
        where = "waiting" if job.state is JobState.QUEUED else "running"
        return head + (f"⏸️ The bot is restarting; this job was {where} and continues after the restart "
                       "(nothing to do for you).") + tail
    if job.state is JobState.QUEUED:
        if job.waiting_for_backend:
            return head + "⏸️ Queued — waiting for a WebUI to come back (every backend is down right now)." + tail
        eta = f" · starts in about {seconds(estimate)}" if estimate else ""
        return head + f"⏳ Queued — position {position} of {queue_length}{eta}" + tail
    if job.cancel_requested:
        return head + "🛑 Cancelling…"
    p = job.progress
    if p is None:
        return head + "🎨 Starting…" + tail
    step = f" · step {p.step}/{p.steps}" if p.steps else ""
    eta = f" · ETA {seconds(p.eta)}" if p.eta is not None else ""
    return head + f"🎨 `{bar(p.fraction)}` {p.fraction:.0%}{step}{eta}" + tail


def final_text(job: Job, reason: str | None = None) -> str:
    """A job message's last words when the job ended without a result in that message."""
    head = prompt_line(job)
    if job.state is JobState.CANCELLED:
        who = f" by <@{job.cancelled_by}>" if job.cancelled_by and job.cancelled_by != job.user_id else ""
        return f"{head}\n✖️ Cancelled{who}."
    if job.state is JobState.DONE:
        return f"{head}\n✅ Done — the images are in the reply below."
    return f"❌ {reason}"


STATUS_JOBS = 20  # the caller's jobs listed by /status; the rest are counted


def status_text(view: StatusView) -> str:
    """/status: each backend, the queue length, the caller's own jobs with their positions."""
    lines = ["**Backends**"]
    for i, b in enumerate(view.backends, 1):
        if not b.up:
            state = f"🔴 down — {b.last_error}"
        elif b.draining:
            state = "🟠 up, finishing a job it was asked to stop"
        else:
            state = "🟢 up, busy" if b.busy else "🟢 up, idle"
        lines.append(f"`#{i}` {state}")
    lines.append(f"**Queue**: {view.queue_length} waiting")
    if view.jobs:
        lines.append("**Your jobs**")
        for job, position in view.jobs:
            if job.state is JobState.RUNNING:
                where = f"running, {job.progress.fraction:.0%}" if job.progress else "running"
            else:
                where = f"queued, position {position}"
            lines.append(f"`{job.id}` {where} — {escape(job.request.title, 80)}")
        if view.total > len(view.jobs):
            lines.append(f"…and {view.total - len(view.jobs)} more.")
    else:
        lines.append("You have no jobs waiting or running.")
    return "\n".join(lines)[:2000]
