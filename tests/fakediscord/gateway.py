"""The fake gateway: JSON text frames over a websocket (no compression), sessions with resume."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Optional

import aiohttp
from aiohttp import web

from .models import Intents

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeDiscord

log = logging.getLogger("fakediscord.gateway")

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_VOICE_STATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

HEARTBEAT_INTERVAL_MS = 41250

_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
_REACTION_EVENTS = {
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
}


def required_intent(event: str, data: dict) -> int:
    """The intent a session needs to receive this event (0 = always delivered)."""
    in_guild = bool(data.get("guild_id"))
    if event in _MESSAGE_EVENTS:
        return Intents.GUILD_MESSAGES if in_guild else Intents.DIRECT_MESSAGES
    if event in _REACTION_EVENTS:
        return Intents.GUILD_MESSAGE_REACTIONS if in_guild else Intents.DIRECT_MESSAGE_REACTIONS
    if event == "TYPING_START":
        return Intents.GUILD_MESSAGE_TYPING if in_guild else 0
    if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "CHANNEL_CREATE", "CHANNEL_UPDATE",
                 "CHANNEL_DELETE", "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE"):
        return Intents.GUILDS
    if event in ("GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"):
        return Intents.GUILD_MEMBERS
    return 0


class GatewaySession:
    """A gateway session (what a RESUME resumes). Survives its websocket connection."""

    def __init__(self, fake: "FakeDiscord", *, intents: int, shard: Optional[list[int]], identify: dict) -> None:
        self.fake = fake
        self.id = secrets.token_hex(16)
        self.intents = intents
        self.shard = shard
        self.identify = identify
        self.seq = 0
        self.log: collections.deque[tuple[int, str]] = collections.deque(maxlen=5000)
        self.conn: Optional[GatewayConnection] = None
        self.invalidated = False
        self.ready = False
        self.lock = asyncio.Lock()
        self.created_at = time.monotonic()
        self.resumes = 0
        #: every event dispatched on this session: (monotonic t, event name, data)
        self.events: list[tuple[float, str, dict]] = []

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.ws.closed

    def handles_guild(self, guild_id: Optional[int]) -> bool:
        if guild_id is None or not self.shard:
            return True
        shard_id, count = self.shard
        return (int(guild_id) >> 22) % max(count, 1) == shard_id

    def wants(self, event: str, data: dict) -> bool:
        need = required_intent(event, data)
        if need and not (self.intents & need):
            return False
        gid = data.get("id") if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") else data.get("guild_id")
        return self.handles_guild(int(gid) if gid else None)

    def _transform(self, event: str, data: dict) -> dict:
        # Without MESSAGE_CONTENT, other users' guild messages arrive blanked unless they mention the bot.
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not (self.intents & Intents.MESSAGE_CONTENT):
            bot_id = str(self.fake.bot_user.id)
            author = (data.get("author") or {}).get("id")
            mentioned = any(u.get("id") == bot_id for u in data.get("mentions", []))
            if data.get("guild_id") and author != bot_id and not mentioned:
                data = dict(data, content="", embeds=[], attachments=[], components=[])
                data.pop("poll", None)
        return data

    async def dispatch(self, event: str, data: dict) -> None:
        async with self.lock:
            await self._dispatch_locked(event, data)

    async def _dispatch_locked(self, event: str, data: dict) -> None:
        data = self._transform(event, data)
        self.seq += 1
        frame = json.dumps({"op": OP_DISPATCH, "t": event, "s": self.seq, "d": data})
        self.log.append((self.seq, frame))
        self.events.append((time.monotonic(), event, data))
        conn = self.conn
        if conn is not None:
            await conn.send_raw(frame)

    def __repr__(self) -> str:
        state = "invalidated" if self.invalidated else ("connected" if self.connected else "disconnected")
        return f"<GatewaySession {self.id[:8]} seq={self.seq} {state} resumes={self.resumes}>"


class GatewayConnection:
    """One websocket connection (one ``DiscordWebSocket`` on the client side)."""

    def __init__(self, fake: "FakeDiscord", ws: web.WebSocketResponse, path: str, query: dict) -> None:
        self.fake = fake
        self.ws = ws
        self.path = path
        self.query = query
        self.session: Optional[GatewaySession] = None
        self._send_lock = asyncio.Lock()
        self.received: list[dict] = []
        self.close_code: Optional[int] = None
        self.closed_by_server = False
        self.opened_at = time.monotonic()

    async def send_raw(self, frame: str) -> None:
        if self.ws.closed:
            return
        async with self._send_lock:
            try:
                await self.ws.send_str(frame)
            except (ConnectionResetError, RuntimeError, aiohttp.ClientConnectionError) as exc:
                log.debug("gateway send failed: %r", exc)

    async def send_op(self, op: int, d: Any = None) -> None:
        await self.send_raw(json.dumps({"op": op, "d": d, "s": None, "t": None}))

    async def close(self, code: int = 4000, message: str = "") -> None:
        self.closed_by_server = True
        if not self.ws.closed:
            try:
                await self.ws.close(code=code, message=message.encode())
            except Exception as exc:  # pragma: no cover - best effort
                log.debug("gateway close failed: %r", exc)

    async def run(self) -> None:
        await self.send_op(OP_HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS, "_trace": ["fakediscord"]})
        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                    except ValueError:
                        await self.close(4002, "Error while decoding payload.")
                        break
                    self.received.append(payload)
                    try:
                        await self.handle(payload)
                    except Exception as exc:  # a bug in the fake: keep it visible, keep the socket alive
                        log.exception("fakediscord gateway handler crashed on op %s", payload.get("op"))
                        self.fake.server_errors.append(exc)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await self.close(4002, "Binary frames are not supported by the fake.")
                    break
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        finally:
            self.close_code = self.ws.close_code
            session = self.session
            if session is not None and session.conn is self:
                session.conn = None
                # A client that closes with 1000/1001 ends its session; a close initiated by the fake doesn't
                # (aiohttp reports 1000 for those whatever code was sent).
                if self.close_code in (1000, 1001) and not self.closed_by_server:
                    session.invalidated = True
            self.fake._changes.notify()

    async def handle(self, payload: dict) -> None:
        op = payload.get("op")
        d = payload.get("d")
        if op == OP_HEARTBEAT:
            await self.send_op(OP_HEARTBEAT_ACK)
        elif op == OP_IDENTIFY:
            await self.identify(d or {})
        elif op == OP_RESUME:
            await self.resume(d or {})
        elif self.session is None:
            await self.close(4003, "Not authenticated.")
        elif op == OP_REQUEST_MEMBERS:
            await self.request_members(d or {})
        elif op in (OP_PRESENCE, OP_VOICE_STATE):
            pass
        else:
            await self.close(4001, "Unknown opcode.")

    async def identify(self, d: dict) -> None:
        fake = self.fake
        if self.session is not None:
            await self.close(4005, "Already authenticated.")
            return
        if d.get("token") != fake.token:
            await self.close(4004, "Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            await self.close(4013, "Invalid intent(s).")
            return
        for name, bit in Intents.PRIVILEGED.items():
            if intents & bit and name not in fake.privileged_intents:
                await self.close(4014, "Disallowed intent(s).")
                return
        shard = d.get("shard")
        if shard is not None and (len(shard) != 2 or not (0 <= shard[0] < shard[1])):
            await self.close(4010, "Invalid shard.")
            return
        session = GatewaySession(fake, intents=intents, shard=shard, identify=d)
        fake.sessions.append(session)
        fake.identify_count += 1
        async with session.lock:
            self.session = session
            session.conn = self
            guilds = [g for g in fake.guilds_of_bot() if session.handles_guild(g.id)]
            ready = {
                "v": 10,
                "user": fake.bot_user_dict(),
                "user_settings": {},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": ["us-west"],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": fake.resume_gateway_url,
                "auth": {},
                "application": {"id": str(fake.application_id), "flags": fake.application_flags},
                "_trace": ["fakediscord"],
            }
            if shard is not None:
                ready["shard"] = shard
            await session._dispatch_locked("READY", ready)
            for guild in guilds:
                await session._dispatch_locked("GUILD_CREATE", fake.guild_create_payload(guild, session))
            session.ready = True
        fake._changes.notify()

    async def resume(self, d: dict) -> None:
        fake = self.fake
        if d.get("token") != fake.token:
            await self.close(4004, "Authentication failed.")
            return
        session = next((s for s in fake.sessions if s.id == d.get("session_id")), None)
        if session is None or session.invalidated:
            await self.send_op(OP_INVALID_SESSION, False)
            return
        seq = d.get("seq") or 0
        async with session.lock:
            old = session.conn
            session.conn = self
            self.session = session
            if old is not None and old is not self:
                await old.close(4000, "Session resumed elsewhere.")
            for s, frame in list(session.log):
                if s > seq:
                    await self.send_raw(frame)
            session.resumes += 1
            fake.resume_count += 1
            await session._dispatch_locked("RESUMED", {"_trace": ["fakediscord"]})
        fake._changes.notify()

    async def request_members(self, d: dict) -> None:
        fake = self.fake
        guild = fake.guilds.get(int(d.get("guild_id") or 0))
        if guild is None or not fake.bot_in_guild(guild):
            return
        members = list(guild.members.values())
        not_found: list[str] = []
        if d.get("user_ids"):
            ids = d["user_ids"] if isinstance(d["user_ids"], list) else [d["user_ids"]]
            wanted = {int(u) for u in ids}
            members = [m for m in members if m.user.id in wanted]
            not_found = [str(u) for u in wanted - {m.user.id for m in members}]
        elif d.get("query"):
            q = d["query"].lower()
            members = [m for m in members if m.user.name.lower().startswith(q)]
        if d.get("limit"):
            members = members[: d["limit"]]
        payload = {
            "guild_id": str(guild.id),
            "members": [fake.member_dict(guild, m) for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if d.get("presences"):
            payload["presences"] = []
        if d.get("nonce") is not None:
            payload["nonce"] = d["nonce"]
        if self.session is not None:
            await self.session.dispatch("GUILD_MEMBERS_CHUNK", payload)
