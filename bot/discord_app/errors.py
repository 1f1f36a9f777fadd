"""The one place errors become a short private message (with an error id) and a log entry."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from typing import Any

import discord
from discord import app_commands

from bot.errors import JobFailed, OptionError, Refused, StorageError, WebUIError

from .catalog import catalogs, lang_of

__all__ = ["new_error_id", "report_error", "tell_user"]

log = logging.getLogger(__name__)


def new_error_id() -> str:
    return secrets.token_hex(4)


async def tell_user(interaction: discord.Interaction[Any], content: str, *, private: bool = False) -> None:
    """Tell the user about an error, whatever state the interaction is in.

    Not yet answered: an ephemeral reply. Deferred with a public "thinking…": that message becomes
    the error, so an accepted job never hangs (with `private`, it is removed and the reason sent
    ephemerally instead). Otherwise: an ephemeral follow-up. Never raises: the bot may be closing.
    """
    if interaction.type is discord.InteractionType.autocomplete:
        return  # autocomplete can't carry a message
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(content, ephemeral=True)
        elif interaction.is_expired():
            log.warning("Interaction expired before the error could be shown")
        elif interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            if private:
                await interaction.delete_original_response()
                await interaction.followup.send(content, ephemeral=True)
            else:
                await interaction.edit_original_response(content=f"❌ {content}", attachments=[], view=None)
        else:
            await interaction.followup.send(content, ephemeral=True)
    except (discord.HTTPException, discord.ClientException, RuntimeError) as exc:
        log.warning("Could not tell the user about an error: %s", exc)


async def report_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str = "") -> None:
    """Turn any error of a command, button or modal into one short message, in the user's language, and one
    log entry with the detail and the error id."""
    original = getattr(error, "original", error)
    error_id = new_error_id()
    lang = lang_of(interaction)
    books = catalogs()
    private = False
    command = where or (interaction.command.qualified_name if interaction.command else "interaction")
    who = f"user={interaction.user.id} guild={interaction.guild_id} channel={interaction.channel_id}"
    if isinstance(original, OptionError):
        log.info("[%s] /%s refused bad options (%s): %s", error_id, command, who, original)
        message, private = books.join(lang, original.problems), True
    elif isinstance(original, Refused):
        log.info("[%s] /%s refused by the %s limit (%s)", error_id, command, original.limit, who)
        message, private = refusal_text(lang, original), True
    elif isinstance(original, WebUIError | JobFailed | StorageError):
        log.warning("[%s] /%s %s (%s): %s | %s", error_id, command, type(original).__name__, who, original.message,
                    original.detail)
        message = books.get(lang, "error.with_id", reason=original.message, error_id=error_id)
        private = isinstance(original, StorageError)  # about this command only (the database is unreachable)
    elif isinstance(error, app_commands.MissingPermissions):
        log.info("[%s] /%s refused: missing permissions (%s)", error_id, command, who)
        names = ", ".join(books.get(lang, f"permission.{p}") for p in error.missing_permissions)
        message = books.get(lang, "error.missing_permissions", permissions=names)
    elif isinstance(error, app_commands.CheckFailure):
        log.info("[%s] /%s check failed (%s): %s", error_id, command, who, error)
        message = books.get(lang, "error.not_here")
    else:
        log.error("[%s] /%s failed (%s)", error_id, command, who, exc_info=original)
        message = books.get(lang, "error.internal", error_id=error_id)
    await tell_user(interaction, message[:1990], private=private)


def refusal_text(lang: str, refused: Refused) -> str:
    """A limit's refusal: why, and when to try again (a Discord timestamp, shown in the reader's time zone)."""
    retry_at = discord.utils.utcnow() + dt.timedelta(seconds=refused.retry_in)
    return "⏳ " + catalogs().get(lang, "refuse.try_again", reason=refused.message,
                                  when=discord.utils.format_dt(retry_at, "R"))
