"""The Discord side of a job: keep its message current, then deliver its end. Never loses a result.

* While queued: "Queued — position N"; while running: a text bar with percentage, step n/m and ETA,
  plus the WebUI's live preview; a Cancel button throughout. After a restart: the same, with "the bot
  restarted; running again" for a job that was running.
* Edits are throttled: at most one every ~1.5 s per message, and slower when many job messages are
  live, so Discord's rate limits are never approached. Only the latest state is rendered, and a
  waiting job's position is read when its message is due (the queue wakes nobody).
* While the interaction token is safely valid, the job's message is edited through it (an
  `InteractionHook`, which needs only the token the job store keeps, so this works after a restart
  too). After that, or when Discord refuses the token, the job message is edited as an ordinary
  channel message, and the result is posted as a channel message replying to it, mentioning only
  the requester, with the job's nonce (Discord drops a second post with the same nonce).
* Where the bot can't post (a user install in a server without the bot, a group DM), everything goes
  through the interaction: the token is used to its end, and a job still waiting when the token is about
  to expire is cancelled with a Retry button rather than left to finish where nobody can see it.
* A deleted job message does not break the job: edits stop, and the result is still posted in the
  channel. A result that can't be shown anywhere is recorded as such; nothing stays "running".
* A failed job keeps its prompt, says why in plain words (with the error id the log has), and offers
  Retry and Edit. Every word is in the job's language (`Origin.locale`).
* Each delivered end is reported to the engine (`delivered`), which forgets the token and the
  result files; a job is only delivered once the store knows how it ended.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord.http import handle_message_parameters
from discord.webhook.async_ import async_context

from bot.core.generate import Outcome
from bot.core.jobs import InteractionRef, Job, JobState
from bot.errors import JobFailed, StorageError, WebUIError
from bot.text import T, Text

from .components import cancel_view, describe_view, failed_view, result_view
from .errors import new_error_id
from .render import credit_line, failed_text, final_text, progress_text, render_suggestions, render_summary

if TYPE_CHECKING:
    from .bot import SDBot

__all__ = ["Deliveries", "InteractionHook", "JobMessage"]

log = logging.getLogger(__name__)

MIN_EDIT_INTERVAL = 1.5  # seconds between edits of one message
EDITS_PER_SECOND = 4.0  # budget shared by all live job messages
TOKEN_MARGIN = 60.0  # stop using the interaction token this long before it expires (when there is a channel)
LAST_MARGIN = 5.0  # where the interaction is the only way to answer, use the token this close to its end
START_DEADLINE = 120.0  # ... and a job that hasn't started this long before the token ends is called off
_TOKEN_REFUSED = {50027, 10015}  # invalid webhook token, unknown webhook
_UNKNOWN_MESSAGE = 10008


class InteractionHook:
    """Edits an interaction's response through its webhook token alone, so it works for a job restored
    after a restart as well as for a live one."""

    def __init__(self, bot: SDBot, ref: InteractionRef, *, margin: float = TOKEN_MARGIN) -> None:
        self.bot = bot
        self.ref = ref
        self.margin = margin
        self.broken = False  # Discord refused the token

    def usable(self) -> bool:
        return not self.broken and time.time() < self.ref.expires_at - self.margin

    async def edit(self, **fields: Any) -> int:
        """Edit the interaction's original response (the job message); returns its message id.

        This goes through discord.py's webhook adapter, the path `Interaction.edit_original_response`
        takes: its rate-limit locks are weak references, whereas `HTTPClient.request` keeps a bucket per
        token for 300 s (about 1 KB a job on a busy bot)."""
        webhook = discord.Webhook.partial(self.ref.application_id, self.ref.token, client=self.bot)
        with handle_message_parameters(previous_allowed_mentions=self.bot.allowed_mentions, **fields) as params:
            data = await async_context.get().edit_original_interaction_response(
                self.ref.application_id, self.ref.token, session=webhook.session, proxy=webhook.proxy,
                proxy_auth=webhook.proxy_auth, payload=params.payload, multipart=params.multipart,
                files=params.files)
        return int(data["id"])


class JobMessage:
    """Renders one job into its message, then delivers its end."""

    live = 0  # job messages currently being kept up to date (they share the edit budget)

    def __init__(self, bot: SDBot, job: Job) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.job = job
        self.origin = job.origin
        self.lang = job.origin.locale
        self.only_hook = job.origin.interaction_only  # no channel to fall back to
        margin = LAST_MARGIN if self.only_hook else TOKEN_MARGIN
        self.hook = InteractionHook(bot, job.origin.interaction, margin=margin) if job.origin.interaction else None
        self.message_id = job.message_id
        self.gone = False  # the job message was deleted
        self._last_text: str | None = None
        self._last_preview: bytes | None = None
        self.edit_times: list[float] = []
        self.finished = asyncio.Event()  # set once the job's end has been delivered (or given up)
        self.spoiler = bool(job.request.spoiler)

    @staticmethod
    def interval() -> float:
        return max(MIN_EDIT_INTERVAL, JobMessage.live / EDITS_PER_SECOND)

    def _channel(self) -> discord.PartialMessageable:
        return self.bot.get_partial_messageable(self.origin.channel_id, guild_id=self.origin.guild_id)

    def _known(self, message_id: int) -> None:
        self.message_id = message_id
        self.engine.note_message(self.job, message_id)

    # ------------------------------------------------------------------ editing the job message
    async def _edit(self, *, channel_fallback: bool = True, **fields: Any) -> bool:
        """Edit the job message through the token while it is safe, else (with `channel_fallback`) as a
        channel message; with no message yet (a reaction's job, or a token that ran out first) post one.
        True when the job message now shows `fields`."""
        if self.gone:
            return False
        if self.hook is not None and self.hook.usable():
            try:
                message_id = await self.hook.edit(**fields)
            except discord.HTTPException as exc:
                self.engine.metrics.discord_error(exc.status)
                if exc.code == _UNKNOWN_MESSAGE:
                    self.gone = True
                    return False
                if exc.status not in (401, 404) and exc.code not in _TOKEN_REFUSED:
                    raise
                self.hook.broken = True  # fall through to the channel message
                log.info("Job %s: interaction token no longer accepted; editing as a channel message", self.job.id)
            else:
                if message_id != self.message_id:
                    self._known(message_id)
                return True
        if not channel_fallback or self.only_hook:
            return False
        if self.message_id is None:
            fields.pop("attachments", None)
            reference = (discord.MessageReference(message_id=self.origin.reply_to, channel_id=self.origin.channel_id,
                                                  fail_if_not_exists=False) if self.origin.reply_to else None)
            msg = await self._channel().send(reference=reference, **fields)  # type: ignore[arg-type]
            self._known(msg.id)
            return True
        try:
            await self._channel().get_partial_message(self.message_id).edit(**fields)
        except discord.NotFound:
            self.gone = True
            return False
        return True

    async def render(self, *, force: bool = False) -> None:
        job = self.job
        position = self.engine.position(job)
        estimate = self.engine.estimate_start(job) if position else None
        text = progress_text(self.lang, job, position, self.engine.queue_length(), estimate)
        if self.origin.credit:
            text += credit_line(self.lang, job.user_id)
        preview = job.progress.preview if job.progress else None
        if not force and text == self._last_text and preview is self._last_preview:
            return  # nothing new to show
        fields: dict[str, Any] = {"content": text, "view": cancel_view(job.id, self.lang)}
        if preview is not self._last_preview and preview is not None:
            fields["attachments"] = [discord.File(io.BytesIO(preview), filename="preview.png", spoiler=self.spoiler)]
        self._last_text, self._last_preview = text, preview
        self.edit_times.append(time.monotonic())
        del self.edit_times[:-8]
        await self._edit(**fields)

    async def _render_quietly(self) -> None:
        try:
            await self.render()
        except discord.HTTPException as exc:
            log.warning("Job %s: progress edit failed: %s", self.job.id, exc)

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        JobMessage.live += 1
        try:
            if not self.job.is_final:
                await self._render_quietly()
            while not self.job.is_final and not self.job.handed_over:
                if self._out_of_time():
                    await self.engine.cancel(self.job, by=0)  # it would finish where nobody can see it
                    break
                # A waiting job's position changes without it being told: look again when its turn comes.
                timeout = self.interval() if self.job.state is JobState.QUEUED else 30
                await self.job.wait_changed(timeout=timeout)
                if self.job.is_final or self.job.handed_over:
                    break
                wait = (self.edit_times[-1] + self.interval() - time.monotonic()) if self.edit_times else 0
                if wait > 0:
                    await self._sleep_or_done(wait)
                if self.job.is_final:
                    break
                await self._render_quietly()
        finally:
            JobMessage.live -= 1
        if self.job.handed_over and not self.job.is_final:  # a worker elsewhere keeps the message current now
            self.finished.set()
            return
        await self.deliver()

    def _out_of_time(self) -> bool:
        """Where only the interaction can answer: a job still waiting shortly before the token ends."""
        ref = self.origin.interaction
        return (self.only_hook and ref is not None and self.job.state is JobState.QUEUED
                and time.time() > ref.expires_at - START_DEADLINE)

    async def _sleep_or_done(self, seconds: float) -> None:
        try:
            await self.job.wait_done(seconds)
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ the end
    async def deliver(self) -> None:
        """Show the job's end once the store knows it; report it to the engine. Never raises."""
        job = self.job
        result_message_id: int | None = None
        problem: str | None = None
        try:
            await self.engine.settled(job)
            if job.state is JobState.DONE:
                outcome = await self.engine.outcome(job)
                if outcome is None:
                    problem = "the result's images were lost"
                    ok = await self._deliver_failure(JobFailed(T("failure.images_lost")))
                else:
                    ok, result_message_id = await self._deliver_result(outcome)
            elif job.state is JobState.CANCELLED and job.cancelled_by == 0:  # called off: out of time
                ok = await self._deliver_failure(JobFailed(T("failure.out_of_time")))
            elif job.state is JobState.CANCELLED:
                ok = await self._safe_final_edit(content=final_text(self.lang, job), attachments=[], view=None)
            else:
                ok = await self._deliver_failure(job.error)
            if not ok and problem is None:
                problem = "the job message and its channel could not be reached"
        except discord.HTTPException as exc:
            error_id = new_error_id()
            log.warning("[%s] job %s: its end could not be delivered: %s", error_id, job.id, exc)
            problem = f"[{error_id}] {exc}"
        except (StorageError, OSError) as exc:
            log.error("Job %s: delivery failed: %r", job.id, exc)
            problem = repr(exc)
        try:
            await self.engine.delivered(job, result_message_id=result_message_id, problem=problem)
        except Exception:  # noqa: BLE001 - the store may be closing; the job is delivered at the next start
            log.exception("Job %s: could not record its delivery", job.id)
        self.finished.set()

    async def _safe_final_edit(self, **fields: Any) -> bool:
        try:
            return await self._edit(**fields)
        except discord.HTTPException as exc:
            log.warning("Job %s: final edit failed: %s", self.job.id, exc)
            return False

    async def _deliver_failure(self, error: BaseException | None) -> bool:
        """The prompt, the reason in plain words with the error id (the log has the detail), Retry and Edit."""
        error_id = new_error_id()
        reason: Text | str
        if isinstance(error, WebUIError | JobFailed):
            log.warning("[%s] job %s failed: %s | %s", error_id, self.job.id, error.message, error.detail)
            reason = error.message
        else:
            log.error("[%s] job %s failed", error_id, self.job.id, exc_info=error)
            reason = T("failure.internal")
        text = failed_text(self.lang, self.job, reason, error_id)
        view = failed_view(self.job.id, self.lang, editable=self.job.request.kind not in ("upscale", "describe"))
        if await self._safe_final_edit(content=text, attachments=[], view=view):
            return True
        if self.only_hook:
            return False
        await self._post_in_channel(f"<@{self.job.user_id}> {text}", nonce=f"sdcord-f-{self.job.id}", view=view)
        return True

    async def _deliver_result(self, outcome: Outcome) -> tuple[bool, int | None]:
        if self.job.request.kind == "describe":
            summary = render_suggestions(self.lang, outcome)
            view = describe_view(self.job.id, len(outcome.suggestions), self.lang)
        else:
            summary = render_summary(self.lang, outcome, self.job.request)
            view = result_view(self.job.id, len(outcome.images), self.job.request.kind, self.lang)
        if self.origin.credit:
            summary += credit_line(self.lang, self.job.user_id)

        opened: list[Any] = []

        async def files() -> list[discord.File]:  # a File is consumed by a send attempt
            out = []
            for img in outcome.images:  # uploaded from the data dir (no copy in memory) unless only in memory
                path = None if img.data else self.engine.image_file(self.job, img.filename)
                source: Any = io.BytesIO(img.data) if path is None else await asyncio.to_thread(open, path, "rb")
                opened.append(source)
                out.append(discord.File(source, filename=img.filename, spoiler=self.spoiler))
            return out

        try:
            # Through the token while it is safe; a job that posted its own message puts the result there.
            if await self._edit(content=summary, attachments=await files(), view=view,
                                channel_fallback=self.origin.interaction is None):
                return True, None
            if self.only_hook:  # nowhere else to post it
                return False, None
            # The token is (nearly) expired or the message is gone: a channel message replying to the job,
            # so the requester is notified.
            sent = await self._post_in_channel(f"<@{self.job.user_id}> {summary}", files=await files(), view=view,
                                               nonce=f"sdcord-r-{self.job.id}")
        finally:
            for source in opened:  # discord.py leaves file objects it did not open to their owner
                source.close()
        await self._safe_final_edit(content=final_text(self.lang, self.job), attachments=[], view=None)
        return True, sent.id

    async def _post_in_channel(self, content: str, *, nonce: str, files: list[discord.File] | None = None,
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
                                  allowed_mentions=only_requester, nonce=nonce, **extra)


class Deliveries:
    """Every job message being kept current, as tasks the bot owns (so a shutdown can end them)."""

    def __init__(self, bot: SDBot) -> None:
        self.bot = bot
        self.messages: dict[str, JobMessage] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def follow(self, job: Job) -> JobMessage:
        """Keep `job`'s message current until its end is delivered."""
        existing = self.messages.get(job.id)
        if existing is not None:
            return existing
        message = JobMessage(self.bot, job)
        self.messages[job.id] = message
        task = asyncio.get_running_loop().create_task(message.run(), name=f"job message {job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda t, j=job.id: self._done(j, t))
        return message

    def _done(self, job_id: str, task: asyncio.Task[None]) -> None:
        self.messages.pop(job_id, None)
        self._tasks.pop(job_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("Job message %s failed", job_id, exc_info=task.exception())

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Deliver what has ended, tell the rest the bot is restarting (as far as `timeout` allows),
        then stop every job message. Jobs that didn't get their final word are delivered at the next start."""
        messages = list(self.messages.values())
        ended = [self._tasks[m.job.id] for m in messages if m.job.is_final and m.job.id in self._tasks]
        waiting = [m for m in messages if not m.job.is_final]
        limit = asyncio.Semaphore(5)

        async def pause_note(message: JobMessage) -> None:
            async with limit:
                try:
                    await message.render(force=True)
                except (discord.HTTPException, discord.ClientException, RuntimeError) as exc:
                    log.info("Job %s: could not say the bot is restarting: %s", message.job.id, exc)

        work = [*ended, *(asyncio.ensure_future(pause_note(m)) for m in waiting)]
        if work:
            _, pending = await asyncio.wait(work, timeout=timeout)
            for task in pending:
                task.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
