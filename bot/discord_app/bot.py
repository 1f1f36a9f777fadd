"""The bot class: it is given the engine, loads the cogs, syncs commands, restores job messages at
start, and shuts down without losing a job."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.config import Settings
from bot.core.engine import Engine

from .actions import Actions
from .catalog import catalogs, lang_of
from .components import CancelButton, ResultButton
from .delivery import Deliveries
from .errors import report_error
from .history import HistoryPageButton, HistoryRerunButton
from .i18n import CommandTranslator
from .render import say

__all__ = ["ClosesWithoutLoss", "EngineCogMixin", "SDBot", "SDTree", "ShardedSDBot", "count_api_errors", "make_bot", "stop_jobs",
           "use_discord_endpoints"]

log = logging.getLogger(__name__)

INITIAL_EXTENSIONS = ("cogs.generate", "cogs.actions", "cogs.info", "cogs.admin", "cogs.prefs", "cogs.help",
                      "cogs.history")
SCHEMA_HASH_FILE = "command-schema.sha256"
DELIVERY_WAIT = 5.0  # seconds at shutdown to post what has ended and tell the rest


def use_discord_endpoints(api_base: str, gateway_url: str) -> None:
    """Point discord.py at another Discord (the project's fake, in tests). Empty strings: no change."""
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
        url = yarl.URL(api_base)
        discord.asset.Asset.BASE = str(url.origin())
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class SDTree(app_commands.CommandTree["SDBot"]):
    async def interaction_check(self, interaction: discord.Interaction[SDBot], /) -> bool:
        return not interaction.client.closing_down or await _refuse_while_closing(interaction)

    async def on_error(self, interaction: discord.Interaction[SDBot], error: app_commands.AppCommandError, /) -> None:
        await report_error(interaction, error)


async def _refuse_while_closing(interaction: discord.Interaction[Any]) -> bool:
    if interaction.type is discord.InteractionType.autocomplete:
        return False  # no message can answer an autocomplete
    try:
        await interaction.response.send_message(say(lang_of(interaction), "refuse.restarting_now"), ephemeral=True)
    except discord.HTTPException:
        pass
    return False


class EngineCogMixin:
    """What every sdcord cog needs: the bot, its engine, and autocomplete choices from the catalogue."""

    bot: SDBot

    @property
    def engine(self) -> Engine:
        return self.bot.engine

    async def _choices(self, kind: Any, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=v) for n, v in await self.engine.catalogue.choices(kind, current)]


class ClosesWithoutLoss:
    """`close` for a client that runs the engine (the bot, a worker): take nothing new, give running jobs
    SHUTDOWN_GRACE seconds, leave the rest queued (their messages say so), deliver what ended, then
    disconnect and close the engine. Safe to call more than once, also concurrently (a signal handler and
    `async with` both close)."""

    engine: Engine
    deliveries: Deliveries
    settings: Settings
    closing_down: bool
    _engine_started: bool
    _shutdown: asyncio.Future[None] | None

    async def close(self) -> None:
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._close_once())
        await asyncio.shield(self._shutdown)

    async def _close_once(self) -> None:
        self.closing_down = True
        try:
            if self._engine_started:
                await stop_jobs(self.engine, self.deliveries, self.settings.shutdown_grace)
        finally:
            try:
                await super().close()  # type: ignore[misc]
            finally:
                await self.engine.close()  # a shared queue: hands what is left to the other processes


class SDBot(ClosesWithoutLoss, commands.Bot):
    """Owns nothing but the Discord side: the engine is given to it and started in setup_hook."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
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
            # Nothing reads discord.py's message cache (buttons carry their message, reactions are raw
            # events); its default 1,000 messages with components cost ~9 KB each (bench/overhead.py).
            max_messages=None,
            # Every command works wherever a user is: servers with the bot, servers where they installed the
            # app for themselves, the bot's DM and group DMs (/settings narrows itself to servers).
            allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
            allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
            **_shard_options(settings),
        )
        self.settings = settings
        self.engine = engine
        self._count_api_errors()
        self.actions = Actions(self)
        self.deliveries = Deliveries(self)
        self.closing_down = False
        self._shutdown: asyncio.Future[None] | None = None
        self._engine_started = False
        self.synced = False

    def _count_api_errors(self) -> None:
        count_api_errors(self, self.engine)

    async def setup_hook(self) -> None:
        await asyncio.to_thread(catalogs)  # every word: the .po files are read once, off the event loop
        self.engine.followers.append(self.deliveries.follow)  # jobs adopted from a process that stopped
        await self.engine.start()  # job store (the queue is rebuilt from it), backend workers, warm catalogue
        self._engine_started = True
        for job in self.engine.restored:  # bring every job's message up to date; deliver what ended
            self.deliveries.follow(job)
        self.add_dynamic_items(CancelButton, ResultButton, HistoryPageButton, HistoryRerunButton)
        for ext in INITIAL_EXTENSIONS:
            await self.load_extension(ext)
        await self.tree.set_translator(CommandTranslator(catalogs()))  # names and descriptions in every language
        if not self.settings.shard_ids or 0 in self.settings.shard_ids:  # one cluster of a sharded bot syncs
            await self.sync_commands()

    async def command_schema(self) -> list[dict[str, Any]]:
        """What a sync sends, translations included (a changed translation must reach Discord too)."""
        translator = self.tree.translator
        out = []
        for kind in (discord.AppCommandType.chat_input, discord.AppCommandType.message, discord.AppCommandType.user):
            for cmd in self.tree.get_commands(type=kind):
                out.append(await cmd.get_translated_payload(self.tree, translator) if translator
                           else cmd.to_dict(self.tree))
        return out

    async def sync_commands(self) -> None:
        """Guild ids configured: sync there (instant). Else: sync globally only when the schema changed."""
        if self.settings.guild_ids:
            for gid in self.settings.guild_ids:
                guild = discord.Object(gid)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            log.info("Synced commands to %d guild(s)", len(self.settings.guild_ids))
        else:
            digest = hashlib.sha256(json.dumps(await self.command_schema(), sort_keys=True).encode()).hexdigest()
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

class ShardedSDBot(SDBot, commands.AutoShardedBot):
    """SHARD_COUNT / SHARD_IDS: this process is one cluster of a sharded bot (its shards' gateways)."""


def make_bot(settings: Settings, engine: Engine) -> SDBot:
    return ShardedSDBot(settings, engine) if settings.shard_count else SDBot(settings, engine)


def _shard_options(settings: Settings) -> dict[str, Any]:
    if not settings.shard_count:
        return {}
    return {"shard_count": settings.shard_count,
            "shard_ids": list(settings.shard_ids) if settings.shard_ids is not None else None}


def count_api_errors(client: discord.Client, engine: Engine) -> None:
    """Every failed Discord REST call counts in sdcord_discord_api_errors_total (by HTTP status)."""
    request = client.http.request
    metrics = engine.metrics

    async def counted(route: Any, **kwargs: Any) -> Any:
        try:
            return await request(route, **kwargs)
        except discord.HTTPException as exc:
            metrics.discord_error(exc.status)
            raise

    client.http.request = counted  # type: ignore[method-assign]


async def stop_jobs(engine: Engine, deliveries: Deliveries, grace: float) -> None:
    """Take nothing new; give running jobs `grace` seconds; leave the rest queued (their messages say so);
    deliver what ended."""
    engine.pause()
    if grace > 0 and engine.scheduler.running():
        log.info("Waiting up to %g s for %d running job(s)", grace, len(engine.scheduler.running()))
        await engine.wait_running(grace)
    await engine.stop()  # what still runs stays "running" in the store: it runs again at start
    await deliveries.shutdown(DELIVERY_WAIT)


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
