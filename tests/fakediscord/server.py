"""FakeDiscord: the fake's state, its lifecycle and the test-facing API (invoke, click, ...).

REST handlers live in ``rest.py`` (mixed in), the gateway in ``gateway.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

from aiohttp import web

from .gateway import GatewayConnection, GatewaySession
from .mentions import compute_pings
from .models import (
    CONTEXT_BOT_DM,
    CONTEXT_GUILD,
    CONTEXT_PRIVATE_CHANNEL,
    INSTALL_TYPES,
    LOCALES,
    Changes,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    InteractionFailed,
    InvalidInvocation,
    Perm,
    Snowflakes,
    guess_content_type,
    iso,
)
from .rest import RestMixin

log = logging.getLogger("fakediscord")

MiB = 1024 * 1024

OPTION_TYPES = {
    1: "SUB_COMMAND",
    2: "SUB_COMMAND_GROUP",
    3: "STRING",
    4: "INTEGER",
    5: "BOOLEAN",
    6: "USER",
    7: "CHANNEL",
    8: "ROLE",
    9: "MENTIONABLE",
    10: "NUMBER",
    11: "ATTACHMENT",
}
SELECT_TYPES = {3, 5, 6, 7, 8}

UserLike = Union[FakeUser, FakeMember, int]
ChannelLike = Union[FakeChannel, int]
MessageLike = Union[FakeMessage, int]

#: events the gateway delivers however the bot relates to the guild/channel they come from
_ALWAYS_DELIVERED = {"INTERACTION_CREATE", "READY", "RESUMED"}
_GUILD_ID_IS_ID = {"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"}


def _check_locale(value: Any, what: str) -> None:
    if value not in LOCALES:
        raise InvalidInvocation(f"{what}={value!r} is not a Discord locale (one of {', '.join(LOCALES)})")


@dataclass
class RequestRecord:
    """One REST/CDN request the fake served (``fake.request_log``)."""

    t: float
    method: str
    path: str
    status: int
    query: dict = field(default_factory=dict)
    payload: Any = None
    files: list[str] = field(default_factory=list)
    duration: float = 0.0

    def as_tuple(self) -> tuple[float, str, str, int]:
        return (self.t, self.method, self.path, self.status)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    code: int
    message: str
    count: int
    retry_after: Optional[float]
    is_global: bool


class FakeDiscord(RestMixin):
    """A fake Discord (REST v10 + JSON gateway + CDN) on 127.0.0.1 for driving a real discord.py client."""

    def __init__(
        self,
        ack_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        attachment_size_limit: int = 10 * MiB,
        *,
        channel_attachment_size_limit: int = 10 * MiB,
        bot_name: str = "sdcord",
        bot_permissions: int = Perm.BOT_DEFAULT,
        privileged_intents: Iterable[str] = ("members", "presences", "message_content"),
        gateway_wait: float = 10.0,
    ) -> None:
        #: seconds the bot has for its initial callback (404/10062 afterwards); settable any time
        self.ack_deadline = ack_deadline
        #: seconds an interaction token lives (401/50027 afterwards); settable any time
        self.token_lifetime = token_lifetime
        #: ``attachment_size_limit`` put into new interactions (per-file limit for responses/follow-ups)
        self.attachment_size_limit = attachment_size_limit
        #: per-file limit for ``POST/PATCH /channels/{c}/messages``
        self.channel_attachment_size_limit = channel_attachment_size_limit
        self.bot_permissions = bot_permissions
        self.privileged_intents = set(privileged_intents)
        #: how long invoke()/click()/... wait for a bot to be connected to the gateway
        self.gateway_wait = gateway_wait
        #: extra delay (seconds) added before every REST/CDN response
        self.response_delay = 0.0

        self._ids = Snowflakes()
        self.bot_user = FakeUser(self._ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.token = (
            base64.b64encode(str(self.bot_user.id).encode()).decode().rstrip("=")
            + "."
            + secrets.token_urlsafe(4)
            + "."
            + secrets.token_urlsafe(27)
        )
        self.app_owner = FakeUser(self._ids.next(), "appowner")
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.app_owner.id: self.app_owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self._messages: dict[int, FakeMessage] = {}
        self._nonces: dict[str, FakeMessage] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self._global_commands: dict[int, dict] = {}
        self._guild_commands: dict[int, dict[int, dict]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._by_token: dict[str, FakeInteraction] = {}
        self._modals: dict[str, tuple[FakeInteraction, dict]] = {}
        self.sessions: list[GatewaySession] = []
        self.connections: list[GatewayConnection] = []
        self.identify_count = 0
        self.resume_count = 0
        self.request_log: list[RequestRecord] = []
        self.typing: list[tuple[float, int]] = []
        self._faults: list[Fault] = []
        #: exceptions raised inside the fake's handlers (bugs in the fake; answered with 400 so nothing hangs)
        self.server_errors: list[BaseException] = []
        self._changes = Changes()
        self._tasks: set[asyncio.Task] = set()

        #: convenience slots filled by the pytest fixture (tests.fakediscord.pytest_plugin)
        self.owner: Optional[FakeUser] = None
        self.guild: Optional[FakeGuild] = None
        self.channel: Optional[FakeChannel] = None
        self.alice: Optional[FakeUser] = None
        self.admin: Optional[FakeUser] = None

        self._runner: Optional[web.AppRunner] = None
        self.port: Optional[int] = None
        self.url = ""
        self.api_base = ""
        self.gateway_url = ""
        self.resume_gateway_url = ""

    # ================================================================== lifecycle

    async def start(self) -> "FakeDiscord":
        app = web.Application(client_max_size=200 * MiB, middlewares=[self._middleware])
        self._setup_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        # a long listen queue, like Discord's edge: discord.py opens a connection per concurrent request,
        # and a burst must not overflow aiohttp's default of 128 (a dropped SYN costs a 1 s retry)
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_base = f"{self.url}/api/v10"
        self.gateway_url = f"ws://127.0.0.1:{self.port}/gateway"
        self.resume_gateway_url = f"ws://127.0.0.1:{self.port}/gateway/resume"
        return self

    async def stop(self) -> None:
        for conn in list(self.connections):
            await conn.close(1001, "fake stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeDiscord":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @contextlib.contextmanager
    def patch_discord_py(self):
        """Point discord.py (class attributes, process-wide) at this fake; restores on exit."""
        import discord
        import yarl

        old = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE)
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        discord.asset.Asset.BASE = self.url
        try:
            yield self
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE = old

    def _spawn(self, coro) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy, re-checking after every change of the fake's state."""
        return await self._changes.wait_until(predicate, timeout)

    # ================================================================== world building

    def add_user(self, name: str, *, bot: bool = False, global_name: Optional[str] = None) -> FakeUser:
        user = FakeUser(self._ids.next(), name, bot=bot, global_name=global_name)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        owner: Optional[FakeUser] = None,
        *,
        premium_tier: int = 0,
        everyone_permissions: int = Perm.EVERYONE_DEFAULT,
        preferred_locale: str = "en-US",
        bot_member: bool = True,
    ) -> FakeGuild:
        """A server. With ``bot_member=False`` the bot is not in it (no GUILD_CREATE, channel routes answer
        403/50001): only users who installed the app can use its global commands there."""
        _check_locale(preferred_locale, "preferred_locale")
        owner = owner or self.app_owner
        gid = self._ids.next()
        guild = FakeGuild(gid, name, owner.id, premium_tier=premium_tier, preferred_locale=preferred_locale)
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", permissions=everyone_permissions, position=0)
        self.guilds[gid] = guild
        guild.members[owner.id] = FakeMember(owner, gid)
        if bot_member:
            self.add_bot_to_guild(guild)
        return guild

    def add_bot_to_guild(self, guild: FakeGuild) -> FakeMember:
        """The bot joins ``guild`` (a managed role with ``bot_permissions``); GUILD_CREATE if it is connected."""
        member = guild.members.get(self.bot_user.id)
        if member is not None:
            return member
        bot_role = FakeRole(
            self._ids.next(), guild.id, self.bot_user.name, permissions=self.bot_permissions,
            position=len(guild.roles), managed=True, bot_id=self.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        member = guild.members[self.bot_user.id] = FakeMember(self.bot_user, guild.id, roles=[bot_role.id])
        if self.sessions:
            self._spawn(self._dispatch_guild_create(guild))
        self._changes.notify()
        return member

    def update_guild(self, guild: FakeGuild, *, name: Optional[str] = None,
                     preferred_locale: Optional[str] = None) -> FakeGuild:
        """Change a server's name / preferred locale (GUILD_UPDATE to a connected bot that is in it)."""
        if preferred_locale is not None:
            _check_locale(preferred_locale, "preferred_locale")
            guild.preferred_locale = preferred_locale
        if name is not None:
            guild.name = name
        if self.sessions:
            self._spawn(self.dispatch("GUILD_UPDATE", guild.to_dict()))
        self._changes.notify()
        return guild

    def bot_in_guild(self, guild: Union[FakeGuild, int, None]) -> bool:
        gid = guild.id if isinstance(guild, FakeGuild) else guild
        found = self.guilds.get(int(gid)) if gid is not None else None
        return found is not None and self.bot_user.id in found.members

    async def _dispatch_guild_create(self, guild: FakeGuild) -> None:
        for session in self._live_sessions():
            if session.wants("GUILD_CREATE", {"id": str(guild.id)}):
                await session.dispatch("GUILD_CREATE", self.guild_create_payload(guild, session))

    def add_channel(self, guild: FakeGuild, name: str, nsfw: bool = False, *, type: int = 0,
                    topic: Optional[str] = None) -> FakeChannel:
        channel = FakeChannel(self._ids.next(), guild.id, name, nsfw=nsfw, type=type, topic=topic,
                              position=len(guild.channels))
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        if self.sessions:
            data = channel.to_dict()
            self._spawn(self.dispatch("CHANNEL_CREATE", data))
        return channel

    def add_role(self, guild: FakeGuild, name: str, permissions: int = 0, *, mentionable: bool = False) -> FakeRole:
        role = FakeRole(self._ids.next(), guild.id, name, permissions=permissions, mentionable=mentionable,
                        position=len(guild.roles))
        guild.roles[role.id] = role
        if self.sessions:
            self._spawn(self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.to_dict()}))
        return role

    def add_member(self, guild: FakeGuild, user: FakeUser, permissions: int = 0, *,
                   roles: Iterable[FakeRole] = (), nick: Optional[str] = None) -> FakeMember:
        """Add ``user`` to ``guild``. Non-zero ``permissions`` are granted through a role of their own."""
        if user.id == self.bot_user.id:
            if permissions or roles or nick:
                raise InvalidInvocation("the bot's permissions come from bot_permissions (its managed role)")
            return self.add_bot_to_guild(guild)
        member = guild.members.get(user.id) or FakeMember(user, guild.id, nick=nick)
        role_ids = [r.id for r in roles]
        if permissions:
            role = self.add_role(guild, f"{user.name}-perms", permissions)
            role_ids.append(role.id)
        for rid in role_ids:
            if rid not in member.roles:
                member.roles.append(rid)
        is_new = user.id not in guild.members
        guild.members[user.id] = member
        if is_new and self.sessions:
            data = dict(self.member_dict(guild, member), guild_id=str(guild.id))
            self._spawn(self.dispatch("GUILD_MEMBER_ADD", data))
        return member

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM (type 1) between ``user`` and the bot: interactions there have ``context`` 1."""
        for ch in self.channels.values():
            if ch.type == 1 and ch.recipients and ch.recipients[0].id == user.id:
                return ch
        channel = FakeChannel(self._ids.next(), None, "", type=1, recipients=[user])
        self.channels[channel.id] = channel
        return channel

    def group_dm(self, users: Iterable[UserLike], *, name: str = "",
                 owner: Optional[UserLike] = None) -> FakeChannel:
        """A group DM (type 3) between ``users`` (1-10, no bots). The bot is never in it: its events are not
        dispatched and its channel routes answer 403/50001; user-installed commands run there with context 2."""
        members = [self._resolve_user(u) for u in users]
        if not 1 <= len(members) <= 10:
            raise InvalidInvocation(f"a group DM has 1-10 recipients, got {len(members)}")
        if any(u.bot for u in members):
            raise InvalidInvocation("bots cannot be in group DMs")
        owner_user = self._resolve_user(owner) if owner is not None else members[0]
        channel = FakeChannel(self._ids.next(), None, name, type=3, recipients=members, owner_id=owner_user.id)
        self.channels[channel.id] = channel
        return channel

    def make_attachment(self, data: bytes, filename: str, content_type: Optional[str] = None, *,
                        description: Optional[str] = None) -> FakeAttachment:
        """An uploaded file as a user's slash-command option / modal upload would carry it (served by the CDN)."""
        aid = self._ids.next()
        att = FakeAttachment(
            id=aid, filename=filename, data=bytes(data),
            content_type=content_type if content_type is not None else guess_content_type(filename),
            url=f"{self.url}/ephemeral-attachments/{self.application_id}/{aid}/{filename}",
            description=description, ephemeral=True,
        )
        self.attachments[aid] = att
        return att

    # ================================================================== queries

    def guilds_of_bot(self) -> list[FakeGuild]:
        return [g for g in self.guilds.values() if self.bot_user.id in g.members]

    def commands(self, guild_id: Optional[Union[int, FakeGuild]] = None) -> list[dict]:
        """Registered application commands as Discord stores them (global when ``guild_id`` is None)."""
        if isinstance(guild_id, FakeGuild):
            guild_id = guild_id.id
        store = self._global_commands if guild_id is None else self._guild_commands.get(int(guild_id), {})
        return [json.loads(json.dumps(c)) for c in store.values()]

    async def wait_for_commands(self, names: Iterable[str], guild_id: Optional[Union[int, FakeGuild]] = None,
                                timeout: float = 10.0) -> list[dict]:
        wanted = set(names)

        def check():
            cmds = self.commands(guild_id)
            return cmds if wanted <= {c["name"] for c in cmds} else None

        try:
            return await self.wait_until(check, timeout)
        except TimeoutError:
            have = sorted(c["name"] for c in self.commands(guild_id))
            raise TimeoutError(f"commands {sorted(wanted)} not registered (guild={guild_id}) within {timeout}s; have {have}")

    def messages(self, channel: Optional[ChannelLike] = None) -> list[FakeMessage]:
        """All messages (oldest first): channel messages, interaction responses, follow-ups, ephemeral and
        deleted ones (check ``.ephemeral`` / ``.deleted``)."""
        msgs = list(self._messages.values())
        if channel is not None:
            cid = channel.id if isinstance(channel, FakeChannel) else int(channel)
            msgs = [m for m in msgs if m.channel_id == cid]
        return msgs

    def get_message(self, message_id: int) -> Optional[FakeMessage]:
        return self._messages.get(int(message_id))

    async def wait_for_message(self, predicate: Optional[Callable[[FakeMessage], Any]] = None, timeout: float = 10.0,
                               *, channel: Optional[ChannelLike] = None,
                               after: Optional[Union[FakeMessage, float]] = None,
                               include_deleted: bool = False) -> FakeMessage:
        """The oldest message for which ``predicate`` holds now or becomes true later (predicates are re-checked
        after every change, including edits). ``after``: only messages created after that message / monotonic t."""

        def check():
            for msg in self.messages(channel):
                if msg.deleted and not include_deleted:
                    continue
                if after is not None:
                    if isinstance(after, FakeMessage):
                        if msg.id <= after.id:
                            continue
                    elif msg.created_at <= after:
                        continue
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.wait_until(check, timeout)

    @property
    def last_interaction(self) -> Optional[FakeInteraction]:
        return next(reversed(self.interactions.values()), None)

    @property
    def requests(self) -> list[tuple[float, str, str, int]]:
        """Every REST/CDN request: (monotonic t of arrival, method, path without /api/v10 and query, status)."""
        return [r.as_tuple() for r in self.request_log]

    def inject_error(self, method: str, path_pattern: str, status: int, code: int = 0, message: Optional[str] = None,
                     *, count: int = 1, retry_after: Optional[float] = None, is_global: bool = False) -> None:
        """Answer the next ``count`` requests matching ``method`` ("*" for any) and the regex ``path_pattern``
        (searched in the path without /api/v10) with an error. ``status=429`` makes a proper rate-limit answer
        (``Via`` header, ``retry_after`` body) that discord.py sleeps on and retries."""
        if message is None:
            message = "You are being rate limited." if status == 429 else f"{status}: injected error"
        self._faults.append(Fault(method.upper(), re.compile(path_pattern), status, code, message, count,
                                  retry_after if retry_after is not None else (0.05 if status == 429 else None),
                                  is_global))

    # ================================================================== gateway control

    def _live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions if not s.invalidated]

    @property
    def connected(self) -> bool:
        return any(s.connected and s.ready for s in self._live_sessions())

    async def wait_until_ready(self, timeout: float = 10.0) -> GatewaySession:
        """Wait for a bot that has identified and received its guilds."""
        return await self.wait_until(
            lambda: next((s for s in reversed(self._live_sessions()) if s.ready and s.connected), None), timeout
        )

    async def _ensure_gateway(self) -> None:
        """Wait (up to ``gateway_wait``) for a connected, READY session; e.g. while a client resumes/restarts."""
        if self.connected:
            return
        try:
            await self.wait_until(lambda: self.connected, self.gateway_wait)
        except TimeoutError:
            raise RuntimeError(f"no bot connected to the fake gateway within {self.gateway_wait}s") from None

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a DISPATCH event to every live session that should get it (buffered for resume if disconnected).

        Events of servers the bot is not in and of group DMs are dropped (the bot sees nothing there except the
        interactions of users who installed the app)."""
        if self._bot_receives(event, data):
            for session in self._live_sessions():
                if session.wants(event, data):
                    await session.dispatch(event, data)
        self._changes.notify()

    def _bot_receives(self, event: str, data: dict) -> bool:
        if event in _ALWAYS_DELIVERED:
            return True
        gid = data.get("id") if event in _GUILD_ID_IS_ID else data.get("guild_id")
        if gid is not None and int(gid) in self.guilds and not self.bot_in_guild(int(gid)):
            return False
        cid = data.get("channel_id")
        channel = self.channels.get(int(cid)) if cid is not None else None
        return not (channel is not None and channel.is_group_dm)

    async def gateway_reconnect(self) -> None:
        """Send op 7 RECONNECT on every open connection (the client resumes)."""
        for conn in list(self.connections):
            if not conn.ws.closed:
                await conn.send_op(7)

    async def gateway_disconnect(self, code: int = 4000) -> None:
        """Close every open gateway connection with ``code`` (4000 => the client resumes)."""
        for conn in list(self.connections):
            await conn.close(code, "closed by test")

    async def gateway_invalidate(self, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION; with ``resumable=False`` the sessions are dropped (client re-identifies)."""
        for session in self._live_sessions():
            if not resumable:
                session.invalidated = True
            if session.conn is not None:
                await session.conn.send_op(9, resumable)

    # ================================================================== serialisation helpers

    def bot_user_dict(self) -> dict:
        data = self.bot_user.to_dict()
        data.update(verified=True, mfa_enabled=True, email=None, locale="en-US", flags=0)
        return data

    @property
    def application_flags(self) -> int:
        flags = 0
        if "presences" in self.privileged_intents:
            flags |= 1 << 12
        if "members" in self.privileged_intents:
            flags |= 1 << 14
        if "message_content" in self.privileged_intents:
            flags |= 1 << 18
        return flags

    def app_info(self) -> dict:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.app_owner.to_dict(),
            "team": None,
            "flags": self.application_flags,
            "bot": self.bot_user.to_dict(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "tags": [],
            "approximate_guild_count": len(self.guilds_of_bot()),
            # the app can be installed to servers (0) and to users (1)
            "integration_types_config": {"0": {}, "1": {}},
        }

    def member_dict(self, guild: FakeGuild, member: FakeMember, *, with_user: bool = True,
                    permissions: Optional[int] = None) -> dict:
        return member.to_dict(with_user=with_user, permissions=permissions)

    def guild_create_payload(self, guild: FakeGuild, session: Optional[GatewaySession] = None) -> dict:
        from .models import Intents

        if session is None or session.intents & Intents.GUILD_MEMBERS:
            members = list(guild.members.values())
        else:
            members = [m for m in guild.members.values() if m.user.id == self.bot_user.id]
        data = guild.to_dict(members=[self.member_dict(guild, m) for m in members], channels=True)
        data.update(
            joined_at=guild.members[self.bot_user.id].joined_at if self.bot_user.id in guild.members else iso(),
            large=False,
            unavailable=False,
            member_count=len(guild.members),
            voice_states=[],
            presences=[],
            threads=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
            application_command_counts={},
            lazy=True,
        )
        return data

    def permissions_in(self, channel: FakeChannel, user_id: int) -> int:
        if channel.guild_id is None:
            return Perm.EVERYONE_DEFAULT & ~Perm.CHANGE_NICKNAME
        return self.guilds[channel.guild_id].permissions_for(user_id)

    def message_dict(self, msg: FakeMessage, *, gateway: bool = False, _depth: int = 0) -> dict:
        data: dict[str, Any] = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "author": msg.author.to_dict(),
            "content": msg.content,
            "timestamp": msg.timestamp,
            "edited_timestamp": msg.edited_timestamp,
            "tts": msg.tts,
            "mention_everyone": msg.pings_everyone,
            "mentions": msg.mention_users,
            "mention_roles": [str(r) for r in msg.pinged_role_ids],
            "attachments": [a.to_dict() for a in msg.attachments],
            "embeds": msg.embeds,
            "pinned": msg.pinned,
            "type": msg.type,
            "flags": msg.flags,
            "components": msg.components,
        }
        if msg.reactions:
            data["reactions"] = [self._reaction_dict(emoji, users) for emoji, users in msg.reactions.items() if users]
        if msg.nonce is not None:
            data["nonce"] = msg.nonce
        if msg.webhook_id is not None:
            data["webhook_id"] = str(msg.webhook_id)
        if msg.application_id is not None:
            data["application_id"] = str(msg.application_id)
        if msg.interaction_metadata is not None:
            data["interaction_metadata"] = msg.interaction_metadata
        if msg.interaction_legacy is not None:
            data["interaction"] = msg.interaction_legacy
        if msg.message_reference is not None:
            data["message_reference"] = msg.message_reference
            ref_id = msg.message_reference.get("message_id")
            if _depth == 0 and ref_id is not None:
                ref = self._messages.get(int(ref_id))
                data["referenced_message"] = (
                    None if ref is None or ref.deleted else self.message_dict(ref, gateway=gateway, _depth=1)
                )
        if gateway and msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            guild = self.guilds.get(msg.guild_id)
            member = guild.members.get(msg.author.id) if guild else None
            if member is not None and msg.webhook_id is None:
                data["member"] = self.member_dict(guild, member, with_user=False)
        return data

    def _reaction_dict(self, emoji: str, users: list[int]) -> dict:
        return {
            "emoji": self._emoji_dict(emoji),
            "count": len(users),
            "count_details": {"burst": 0, "normal": len(users)},
            "burst_colors": [],
            "me": self.bot_user.id in users,
            "me_burst": False,
            "burst_me": False,
            "burst_count": 0,
        }

    @staticmethod
    def _emoji_dict(emoji: str) -> dict:
        m = re.fullmatch(r"(a:)?([\w~-]+):(\d+)", emoji)
        if m:
            return {"id": m.group(3), "name": m.group(2), "animated": bool(m.group(1))}
        return {"id": None, "name": emoji}

    # ================================================================== message bookkeeping

    def _resolve_user(self, user: UserLike) -> FakeUser:
        if isinstance(user, FakeMember):
            return user.user
        if isinstance(user, FakeUser):
            return user
        found = self.users.get(int(user))
        if found is None:
            raise InvalidInvocation(f"unknown user {user!r}")
        return found

    def _resolve_channel(self, channel: ChannelLike) -> FakeChannel:
        if isinstance(channel, FakeChannel):
            return channel
        found = self.channels.get(int(channel))
        if found is None:
            raise InvalidInvocation(f"unknown channel {channel!r}")
        return found

    def _resolve_message(self, message: MessageLike) -> FakeMessage:
        mid = message.id if isinstance(message, FakeMessage) else int(message)
        found = self._messages.get(mid)
        if found is None:
            raise InvalidInvocation(f"unknown message {message!r}")
        return found

    def _store_message(self, msg: FakeMessage) -> FakeMessage:
        self._compute_mentions(msg)
        self._messages[msg.id] = msg
        channel = self.channels.get(msg.channel_id)
        if channel is not None and not msg.ephemeral:
            channel.last_message_id = msg.id
        self._changes.notify()
        return msg

    def _compute_mentions(self, msg: FakeMessage) -> None:
        guild = self.guilds.get(msg.guild_id) if msg.guild_id else None
        replied_user_id = None
        ref = msg.message_reference
        if ref and ref.get("message_id"):
            target = self._messages.get(int(ref["message_id"]))
            if target is not None and target.author.id != msg.author.id:
                replied_user_id = target.author.id
        pings = compute_pings(
            msg.content, msg.allowed_mentions, msg.source, guild=guild, author_id=msg.author.id,
            known_users=self.users, replied_user_id=replied_user_id,
        )
        msg.pings_everyone = pings.everyone
        msg.pinged_role_ids = pings.role_ids
        msg.pinged_user_ids = pings.user_ids
        users = []
        for uid in pings.user_ids:
            udict = self.users[uid].to_dict()
            if guild is not None and uid in guild.members:
                udict["member"] = self.member_dict(guild, guild.members[uid], with_user=False)
            users.append(udict)
        msg.mention_users = users

    async def _echo(self, event: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return
        if event == "MESSAGE_DELETE":
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id:
                data["guild_id"] = str(msg.guild_id)
        else:
            data = self.message_dict(msg, gateway=True)
        await self.dispatch(event, data)

    # ================================================================== user-side actions

    async def post_message(self, user: UserLike, channel: ChannelLike, content: str = "", *,
                           attachments: Iterable[FakeAttachment] = (), embeds: Iterable[dict] = (),
                           reply_to: Optional[MessageLike] = None) -> FakeMessage:
        """A user posts a regular message (MESSAGE_CREATE to the bot)."""
        user = self._resolve_user(user)
        channel = self._resolve_channel(channel)
        atts = []
        for att in attachments:
            aid = self._ids.next()
            copy = FakeAttachment(aid, att.filename, att.data, att.content_type,
                                  url=f"{self.url}/attachments/{channel.id}/{aid}/{att.filename}",
                                  description=att.description, channel_id=channel.id)
            self.attachments[aid] = copy
            atts.append(copy)
        ref = None
        if reply_to is not None:
            target = self._resolve_message(reply_to)
            ref = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
            if target.guild_id:
                ref["guild_id"] = str(target.guild_id)
        msg = FakeMessage(
            id=self._ids.next(), channel_id=channel.id, guild_id=channel.guild_id, author=user, content=content,
            embeds=list(embeds), attachments=atts, type=19 if ref else 0, message_reference=ref, source="channel",
        )
        self._store_message(msg)
        await self._echo("MESSAGE_CREATE", msg)
        return msg

    async def add_reaction(self, user: UserLike, message: MessageLike, emoji: str) -> None:
        """``user`` reacts to ``message`` (MESSAGE_REACTION_ADD to the bot)."""
        user = self._resolve_user(user)
        msg = self._resolve_message(message)
        await self._react(msg, user, emoji, add=True)

    async def remove_reaction(self, user: UserLike, message: MessageLike, emoji: str) -> None:
        user = self._resolve_user(user)
        msg = self._resolve_message(message)
        await self._react(msg, user, emoji, add=False)

    async def _react(self, msg: FakeMessage, user: FakeUser, emoji: str, *, add: bool) -> bool:
        users = msg.reactions.setdefault(emoji, [])
        if add == (user.id in users):
            return False
        if add:
            users.append(user.id)
        else:
            users.remove(user.id)
            if not users:
                del msg.reactions[emoji]
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": self._emoji_dict(emoji),
            "burst": False,
            "type": 0,
        }
        if msg.guild_id:
            data["guild_id"] = str(msg.guild_id)
            guild = self.guilds[msg.guild_id]
            if add and user.id in guild.members:
                data["member"] = self.member_dict(guild, guild.members[user.id])
        if add:
            data["message_author_id"] = str(msg.author.id)
            data["burst_colors"] = []
        self._changes.notify()
        await self.dispatch("MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE", data)
        return True

    # ---------------------------------------------------------------- interactions

    def _find_command(self, channel: FakeChannel, name: str, ctype: int,
                      install: Optional[str] = None) -> tuple[dict, bool]:
        # guild-registered commands exist only through the guild install: never for user installs
        guild_cmds = (self._guild_commands.get(channel.guild_id, {})
                      if channel.guild_id is not None and install in (None, "guild") else {})
        for cmd in guild_cmds.values():
            if cmd["name"] == name and cmd.get("type", 1) == ctype:
                return cmd, True
        for cmd in self._global_commands.values():
            if cmd["name"] == name and cmd.get("type", 1) == ctype:
                return cmd, False
        known = [c["name"] for c in self._global_commands.values()]
        known += [c["name"] for c in guild_cmds.values()]
        raise InvalidInvocation(f"unknown command {name!r} (type {ctype}); registered: {sorted(set(known))}"
                                + ("" if install in (None, "guild") else " (global commands only for user installs)"))

    @staticmethod
    def context_of(channel: FakeChannel) -> int:
        """Interaction context of ``channel``: 0 a server, 1 the bot's DM, 2 a group DM."""
        if channel.guild_id is not None:
            return CONTEXT_GUILD
        return CONTEXT_BOT_DM if channel.type == 1 else CONTEXT_PRIVATE_CHANNEL

    def _guild_install_here(self, channel: FakeChannel) -> bool:
        """Whether the app's guild install reaches ``channel``: a server the bot is in, or the bot's DM."""
        ctx = self.context_of(channel)
        if ctx == CONTEXT_GUILD:
            return self.bot_in_guild(channel.guild_id)
        return ctx == CONTEXT_BOT_DM

    def _command_install(self, cmd: dict, is_guild: bool, channel: FakeChannel, install: Optional[str]) -> str:
        """The installation that authorises ``cmd`` here (``install`` checked, or chosen when None)."""
        if install is not None and install not in INSTALL_TYPES:
            raise InvalidInvocation(f"install={install!r}: use 'guild', 'user' or 'both'")
        here = self._guild_install_here(channel)
        if install is None:
            types = cmd.get("integration_types") or [0]
            install = "guild" if is_guild or (here and 0 in types) else "user"
        if 0 in INSTALL_TYPES[install] and not here:
            where = "this group DM" if channel.is_group_dm else f"server {self.guilds[channel.guild_id].name!r}"
            raise InvalidInvocation(f"the app is not installed in {where} (the bot is not there); "
                                    "only install='user' works there")
        return install

    def _owners(self, install: str, user: FakeUser, channel: FakeChannel) -> dict[str, str]:
        """``authorizing_integration_owners``: "0" -> the guild id ("0" in the bot's DM), "1" -> the user."""
        owners: dict[str, str] = {}
        if 0 in INSTALL_TYPES[install]:
            owners["0"] = str(channel.guild_id) if channel.guild_id is not None else "0"
        if 1 in INSTALL_TYPES[install]:
            owners["1"] = str(user.id)
        return owners

    def _check_command_usable(self, cmd: dict, user: FakeUser, channel: FakeChannel, *, install: str = "guild",
                              is_guild: bool = False) -> None:
        contexts = cmd.get("contexts")
        ctx = self.context_of(channel)
        if contexts is not None and ctx not in contexts:
            raise InvalidInvocation(f"command {cmd['name']!r} is not available in this context ({ctx}); "
                                    f"contexts={contexts}")
        if ctx != CONTEXT_GUILD and cmd.get("dm_permission") is False:
            raise InvalidInvocation(f"command {cmd['name']!r} is not available in DMs")
        # guild commands are only reachable through the guild install, whatever they declare
        types = [0] if is_guild else (cmd.get("integration_types") or [0])
        missing = [t for t in INSTALL_TYPES[install] if t not in types]
        if missing:
            raise InvalidInvocation(f"command {cmd['name']!r} does not support install={install!r} "
                                    f"(integration_types={types}); Discord's client does not show it")
        if cmd.get("nsfw") and not channel.nsfw:
            raise InvalidInvocation(f"command {cmd['name']!r} is age-restricted and #{channel.name} is not NSFW")
        required = cmd.get("default_member_permissions")
        if required is not None and channel.guild_id is not None:
            perms = self.permissions_in(channel, user.id)
            need = int(required)
            if perms & need != need:
                raise InvalidInvocation(
                    f"{user.name} lacks default_member_permissions={need} for {cmd['name']!r} (Discord hides it)"
                )

    def app_permissions_in(self, channel: FakeChannel) -> int:
        """``app_permissions`` of an interaction in ``channel``: the bot's permissions where the bot is; in a
        server without the bot @everyone's permissions plus Attach Files and Embed Links; Discord's documented
        sets in the bot's DM and in group DMs."""
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            if self.bot_user.id in guild.members:
                return guild.permissions_for(self.bot_user.id)
            perms = guild.default_role.permissions
            return Perm.ALL if perms & Perm.ADMINISTRATOR else perms | Perm.APP_EXTERNAL_ALWAYS
        return Perm.APP_BOT_DM if channel.type == 1 else Perm.APP_PRIVATE_CHANNEL

    def _base_interaction(self, itype: int, user: FakeUser, channel: FakeChannel, data: Optional[dict],
                          *, owners: Optional[dict[str, str]] = None, attachment_size_limit: Optional[int] = None,
                          locale: str = "en-US", guild_locale: Optional[str] = None,
                          message: Optional[FakeMessage] = None) -> dict:
        _check_locale(locale, "locale")
        limit = attachment_size_limit if attachment_size_limit is not None else self.attachment_size_limit
        ctx = self.context_of(channel)
        if owners is None:
            owners = self._owners("guild" if self._guild_install_here(channel) else "user", user, channel)
        payload: dict[str, Any] = {
            "id": None,
            "application_id": str(self.application_id),
            "type": itype,
            "channel_id": str(channel.id),
            "token": None,
            "version": 1,
            "locale": locale,
            "app_permissions": str(self.app_permissions_in(channel)),
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": limit,
        }
        if data is not None:
            payload["data"] = data
        if ctx == CONTEXT_GUILD:
            guild = self.guilds[channel.guild_id]
            member = guild.members.get(user.id)
            if member is None:
                raise InvalidInvocation(f"{user.name} is not a member of {guild.name!r}")
            if guild_locale is None:
                guild_locale = guild.preferred_locale
            _check_locale(guild_locale, "guild_locale")
            perms = self.permissions_in(channel, user.id)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": guild_locale, "features": []},
                guild_locale=guild_locale,
                member=self.member_dict(guild, member, permissions=perms),
                channel=channel.to_dict(permissions=perms),
            )
        else:
            if guild_locale is not None:
                raise InvalidInvocation("guild_locale only exists for interactions in servers")
            if channel.recipients and user.id not in {u.id for u in channel.recipients}:
                raise InvalidInvocation(f"{user.name} is not a recipient of DM channel {channel.id}")
            payload.update(
                user=user.to_dict(),
                channel=channel.to_dict(permissions=self.permissions_in(channel, user.id)),
            )
        payload.update(authorizing_integration_owners=dict(owners), context=ctx)
        if message is not None:
            payload["message"] = self.message_dict(message)
        return payload

    async def _dispatch_interaction(self, payload: dict, *, user: FakeUser, channel: FakeChannel,
                                    message: Optional[FakeMessage] = None, name: Optional[str] = None,
                                    custom_id: Optional[str] = None) -> FakeInteraction:
        await self._ensure_gateway()
        iid = self._ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(120)
        payload["id"] = str(iid)
        payload["token"] = token
        ix = FakeInteraction(
            self, id=iid, token=token, type=payload["type"], user=user, channel=channel, payload=payload,
            attachment_size_limit=payload["attachment_size_limit"], source_message=message, name=name,
            custom_id=custom_id,
        )
        # a server without the app: if the invoker may not use external apps, every response is ephemeral
        if channel.guild_id is not None and not self.bot_in_guild(channel.guild_id):
            ix.forced_ephemeral = not self.permissions_in(channel, user.id) & Perm.USE_EXTERNAL_APPS
        self.interactions[iid] = ix
        self._by_token[token] = ix
        ix.created_at = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", payload)
        return ix

    def _convert_option(self, opt: dict, value: Any, resolved: dict, channel: FakeChannel, *,
                        autocomplete: bool, focused: bool) -> Any:
        otype = opt["type"]
        name = opt["name"]
        if focused:
            return str(value)
        if otype == 3:
            if not isinstance(value, str):
                raise InvalidInvocation(f"option {name!r} is a STRING, got {value!r}")
            if not autocomplete:
                if "min_length" in opt and len(value) < opt["min_length"]:
                    raise InvalidInvocation(f"option {name!r} shorter than min_length={opt['min_length']}")
                if "max_length" in opt and len(value) > opt["max_length"]:
                    raise InvalidInvocation(f"option {name!r} longer than max_length={opt['max_length']}")
                if len(value) > 6000:
                    raise InvalidInvocation(f"option {name!r} longer than 6000 characters")
        elif otype == 4:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInvocation(f"option {name!r} is an INTEGER, got {value!r}")
            if abs(value) > 2**53:
                raise InvalidInvocation(f"option {name!r} out of the INTEGER range")
        elif otype == 10:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInvocation(f"option {name!r} is a NUMBER, got {value!r}")
        elif otype == 5:
            if not isinstance(value, bool):
                raise InvalidInvocation(f"option {name!r} is a BOOLEAN, got {value!r}")
        elif otype in (6, 9) and isinstance(value, (FakeUser, FakeMember)) or (otype == 6 and isinstance(value, int)):
            user = self._resolve_user(value)
            resolved.setdefault("users", {})[str(user.id)] = user.to_dict()
            if channel.guild_id is not None:
                guild = self.guilds[channel.guild_id]
                if user.id in guild.members:
                    resolved.setdefault("members", {})[str(user.id)] = self.member_dict(
                        guild, guild.members[user.id], with_user=False, permissions=self.permissions_in(channel, user.id)
                    )
            return str(user.id)
        elif otype in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_dict()
            return str(value.id)
        elif otype == 7:
            ch = self._resolve_channel(value)
            types = opt.get("channel_types")
            if types and ch.type not in types:
                raise InvalidInvocation(f"option {name!r} accepts channel types {types}, got {ch.type}")
            resolved.setdefault("channels", {})[str(ch.id)] = {
                "id": str(ch.id), "name": ch.name, "type": ch.type, "nsfw": ch.nsfw, "parent_id": None,
                "permissions": str(self.app_permissions_in(ch)), "flags": 0,
            }
            return str(ch.id)
        elif otype == 11:
            if not isinstance(value, FakeAttachment):
                raise InvalidInvocation(f"option {name!r} is an ATTACHMENT, pass fake.make_attachment(...)")
            resolved.setdefault("attachments", {})[str(value.id)] = value.to_dict()
            return str(value.id)
        else:
            raise InvalidInvocation(f"option {name!r} ({OPTION_TYPES.get(otype, otype)}) cannot take {value!r}")
        if opt.get("choices") and not autocomplete:
            allowed = [c["value"] for c in opt["choices"]]
            if value not in allowed:
                raise InvalidInvocation(f"option {name!r}: {value!r} is not one of the choices {allowed}")
        if otype in (4, 10) and not autocomplete:
            if "min_value" in opt and value < opt["min_value"]:
                raise InvalidInvocation(f"option {name!r}: {value!r} < min_value={opt['min_value']}")
            if "max_value" in opt and value > opt["max_value"]:
                raise InvalidInvocation(f"option {name!r}: {value!r} > max_value={opt['max_value']}")
        return value

    def _build_command_data(self, user: FakeUser, channel: FakeChannel, name: str, options: dict, *,
                            focused: Optional[str] = None, check_permissions: bool = True,
                            install: Optional[str] = None) -> tuple[dict, dict, str]:
        parts = name.split()
        if not parts:
            raise InvalidInvocation("empty command name")
        cmd, is_guild = self._find_command(channel, parts[0], 1, install)
        install = self._command_install(cmd, is_guild, channel, install)
        if check_permissions:
            self._check_command_usable(cmd, user, channel, install=install, is_guild=is_guild)
        schema = cmd.get("options") or []
        path: list[tuple[str, int]] = []
        for part in parts[1:]:
            sub = next((o for o in schema if o["name"] == part and o["type"] in (1, 2)), None)
            if sub is None:
                raise InvalidInvocation(f"/{cmd['name']} has no subcommand (group) {part!r}")
            path.append((part, sub["type"]))
            schema = sub.get("options") or []
        if any(o["type"] in (1, 2) for o in schema):
            subs = [o["name"] for o in schema if o["type"] in (1, 2)]
            raise InvalidInvocation(f"/{name} needs a subcommand: one of {subs}")
        if path and path[-1][1] == 2:
            raise InvalidInvocation(f"/{name} is a subcommand group, not a subcommand")

        by_name = {o["name"]: o for o in schema}
        for key in options:
            if key not in by_name:
                raise InvalidInvocation(f"/{name} has no option {key!r}; options: {list(by_name)}")
        if focused is not None:
            if focused not in by_name:
                raise InvalidInvocation(f"/{name} has no option {focused!r}")
            if not by_name[focused].get("autocomplete"):
                raise InvalidInvocation(f"option {focused!r} of /{name} has no autocomplete")
        resolved: dict[str, dict] = {}
        out: list[dict] = []
        for opt in schema:
            oname = opt["name"]
            if oname not in options or options[oname] is None:
                if opt.get("required") and focused is None:
                    raise InvalidInvocation(f"/{name}: required option {oname!r} missing")
                if oname == focused:
                    out.append({"name": oname, "type": opt["type"], "value": "", "focused": True})
                continue
            is_focused = oname == focused
            value = self._convert_option(opt, options[oname], resolved, channel,
                                         autocomplete=focused is not None, focused=is_focused)
            entry: dict[str, Any] = {"name": oname, "type": opt["type"], "value": value}
            if is_focused:
                entry["focused"] = True
            out.append(entry)
        for part, ptype in reversed(path):
            out = [{"name": part, "type": ptype, "options": out}]
        data: dict[str, Any] = {"id": str(cmd["id"]), "name": cmd["name"], "type": 1}
        if out:
            data["options"] = out
        if resolved:
            data["resolved"] = resolved
        if is_guild:
            data["guild_id"] = str(channel.guild_id)
        return cmd, data, install

    async def invoke(self, user: UserLike, channel: ChannelLike, name: str, options: Optional[dict] = None, *,
                     attachments: Optional[dict[str, FakeAttachment]] = None, check_permissions: bool = True,
                     attachment_size_limit: Optional[int] = None, locale: str = "en-US",
                     guild_locale: Optional[str] = None, install: Optional[str] = None) -> FakeInteraction:
        """A user runs the slash command ``name`` ("group sub" for subcommands) with ``options``.

        The payload is built from the *registered* schema, so unknown commands/options, missing required
        options, wrong types and out-of-range values raise ``InvalidInvocation`` like Discord's client
        would refuse them. ``check_permissions`` also enforces default_member_permissions/nsfw/contexts/
        integration_types.

        ``locale``: the user's client language; ``guild_locale``: the server's (default: the guild's
        ``preferred_locale``; servers only). ``install``: which installation authorises the command,
        ``"guild"`` (the bot's server install; in the bot's DM too), ``"user"`` (the user installed the app) or
        ``"both"``; by default ``"guild"`` where the bot is (and the command allows guild installs), else
        ``"user"``."""
        user = self._resolve_user(user)
        channel = self._resolve_channel(channel)
        values = dict(options or {})
        values.update(attachments or {})
        _, data, install = self._build_command_data(user, channel, name, values, check_permissions=check_permissions,
                                                    install=install)
        payload = self._base_interaction(2, user, channel, data, attachment_size_limit=attachment_size_limit,
                                         locale=locale, guild_locale=guild_locale,
                                         owners=self._owners(install, user, channel))
        return await self._dispatch_interaction(payload, user=user, channel=channel, name=name)

    async def autocomplete(self, user: UserLike, channel: ChannelLike, name: str, options: Optional[dict] = None, *,
                           focused: str, timeout: float = 5.0, locale: str = "en-US",
                           guild_locale: Optional[str] = None, install: Optional[str] = None) -> list[dict]:
        """Send an autocomplete interaction (type 4) and return the choices the bot answered with."""
        ix = await self.autocomplete_interaction(user, channel, name, options, focused=focused, locale=locale,
                                                 guild_locale=guild_locale, install=install)
        try:
            await ix.wait_for(lambda i: i.choices is not None or i.rejected, timeout=timeout)
        except TimeoutError:
            raise TimeoutError(f"no autocomplete answer for /{name} {focused!r} within {timeout}s") from None
        if ix.choices is None:
            raise InteractionFailed(f"autocomplete answer rejected: {ix.rejected}")
        return ix.choices

    async def autocomplete_interaction(self, user: UserLike, channel: ChannelLike, name: str,
                                       options: Optional[dict] = None, *, focused: str, locale: str = "en-US",
                                       guild_locale: Optional[str] = None,
                                       install: Optional[str] = None) -> FakeInteraction:
        user = self._resolve_user(user)
        channel = self._resolve_channel(channel)
        _, data, install = self._build_command_data(user, channel, name, dict(options or {}), focused=focused,
                                                    install=install)
        data.pop("resolved", None)
        payload = self._base_interaction(4, user, channel, data, locale=locale, guild_locale=guild_locale,
                                         owners=self._owners(install, user, channel))
        return await self._dispatch_interaction(payload, user=user, channel=channel, name=name)

    async def invoke_user_command(self, user: UserLike, channel: ChannelLike, name: str, target: UserLike, *,
                                  locale: str = "en-US", guild_locale: Optional[str] = None,
                                  install: Optional[str] = None) -> FakeInteraction:
        """A user context-menu command (type 2) on ``target`` (``locale``/``guild_locale``/``install`` as in
        ``invoke``)."""
        user, target = self._resolve_user(user), self._resolve_user(target)
        channel = self._resolve_channel(channel)
        cmd, is_guild = self._find_command(channel, name, 2, install)
        install = self._command_install(cmd, is_guild, channel, install)
        self._check_command_usable(cmd, user, channel, install=install, is_guild=is_guild)
        resolved: dict[str, Any] = {"users": {str(target.id): target.to_dict()}}
        if channel.guild_id is not None and target.id in self.guilds[channel.guild_id].members:
            guild = self.guilds[channel.guild_id]
            resolved["members"] = {str(target.id): self.member_dict(
                guild, guild.members[target.id], with_user=False, permissions=self.permissions_in(channel, target.id))}
        data = {"id": str(cmd["id"]), "name": name, "type": 2, "target_id": str(target.id), "resolved": resolved}
        if is_guild:
            data["guild_id"] = str(channel.guild_id)
        payload = self._base_interaction(2, user, channel, data, locale=locale, guild_locale=guild_locale,
                                         owners=self._owners(install, user, channel))
        return await self._dispatch_interaction(payload, user=user, channel=channel, name=name)

    async def invoke_message_command(self, user: UserLike, name: str, target: MessageLike, *,
                                     locale: str = "en-US", guild_locale: Optional[str] = None,
                                     install: Optional[str] = None) -> FakeInteraction:
        """A message context-menu command (type 3) on ``target``, in the target's channel."""
        user = self._resolve_user(user)
        msg = self._resolve_message(target)
        channel = self._resolve_channel(msg.channel_id)
        cmd, is_guild = self._find_command(channel, name, 3, install)
        install = self._command_install(cmd, is_guild, channel, install)
        self._check_command_usable(cmd, user, channel, install=install, is_guild=is_guild)
        data = {"id": str(cmd["id"]), "name": name, "type": 3, "target_id": str(msg.id),
                "resolved": {"messages": {str(msg.id): self.message_dict(msg)}}}
        if is_guild:
            data["guild_id"] = str(channel.guild_id)
        payload = self._base_interaction(2, user, channel, data, locale=locale, guild_locale=guild_locale,
                                         owners=self._owners(install, user, channel))
        return await self._dispatch_interaction(payload, user=user, channel=channel, name=name)

    async def click(self, user: UserLike, message: MessageLike, custom_id: str, *,
                    values: Optional[list] = None, locale: str = "en-US",
                    guild_locale: Optional[str] = None) -> FakeInteraction:
        """``user`` presses the button / picks ``values`` in the select ``custom_id`` on ``message`` (type 3).

        ``authorizing_integration_owners`` are those of the interaction that created the message (so a click on
        a user-installed app's message keeps ``{"1": <the user who ran the command>}``); messages the bot sent
        itself are guild-install ones."""
        user = self._resolve_user(user)
        msg = self._resolve_message(message)
        if msg.deleted:
            raise InvalidInvocation(f"message {msg.id} was deleted")
        comp = msg.find_component(custom_id)
        if comp is None:
            raise InvalidInvocation(f"no component {custom_id!r} on message {msg.id}; custom_ids: {msg.custom_ids()}")
        if comp.get("disabled"):
            raise InvalidInvocation(f"component {custom_id!r} is disabled")
        channel = self._resolve_channel(msg.channel_id)
        ctype = comp["type"]
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": ctype}
        if "id" in comp:
            data["id"] = comp["id"]
        if ctype in SELECT_TYPES:
            if values is None:
                raise InvalidInvocation(f"select {custom_id!r} needs values=[...]")
            min_v, max_v = comp.get("min_values", 1), comp.get("max_values", 1)
            if not (min_v <= len(values) <= max_v):
                raise InvalidInvocation(f"select {custom_id!r} takes {min_v}..{max_v} values, got {len(values)}")
            data["values"] = self._select_values(comp, values, data, channel)
        elif values is not None:
            raise InvalidInvocation(f"component {custom_id!r} is not a select")
        payload = self._base_interaction(3, user, channel, data, message=msg, locale=locale, guild_locale=guild_locale,
                                         owners=self._message_owners(msg, user, channel))
        return await self._dispatch_interaction(payload, user=user, channel=channel, message=msg,
                                                custom_id=custom_id)

    def _message_owners(self, msg: FakeMessage, user: FakeUser, channel: FakeChannel) -> dict[str, str]:
        source = self.interactions.get(msg.interaction_id) if msg.interaction_id is not None else None
        if source is not None:
            return source.authorizing_integration_owners
        return self._owners("guild", user, channel)

    def _select_values(self, comp: dict, values: list, data: dict, channel: FakeChannel) -> list[str]:
        ctype = comp["type"]
        if ctype == 3:
            allowed = [o["value"] for o in comp.get("options", [])]
            for v in values:
                if v not in allowed:
                    raise InvalidInvocation(f"{v!r} is not an option of select {comp.get('custom_id')!r}: {allowed}")
            return [str(v) for v in values]
        resolved: dict[str, dict] = {}
        out = []
        for v in values:
            if isinstance(v, FakeRole):
                resolved.setdefault("roles", {})[str(v.id)] = v.to_dict()
                out.append(str(v.id))
            elif isinstance(v, FakeChannel):
                resolved.setdefault("channels", {})[str(v.id)] = {
                    "id": str(v.id), "name": v.name, "type": v.type, "permissions": "0", "flags": 0}
                out.append(str(v.id))
            else:
                out.append(self._convert_option({"type": 6, "name": "select"}, v, resolved, channel,
                                                autocomplete=False, focused=False))
        if resolved:
            data["resolved"] = resolved
        return out

    async def submit_modal(self, user: UserLike, channel: ChannelLike, custom_id: str, values: dict, *,
                           message: Optional[MessageLike] = None, locale: str = "en-US",
                           guild_locale: Optional[str] = None) -> FakeInteraction:
        """Submit the modal ``custom_id`` the bot opened earlier (type-9 callback) with field ``values``
        (custom_id -> str for text inputs, list for selects/uploads, bool for checkboxes).
        ``authorizing_integration_owners`` are those of the interaction that opened the modal."""
        user = self._resolve_user(user)
        channel = self._resolve_channel(channel)
        opened = self._modals.get(custom_id)
        if opened is None:
            raise InvalidInvocation(f"no modal {custom_id!r} was opened by the bot; opened: {list(self._modals)}")
        opener, modal = opened
        if opener.user.id != user.id:
            raise InvalidInvocation(f"modal {custom_id!r} was shown to {opener.user.name}, not {user.name}")
        values = dict(values)
        resolved: dict[str, dict] = {}
        used: set[str] = set()

        def submit(comp: dict) -> Optional[dict]:
            ctype = comp.get("type")
            cid = comp.get("custom_id")
            if cid is None:
                return {"type": ctype, "id": comp["id"]} if "id" in comp else None
            used.add(cid)
            out: dict[str, Any] = {"type": ctype, "custom_id": cid}
            if "id" in comp:
                out["id"] = comp["id"]
            value = values.get(cid, comp.get("value"))
            required = comp.get("required", ctype == 4 or comp.get("min_values", 1) > 0)
            if ctype == 4:
                value = "" if value is None else value
                if not isinstance(value, str):
                    raise InvalidInvocation(f"text input {cid!r} takes a str")
                if required and not value:
                    raise InvalidInvocation(f"text input {cid!r} is required")
                if value and len(value) < comp.get("min_length", 0):
                    raise InvalidInvocation(f"text input {cid!r} shorter than min_length")
                if len(value) > comp.get("max_length", 4000):
                    raise InvalidInvocation(f"text input {cid!r} longer than max_length")
                out["value"] = value
            elif ctype in SELECT_TYPES or ctype == 19 or isinstance(value, list):
                items = list(value or [])
                if ctype == 19:
                    ids = []
                    for att in items:
                        if not isinstance(att, FakeAttachment):
                            raise InvalidInvocation(f"file upload {cid!r} takes FakeAttachment objects")
                        resolved.setdefault("attachments", {})[str(att.id)] = att.to_dict()
                        ids.append(str(att.id))
                    out["values"] = ids
                elif ctype in SELECT_TYPES:
                    out["values"] = self._select_values(comp, items, out, channel)
                    if "resolved" in out:
                        for k, v in out.pop("resolved").items():
                            resolved.setdefault(k, {}).update(v)
                else:
                    out["values"] = [str(v) for v in items]
            else:
                out["value"] = value
            return out

        components = []
        for top in modal.get("components", []):
            ttype = top.get("type")
            if ttype == 1:
                row = [s for s in (submit(c) for c in top.get("components", [])) if s is not None]
                components.append({"type": 1, "components": row})
            elif ttype == 18:
                entry = {"type": 18, "component": submit(top["component"])}
                if "id" in top:
                    entry["id"] = top["id"]
                components.append(entry)
            else:
                sub = submit(top)
                if sub is not None:
                    components.append(sub)
        unknown = set(values) - used
        if unknown:
            raise InvalidInvocation(f"modal {custom_id!r} has no fields {sorted(unknown)}; fields: {sorted(used)}")
        data: dict[str, Any] = {"custom_id": custom_id, "components": components}
        if resolved:
            data["resolved"] = resolved
        msg = self._resolve_message(message) if message is not None else opener.source_message
        payload = self._base_interaction(5, user, channel, data, message=msg, locale=locale, guild_locale=guild_locale,
                                         owners=opener.authorizing_integration_owners)
        ix = await self._dispatch_interaction(payload, user=user, channel=channel, message=msg, custom_id=custom_id)
        ix.opener = opener  # type: ignore[attr-defined]
        return ix

    # ================================================================== helpers used by rest.py

    def new_id(self) -> int:
        return self._ids.next()

    def interaction_metadata(self, ix: FakeInteraction, *, followup_of: Optional[FakeMessage] = None) -> dict:
        meta: dict[str, Any] = {
            "id": str(ix.id),
            "type": ix.type,
            "user": ix.user.to_dict(),
            "authorizing_integration_owners": ix.payload.get("authorizing_integration_owners", {}),
        }
        if ix.type == 2:
            meta["name"] = ix.name
            meta["command_type"] = (ix.payload.get("data") or {}).get("type", 1)
        if ix.source_message is not None and ix.type in (3, 5):
            meta["interacted_message_id"] = str(ix.source_message.id)
        opener = getattr(ix, "opener", None)
        if ix.type == 5 and opener is not None:
            meta["triggering_interaction_metadata"] = self.interaction_metadata(opener)
        if followup_of is not None:
            meta["original_response_message_id"] = str(followup_of.id)
        return meta

    def interaction_legacy(self, ix: FakeInteraction) -> dict:
        return {"id": str(ix.id), "type": ix.type, "name": ix.name or ix.custom_id or "", "user": ix.user.to_dict()}


__all__ = ["FakeDiscord", "RequestRecord"]
