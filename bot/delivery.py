"""Discord side of a job: keep its message current, then deliver the result. Never loses a result.

* While queued: "Queued — position N"; while running: a text bar with percentage, step n/m and ETA,
  plus the WebUI's live preview; a Cancel button throughout.
* Edits are throttled: at most one every ~1.5 s per message, and slower when many job messages are
  live, so Discord's rate limits are never approached. Only the latest state is rendered.
* While the interaction token is safely valid, the job's message is edited through it. After that
  (or when Discord refuses the token), the job message is edited as an ordinary channel message, and
  the result is posted as a channel message replying to it, mentioning only the requester.
* A deleted job message does not break the job or spam errors: edits stop, and the result is still
  posted in the channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import time
from typing import TYPE_CHECKING, Any

import discord

from .scheduler import Job, JobState
from .views import cancel_view, result_view
from .webui import WebUIError

if TYPE_CHECKING:
    from .discord_bot import SDBot
    from .engine import Outcome

__all__ = ["JobMessage", "progress_text", "render_summary", "bar", "escape"]

log = logging.getLogger(__name__)

MIN_EDIT_INTERVAL = 1.5  # seconds between edits of one message
EDITS_PER_SECOND = 4.0  # budget shared by all live job messages
TOKEN_MARGIN = dt.timedelta(seconds=60)  # stop using the interaction token this long before it expires
PROMPT_CHARS = 200


def bar(fraction: float, width: int = 12) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "▰" * filled + "▱" * (width - filled)


def _seconds(value: float) -> str:
    value = max(0, round(value))
    return f"{value // 60} min {value % 60:02d} s" if value >= 60 else f"{value} s"


def escape(text: str, limit: int = PROMPT_CHARS) -> str:
    """User text made safe to echo: no markdown tricks, no mention syntax, bounded length."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def prompt_line(job: Job) -> str:
    title = getattr(job.payload, "title", "")
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
    if job.state is JobState.QUEUED:
        if job.waiting_for_backend:
            return head + "⏸️ Queued — waiting for a WebUI to come back (every backend is down right now)."
        eta = f" · starts in about {_seconds(estimate)}" if estimate else ""
        return head + f"⏳ Queued — position {position} of {queue_length}{eta}"
    if job.cancel_requested:
        return head + "🛑 Cancelling…"
    p = job.progress
    if p is None:
        return head + "🎨 Starting…"
    step = f" · step {p.step}/{p.steps}" if p.steps else ""
    eta = f" · ETA {_seconds(p.eta)}" if p.eta is not None else ""
    return head + f"🎨 `{bar(p.fraction)}` {p.fraction:.0%}{step}{eta}"


class JobMessage:
    """Renders one job into the message of the interaction that started it, then delivers it."""

    live = 0  # job messages currently being kept up to date (shares the edit budget)

    def __init__(self, bot: SDBot, job: Job, *, interaction: discord.Interaction[Any] | None = None,
                 channel_id: int | None = None, reply_to: int | None = None) -> None:
        """With an interaction (a command or a button), its response is the job message. Without
        one (a reaction), the job message is posted in `channel_id`, replying to `reply_to`."""
        self.bot = bot
        self.interaction = interaction
        self.job = job
        self.channel_id = interaction.channel_id if interaction is not None else channel_id
        self.reply_to = reply_to
        self.credit = interaction is None or interaction.type is not discord.InteractionType.application_command
        self.message_id: int | None = None
        self.token_ok = interaction is not None
        self.gone = False  # the job message was deleted
        self._last_text: str | None = None
        self._last_preview: bytes | None = None
        self.edit_times: list[float] = []
        self.finished = asyncio.Event()  # set once the final state has been delivered
        self.spoiler = bool(getattr(job.payload, "spoiler", False))

    @staticmethod
    def interval() -> float:
        return max(MIN_EDIT_INTERVAL, JobMessage.live / EDITS_PER_SECOND)

    def _token_usable(self) -> bool:
        return (self.interaction is not None and self.token_ok
                and discord.utils.utcnow() < self.interaction.expires_at - TOKEN_MARGIN)

    def _channel(self) -> discord.PartialMessageable:
        return self.bot.get_partial_messageable(self.channel_id or 0)

    # ------------------------------------------------------------------ editing the job message
    async def _edit(self, *, channel_fallback: bool = True, **fields: Any) -> bool:
        """Edit the job message through the token while it is safe, else (with `channel_fallback`) as a
        channel message; a job started without an interaction posts its message first. True when the
        job message now shows `fields`."""
        if self.gone:
            return False
        if self._token_usable():
            assert self.interaction is not None
            try:
                msg = await self.interaction.edit_original_response(**fields)
            except discord.NotFound:
                self.gone = True
                return False
            except discord.HTTPException as exc:
                if exc.status != 401 and exc.code != 50027:
                    raise
                self.token_ok = False  # token expired: fall through to the channel message
                log.info("Job %s: interaction token no longer accepted; editing as a channel message", self.job.id)
            else:
                if self.message_id is None:
                    self.bot.engine.note_messages(self.job.id, message_id=msg.id)  # type: ignore[union-attr]
                self.message_id = msg.id
                return True
        if not channel_fallback:
            return False
        if self.message_id is None:
            if self.interaction is not None:
                return False
            # Started without an interaction: the job message is ours to post.
            fields.pop("attachments", None)
            reference = (discord.MessageReference(message_id=self.reply_to, channel_id=self.channel_id or 0,
                                                  fail_if_not_exists=False) if self.reply_to else None)
            msg = await self._channel().send(reference=reference, **fields)  # type: ignore[arg-type]
            self.message_id = msg.id
            self.bot.engine.note_messages(self.job.id, message_id=msg.id)  # type: ignore[union-attr]
            return True
        try:
            await self._channel().get_partial_message(self.message_id).edit(**fields)
        except discord.NotFound:
            self.gone = True
            return False
        return True

    async def _render_progress(self) -> None:
        scheduler = self.bot.engine.scheduler  # type: ignore[union-attr]
        position = scheduler.position(self.job)
        estimate = scheduler.estimate_start(self.job) if position else None
        text = progress_text(self.job, position, len(scheduler.queued), estimate)
        if self.credit:
            text += f"\n-# for <@{self.job.user_id}>"
        preview = self.job.progress.preview if self.job.progress else None
        if text == self._last_text and preview is self._last_preview:
            return  # nothing new to show
        fields: dict[str, Any] = {"content": text, "view": cancel_view(self.job)}
        if preview is not self._last_preview and preview is not None:
            fields["attachments"] = [discord.File(io.BytesIO(preview), filename="preview.png", spoiler=self.spoiler)]
        self._last_text, self._last_preview = text, preview
        self.edit_times.append(time.monotonic())
        await self._edit(**fields)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        JobMessage.live += 1
        self.bot.job_messages.add(self)
        try:
            await self._render_progress()
            while not self.job.is_final:
                await self.job.wait_changed(timeout=30)
                if self.job.is_final:
                    break
                wait = (self.edit_times[-1] + self.interval() - time.monotonic()) if self.edit_times else 0
                if wait > 0:
                    await self._sleep_or_done(wait)
                if self.job.is_final:
                    break
                try:
                    await self._render_progress()
                except discord.HTTPException as exc:
                    log.warning("Job %s: progress edit failed: %s", self.job.id, exc)
        finally:
            JobMessage.live -= 1
        try:
            await self.deliver()
        finally:
            self.finished.set()
            self.bot.job_messages.discard(self)

    async def _sleep_or_done(self, seconds: float) -> None:
        try:
            await self.job.wait_done(seconds)
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ the end
    async def deliver(self) -> None:
        job = self.job
        if job.state is JobState.DONE:
            await self._deliver_result(job.result)
        elif job.state is JobState.CANCELLED:
            who = f" by <@{job.cancelled_by}>" if job.cancelled_by and job.cancelled_by != job.user_id else ""
            await self._safe_final_edit(content=f"{prompt_line(job)}\n✖️ Cancelled{who}.", attachments=[], view=None)
        else:
            await self._deliver_failure(job.error)

    async def _safe_final_edit(self, **fields: Any) -> bool:
        try:
            return await self._edit(**fields)
        except discord.HTTPException as exc:
            log.warning("Job %s: final edit failed: %s", self.job.id, exc)
            return False

    async def _deliver_failure(self, error: BaseException | None) -> None:
        from .discord_bot import new_error_id

        error_id = new_error_id()
        if isinstance(error, WebUIError):
            log.warning("[%s] job %s failed: %s | %s", error_id, self.job.id, error.message, error.detail)
            reason = error.message
        else:
            log.error("[%s] job %s failed", error_id, self.job.id, exc_info=error)
            reason = "Something went wrong on our side. The details are in the bot's log."
        text = f"❌ {reason} (error id `{error_id}`)"
        if not await self._safe_final_edit(content=text, attachments=[], view=None):
            await self._post_in_channel(f"<@{self.job.user_id}> {text}")

    async def _deliver_result(self, outcome: Outcome) -> None:
        summary = render_summary(outcome)
        if self.credit:
            summary += f"\n-# for <@{self.job.user_id}>"
        view = result_view(self.job.id, len(outcome.images), getattr(self.job.payload, "kind", "txt2img"))

        def files() -> list[discord.File]:  # a File is consumed by a send attempt
            return [discord.File(io.BytesIO(img.data), filename=img.filename, spoiler=self.spoiler)
                    for img in outcome.images]

        # Through the token while it is safe; a job that posted its own message puts the result there.
        if await self._edit(content=summary, attachments=files(), view=view,
                            channel_fallback=self.interaction is None):
            return
        # The token is (nearly) expired or the message is gone: a channel message replying to the job,
        # so the requester is notified.
        sent = await self._post_in_channel(f"<@{self.job.user_id}> {summary}", files=files(), view=view)
        self.bot.engine.note_messages(self.job.id, result_message_id=sent.id)  # type: ignore[union-attr]
        await self._safe_final_edit(content=f"{prompt_line(self.job)}\n✅ Done — the images are in the reply below.",
                                    attachments=[], view=None)

    async def _post_in_channel(self, content: str, *, files: list[discord.File] | None = None,
                               view: discord.ui.View | None = None) -> discord.Message:
        channel = self._channel()
        reference = None
        if self.message_id is not None and not self.gone:
            reference = discord.MessageReference(message_id=self.message_id, channel_id=channel.id,
                                                 fail_if_not_exists=False)
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        only_requester = discord.AllowedMentions(users=[discord.Object(self.job.user_id)], everyone=False,
                                                 roles=False, replied_user=False)
        return await channel.send(content[:2000], files=files or [], reference=reference,  # type: ignore[arg-type]
                                  allowed_mentions=only_requester, **extra)
