"""Persistent components: the job id lives in each custom id (≤ 100 characters), and the items are
registered once with `add_dynamic_items`, so every button keeps working after a restart."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from .discord_bot import SDBot

__all__ = ["CancelButton", "ResultButton", "cancel_view", "result_view", "RESULT_ACTIONS"]

JOB_ID = r"[0-9a-f]{8}"

# action -> (label, emoji, style)
RESULT_ACTIONS: dict[str, tuple[str, str, discord.ButtonStyle]] = {
    "reroll": ("Reroll", "🔁", discord.ButtonStyle.primary),
    "info": ("Info", "ℹ️", discord.ButtonStyle.secondary),
    "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
}


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"sdcord:cancel:(?P<job>{JOB_ID})"):
    """Cancel a queued or running job: the requester, or anyone with Manage Messages."""

    def __init__(self, job_id: str) -> None:
        super().__init__(discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary, emoji="✖️",
                                           custom_id=f"sdcord:cancel:{job_id}"))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[SDBot]) -> None:
        try:
            await self._cancel(interaction)
        except Exception as exc:  # noqa: BLE001 - dynamic items bypass View.on_error
            from .discord_bot import report_error

            await report_error(interaction, exc, where="button cancel")

    async def _cancel(self, interaction: discord.Interaction[SDBot]) -> None:
        engine = interaction.client.engine
        job = engine.scheduler.jobs.get(self.job_id) if engine else None
        if job is None or job.is_final:
            await interaction.response.send_message("This job has already ended.", ephemeral=True)
            return
        if interaction.user.id != job.user_id and not interaction.permissions.manage_messages:
            await interaction.response.send_message(
                "Only the person who started this job, or someone with Manage Messages, can cancel it.",
                ephemeral=True)
            return
        await interaction.response.defer()  # the job's message shows "Cancelled" once it is
        await engine.scheduler.cancel(job, by=interaction.user.id)


class ResultButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                   template=rf"sdcord:(?P<action>{'|'.join(RESULT_ACTIONS)}):(?P<job>{JOB_ID})"):
    """An action on a result message; whoever clicks starts it (same queue and limits as /draw)."""

    def __init__(self, action: str, job_id: str) -> None:
        label, emoji, style = RESULT_ACTIONS[action]
        super().__init__(discord.ui.Button(label=label, emoji=emoji, style=style,
                                           custom_id=f"sdcord:{action}:{job_id}"))
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> ResultButton:
        return cls(match["action"], match["job"])

    async def callback(self, interaction: discord.Interaction[SDBot]) -> None:
        from . import actions  # the actions need the delivery, which needs these views
        from .discord_bot import report_error

        try:
            await actions.on_result_button(interaction, self.action, self.job_id)
        except Exception as exc:  # noqa: BLE001 - dynamic items bypass View.on_error
            await report_error(interaction, exc, where=f"button {self.action}")


def cancel_view(job: Any) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id))
    return view


def result_view(job_id: str, images: int = 1) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in RESULT_ACTIONS:
        view.add_item(ResultButton(action, job_id))
    return view
