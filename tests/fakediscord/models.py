"""Data model of the fake Discord: users, guilds, channels, messages, attachments, interactions.

Everything here is plain state plus JSON serialisation in Discord's wire format (API v10).
The server (``server.py``) owns the objects and mutates them; tests read them.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import mimetypes
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeDiscord

DISCORD_EPOCH_MS = 1420070400000

# Message flags
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_IS_VOICE_MESSAGE = 1 << 13
FLAG_COMPONENTS_V2 = 1 << 15


class Perm:
    """Permission bits (a subset; values as in Discord's docs)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    #: lets user-installed apps that are *not* installed in the server answer publicly; without it their
    #: responses there are forced ephemeral (on by default for servers)
    USE_EXTERNAL_APPS = 1 << 50
    ALL = (1 << 53) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
        | USE_EXTERNAL_APPS
    )
    BOT_DEFAULT = (
        EVERYONE_DEFAULT
        | MANAGE_MESSAGES
        | MENTION_EVERYONE
        | SEND_TTS_MESSAGES
        | MANAGE_WEBHOOKS
    )

    #: ``app_permissions`` of interactions in group DMs and DMs with other users (Discord's documented set)
    APP_PRIVATE_CHANNEL = ATTACH_FILES | EMBED_LINKS | MENTION_EVERYONE
    #: ``app_permissions`` of interactions in the DM with the app's bot user (documented: adds external emoji)
    APP_BOT_DM = APP_PRIVATE_CHANNEL | USE_EXTERNAL_EMOJIS
    #: always part of ``app_permissions`` in a server the bot is not in (on top of @everyone's permissions)
    APP_EXTERNAL_ALWAYS = ATTACH_FILES | EMBED_LINKS


#: Discord's locale codes (``locale``, ``guild_locale``, ``preferred_locale`` and the keys of
#: ``name_localizations`` / ``description_localizations``)
LOCALES = (
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl", "no", "pl", "pt-BR",
    "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi", "th", "zh-CN", "ja", "zh-TW", "ko",
)

#: interaction context types
CONTEXT_GUILD = 0
CONTEXT_BOT_DM = 1
CONTEXT_PRIVATE_CHANNEL = 2

#: ``install=`` values of the test API -> integration types (keys of ``authorizing_integration_owners``)
INSTALL_TYPES = {"guild": (0,), "user": (1,), "both": (0, 1)}


class Intents:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = {"members": GUILD_MEMBERS, "presences": GUILD_PRESENCES, "message_content": MESSAGE_CONTENT}


class FakeDiscordError(Exception):
    """Base class of errors raised by the fake towards the *test* (never sent over the wire)."""


class InvalidInvocation(FakeDiscordError, ValueError):
    """The test asked for something Discord's client would refuse to send (unknown command/option, ...)."""


class InteractionFailed(FakeDiscordError, AssertionError):
    """The bot's initial response to an interaction was rejected (e.g. 10062 after the ack deadline)."""


class APIError(Exception):
    """Raised inside request handlers; turned into a Discord-style JSON error response."""

    def __init__(self, status: int, code: int, message: str, errors: Optional[dict] = None):
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def form_error(path: Any, message: str, code: str = "BASE_TYPE_INVALID") -> APIError:
    """A 400 / 50035 Invalid Form Body error with Discord's nested ``errors`` structure.

    ``path``: ``"options.0.name"`` or a sequence of keys (for keys that contain dots); empty for the top level."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    parts = path.split(".") if isinstance(path, str) else [str(p) for p in path]
    for part in reversed([p for p in parts if p != ""]):
        errors = {part: errors}
    return APIError(400, 50035, "Invalid Form Body", errors)


class Snowflakes:
    """Time-based snowflake generator (ms since the Discord epoch << 22 | worker | process | increment)."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = itertools.count()

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (1 << 12) | (next(self._counter) & 0xFFF)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


def snowflake_time(snowflake: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, tz=_dt.timezone.utc)


def iso(ts: Optional[_dt.datetime] = None) -> str:
    return (ts or _dt.datetime.now(_dt.timezone.utc)).isoformat()


def guess_content_type(filename: str) -> Optional[str]:
    ctype, _ = mimetypes.guess_type(filename)
    if ctype is None and filename.lower().endswith(".webp"):
        ctype = "image/webp"
    return ctype


def image_size(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) of a PNG, GIF, JPEG or WebP image from its header, else None."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                b = data[21:25]
                w = 1 + (((b[1] & 0x3F) << 8) | b[0])
                h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
                return w, h
            if chunk == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                h = 1 + int.from_bytes(data[27:30], "little")
                return w, h
        if data[:2] == b"\xff\xd8":
            i = 2
            while i < len(data) - 9:
                if data[i] != 0xFF:
                    i += 1
                    continue
                marker = data[i + 1]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return w, h
                seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
                i += 2 + seg_len
    except (struct.error, IndexError):
        return None
    return None


# --------------------------------------------------------------------------------------------- entities


@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    bot: bool = False
    global_name: Optional[str] = None
    avatar: Optional[str] = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_dict(self) -> dict:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": self.avatar,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "bot": self.bot,
            "system": False,
            "primary_guild": None,
            "collectibles": None,
        }


@dataclass(eq=False)
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    mentionable: bool = False
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    bot_id: Optional[int] = None

    @property
    def mention(self) -> str:
        if self.id == self.guild_id:
            return "@everyone"
        return f"<@&{self.id}>"

    def to_dict(self) -> dict:
        data = {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: Optional[str] = None
    joined_at: str = field(default_factory=iso)

    def to_dict(self, *, with_user: bool = True, permissions: Optional[int] = None) -> dict:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "joined_at": self.joined_at,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
            "avatar_decoration_data": None,
        }
        if with_user:
            data["user"] = self.user.to_dict()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class FakeChannel:
    id: int
    guild_id: Optional[int]
    name: str
    nsfw: bool = False
    type: int = 0
    position: int = 0
    topic: Optional[str] = None
    parent_id: Optional[int] = None
    recipients: list[FakeUser] = field(default_factory=list)
    last_message_id: Optional[int] = None
    #: group DMs (type 3): the user who created it
    owner_id: Optional[int] = None

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    @property
    def is_dm(self) -> bool:
        """The DM between a user and the bot (type 1)."""
        return self.type == 1

    @property
    def is_group_dm(self) -> bool:
        """A group DM between users (type 3); the bot is never a recipient."""
        return self.type == 3

    def to_dict(self, *, permissions: Optional[int] = None) -> dict:
        if self.type == 1:
            data: dict[str, Any] = {
                "id": str(self.id),
                "type": 1,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "recipients": [u.to_dict() for u in self.recipients],
                "flags": 0,
            }
        elif self.type == 3:
            data = {
                "id": str(self.id),
                "type": 3,
                "name": self.name or None,
                "icon": None,
                "owner_id": str(self.owner_id) if self.owner_id else None,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "recipients": [u.to_dict() for u in self.recipients],
                "flags": 0,
            }
        else:
            data = {
                "id": str(self.id),
                "type": self.type,
                "guild_id": str(self.guild_id) if self.guild_id else None,
                "name": self.name,
                "position": self.position,
                "permission_overwrites": [],
                "nsfw": self.nsfw,
                "topic": self.topic,
                "parent_id": str(self.parent_id) if self.parent_id else None,
                "rate_limit_per_user": 0,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "flags": 0,
            }
            if self.type in (2, 13):
                data.update(bitrate=64000, user_limit=0, rtc_region=None)
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    #: the server's "preferred locale" (``preferred_locale`` in GUILD_CREATE / REST, ``guild_locale`` in
    #: interactions)
    preferred_locale: str = "en-US"
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: list[FakeChannel] = field(default_factory=list)
    members: dict[int, FakeMember] = field(default_factory=dict)
    created: str = field(default_factory=iso)

    @property
    def default_role(self) -> FakeRole:
        return self.roles[self.id]

    def get_role(self, name_or_id: Any) -> Optional[FakeRole]:
        for role in self.roles.values():
            if role.id == name_or_id or role.name == name_or_id:
                return role
        return None

    def get_channel(self, name_or_id: Any) -> Optional[FakeChannel]:
        for ch in self.channels:
            if ch.id == name_or_id or ch.name == name_or_id:
                return ch
        return None

    def permissions_for(self, user_id: int) -> int:
        """Guild-level permissions of a member (no channel overwrites are modelled)."""
        if user_id == self.owner_id:
            return Perm.ALL
        member = self.members.get(user_id)
        perms = self.default_role.permissions
        if member is not None:
            for rid in member.roles:
                role = self.roles.get(rid)
                if role is not None:
                    perms |= role.permissions
        if perms & Perm.ADMINISTRATOR:
            return Perm.ALL
        return perms

    def to_dict(self, *, members: Optional[list[dict]] = None, channels: bool = False) -> dict:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "us-west",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [r.to_dict() for r in sorted(self.roles.values(), key=lambda r: r.position)],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(self.channels[0].id) if self.channels else None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_presences": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "vanity_url_code": None,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": self.preferred_locale,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
            "hub_type": None,
            "latest_onboarding_question_id": None,
        }
        if channels:
            data["channels"] = [c.to_dict() for c in self.channels]
        if members is not None:
            data["members"] = members
        return data

    @property
    def filesize_limit(self) -> int:
        return {2: 50 * 1024 * 1024, 3: 100 * 1024 * 1024}.get(self.premium_tier, 10 * 1024 * 1024)


@dataclass(eq=False)
class FakeAttachment:
    id: int
    filename: str
    data: bytes
    content_type: Optional[str]
    url: str
    description: Optional[str] = None
    ephemeral: bool = False
    channel_id: Optional[int] = None
    title: Optional[str] = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def proxy_url(self) -> str:
        return self.url

    @property
    def dimensions(self) -> Optional[tuple[int, int]]:
        if self.content_type and self.content_type.startswith("image/"):
            return image_size(self.data)
        return None

    def to_dict(self) -> dict:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
            "flags": 0,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.title is not None:
            data["title"] = self.title
        if self.ephemeral:
            data["ephemeral"] = True
        dims = self.dimensions
        if dims:
            data["width"], data["height"] = dims
            data["placeholder"] = "AAAAAA=="
            data["placeholder_version"] = 1
        return data


@dataclass(eq=False)
class FakeMessage:
    id: int
    channel_id: int
    guild_id: Optional[int]
    author: FakeUser
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    flags: int = 0
    attachments: list[FakeAttachment] = field(default_factory=list)
    type: int = 0
    tts: bool = False
    nonce: Optional[str] = None
    webhook_id: Optional[int] = None
    application_id: Optional[int] = None
    interaction_id: Optional[int] = None
    interaction_metadata: Optional[dict] = None
    interaction_legacy: Optional[dict] = None
    message_reference: Optional[dict] = None
    allowed_mentions: Optional[dict] = None
    pings_everyone: bool = False
    pinged_role_ids: list[int] = field(default_factory=list)
    pinged_user_ids: list[int] = field(default_factory=list)
    mention_users: list[dict] = field(default_factory=list)
    edits: list[tuple[float, dict]] = field(default_factory=list)
    deleted: bool = False
    deleted_at: Optional[float] = None
    reactions: dict[str, list[int]] = field(default_factory=dict)
    pinned: bool = False
    created_at: float = field(default_factory=time.monotonic)
    edited_timestamp: Optional[str] = None
    #: "channel" (POST /channels/.../messages, or a user's message), "interaction" (callback
    #: response) or "webhook" (interaction follow-up): decides the allowed_mentions default.
    source: str = "channel"

    @property
    def author_id(self) -> int:
        return self.author.id

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    @property
    def timestamp(self) -> str:
        return iso(snowflake_time(self.id))

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id or '@me'}/{self.channel_id}/{self.id}"

    def custom_ids(self) -> list[str]:
        """Every component custom_id on the message (buttons, selects, nested v2 components)."""
        return [c["custom_id"] for c in iter_components(self.components) if c.get("custom_id")]

    def find_component(self, custom_id: str) -> Optional[dict]:
        for comp in iter_components(self.components):
            if comp.get("custom_id") == custom_id:
                return comp
        return None

    def __repr__(self) -> str:
        flags = []
        if self.ephemeral:
            flags.append("ephemeral")
        if self.loading:
            flags.append("loading")
        if self.deleted:
            flags.append("deleted")
        return (
            f"<FakeMessage id={self.id} channel={self.channel_id} author={self.author.name!r} "
            f"content={self.content[:40]!r} attachments={[a.filename for a in self.attachments]} "
            f"edits={len(self.edits)}{' ' + ','.join(flags) if flags else ''}>"
        )


def iter_components(components: list[dict]):
    """Walk a (possibly nested) component tree depth-first."""
    for comp in components or []:
        yield comp
        if comp.get("components"):
            yield from iter_components(comp["components"])
        if comp.get("accessory"):
            yield from iter_components([comp["accessory"]])
        if comp.get("component"):
            yield from iter_components([comp["component"]])


class FakeInteraction:
    """One interaction the fake dispatched, with everything the bot did in response."""

    def __init__(
        self,
        fake: "FakeDiscord",
        *,
        id: int,
        token: str,
        type: int,
        user: FakeUser,
        channel: FakeChannel,
        payload: dict,
        attachment_size_limit: int,
        source_message: Optional[FakeMessage] = None,
        name: Optional[str] = None,
        custom_id: Optional[str] = None,
    ) -> None:
        self._fake = fake
        self.id = id
        self.token = token
        self.type = type
        self.user = user
        self.channel = channel
        self.payload = payload
        self.attachment_size_limit = attachment_size_limit
        self.source_message = source_message
        self.name = name
        self.custom_id = custom_id
        self.created_at: float = time.monotonic()
        #: accepted initial callbacks: (type, data, monotonic t). Only one is ever accepted.
        self.callbacks: list[tuple[int, Optional[dict], float]] = []
        #: rejected callback attempts: (type, data, monotonic t, http status, discord code)
        self.rejected: list[tuple[int, Optional[dict], float, int, int]] = []
        self.original: Optional[FakeMessage] = None
        self.followups: list[FakeMessage] = []
        self.modal: Optional[dict] = None
        self.choices: Optional[list[dict]] = None
        #: successful ``POST /webhooks/{app}/{token}`` (follow-up creates, incl. one that fills a defer)
        self.followup_creates = 0
        #: responses forced ephemeral (user install in a server without the app, invoker lacks USE_EXTERNAL_APPS)
        self.forced_ephemeral = False

    # ---- where it happened
    @property
    def context(self) -> int:
        """Interaction context type: 0 guild, 1 the bot's DM, 2 a private channel (group DM)."""
        return self.payload.get("context", 0)

    @property
    def authorizing_integration_owners(self) -> dict[str, str]:
        return dict(self.payload.get("authorizing_integration_owners") or {})

    @property
    def install(self) -> str:
        """``"guild"``, ``"user"`` or ``"both"``: the installation(s) that authorised this interaction."""
        keys = set(self.authorizing_integration_owners)
        return "both" if keys == {"0", "1"} else ("user" if keys == {"1"} else "guild")

    @property
    def followup_limited(self) -> bool:
        """Discord caps follow-ups at 5 when only the user install authorised the interaction."""
        return set(self.authorizing_integration_owners) == {"1"}

    @property
    def locale(self) -> str:
        return self.payload.get("locale", "en-US")

    @property
    def guild_locale(self) -> Optional[str]:
        return self.payload.get("guild_locale")

    # ---- derived state
    @property
    def acked(self) -> bool:
        return bool(self.callbacks)

    @property
    def response_type(self) -> Optional[int]:
        return self.callbacks[0][0] if self.callbacks else None

    @property
    def ack_latency(self) -> Optional[float]:
        return self.callbacks[0][2] - self.created_at if self.callbacks else None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)

    @property
    def ephemeral(self) -> bool:
        if self.response_type in (4, 5):
            data = self.callbacks[0][1] or {}
            return bool(int(data.get("flags") or 0) & FLAG_EPHEMERAL) or self.forced_ephemeral
        if self.original is not None:
            return self.original.ephemeral
        return False

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.created_at > self._fake.token_lifetime

    @property
    def messages(self) -> list[FakeMessage]:
        """The response message (if any) followed by the follow-ups."""
        out = [self.original] if self.original is not None else []
        return out + [m for m in self.followups if m is not self.original]

    # ---- waiting
    async def wait_for(self, predicate: Callable[["FakeInteraction"], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate(self)`` is truthy (re-checked after every state change); returns its value."""
        return await self._fake.wait_until(lambda: predicate(self), timeout=timeout)

    async def wait_ack(self, timeout: float = 5.0) -> float:
        """Seconds from dispatch to the first accepted callback.

        Raises ``InteractionFailed`` if the bot's callback was rejected for good (10062 after the ack deadline,
        or any rejection with no accepted retry before the deadline), ``TimeoutError`` if nothing came at all.
        """

        def settled(ix: "FakeInteraction") -> bool:
            if ix.callbacks:
                return True
            # a rejected attempt is final once it is a 10062 or the deadline has passed (else the bot may retry,
            # e.g. with a smaller file after a 413)
            if any(r[4] in (10062, 40060) for r in ix.rejected):
                return True
            return bool(ix.rejected) and time.monotonic() - ix.created_at > ix._fake.ack_deadline

        try:
            await self.wait_for(settled, timeout=timeout)
        except TimeoutError:
            raise TimeoutError(f"interaction {self.id} ({self.name or self.custom_id}) not acknowledged within {timeout}s")
        if not self.callbacks:
            ctype, _, t, status, code = self.rejected[0]
            raise InteractionFailed(
                f"initial response (type {ctype}) rejected with {status}/{code} after {t - self.created_at:.3f}s"
            )
        return self.callbacks[0][2] - self.created_at

    async def wait_original(self, predicate: Optional[Callable[[FakeMessage], Any]] = None, timeout: float = 10.0):
        """Wait for the response message (optionally until ``predicate(message)`` holds)."""

        def check():
            msg = self.original
            if msg is None:
                return None
            if predicate is None or predicate(msg):
                return msg
            return None

        return await self._fake.wait_until(check, timeout=timeout)

    async def wait_followup(self, predicate: Optional[Callable[[FakeMessage], Any]] = None, timeout: float = 10.0):
        def check():
            for msg in self.followups:
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self._fake.wait_until(check, timeout=timeout)

    def __repr__(self) -> str:
        what = self.name or self.custom_id or ""
        return (
            f"<FakeInteraction id={self.id} type={self.type} {what!r} callbacks={[c[0] for c in self.callbacks]} "
            f"rejected={[(r[0], r[4]) for r in self.rejected]} followups={len(self.followups)}>"
        )


class Changes:
    """Wait until a predicate holds: re-checked after every change of the fake's state and every 20 ms."""

    poll_interval = 0.02

    def __init__(self) -> None:
        self._event: Optional[asyncio.Event] = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_until(self, predicate: Callable[[], Any], timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._event is None:
                self._event = asyncio.Event()
            event = self._event
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            try:
                # also poll, so predicates over state outside the fake (e.g. the bot's) work too
                await asyncio.wait_for(event.wait(), min(remaining, self.poll_interval))
            except TimeoutError:
                pass
