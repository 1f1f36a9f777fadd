"""Command line: `sdcord` runs the bot; `sdcord worker`, `sdcord --demo`, `sdcord demo-webui`, `sdcord doctor`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .config import Settings, load_dotenv_file, load_settings
from .errors import ConfigError

log = logging.getLogger("sdcord")

DEMO_STEP_DELAY = 0.05  # seconds per step: 20 steps feel like a (fast) real GPU


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sdcord", description="A Discord bot in front of a Stable Diffusion WebUI.")
    p.add_argument(
        "command", nargs="?", default="run", choices=("run", "worker", "demo-webui", "doctor"),
        help="run the bot (default); worker: run WEBUI_URL's backends for the shared queue (DATABASE_URL), "
             "no gateway; run the demo WebUI alone; or check the configuration and the WebUI",
    )
    p.add_argument("--demo", action="store_true", help="run: use a built-in demo WebUI instead of WEBUI_URL (no GPU)")
    p.add_argument("--host", default="127.0.0.1", help="demo-webui: address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="demo-webui: port (default 7860)")
    p.add_argument("--step-delay", type=float, default=DEMO_STEP_DELAY,
                   help=f"demo: seconds per sampling step (default {DEMO_STEP_DELAY})")
    p.add_argument("--kind", choices=("webui", "form"), default="webui",
                   help="demo-webui and --demo: webui (the A1111 API, default) or form (a form-encoded API server, "
                        "WEBUI_URL=form+http://host:port)")
    p.add_argument("--extension", action="append", choices=("adetailer",), default=[], metavar="NAME",
                   help="demo-webui and --demo: install a demo WebUI extension (repeatable): adetailer")
    return p


def _plain_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)-8s %(name)s: %(message)s")


def _settings_or_exit(*, require_token: bool) -> Settings:
    try:
        return load_settings(require_token=require_token)
    except ConfigError as exc:
        print("sdcord: the configuration has problems:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        raise SystemExit(2) from None


async def run_demo_webui(host: str, port: int, step_delay: float, kind: str = "webui",
                         extensions: tuple[str, ...] = ()) -> None:
    from .demo import DemoConfig, serve

    what = "Demo form API server" if kind == "form" else "Demo WebUI"
    log.info("%s listening on http://%s:%d (Ctrl+C to stop)", what, host, port)
    await serve(host, port, DemoConfig(step_delay=step_delay, kind=kind,  # type: ignore[arg-type]
                                       extensions=extensions))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    load_dotenv_file()
    if args.command == "doctor":
        from .doctor import doctor

        raise SystemExit(asyncio.run(doctor()))
    if args.command == "demo-webui":
        _plain_logging("INFO")
        try:
            asyncio.run(run_demo_webui(args.host, args.port, args.step_delay, args.kind, tuple(args.extension)))
        except KeyboardInterrupt:
            pass
        return
    settings = _settings_or_exit(require_token=True)
    if args.command == "worker" and not (settings.database_url and settings.webui_given):
        print("sdcord worker: needs DATABASE_URL (the shared PostgreSQL) and WEBUI_URL (the backends it runs)",
              file=sys.stderr)
        raise SystemExit(2)
    from bot.discord_app.run import run_bot, setup_logging  # only the bot itself needs discord.py

    setup_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "worker":
            from bot.discord_app.worker import run_worker

            asyncio.run(run_worker(settings))
        else:
            asyncio.run(run_bot(settings, demo=args.demo, step_delay=args.step_delay, kind=args.kind,
                                extensions=tuple(args.extension)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
