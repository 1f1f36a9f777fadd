"""Configuration: environment variables, else a `.env` found from the working directory.

The real environment always wins over `.env`. Every invalid value is reported (one line per
problem, naming the variable and what is expected) before start-up stops.
No Discord imports here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import ConfigError, ProblemsError

__all__ = ["Backend", "ConfigError", "ProblemsError", "Settings", "load_dotenv_file", "load_settings", "split_credentials"]

T = TypeVar("T")

# Hard limits that no configuration may exceed (the WebUI and Discord cannot go further).
ABS_MIN_SIDE = 64
ABS_MAX_SIDE = 2048
MAX_DAILY_LIMIT = 1_000_000  # DAILY_LIMIT and a server's daily limit
ABS_MAX_STEPS = 150
ABS_MAX_BATCH = 10  # Discord: at most 10 files per message
DEFAULT_UPLOAD_CAP = 25 * 1024 * 1024  # the most one Discord message carries without boosts; bounds downloads too
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True, slots=True)
class Backend:
    """One image server: its URL without credentials (`form+http(s)://…` for a form API server, the prefix
    kept), and the credentials to use (if any)."""

    url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    discord_token: str | None = field(default=None, repr=False)
    webui_url: str = field(default="http://127.0.0.1:7860", repr=False)  # may hold credentials
    webui_auth: tuple[str, str] | None = field(default=None, repr=False)
    guild_ids: tuple[int, ...] = ()
    data_dir: Path = Path("data")
    default_steps: int = 20
    default_sampler: str = "DPM++ 2M"
    default_scheduler: str = "Karras"
    default_width: int = 512
    default_height: int = 512
    default_negative_prompt: str = ""
    default_cfg_scale: float = 7.0
    default_model: str | None = None  # none: the WebUI's current model (servers may set one)
    max_steps: int = 50
    max_pixels: int = 1024 * 1024
    max_batch: int = 4
    log_level: str = "INFO"
    generation_timeout: float = 1800.0
    rate_limit: tuple[int, float] = (5, 60.0)  # jobs per seconds, per user
    max_queued_per_user: int = 3
    daily_limit: int = 0  # jobs per user per UTC day (0 = no daily limit); a server may set a tighter one
    backend_wait_limit: float = 600.0  # how long jobs wait when every backend is down
    max_input_image_bytes: int = 10 * 1024 * 1024  # img2img and /upscale attachments
    max_upscale_pixels: int = 4096 * 4096  # width x height of an /upscale result
    shutdown_grace: float = 30.0  # seconds running jobs get to finish when the bot is asked to stop
    job_retention: float = 300.0  # seconds a finished job stays in memory (benchmarks shorten it)
    # Where no server's /settings apply (DMs, group DMs, servers the bot isn't in: a user install)
    private_contexts: bool = True
    private_nsfw: str = "safe"  # "safe" (safety negative prompt + spoilers) | "off" | "refuse"
    metrics_port: int | None = None  # serve Prometheus /metrics there (None: off)
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"  # "text" | "json" (one object per line)
    # Scale-out (bot/core/shared.py): empty DATABASE_URL keeps everything in this process (SQLite)
    database_url: str | None = field(default=None, repr=False)  # postgresql://user:pass@host:port/db
    webui_given: bool = True  # WEBUI_URL was set: this process runs workers for those backends
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    lease_ttl: float = 15.0  # seconds a dead worker keeps its backends and jobs (LEASE_TTL)
    # Testing hooks: point discord.py at another Discord (the project's fake). Empty = discord.com.
    discord_api_base: str = ""
    discord_gateway_url: str = ""

    @property
    def max_download(self) -> int:
        """Largest image sdcord downloads from a form server: what it could upload, and what it takes in."""
        return min(DEFAULT_UPLOAD_CAP, self.max_input_image_bytes)

    @property
    def backends(self) -> tuple[Backend, ...]:
        """Every WebUI in WEBUI_URL; URL credentials win over WEBUI_AUTH."""
        out = []
        for piece in self.webui_url.split(","):
            if piece.strip():
                url, auth = split_credentials(piece.strip().rstrip("/"))
                out.append(Backend(url, auth or self.webui_auth))
        return tuple(out)

    @property
    def webui_display_url(self) -> str:
        """The WebUI URL(s) without credentials, safe to log and show."""
        return ", ".join(b.url for b in self.backends)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return (url without `user:pass@`, (user, pass) or None)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username), unquote(parts.password or ""))


def load_dotenv_file() -> Path | None:
    """Load `.env` searched from the working directory upwards; the real environment wins."""
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return None
    load_dotenv(path, override=False)
    return Path(path)


class _Reader:
    """Reads typed values from an environment mapping, collecting every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def get(
        self, name: str, default: T, parse: Callable[[str], T], expected: str, *, secret: bool = False
    ) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except (ValueError, TypeError):
            shown = "" if secret else f", got {_mask(value)!r}"
            self.problems.append(f"{name}: expected {expected}{shown}")
            return default

    def int_in(self, name: str, default: int, low: int, high: int) -> int:
        value = self.get(name, default, int, f"a whole number from {low} to {high}")
        if not low <= value <= high:
            self.problems.append(f"{name}: expected a whole number from {low} to {high}, got {value}")
            return default
        return value


def _mask(value: str) -> str:
    """Hide `user:pass@` credentials in a value (or a comma-separated list) before it is shown."""
    pieces = []
    for piece in value.split(","):
        if "@" in piece and "://" in piece:
            scheme, _, rest = piece.partition("://")
            piece = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        pieces.append(piece)
    return ",".join(pieces)


def _parse_url(value: str) -> str:
    parts = urlsplit(value)
    _ = parts.port  # raises ValueError for a port that is not a number
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    return value.rstrip("/")


FORM_PREFIX = "form+"  # form+http://host:port: a form-encoded Stable Diffusion API server (bot/webui/form.py)


def _parse_backend_url(value: str) -> str:
    """A WEBUI_URL entry: an http(s) URL (a WebUI) or form+http(s) (a form API server; the prefix is kept)."""
    if value[: len(FORM_PREFIX)].lower() == FORM_PREFIX:
        return FORM_PREFIX + _parse_url(value[len(FORM_PREFIX):])
    return _parse_url(value)


def _parse_urls(value: str) -> str:
    urls = [_parse_backend_url(piece.strip()) for piece in value.split(",") if piece.strip()]
    if not urls:
        raise ValueError(value)
    return ",".join(urls)


def _parse_database_url(value: str) -> str:
    parts = urlsplit(value)
    _ = parts.port  # raises ValueError for a port that is not a number
    if parts.scheme not in ("postgresql", "postgres") or not (parts.hostname or "host=" in parts.query):
        raise ValueError(value)
    return value


def _parse_rate(value: str) -> tuple[int, float]:
    jobs, sep, seconds = value.partition("/")
    count, period = int(jobs.strip()), float(seconds.strip())
    if not sep or count < 1 or not period > 0:
        raise ValueError(value)
    return count, period


def _parse_auth(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise ValueError(value)
    return user, password


def _parse_ids(value: str) -> tuple[int, ...]:
    ids = []
    for piece in value.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if not piece.isdigit():
            raise ValueError(piece)
        ids.append(int(piece))
    return tuple(ids)


def _parse_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise ValueError(value)
    return level


def _parse_positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _choice(*allowed: str) -> Any:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError(value)
        return value

    return parse


def _parse_seconds_or_zero(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 3600:
        raise ValueError(value)
    return number


def load_settings(env: Mapping[str, str] | None = None, *, require_token: bool = True) -> Settings:
    """Build Settings from `env` (default: os.environ). Raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    r = _Reader(env)
    d = Settings()

    token = r.raw("DISCORD_TOKEN")
    if require_token and not token:
        r.problems.append("DISCORD_TOKEN: required; the bot token from the Discord developer portal")

    url = r.get("WEBUI_URL", d.webui_url, _parse_urls,
                "http:// or https:// URL(s), comma-separated, such as http://127.0.0.1:7860 "
                "(form+http://host:port for a form-encoded API server)")
    auth = r.get("WEBUI_AUTH", None, _parse_auth, "user:password", secret=True)
    rate = r.get("RATE_LIMIT", d.rate_limit, _parse_rate, "jobs/seconds per user, such as 5/60")
    max_queued = r.int_in("MAX_QUEUED_PER_USER", d.max_queued_per_user, 1, 100)
    daily_limit = r.int_in("DAILY_LIMIT", d.daily_limit, 0, MAX_DAILY_LIMIT)
    input_mb = r.int_in("MAX_INPUT_IMAGE_MB", d.max_input_image_bytes // (1024 * 1024), 1, 100)
    upscale_pixels = r.int_in("MAX_UPSCALE_PIXELS", d.max_upscale_pixels, ABS_MIN_SIDE * ABS_MIN_SIDE,
                              8192 * 8192)
    wait_limit = r.get("BACKEND_WAIT_LIMIT", d.backend_wait_limit, _parse_positive_float,
                       "a number of seconds above 0")
    retention = r.get("SDCORD_JOB_RETENTION", d.job_retention, _parse_positive_float, "a number of seconds above 0")
    grace = r.get("SHUTDOWN_GRACE", d.shutdown_grace, _parse_seconds_or_zero, "a number of seconds from 0 to 3600")
    private = r.get("PRIVATE_CONTEXTS", "on", _choice("on", "off"), "on or off") == "on"
    private_nsfw = r.get("PRIVATE_NSFW", d.private_nsfw, _choice("safe", "off", "refuse"), "safe, off or refuse")
    metrics_port = r.int_in("METRICS_PORT", 0, 0, 65535) if r.raw("METRICS_PORT") else None
    log_format = r.get("LOG_FORMAT", d.log_format, _choice("text", "json"), "text or json")
    database_url = r.get("DATABASE_URL", None, _parse_database_url,
                         "a postgresql://user:password@host:port/database URL", secret=True)
    shard_count = r.int_in("SHARD_COUNT", 1, 1, 10000) if r.raw("SHARD_COUNT") else None
    shard_ids = r.get("SHARD_IDS", None, _parse_ids, "comma-separated shard numbers, such as 0,1")
    if shard_ids is not None and shard_count is None:
        r.problems.append("SHARD_IDS: needs SHARD_COUNT (the number of shards of the whole bot)")
    elif shard_ids is not None and shard_count is not None and (not shard_ids or max(shard_ids) >= shard_count):
        r.problems.append(f"SHARD_IDS: expected numbers from 0 to SHARD_COUNT - 1 ({shard_count - 1}), "
                          f"got {','.join(map(str, shard_ids)) or 'none'}")
    lease_ttl = r.get("LEASE_TTL", d.lease_ttl, _parse_positive_float, "a number of seconds above 0")

    max_steps = r.int_in("MAX_STEPS", d.max_steps, 1, ABS_MAX_STEPS)
    max_pixels = r.int_in("MAX_PIXELS", d.max_pixels, ABS_MIN_SIDE * ABS_MIN_SIDE, ABS_MAX_SIDE * ABS_MAX_SIDE)
    max_batch = r.int_in("MAX_BATCH", d.max_batch, 1, ABS_MAX_BATCH)
    steps = r.int_in("DEFAULT_STEPS", d.default_steps, 1, ABS_MAX_STEPS)
    if steps > max_steps:
        r.problems.append(f"DEFAULT_STEPS: expected at most MAX_STEPS ({max_steps}), got {steps}")
    width = r.int_in("DEFAULT_WIDTH", d.default_width, ABS_MIN_SIDE, ABS_MAX_SIDE)
    height = r.int_in("DEFAULT_HEIGHT", d.default_height, ABS_MIN_SIDE, ABS_MAX_SIDE)
    for name, side in (("DEFAULT_WIDTH", width), ("DEFAULT_HEIGHT", height)):
        if side % 8:
            r.problems.append(f"{name}: expected a multiple of 8, got {side}")
    if width * height > max_pixels:
        r.problems.append(
            f"DEFAULT_WIDTH x DEFAULT_HEIGHT: expected at most MAX_PIXELS ({max_pixels}) pixels, "
            f"got {width}x{height} = {width * height}"
        )

    settings = Settings(
        discord_token=token,
        webui_url=url,
        webui_auth=auth,
        guild_ids=r.get("DISCORD_GUILD_IDS", (), _parse_ids, "comma-separated numeric guild ids"),
        data_dir=Path(r.raw("SDCORD_DATA_DIR") or d.data_dir),
        default_steps=steps,
        default_sampler=r.raw("DEFAULT_SAMPLER") or d.default_sampler,
        default_scheduler=r.raw("DEFAULT_SCHEDULER") or d.default_scheduler,
        default_width=width,
        default_height=height,
        default_negative_prompt=r.raw("DEFAULT_NEGATIVE_PROMPT") or "",
        max_steps=max_steps,
        max_pixels=max_pixels,
        max_batch=max_batch,
        log_level=r.get("LOG_LEVEL", d.log_level, _parse_level, "one of " + ", ".join(LOG_LEVELS)),
        generation_timeout=r.get(
            "WEBUI_TIMEOUT", d.generation_timeout, _parse_positive_float, "a number of seconds above 0"
        ),
        rate_limit=rate,
        max_queued_per_user=max_queued,
        daily_limit=daily_limit,
        backend_wait_limit=wait_limit,
        max_input_image_bytes=input_mb * 1024 * 1024,
        max_upscale_pixels=upscale_pixels,
        shutdown_grace=grace,
        job_retention=retention,
        private_contexts=private,
        private_nsfw=private_nsfw,
        metrics_port=metrics_port,
        metrics_host=r.raw("METRICS_HOST") or d.metrics_host,
        log_format=log_format,
        database_url=database_url,
        webui_given=r.raw("WEBUI_URL") is not None,
        shard_count=shard_count,
        shard_ids=shard_ids,
        lease_ttl=lease_ttl,
        discord_api_base=r.get("DISCORD_API_BASE", "", _parse_url, "an http(s) URL"),
        discord_gateway_url=r.raw("DISCORD_GATEWAY_URL") or "",
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings


def describe(settings: Settings) -> dict[str, Any]:
    """A log- and print-safe view of the settings (no token, no credentials)."""
    return {
        "WEBUI_URL": settings.webui_display_url,
        "RATE_LIMIT": f"{settings.rate_limit[0]} jobs / {settings.rate_limit[1]:g} s per user, "
        f"at most {settings.max_queued_per_user} waiting or running"
        + (f", {settings.daily_limit} a day" if settings.daily_limit else ""),
        "WEBUI_AUTH": "set" if settings.webui_auth else "not set",
        "DISCORD_TOKEN": "set" if settings.discord_token else "not set",
        "DISCORD_GUILD_IDS": ",".join(map(str, settings.guild_ids)) or "(global)",
        "SDCORD_DATA_DIR": str(settings.data_dir),
        "DEFAULTS": f"{settings.default_steps} steps, {settings.default_sampler} / {settings.default_scheduler}, "
        f"{settings.default_width}x{settings.default_height}",
        "LIMITS": f"steps<={settings.max_steps}, pixels<={settings.max_pixels}, batch<={settings.max_batch}",
        "LOG_LEVEL": settings.log_level,
        "PRIVATE_CONTEXTS": f"{'on' if settings.private_contexts else 'off'}, PRIVATE_NSFW={settings.private_nsfw}",
        "DATABASE_URL": "PostgreSQL (shared queue)" if settings.database_url else "not set (SQLite in the data dir)",
    }

