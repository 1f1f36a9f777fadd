"""Command line: `sdcord` runs the bot; `sdcord --demo`, `sdcord demo-webui`, `sdcord doctor`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys

from .config import ConfigError, Settings, load_dotenv_file, load_settings

log = logging.getLogger("sdcord")

DEMO_STEP_DELAY = 0.05  # seconds per step: 20 steps feel like a (fast) real GPU


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sdcord", description="A Discord bot in front of a Stable Diffusion WebUI.")
    p.add_argument(
        "command", nargs="?", default="run", choices=("run", "demo-webui", "doctor"),
        help="run the bot (default), run the demo WebUI alone, or check the configuration and the WebUI",
    )
    p.add_argument("--demo", action="store_true", help="run: use a built-in demo WebUI instead of WEBUI_URL (no GPU)")
    p.add_argument("--host", default="127.0.0.1", help="demo-webui: address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="demo-webui: port (default 7860)")
    p.add_argument("--step-delay", type=float, default=DEMO_STEP_DELAY,
                   help=f"demo: seconds per sampling step (default {DEMO_STEP_DELAY})")
    return p


def setup_logging(level: str) -> None:
    import discord

    discord.utils.setup_logging(level=getattr(logging, level), root=True)
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    logging.getLogger("discord.gateway").setLevel(logging.WARNING)


def _settings_or_exit(*, require_token: bool) -> Settings:
    try:
        return load_settings(require_token=require_token)
    except ConfigError as exc:
        print("sdcord: the configuration has problems:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        raise SystemExit(2) from None


async def run_bot(settings: Settings, *, demo: bool = False, step_delay: float = DEMO_STEP_DELAY) -> None:
    import discord

    from .discord_bot import SDBot, use_discord_endpoints
    from .engine import favour_event_loop_latency

    favour_event_loop_latency()
    use_discord_endpoints(settings.discord_api_base, settings.discord_gateway_url)
    demo_server = None
    if demo:
        from .demo_webui import DemoConfig, DemoWebUI

        demo_server = DemoWebUI(DemoConfig(step_delay=step_delay))
        url = await demo_server.start("127.0.0.1", 0)
        settings = dataclasses.replace(settings, webui_url=url, webui_auth=None)
        log.info("Demo WebUI running at %s", url)
    bot = SDBot(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, lambda s=sig: (log.info("Received %s; shutting down", s.name),
                                                        loop.create_task(bot.close())))
        except NotImplementedError:  # pragma: no cover - Windows
            pass
    log.info("Starting sdcord; WebUI at %s", settings.webui_display_url)
    try:
        async with bot:
            await bot.start(settings.discord_token or "")
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal")
        raise SystemExit(1) from None
    finally:
        # discord.py's `async with` stops waiting once Discord is closed; wait for the whole
        # shutdown (engine, job store, WebUI sessions) so nothing is cut off by asyncio.run.
        await bot.close()
        if demo_server is not None:
            await demo_server.stop()
    log.info("sdcord stopped")


async def run_demo_webui(host: str, port: int, step_delay: float) -> None:
    from .demo_webui import DemoConfig, serve

    log.info("Demo WebUI listening on http://%s:%d (Ctrl+C to stop)", host, port)
    await serve(host, port, DemoConfig(step_delay=step_delay))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    load_dotenv_file()
    if args.command == "doctor":
        from .doctor import doctor

        raise SystemExit(asyncio.run(doctor()))
    if args.command == "demo-webui":
        setup_logging("INFO")
        try:
            asyncio.run(run_demo_webui(args.host, args.port, args.step_delay))
        except KeyboardInterrupt:
            pass
        return
    settings = _settings_or_exit(require_token=True)
    setup_logging(settings.log_level)
    try:
        asyncio.run(run_bot(settings, demo=args.demo, step_delay=args.step_delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
