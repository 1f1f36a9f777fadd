"""Run the real sdcord bot in-process against the fake Discord and a demo WebUI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord

from bot.config import Settings
from bot.core.engine import Engine
from bot.discord_app.bot import SDBot, use_discord_endpoints


@contextlib.contextmanager
def discord_endpoints(fake: Any) -> Any:
    """Point discord.py at the fake for the duration, then restore."""
    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE)
    use_discord_endpoints(fake.api_base, fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE = saved


def bot_settings(fake: Any, webui_url: str, data_dir: Path, **overrides: Any) -> Settings:
    base = Settings(
        discord_token=fake.token,
        webui_url=webui_url,
        guild_ids=(fake.guild.id,),
        data_dir=data_dir,
        discord_api_base=fake.api_base,
        discord_gateway_url=fake.gateway_url,
    )
    return dataclasses.replace(base, **overrides)


def has_images(m: Any) -> bool:
    """A fake Discord message that shows a job's result: its images (not a live preview), no progress."""
    return m is not None and any(not a.filename.startswith("preview") for a in m.attachments) and \
        "%" not in m.content


def button(message: Any, action: str) -> str:
    """The custom id of the `action` button (reroll, retry, ...) on a fake Discord message."""
    for row in message.components:
        for item in row.get("components", []):
            if str(item.get("custom_id", "")).startswith(f"sdcord:{action}:"):
                return str(item["custom_id"])
    raise AssertionError(f"no {action} button on {message.content!r}")


async def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_bot(fake: Any, settings: Settings) -> AsyncIterator[SDBot]:
    """Start SDBot, wait until its commands are synced and its gateway session is ready."""
    with discord_endpoints(fake):
        bot = SDBot(settings, Engine(settings))
        # discord.py waits 2 s after the last GUILD_CREATE before on_ready; the fake sends them at once.
        # Waiting for ready (quickly) means closing never races discord.py's own ready timer.
        bot._connection.guild_ready_timeout = 0.05  # noqa: SLF001 - test speed only
        task = asyncio.create_task(bot.start(settings.discord_token or ""))
        try:
            await wait_until(lambda: bot.synced or task.done(), timeout=15)
            if task.done():
                task.result()  # raise the start-up failure
            await wait_until(lambda: bot.get_guild(fake.guild.id) is not None or task.done(), timeout=15)
            await asyncio.wait_for(bot.wait_until_ready(), 15)
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)


def results(message: Any) -> list[Any]:
    return [a for a in (message.attachments if message else []) if not a.filename.removeprefix("SPOILER_").startswith(
        "preview")]


def said(message: Any, text: str) -> bool:
    """Whether the message ever showed `text` (its current content or any edit)."""
    if message is None:
        return False
    return text in message.content or any(text in (payload.get("content") or "") for _, payload in message.edits)
