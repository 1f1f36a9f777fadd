"""Persistent components: the job id lives in each custom id (≤ 100 characters), and the items are
registered once with `add_dynamic_items`, so every button keeps working after a restart.

The items only parse their custom id; what a click does lives in `actions` (reached through the
bot, `interaction.client.actions`, so this module needs nothing above it)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from .catalog import DEFAULT, catalogs
from .errors import report_error

if TYPE_CHECKING:
    from .bot import SDBot

__all__ = [
    "RESULT_ACTIONS",
    "CancelButton",
    "ResultButton",
    "SDModal",
    "SDView",
    "cancel_view",
    "describe_view",
    "failed_view",
    "result_view",
]

JOB_ID = r"[0-9a-f]{8}"

# action -> (emoji, style); the label is `button.<action>` in the message's language; per-image actions
# get "V1", "U2", ... labels on batches. "retry" runs a failed job's request again, seed included.
RESULT_ACTIONS: dict[str, tuple[str | None, discord.ButtonStyle]] = {
    "reroll": ("🔁", discord.ButtonStyle.primary),
    "vary": ("🎨", discord.ButtonStyle.secondary),  # Vary (Subtle)
    "strong": ("🌀", discord.ButtonStyle.secondary),  # Vary (Strong)
    "upscale": ("⬆️", discord.ButtonStyle.secondary),
    "edit": ("✏️", discord.ButtonStyle.secondary),
    "info": ("ℹ️", discord.ButtonStyle.secondary),
    "delete": ("🗑️", discord.ButtonStyle.danger),
    "retry": ("🔄", discord.ButtonStyle.primary),
    "zoom15": ("🔍", discord.ButtonStyle.secondary),  # Zoom out 1.5×
    "zoom2": ("🔭", discord.ButtonStyle.secondary),  # Zoom out 2×
    "prompt": ("🖌️", discord.ButtonStyle.primary),  # draw /describe's suggestion n
}


def button_label(lang: str, name: str) -> str:
    return catalogs().get(lang, f"button.{name}")[:80]
PER_IMAGE = {"vary": "V", "strong": "S", "upscale": "U", "zoom2": "Z"}
MAX_PER_IMAGE_BUTTONS = 5  # one row each for V, S, U and Z (Discord: 5 rows of 5)
SINGLE_IMAGE = ("vary", "strong", "upscale", "zoom15", "zoom2")


class SDView(discord.ui.View):
    """Base view: errors in callbacks go through the same central reporting."""

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, item: discord.ui.Item[Any], /) -> None:
        await report_error(interaction, error, where=f"button {getattr(item, 'custom_id', item)!s}")


class SDModal(discord.ui.Modal):
    """Base modal: errors in on_submit go through the same central reporting."""

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:
        await report_error(interaction, error, where=f"modal {self.custom_id}")


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"sdcord:cancel:(?P<job>{JOB_ID})"):
    """Cancel a queued or running job: the requester, or anyone with Manage Messages."""

    def __init__(self, job_id: str, lang: str = DEFAULT) -> None:
        super().__init__(discord.ui.Button(label=button_label(lang, "cancel"), style=discord.ButtonStyle.secondary,
                                           emoji="✖️", custom_id=f"sdcord:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[SDBot]) -> None:
        try:
            await interaction.client.actions.cancel(interaction, self.job_id)
        except Exception as exc:  # noqa: BLE001 - dynamic items bypass View.on_error
            await report_error(interaction, exc, where="button cancel")


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=rf"sdcord:(?P<action>{'|'.join(RESULT_ACTIONS)}):(?P<job>{JOB_ID})(?::(?P<index>\d))?"):
    """An action on a result message; whoever clicks starts it (same queue and limits as /draw).
    `index` picks one image of a batch (V1..V5, U1..U5)."""

    def __init__(self, action: str, job_id: str, index: int | None = None, *, row: int | None = None,
                 label: str | None = None, lang: str = DEFAULT) -> None:
        emoji, style = RESULT_ACTIONS[action]
        suffix = f":{index}" if index is not None else ""
        text = label or button_label(lang, action)
        super().__init__(discord.ui.Button(label=text, emoji=None if label else emoji,
                                           style=style, row=row, custom_id=f"sdcord:{action}:{job_id}{suffix}"))
        self.action = action
        self.job_id = job_id
        self.index = index

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> ResultButton:
        index = int(match["index"]) if match["index"] is not None else None
        return cls(match["action"], match["job"], index)

    async def callback(self, interaction: discord.Interaction[SDBot]) -> None:
        try:
            await interaction.client.actions.on_result_button(interaction, self.action, self.job_id, self.index or 0)
        except Exception as exc:  # noqa: BLE001 - dynamic items bypass View.on_error
            await report_error(interaction, exc, where=f"button {self.action}")


def cancel_view(job_id: str, lang: str = DEFAULT) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id, lang))
    return view


def failed_view(job_id: str, lang: str = DEFAULT, *, editable: bool = True) -> discord.ui.View:
    """A failed job's message: Retry (the same request, same seed) and Edit."""
    view = discord.ui.View(timeout=None)
    view.add_item(ResultButton("retry", job_id, row=0, lang=lang))
    if editable:
        view.add_item(ResultButton("edit", job_id, row=0, lang=lang))
    return view


def describe_view(job_id: str, count: int, lang: str = DEFAULT) -> discord.ui.View:
    """/describe's result: a button per suggestion (1..4) that draws it for whoever clicks, then Delete."""
    view = discord.ui.View(timeout=None)
    for k in range(count):
        view.add_item(ResultButton("prompt", job_id, k, row=0, label=f"🖌️ {k + 1}"))
    view.add_item(ResultButton("delete", job_id, row=1, lang=lang))
    return view


def result_view(job_id: str, images: int = 1, kind: str = "txt2img", lang: str = DEFAULT) -> discord.ui.View:
    """Reroll/Edit/Info/Delete, then Vary (Subtle), Vary (Strong), Upscale and Zoom out 1.5×/2× for one image;
    on a batch, a row each of V1.., S1.., U1.. and Z1.. (zoom out 2×). An upscaled image gets only Info and
    Delete."""
    view = discord.ui.View(timeout=None)
    if kind == "upscale":
        for action in ("info", "delete"):
            view.add_item(ResultButton(action, job_id, row=0, lang=lang))
        return view
    for action in ("reroll", "edit", "info", "delete"):
        view.add_item(ResultButton(action, job_id, row=0, lang=lang))
    if images <= 1:
        for action in SINGLE_IMAGE:
            view.add_item(ResultButton(action, job_id, 0, row=1, lang=lang))
    else:
        for row, action in enumerate(PER_IMAGE, start=1):
            for k in range(min(images, MAX_PER_IMAGE_BUTTONS)):
                view.add_item(ResultButton(action, job_id, k, row=row, label=f"{PER_IMAGE[action]}{k + 1}"))
    return view
