"""`sdcord worker`: no gateway. It runs the shared queue's jobs (DATABASE_URL) on the backends in its own
WEBUI_URL, and keeps their messages current and delivers their results through Discord's REST API with
DISCORD_TOKEN (the interaction's webhook while its token is valid, then the channel), exactly as a
gateway does. Run one beside each GPU."""

from __future__ import annotations

import asyncio
import logging
import signal

import discord

from bot.config import Settings
from bot.core.engine import Engine

from .bot import ClosesWithoutLoss, count_api_errors
from .catalog import catalogs
from .delivery import Deliveries

__all__ = ["WorkerClient"]

log = logging.getLogger(__name__)


class WorkerClient(ClosesWithoutLoss, discord.Client):
    """Discord's REST API only (`login`, never `connect`): job messages and results."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        super().__init__(intents=discord.Intents.none(), allowed_mentions=discord.AllowedMentions.none(),
                         max_messages=None)
        self.settings = settings
        self.engine = engine
        count_api_errors(self, engine)
        self.deliveries = Deliveries(self)  # type: ignore[arg-type]
        self.closing_down = False
        self._engine_started = False
        self._shutdown: asyncio.Future[None] | None = None

    async def setup_hook(self) -> None:
        await asyncio.to_thread(catalogs)
        self.engine.followers.append(self.deliveries.follow)  # every job it claims or adopts
        await self.engine.start()
        self._engine_started = True
        log.info("Worker running %d backend(s) of the shared queue", len(self.engine.clients))



async def run_worker(settings: Settings) -> None:
    from .run import login_or_exit, prepare_process

    prepare_process(settings)
    client = WorkerClient(settings, Engine(settings, gateway=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, lambda s=sig: (log.info("Received %s; stopping the worker", s.name),
                                                        stop.set()))
        except NotImplementedError:  # pragma: no cover - Windows
            pass
    log.info("Starting sdcord worker; backends at %s", settings.webui_display_url)
    try:
        await login_or_exit(client, settings)
        await stop.wait()
    finally:
        await client.close()
    log.info("sdcord worker stopped")
