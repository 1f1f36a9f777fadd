"""Server settings (defaults, caps, channels, NSFW policy) and personal preferences. No Discord imports.

Precedence for every option: what the user typed > the named preset > the user's own defaults >
the server's defaults > the global configuration. A server's caps can only tighten the global ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.errors import OptionError, StorageError
from bot.text import Opt, T

from .moderation import MAX_BLOCKED, MAX_WORD_LENGTH, blocked, parse_words
from .payload import DrawOptions
from .store import transient

__all__ = [
    "DEFAULT_SAFETY_NEGATIVE",
    "MAX_PRESETS",
    "NSFW_MODES",
    "PREF_FIELDS",
    "SERVER_DEFAULT_FIELDS",
    "Preferences",
    "ServerPolicy",
    "clean_prefs",
    "resolve_options",
]

log = logging.getLogger(__name__)

PREF_FIELDS = ("negative_prompt", "width", "height", "sampler", "steps", "model")  # /prefer
SERVER_DEFAULT_FIELDS = ("model", "sampler", "scheduler", "steps", "width", "height")  # /settings defaults
NSFW_MODES = ("off", "safe", "refuse")  # what they mean is told by the Discord side (nsfw.<mode>)
DEFAULT_SAFETY_NEGATIVE = "nsfw, nude, naked, nipples, explicit, sexual, porn, gore"
MAX_PRESETS = 25  # one autocomplete page
READ_TIMEOUT = 1.5  # seconds a read-through of a shared store may take (Discord wants an answer within 3 s)


@dataclass(frozen=True, slots=True)
class ServerPolicy:
    defaults: dict[str, Any] = field(default_factory=dict)
    negative_prefix: str = ""
    max_steps: int | None = None
    max_pixels: int | None = None
    max_batch: int | None = None
    channels: tuple[int, ...] = ()  # empty: /draw is allowed everywhere
    nsfw_mode: str = "off"
    safety_negative: str = DEFAULT_SAFETY_NEGATIVE
    blocklist: tuple[str, ...] = ()  # words and phrases refused in prompts (`moderation.blocked`)
    daily_limit: int | None = None  # jobs per user per UTC day here (never above DAILY_LIMIT when that is set)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerPolicy:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "channels" in values:
            values["channels"] = tuple(int(c) for c in values["channels"])
        if "blocklist" in values:
            values["blocklist"] = tuple(str(w) for w in values["blocklist"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["channels"] = list(self.channels)
        data["blocklist"] = list(self.blocklist)
        return data

    def daily(self, settings: Settings) -> int:
        """Jobs per user per UTC day in this server (0: no limit): its own, never above the bot's."""
        own, bot_wide = self.daily_limit or 0, settings.daily_limit
        return min(own, bot_wide) if own and bot_wide else own or bot_wide

    def block(self, raw: str) -> tuple[ServerPolicy, int]:
        """The policy with the words and phrases of `raw` (comma-separated) added to its blocklist, and how many
        were new. Raises OptionError for a word over MAX_WORD_LENGTH (cut, a phrase would no longer match
        itself) or a list over MAX_BLOCKED."""
        new = [w for w in parse_words(raw) if w not in self.blocklist]
        if any(len(w) > MAX_WORD_LENGTH for w in new):
            raise OptionError([T("problem.blocklist_long", option=Opt("words"), limit=MAX_WORD_LENGTH)])
        if len(self.blocklist) + len(new) > MAX_BLOCKED:
            raise OptionError([T("problem.blocklist_full", option=Opt("words"), limit=MAX_BLOCKED)])
        return dataclasses.replace(self, blocklist=(*self.blocklist, *new)), len(new)

    def unblock(self, raw: str) -> tuple[ServerPolicy, int]:
        """The policy without the words and phrases of `raw`, and how many were removed."""
        gone = set(parse_words(raw))
        kept = tuple(w for w in self.blocklist if w not in gone)
        return dataclasses.replace(self, blocklist=kept), len(self.blocklist) - len(kept)

    def check_prompt(self, prompt: str) -> None:
        """Raise OptionError when the prompt has a word of this server's blocklist (the list isn't echoed)."""
        if self.blocklist and blocked(prompt, self.blocklist):
            raise OptionError([T("refuse.blocked", option=Opt("prompt"))])

    def effective(self, settings: Settings) -> Settings:
        """The global settings with this server's defaults and (tighter) caps applied."""
        d = self.defaults
        changes: dict[str, Any] = {
            "max_steps": min(settings.max_steps, self.max_steps or settings.max_steps),
            "max_pixels": min(settings.max_pixels, self.max_pixels or settings.max_pixels),
            "max_batch": min(settings.max_batch, self.max_batch or settings.max_batch),
        }
        for key, attr in (("steps", "default_steps"), ("width", "default_width"), ("height", "default_height"),
                          ("sampler", "default_sampler"), ("scheduler", "default_scheduler"),
                          ("model", "default_model")):
            if d.get(key) is not None:
                changes[attr] = d[key]
        changes["default_steps"] = min(changes.get("default_steps", settings.default_steps), changes["max_steps"])
        return dataclasses.replace(settings, **changes)

    def check_channel(self, channel_id: int | None, channel_nsfw: bool) -> None:
        """Raise OptionError when /draw isn't allowed in this channel."""
        if self.channels and channel_id not in self.channels:
            where = ", ".join(f"<#{c}>" for c in self.channels[:10])
            raise OptionError([T("refuse.channel", channels=where)])
        if self.nsfw_mode == "refuse" and not channel_nsfw:
            raise OptionError([T("refuse.nsfw_only")])

    def apply(self, opts: DrawOptions, settings: Settings, channel_nsfw: bool) -> DrawOptions:
        """The negative prompt prefix, and the NSFW policy outside NSFW channels."""
        base = opts.negative_prompt if opts.negative_prompt is not None else settings.default_negative_prompt
        safe = self.nsfw_mode == "safe" and not channel_nsfw
        parts = [self.safety_negative if safe else "", self.negative_prefix, base]
        negative = ", ".join(p.strip() for p in parts if p and p.strip())
        return dataclasses.replace(opts, negative_prompt=negative, spoiler=opts.spoiler or safe)


def resolve_options(opts: DrawOptions, *, preset: dict[str, Any] | None, user: dict[str, Any] | None) -> DrawOptions:
    """Fill the options the user didn't give from the preset, then from their own defaults."""
    changes = {}
    for name in PREF_FIELDS:
        if getattr(opts, name) is not None:
            continue
        for source in (preset, user):
            if source and source.get(name) is not None:
                changes[name] = source[name]
                break
    return dataclasses.replace(opts, **changes) if changes else opts


def clean_prefs(values: dict[str, Any]) -> dict[str, Any]:
    """Only the fields /prefer stores, without empty ones."""
    return {k: v for k, v in values.items() if k in PREF_FIELDS and v not in (None, "")}


class Preferences:
    """Every server's settings and every user's preferences, loaded into memory at start (small tables,
    read on every command, so acknowledging never waits on disk) and written through on change."""

    def __init__(self, *, read_through: bool = False) -> None:
        self.read_through = read_through  # a shared database: other processes change them too, read every time
        self._store: Any = None
        self._policies: dict[int, ServerPolicy] = {}
        self._prefs: dict[int, dict[str, Any]] = {}

    async def load(self, store: Any) -> None:
        self._store = store
        if self.read_through:
            return  # read when needed: another process may change them any time
        self._policies = {g: ServerPolicy.from_dict(d) for g, d in (await store.all_guild_settings()).items()}
        self._prefs = await store.all_user_prefs()

    async def _read(self, what: str, key: int) -> dict[str, Any]:
        """Read through to a shared store; while it is unreachable, the user is told the bot is unavailable."""
        try:
            return await asyncio.wait_for(getattr(self._store, what)(key), READ_TIMEOUT)
        except Exception as exc:
            if isinstance(exc, TimeoutError) or transient(exc):
                raise StorageError(T("refuse.unavailable"), detail=f"{what}: {exc!r}") from exc
            raise

    async def server_policy(self, guild_id: int | None) -> ServerPolicy | None:
        if guild_id and self.read_through and self._store is not None:
            data = await self._read("guild_settings", guild_id)
            return ServerPolicy.from_dict(data) if data else None
        return self._policies.get(guild_id) if guild_id else None

    async def set_server_policy(self, guild_id: int, policy: ServerPolicy, *, by: int, change: str) -> None:
        if self._store is not None:
            await self._store.set_guild_settings(guild_id, policy.to_dict(), by=by, change=change)
        self._policies[guild_id] = policy
        log.info("Server %s settings changed by %s: %s", guild_id, by, change)

    async def user_prefs(self, user_id: int) -> dict[str, Any]:
        if self.read_through and self._store is not None:
            return await self._read("user_prefs", user_id)
        return self._prefs.get(user_id, {})

    async def set_user_prefs(self, user_id: int, prefs: dict[str, Any]) -> None:
        if self._store is not None:
            await self._store.set_user_prefs(user_id, prefs)
        self._prefs[user_id] = prefs
