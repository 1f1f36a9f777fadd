"""/history: the caller's recent jobs, a page at a time, with a link to each result and a Rerun button.
Discord side: the text and the persistent buttons; the jobs come from the engine (`Engine.history`).

The reply is ephemeral, but its buttons are persistent dynamic items like every other sdcord button: the
custom id carries what a click needs (whose history and which page; which job to rerun), so they work
after a restart. A page button edits the message it is on in place; a Rerun goes the way every rerun goes
(`Actions.defer`, `Preparer.rerun_options`, `Actions.rerun`: admission, limits, server rules, the queue) and
its job gets a new public message, as a Reroll button's does."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from bot.core.jobs import request_from_record
from bot.core.store import JobRecord

from .catalog import lang_of
from .components import JOB_ID
from .errors import report_error
from .render import escape, request_title, say

if TYPE_CHECKING:
    from bot.core.engine import Engine

    from .bot import SDBot

__all__ = ["PER_PAGE", "HistoryPageButton", "HistoryRerunButton", "history_reply", "history_text",
           "history_view", "result_link"]

PER_PAGE = 5  # one row of Rerun buttons
TITLE_CHARS = 80
RERUNNABLE = ("txt2img", "img2img")  # an upscale has no request to run with a new seed
STATES = ("queued", "running", "done", "failed", "cancelled")


def pages_of(total: int, per_page: int = PER_PAGE) -> int:
    return max(1, -(-total // per_page))


def result_link(record: JobRecord) -> str | None:
    """Where the job's result is (its result message, else its own message), when the store knows."""
    message_id = record.result_message_id or record.message_id
    if not record.channel_id or not message_id:
        return None
    return f"https://discord.com/channels/{record.guild_id or '@me'}/{record.channel_id}/{message_id}"


def _title(lang: str, record: JobRecord) -> str:
    """The title the bot gives the job elsewhere: its prompt, or what an upscale did."""
    try:
        request = request_from_record(record.kind, record.payload, record.extra or {})
    except (KeyError, TypeError, ValueError):  # a record written by another version: its prompt, if any
        return str((record.payload or {}).get("prompt") or "")
    return request_title(lang, request)


def _entry(lang: str, number: int, record: JobRecord) -> str:
    title = escape(_title(lang, record), TITLE_CHARS)
    status = record.status
    state = say(lang, f"history.state.{status}") if status in STATES else escape(status, 20)
    parts = [f"`{number}.` " + (f"**{title}**" if title else say(lang, "history.no_prompt")),
             f"<t:{int(record.created_at)}:R>", state]
    link = result_link(record)
    if link:
        parts.append(say(lang, "history.link", url=link))
    return " · ".join(parts)


def history_text(lang: str, records: list[JobRecord], total: int, page: int) -> str:
    """The reply: a line per job (its number on the page, title, when, state, link), then "page n/m"."""
    if total <= 0:
        return say(lang, "history.empty")
    pages = pages_of(total)
    lines = [say(lang, "history.title")]
    lines += [_entry(lang, n, r) for n, r in enumerate(records, start=1)]
    lines.append(say(lang, "history.page", page=min(max(1, page), pages), pages=pages))
    return "\n".join(lines)[:2000]


def history_view(lang: str, user_id: int, records: list[JobRecord], total: int, page: int) -> discord.ui.View:
    """A Rerun button per txt2img/img2img entry (row 0), ◀ / ▶ (row 1, disabled at the ends)."""
    view = discord.ui.View(timeout=None)
    if total <= 0:
        return view
    pages = pages_of(total)
    page = min(max(1, page), pages)
    for n, record in enumerate(records, start=1):
        if record.kind in RERUNNABLE:
            view.add_item(HistoryRerunButton(record.id, label=say(lang, "history.rerun", number=n)))
    newer, older = say(lang, "history.newer"), say(lang, "history.older")
    view.add_item(HistoryPageButton(user_id, page - 1, label=newer, disabled=page <= 1))
    view.add_item(HistoryPageButton(user_id, page + 1, label=older, disabled=page >= pages))
    return view


async def history_reply(engine: Engine, user_id: int, page: int, lang: str) -> tuple[str, discord.ui.View]:
    """Page `page` of `user_id`'s history in `lang`: the text and its buttons. Raises StorageError while a
    shared database can't be reached."""
    records, total = await engine.history(user_id, page, PER_PAGE)
    page = min(max(1, page), pages_of(total))  # the engine showed the last page for one past the end
    return history_text(lang, records, total, page), history_view(lang, user_id, records, total, page)


async def _no_images() -> list[bytes]:
    """A history entry has no message to read images from: the stored request is all there is."""
    return []


class HistoryPageButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                       template=r"sdcord:history:(?P<user>\d{1,20}):(?P<page>\d{1,6})"):
    """◀ / ▶ on a /history reply: show page `page` of `user_id`'s history in the same message."""

    def __init__(self, user_id: int, page: int, *, label: str = "…", disabled: bool = False) -> None:
        super().__init__(discord.ui.Button(label=label[:80], style=discord.ButtonStyle.secondary,
                                           disabled=disabled, row=1,
                                           custom_id=f"sdcord:history:{user_id}:{max(0, page)}"))
        self.user_id = user_id
        self.page = page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> HistoryPageButton:
        return cls(int(match["user"]), int(match["page"]))

    async def callback(self, interaction: discord.Interaction[SDBot]) -> None:
        try:
            lang = lang_of(interaction)
            if interaction.user.id != self.user_id:  # an ephemeral reply has one reader; checked all the same
                await interaction.response.send_message(say(lang, "history.not_yours"), ephemeral=True)
                return
            content, view = await history_reply(interaction.client.engine, self.user_id, self.page, lang)
            await interaction.response.edit_message(content=content, view=view)
        except Exception as exc:  # noqa: BLE001 - dynamic items bypass View.on_error
            await report_error(interaction, exc, where="button history")


class HistoryRerunButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                         template=rf"sdcord:rerun:(?P<job>{JOB_ID})"):
    """🔁 n on a /history reply: that job's request again with a new seed, for whoever clicks, in a new
    message."""

    def __init__(self, job_id: str, *, label: str = "🔁") -> None:
        super().__init__(discord.ui.Button(label=label[:80], style=discord.ButtonStyle.primary,
                                           custom_id=f"sdcord:rerun:{job_id}", row=0))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> HistoryRerunButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[SDBot]) -> None:
        try:
            await self._rerun(interaction)
        except Exception as exc:  # noqa: BLE001 - dynamic items bypass View.on_error
            await report_error(interaction, exc, where="button rerun")

    async def _rerun(self, interaction: discord.Interaction[SDBot]) -> None:
        bot = interaction.client
        record = await bot.engine.find_job(job_id=self.job_id)
        if record is not None and record.user_id != interaction.user.id:  # only ever on its owner's history
            lang = lang_of(interaction)
            await interaction.response.send_message(say(lang, "history.not_yours"), ephemeral=True)
            return
        await bot.actions.defer(interaction, thinking=True)  # a new message becomes the rerun's job message
        options, parent = await bot.engine.preparer.rerun_options(job_id=self.job_id, message_id=None,
                                                                  images=_no_images, new_seed=True)
        await bot.actions.rerun(interaction, options, parent=parent)
