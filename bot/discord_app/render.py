"""The text of job messages and of /status, in the reader's language: pure functions of the engine's
state, no I/O.

Everything a user typed goes through `escape`: no control characters or bidi overrides (a `\\u202e` in a
prompt can't turn the summary around), no markdown tricks, no mention syntax, bounded length.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import discord

from bot.core.generate import Outcome
from bot.core.jobs import Job, JobState
from bot.core.payload import PROMPT_LORA
from bot.core.scheduler import StatusView
from bot.text import Opt, Text, period

from .catalog import catalogs

__all__ = [
    "PROMPT_CHARS",
    "STATUS_JOBS",
    "bar",
    "clean",
    "escape",
    "failed_text",
    "final_text",
    "help_text",
    "progress_text",
    "prompt_line",
    "render_suggestions",
    "render_summary",
    "request_title",
    "say",
    "seconds",
    "status_text",
]

PROMPT_CHARS = 200
STATUS_JOBS = 20  # the caller's jobs listed by /status; the rest are counted
_KEEP_FORMAT = {"\u200d"}  # zero-width joiner: part of emoji sequences


def say(lang: str, key: str | Text | Opt, /, **values: Any) -> str:
    """A catalogue message (a key and values, or a `Text`, or an option's name) in `lang`."""
    books = catalogs()
    return books.render(lang, key) if isinstance(key, Text | Opt) else books.get(lang, key, **values)


def bar(fraction: float, width: int = 12) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "▰" * filled + "▱" * (width - filled)


def seconds(lang: str, value: float) -> str:
    value = max(0, round(value))
    if value >= 60:
        return say(lang, "time.minutes_seconds", minutes=value // 60, seconds=value % 60)
    return say(lang, "time.seconds", seconds=value)


def clean(text: str) -> str:
    """User text without control characters, bidi overrides or invisible formatting (but emoji joiners)."""
    return "".join(ch for ch in text if ch in _KEEP_FORMAT or unicodedata.category(ch) not in ("Cc", "Cf", "Cs",
                                                                                              "Co", "Cn")
                   or ch in "\n\t")


def escape(text: str, limit: int = PROMPT_CHARS) -> str:
    """User text made safe to echo: no control or bidi characters, no markdown tricks, no mention syntax,
    bounded length."""
    text = " ".join(clean(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def title_of(lang: str, job: Job) -> str:
    """What a job is: its prompt, or for an upscale the factor and the upscaler."""
    return request_title(lang, job.request)


def request_title(lang: str, request: Any) -> str:
    """What a request is (also one read back from the store): its prompt, an upscale's factor and upscaler,
    or "describing an image"."""
    if request.kind == "upscale":
        return say(lang, "summary.upscale_job", factor=f"{request.scale:g}", upscaler=request.upscaler)
    if request.kind == "describe":
        return say(lang, "summary.describe_job")
    return request.title


def prompt_line(job: Job, lang: str = "en") -> str:
    title = title_of(lang, job)
    return f"**{escape(title)}**" if title else ""


def _lora_names(prompt: str) -> list[str]:
    return list(dict.fromkeys(m[1].strip() for m in PROMPT_LORA.finditer(prompt) if m[1].strip()))


def render_summary(lang: str, outcome: Outcome, request: Any = None) -> str:
    """The result message: what was asked and what was used (size, model, sampler and schedule, steps,
    CFG, seeds; hires, style, LoRA, strength when used), the time taken, and what sdcord changed."""
    payload: dict[str, Any] = getattr(request, "payload", None) or {}
    if getattr(request, "kind", None) == "upscale":
        head = say(lang, "summary.upscaled", factor=f"{request.scale:g}", upscaler=escape(request.upscaler, 80))
        facts = []
        if outcome.size:
            facts.append(say(lang, "summary.size", w=outcome.size[0], h=outcome.size[1]))
        if outcome.seeds:
            facts.append(say(lang, "summary.seeds", count=len(outcome.seeds),
                             seeds=", ".join(f"`{s}`" for s in outcome.seeds)))
        facts.append(say(lang, "summary.time", seconds=f"{outcome.elapsed:.1f}"))
        return _summary_lines(lang, head, facts, outcome)
    size = outcome.size or (payload.get("width"), payload.get("height"))
    sampler = " ".join(escape(p, 60) for p in (outcome.sampler, outcome.scheduler) if p and p != "Automatic")
    cfg = payload.get("cfg_scale")  # what was sent (the infotext was parsed once already, in the engine)
    facts = [
        say(lang, "summary.size", w=size[0], h=size[1]) if size and size[0] else None,
        escape(outcome.model, 80) if outcome.model else None,
        sampler or None,
        say(lang, "summary.steps", count=int(outcome.steps)) if outcome.steps else None,
        say(lang, "summary.cfg", cfg=f"{float(cfg):g}") if cfg not in (None, "") else None,
        say(lang, "summary.seeds", count=len(outcome.seeds), seeds=", ".join(f"`{s}`" for s in outcome.seeds))
        if outcome.seeds else None,
    ]
    if payload.get("enable_hr"):
        facts.append(say(lang, "summary.hires", factor=f"{float(payload.get('hr_scale') or 1):g}"))
    if payload.get("styles"):
        facts.append(say(lang, "summary.style", name=escape(", ".join(map(str, payload["styles"])), 80)))
    loras = _lora_names(str(payload.get("prompt", "")))
    if loras:
        facts.append(say(lang, "summary.lora", names=escape(", ".join(loras), 120)))
    if "inpainting_fill" in payload:  # Zoom out: the picture kept, a new border painted around it
        facts.append(say(lang, "summary.zoom"))
    elif "resize_mode" in payload and payload.get("denoising_strength") is not None:
        facts.append(say(lang, "summary.strength", value=f"{float(payload['denoising_strength']):g}"))
    if payload.get("subseed_strength"):
        facts.append(say(lang, "summary.variation", value=f"{float(payload['subseed_strength']):g}"))
    clip_skip = (payload.get("override_settings") or {}).get("CLIP_stop_at_last_layers")
    if clip_skip is not None:
        facts.append(say(lang, "summary.clip_skip", value=int(clip_skip)))
    if payload.get("tiling"):
        facts.append(say(lang, "summary.tiling"))
    if payload.get("alwayson_scripts"):
        facts.append(say(lang, "summary.fix_faces"))
    facts.append(say(lang, "summary.time", seconds=f"{outcome.elapsed:.1f}"))
    return _summary_lines(lang, f"**{escape(outcome.prompt, 300)}**", facts, outcome)


def render_suggestions(lang: str, outcome: Outcome) -> str:
    """/describe's result: the prompts it suggests, numbered like their buttons."""
    if not outcome.suggestions:
        return say(lang, "describe.none")
    lines = [say(lang, "describe.title")]
    lines += [f"**{k}.** {escape(text, 400)}" for k, text in enumerate(outcome.suggestions, 1)]
    lines.append("-# " + say(lang, "describe.hint", seconds=f"{outcome.elapsed:.1f}"))
    return "\n".join(lines)[:1900]


def _summary_lines(lang: str, head: str, facts: list[str | None], outcome: Outcome) -> str:
    lines = [head, " · ".join(f for f in facts if f)]
    if outcome.notes:
        lines.append("-# " + "; ".join(escape(say(lang, n) if isinstance(n, Text) else str(n), 300)
                                       for n in outcome.notes))
    return "\n".join(lines)[:1900]


def progress_text(lang: str, job: Job, position: int | None, queue_length: int, estimate: float | None) -> str:
    """The job message's text for a job that has not ended."""
    head = prompt_line(job, lang) + "\n" if prompt_line(job, lang) else ""
    tail = "\n-# " + say(lang, "progress.resumed") if job.resumed else ""
    if job.pausing:
        key = "progress.pausing_waiting" if job.state is JobState.QUEUED else "progress.pausing_running"
        return head + say(lang, key) + tail
    if job.state is JobState.QUEUED:
        if job.waiting_for_backend:
            return head + say(lang, "progress.backend_down") + tail
        text = say(lang, "progress.queued", position=position, total=queue_length)
        if estimate:
            text += " · " + say(lang, "progress.starts_in", eta=seconds(lang, estimate))
        return head + text + tail
    if job.cancel_requested:
        return head + say(lang, "progress.cancelling")
    p = job.progress
    if p is None:
        return head + say(lang, "progress.starting") + tail
    step = " · " + say(lang, "progress.step", step=p.step, steps=p.steps) if p.steps else ""
    eta = " · " + say(lang, "progress.eta", eta=seconds(lang, p.eta)) if p.eta is not None else ""
    return head + f"🎨 `{bar(p.fraction)}` {p.fraction:.0%}{step}{eta}" + tail


def final_text(lang: str, job: Job) -> str:
    """A job message's last words when the job was cancelled, or when its result went to another message."""
    head = prompt_line(job, lang)
    if job.state is JobState.CANCELLED:
        if job.cancelled_by and job.cancelled_by != job.user_id:
            return f"{head}\n" + say(lang, "final.cancelled_by", user=f"<@{job.cancelled_by}>")
        return f"{head}\n" + say(lang, "final.cancelled")
    return f"{head}\n" + say(lang, "final.done_below")


def credit_line(lang: str, user_id: int) -> str:
    """Who a job started by a button, a menu or a reaction is for."""
    return "\n-# " + say(lang, "progress.for", user=f"<@{user_id}>")


def failed_text(lang: str, job: Job, reason: Text | str, error_id: str) -> str:
    """A failed job keeps its prompt (and Retry / Edit buttons); the reason is short, plain words."""
    head = prompt_line(job, lang)
    reason_text = say(lang, reason) if isinstance(reason, Text) else escape(str(reason), 300)
    line = "❌ " + say(lang, "final.failed", reason=reason_text, error_id=error_id)
    return f"{head}\n{line}" if head else line


def status_text(lang: str, view: StatusView) -> str:
    """/status: each backend, the queue length, the caller's own jobs with their positions."""
    lines = [say(lang, "status.backends")]
    for i, b in enumerate(view.backends, 1):
        if not b.up:
            reason = say(lang, b.last_error) if isinstance(b.last_error, Text) else escape(str(b.last_error), 120)
            state = say(lang, "status.down", reason=reason)
        elif b.draining:
            state = say(lang, "status.draining")
        else:
            state = say(lang, "status.busy" if b.busy else "status.idle")
        lines.append(f"`#{i}` {state}")
    lines.append(say(lang, "status.queue", count=view.queue_length))
    if view.jobs:
        lines.append(say(lang, "status.your_jobs"))
        for job, position in view.jobs:
            if job.state is JobState.RUNNING:
                where = (say(lang, "status.running_pct", percent=f"{job.progress.fraction:.0%}") if job.progress
                         else say(lang, "status.running"))
            else:
                where = say(lang, "status.queued_at", position=position)
            lines.append(f"`{job.id}` {where} — {escape(title_of(lang, job), 80)}")
        if view.total > len(view.jobs):
            lines.append(say(lang, "status.more", count=view.total - len(view.jobs)))
    else:
        lines.append(say(lang, "status.no_jobs"))
    return "\n".join(lines)[:2000]


def help_text(lang: str, limits: Any) -> str:
    """/help: the commands, the buttons and the 🔁 reaction, then the limits in force for this user here.
    Commands are printed as typed (`/draw`): a localized command mention can't be clicked."""
    rate_count, rate_per = limits.rate
    lines = [
        say(lang, "help.title"),
        say(lang, "help.commands"),
        say(lang, "help.buttons"),
        say(lang, "help.reaction"),
        say(lang, "help.limits", steps=limits.max_steps, pixels=limits.max_pixels, batch=limits.max_batch,
            count=rate_count, period=say(lang, period(rate_per)), queued=limits.max_queued),
        say(lang, f"help.nsfw.{limits.nsfw_mode}"),
    ]
    if limits.daily:
        lines.insert(-1, say(lang, "help.daily", count=limits.daily))
    if limits.private:
        lines.append(say(lang, "help.private"))
    if limits.refused is not None:
        lines.append("⛔ " + say(lang, limits.refused))
    return "\n\n".join(lines)[:2000]
