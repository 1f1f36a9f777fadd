"""`sdcord` (the `run` command): the engine, the bot, signals, and a shutdown that loses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import socket

import aiohttp
import discord
import orjson
import yarl

from bot.config import Settings
from bot.core.engine import Engine
from bot.core.generate import favour_event_loop_latency
from bot.errors import StorageError

from .bot import make_bot, use_discord_endpoints

__all__ = ["login_or_exit", "prepare_process", "run_bot", "setup_logging"]

log = logging.getLogger("sdcord")


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one JSON object per line (time, level, logger, message; the traceback as `exc`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(level: str, log_format: str = "text") -> None:
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        discord.utils.setup_logging(level=getattr(logging, level), root=True, handler=handler,
                                    formatter=handler.formatter)
    else:
        discord.utils.setup_logging(level=getattr(logging, level), root=True)
    logging.getLogger("discord.http").setLevel(logging.WARNING)  # its debug lines carry webhook URLs (tokens)
    logging.getLogger("discord.gateway").setLevel(logging.WARNING)
    logging.getLogger("discord.webhook").setLevel(logging.WARNING)


def _no_voice() -> None:
    """sdcord has no voice: discord.py need not warn at every start that PyNaCl and davey are missing."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


def _unreachable(exc: BaseException) -> str:
    """Why Discord could not be reached, in a few words (no traceback)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return f"the DNS lookup of {exc.host} failed ({os_error.strerror or os_error})"
        if isinstance(os_error, ConnectionRefusedError):
            return f"the connection to {exc.host}:{exc.port} was refused"
        if isinstance(exc, aiohttp.ClientSSLError):
            return f"TLS with {exc.host} failed ({os_error})"
        return f"{exc.host}:{exc.port}: {os_error.strerror or os_error}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def prepare_process(settings: Settings) -> None:
    favour_event_loop_latency()
    _no_voice()
    use_discord_endpoints(settings.discord_api_base, settings.discord_gateway_url)


async def login_or_exit(client: discord.Client, settings: Settings) -> None:
    """The first call to Discord, then our set-up (setup_hook); a clear line and exit 1 when it fails."""
    try:
        await client.login(settings.discord_token or "")
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:  # no network, DNS, refused, TLS
        where = yarl.URL(discord.http.Route.BASE).origin()
        log.error("Cannot reach Discord (%s): %s; check the network", where, _unreachable(exc))
        raise SystemExit(1) from None
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal")
        raise SystemExit(1) from None
    except StorageError as exc:
        log.error("Cannot start: %s", exc.detail)
        raise SystemExit(1) from None


async def run_bot(settings: Settings, *, demo: bool = False, step_delay: float = 0.05, kind: str = "webui",
                  extensions: tuple[str, ...] = ()) -> None:
    prepare_process(settings)
    demo_server = None
    if demo:
        from bot.demo import DemoConfig, DemoFormServer, DemoWebUI

        if kind == "form":  # a form API server instead of a WebUI
            form = DemoFormServer(DemoConfig(step_delay=step_delay, kind="form"))
            await form.start("127.0.0.1", 0)
            demo_server, url = form, form.backend_url
        else:
            demo_server = DemoWebUI(DemoConfig(step_delay=step_delay, extensions=extensions))
            url = await demo_server.start("127.0.0.1", 0)
        settings = dataclasses.replace(settings, webui_url=url, webui_auth=None, webui_given=True)
        log.info("Demo %s running at %s", "form API server" if kind == "form" else "WebUI", url)
    bot = make_bot(settings, Engine(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, lambda s=sig: (log.info("Received %s; shutting down", s.name),
                                                        loop.create_task(bot.close())))
        except NotImplementedError:  # pragma: no cover - Windows
            pass
    if settings.database_url and not settings.webui_given:
        log.info("Starting sdcord: a gateway of the shared queue (no backends in this process)")
    else:
        log.info("Starting sdcord; WebUI at %s", settings.webui_display_url)
    try:
        async with bot:
            await login_or_exit(bot, settings)
            await bot.connect()  # the gateway: discord.py retries a lost connection itself
    finally:
        # discord.py's `async with` stops waiting once Discord is closed; wait for the whole
        # shutdown (engine, job store, WebUI sessions) so nothing is cut off by asyncio.run.
        await bot.close()
        if demo_server is not None:
            await demo_server.stop()
    log.info("sdcord stopped")
