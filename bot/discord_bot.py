"""The Discord side: the bot class, central error handling, command sync.

This module and the views wire the engine (config, WebUI client, payload, PNG) to Discord.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from .config import Settings
from .engine import DrawEngine
from .payload import OptionError
from .scheduler import Refused
from .views import CancelButton, ResultButton
from .webui import WebUIError

if TYPE_CHECKING:
    from .delivery import JobMessage

__all__ = ["SDBot", "SDTree", "EngineCogMixin", "SDView", "SDModal", "report_error", "new_error_id", "use_discord_endpoints"]

log = logging.getLogger(__name__)

INITIAL_EXTENSIONS = ("cogs.generate", "cogs.actions", "cogs.info", "cogs.admin", "cogs.prefs")
SCHEMA_HASH_FILE = "command-schema.sha256"


def new_error_id() -> str:
    return secrets.token_hex(4)


def use_discord_endpoints(api_base: str, gateway_url: str) -> None:
    """Point discord.py at another Discord (the project's fake, in tests). Empty strings: no change."""
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
        url = yarl.URL(api_base)
        discord.asset.Asset.BASE = str(url.origin())
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


async def _tell_user(interaction: discord.Interaction[Any], content: str, *, private: bool = False) -> None:
    """Tell the user about an error, whatever state the interaction is in.

    Not yet answered: an ephemeral reply. Deferred with a public "thinking…": that message becomes
    the error, so an accepted job never hangs (with `private`, it is removed and the reason sent
    ephemerally instead). Otherwise: an ephemeral follow-up.
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
    except discord.HTTPException as exc:
        log.warning("Could not tell the user about an error: %s", exc)


async def report_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str = "") -> None:
    """The one place errors become a short ephemeral message (with an error id) and a log entry."""
    original = getattr(error, "original", error)
    error_id = new_error_id()
    private = False
    command = where or (interaction.command.qualified_name if interaction.command else "interaction")
    who = f"user={interaction.user.id} guild={interaction.guild_id} channel={interaction.channel_id}"
    if isinstance(original, OptionError):
        log.info("[%s] /%s refused bad options (%s): %s", error_id, command, who, original)
        message, private = str(original), True
    elif isinstance(original, Refused):
        log.info("[%s] /%s refused by the %s limit (%s)", error_id, command, original.limit, who)
        retry_at = discord.utils.utcnow() + dt.timedelta(seconds=original.retry_in)
        message, private = f"⏳ {original.message} Try again {discord.utils.format_dt(retry_at, 'R')}.", True
    elif isinstance(original, WebUIError):
        log.warning("[%s] /%s WebUI error (%s): %s | %s", error_id, command, who, original.message, original.detail)
        message = f"{original.message} (error id `{error_id}`)"
    elif isinstance(error, app_commands.MissingPermissions):
        log.info("[%s] /%s refused: missing permissions (%s)", error_id, command, who)
        message = "You need the " + ", ".join(p.replace("_", " ").title() for p in error.missing_permissions) + \
            " permission to do that."
    elif isinstance(error, app_commands.CheckFailure):
        log.info("[%s] /%s check failed (%s): %s", error_id, command, who, error)
        message = str(error) or "You can't use that here."
    else:
        log.error("[%s] /%s failed (%s)", error_id, command, who, exc_info=original)
        message = f"Something went wrong on our side (error id `{error_id}`). The details are in the bot's log."
    await _tell_user(interaction, message[:1990], private=private)


class SDTree(app_commands.CommandTree["SDBot"]):
    async def on_error(self, interaction: discord.Interaction[SDBot], error: app_commands.AppCommandError, /) -> None:
        await report_error(interaction, error)


class SDView(discord.ui.View):
    """Base view: errors in callbacks go through the same central reporting."""

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, item: discord.ui.Item[Any], /) -> None:
        await report_error(interaction, error, where=f"button {getattr(item, 'custom_id', item)!s}")


class SDModal(discord.ui.Modal):
    """Base modal: errors in on_submit go through the same central reporting."""

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:
        await report_error(interaction, error, where=f"modal {self.custom_id}")


class EngineCogMixin:
    """What every sdcord cog needs: the bot, its engine, and autocomplete choices from the catalogue."""

    bot: SDBot

    @property
    def engine(self) -> DrawEngine:
        assert self.bot.engine is not None, "the engine is created in setup_hook"
        return self.bot.engine

    async def _choices(self, kind: Any, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=v) for n, v in await self.engine.catalogue.choices(kind, current)]


class SDBot(commands.Bot):
    """Owns the WebUI clients (created in setup_hook, closed in close) and loads the cogs."""

    def __init__(self, settings: Settings) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # guild and channel caches
        intents.guild_messages = True  # our own message events (cache, deletes)
        intents.guild_reactions = True  # reaction controls
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),  # prompts are echoed: never ping anyone by default
            tree_cls=SDTree,
            help_command=None,
        )
        self.settings = settings
        self.engine: DrawEngine | None = None
        self.job_messages: set[JobMessage] = set()  # jobs whose Discord message is being kept current
        self._shutdown: asyncio.Future[None] | None = None
        self.synced = False

    async def setup_hook(self) -> None:
        self.engine = DrawEngine(self.settings)
        await self.engine.start()  # job store, backend workers, and a warm autocomplete cache
        self.add_dynamic_items(CancelButton, ResultButton)
        for ext in INITIAL_EXTENSIONS:
            await self.load_extension(ext)
        await self.sync_commands()

    def command_schema(self) -> list[dict[str, Any]]:
        return [cmd.to_dict(self.tree) for cmd in self.tree.get_commands()]

    async def sync_commands(self) -> None:
        """Guild ids configured: sync there (instant). Else: sync globally only when the schema changed."""
        if self.settings.guild_ids:
            for gid in self.settings.guild_ids:
                guild = discord.Object(gid)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            log.info("Synced commands to %d guild(s)", len(self.settings.guild_ids))
        else:
            digest = hashlib.sha256(json.dumps(self.command_schema(), sort_keys=True).encode()).hexdigest()
            path: Path = self.settings.data_dir / SCHEMA_HASH_FILE
            if await asyncio.to_thread(_read_or_empty, path) == digest:
                log.info("Command schema unchanged since the last sync; not syncing")
            else:
                await self.tree.sync()
                await asyncio.to_thread(_write, path, digest)
                log.info("Command schema changed; synced commands globally")
        self.synced = True

    async def on_ready(self) -> None:
        log.info("Logged in as %s (id %s) in %d guild(s)", self.user, getattr(self.user, "id", "?"), len(self.guilds))

    async def close(self) -> None:
        """Stop the engine first (unfinished jobs end with a clear message), let live job messages
        post that, then disconnect from Discord. Safe to call more than once, also concurrently
        (a signal handler and `async with` both close)."""
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._close_once())
        await asyncio.shield(self._shutdown)

    async def _close_once(self) -> None:
        try:
            if self.engine is not None:
                await self.engine.scheduler.close()
                pending = [jm.finished.wait() for jm in self.job_messages]
                if pending:
                    await asyncio.wait([asyncio.ensure_future(p) for p in pending], timeout=5)
        finally:
            try:
                await super().close()
            finally:
                if self.engine is not None:
                    await self.engine.close()


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
