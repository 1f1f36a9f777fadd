"""REST v10 + CDN handlers of the fake (mixed into FakeDiscord)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from aiohttp import web

from .gateway import GatewayConnection
from .mentions import validate_allowed_mentions
from .models import (
    FLAG_COMPONENTS_V2,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    LOCALES,
    APIError,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMessage,
    Perm,
    form_error,
    guess_content_type,
    iso,
    iter_components,
)

if TYPE_CHECKING:  # pragma: no cover
    from .server import FakeDiscord

log = logging.getLogger("fakediscord.rest")

JSON = "application/json"

# Discord: CHAT_INPUT command and option names match ^[-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$ (unicode) and
# use the lowercase form of any letter that has one. Python's ``re`` has no \p{...}, so the same test is written
# with unicodedata: letters (L*), numbers (N*), - _ ', and any assigned character of the Devanagari or Thai
# scripts (their blocks, minus the danda, double danda and baht sign, which are Script=Common).
_DEVANAGARI = ((0x0900, 0x097F), (0xA8E0, 0xA8FF), (0x11B00, 0x11B09))
_THAI = ((0x0E01, 0x0E3A), (0x0E40, 0x0E5B))
_COMMON_IN_SCRIPT_BLOCKS = {0x0964, 0x0965}
MAX_COMMAND_SIZE = 8000


def _deva_or_thai(ch: str) -> bool:
    cp = ord(ch)
    if cp in _COMMON_IN_SCRIPT_BLOCKS or unicodedata.category(ch) == "Cn":
        return False
    return any(lo <= cp <= hi for lo, hi in _DEVANAGARI + _THAI)


def valid_chat_input_name(name: Any) -> bool:
    """A valid slash-command / option name (default or localized)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        return False
    for ch in name:
        if ch in "-_'" or unicodedata.category(ch)[0] in "LN" or _deva_or_thai(ch):
            continue
        return False
    return name == name.lower()
# 1x1 transparent PNG served for avatars/icons
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def json_response(data: Any, status: int = 200, headers: Optional[dict] = None) -> web.Response:
    # Content-Type must be exactly "application/json": discord.py compares the header string.
    return web.Response(body=json.dumps(data).encode(), status=status, headers=headers, content_type=JSON)


def no_content() -> web.Response:
    return web.Response(status=204)


def error_response(err: APIError, headers: Optional[dict] = None) -> web.Response:
    return json_response(err.body(), status=err.status, headers=headers)


@dataclass
class Upload:
    index: int
    field: str
    filename: str
    data: bytes


def _request_key(name: str, kind: type):
    try:
        return web.RequestKey(name, kind)  # aiohttp >= 3.13
    except AttributeError:  # pragma: no cover - older aiohttp
        return name


T0_KEY = _request_key("fakediscord_t0", float)
PAYLOAD_KEY = _request_key("fakediscord_payload", object)
FILES_KEY = _request_key("fakediscord_files", list)


def _truthy(value: Optional[str]) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


class RestMixin:
    # ------------------------------------------------------------------ plumbing

    def _setup_routes(self: "FakeDiscord", app: web.Application) -> None:
        api = r"/api/v{version:\d+}"
        r = app.router
        r.add_get("/gateway", self._h_gateway_ws)
        r.add_get("/gateway/resume", self._h_gateway_ws)
        # CDN
        r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._h_cdn_attachment)
        r.add_get("/ephemeral-attachments/{app_id}/{attachment_id}/{filename}", self._h_cdn_attachment)
        for prefix in ("avatars", "embed", "icons", "banners", "emojis", "guilds", "app-icons", "role-icons"):
            r.add_get(f"/{prefix}/{{tail:.*}}", self._h_cdn_asset)
        # meta
        r.add_get(api + "/gateway", self._h_get_gateway)
        r.add_get(api + "/gateway/bot", self._h_get_gateway_bot)
        r.add_get(api + "/users/@me", self._h_get_me)
        r.add_get(api + "/users/{user_id}", self._h_get_user)
        r.add_post(api + "/users/@me/channels", self._h_create_dm)
        r.add_get(api + "/oauth2/applications/@me", self._h_app_info)
        r.add_get(api + "/applications/@me", self._h_app_info)
        # commands
        for base in ("/applications/{app_id}/commands", "/applications/{app_id}/guilds/{guild_id}/commands"):
            r.add_get(api + base, self._h_commands_get)
            r.add_put(api + base, self._h_commands_put)
            r.add_post(api + base, self._h_commands_post)
            r.add_get(api + base + "/permissions", self._h_commands_permissions)
            r.add_get(api + base + "/{command_id}", self._h_command_get)
            r.add_patch(api + base + "/{command_id}", self._h_command_patch)
            r.add_delete(api + base + "/{command_id}", self._h_command_delete)
        # interactions / webhooks
        r.add_post(api + "/interactions/{interaction_id}/{token}/callback", self._h_interaction_callback)
        r.add_post(api + "/webhooks/{app_id}/{token}", self._h_webhook_execute)
        r.add_get(api + "/webhooks/{app_id}/{token}/messages/{message_id}", self._h_webhook_message_get)
        r.add_patch(api + "/webhooks/{app_id}/{token}/messages/{message_id}", self._h_webhook_message_patch)
        r.add_delete(api + "/webhooks/{app_id}/{token}/messages/{message_id}", self._h_webhook_message_delete)
        # channels
        ch = api + "/channels/{channel_id}"
        r.add_get(ch, self._h_channel_get)
        r.add_post(ch + "/typing", self._h_typing)
        r.add_get(ch + "/messages", self._h_messages_list)
        r.add_post(ch + "/messages", self._h_message_create)
        r.add_post(ch + "/messages/bulk-delete", self._h_messages_bulk_delete)
        r.add_get(ch + "/messages/{message_id}", self._h_message_get)
        r.add_patch(ch + "/messages/{message_id}", self._h_message_patch)
        r.add_delete(ch + "/messages/{message_id}", self._h_message_delete)
        for pins in (ch + "/pins/{message_id}", ch + "/messages/pins/{message_id}"):
            r.add_put(pins, self._h_pin)
            r.add_delete(pins, self._h_unpin)
        rx = ch + "/messages/{message_id}/reactions"
        r.add_delete(rx, self._h_reactions_clear)
        r.add_get(rx + "/{emoji}", self._h_reaction_users)
        r.add_delete(rx + "/{emoji}", self._h_reactions_clear_emoji)
        r.add_put(rx + "/{emoji}/@me", self._h_reaction_add)
        r.add_delete(rx + "/{emoji}/{user_id}", self._h_reaction_remove)
        # guilds
        g = api + "/guilds/{guild_id}"
        r.add_get(g, self._h_guild_get)
        r.add_get(g + "/channels", self._h_guild_channels)
        r.add_get(g + "/roles", self._h_guild_roles)
        r.add_get(g + "/members", self._h_guild_members)
        r.add_get(g + "/members/{user_id}", self._h_guild_member)

    @web.middleware
    async def _middleware(self: "FakeDiscord", request: web.Request, handler) -> web.StreamResponse:
        t0 = time.monotonic()
        request[T0_KEY] = t0
        path = request.path
        is_api = path.startswith("/api/v")
        if path in ("/gateway", "/gateway/resume"):
            return await handler(request)
        rel = re.sub(r"^/api/v\d+", "", path) if is_api else path
        try:
            if self.response_delay:
                await asyncio.sleep(self.response_delay)
            if is_api and self._needs_auth(rel):
                if request.headers.get("Authorization") != f"Bot {self.token}":
                    raise APIError(401, 0, "401: Unauthorized")
            fault = self._take_fault(request.method, rel)
            if fault is not None:
                resp = fault
            else:
                resp = await handler(request)
        except APIError as err:
            resp = error_response(err)
        except web.HTTPException as exc:
            if exc.status >= 400:
                resp = json_response({"message": f"{exc.status}: {exc.reason}", "code": 0}, status=exc.status)
            else:
                resp = exc
        except Exception as exc:  # a bug in the fake: fail fast (a 500 would make discord.py retry for ~25 s)
            log.exception("fakediscord handler crashed on %s %s", request.method, rel)
            self.server_errors.append(exc)
            resp = json_response({"message": f"fakediscord internal error: {exc!r}", "code": 0}, status=400)
        if is_api:
            self._add_ratelimit_headers(request, resp)
        record = self._record(request, rel, resp.status, t0)
        record.duration = time.monotonic() - t0
        return resp

    def _record(self: "FakeDiscord", request: web.Request, rel: str, status: int, t0: float):
        from .server import RequestRecord

        rec = RequestRecord(t0, request.method, rel, status, dict(request.query),
                            request.get(PAYLOAD_KEY), request.get(FILES_KEY, []))
        self.request_log.append(rec)
        self._changes.notify()
        return rec

    @staticmethod
    def _needs_auth(rel: str) -> bool:
        return not (rel.startswith("/webhooks/") or rel.startswith("/interactions/") or rel == "/gateway")

    def _take_fault(self: "FakeDiscord", method: str, rel: str) -> Optional[web.Response]:
        for fault in self._faults:
            if fault.count <= 0 or fault.method not in ("*", method) or not fault.pattern.search(rel):
                continue
            fault.count -= 1
            headers = {}
            body: dict[str, Any] = {"message": fault.message, "code": fault.code}
            if fault.status == 429:
                headers = {
                    "Via": "1.1 google",
                    "Retry-After": str(max(1, int(fault.retry_after or 0))),
                    "X-RateLimit-Scope": "global" if fault.is_global else "user",
                }
                body.update(retry_after=fault.retry_after, **{"global": fault.is_global})
                if fault.is_global:
                    headers["X-RateLimit-Global"] = "true"
            return json_response(body, status=fault.status, headers=headers)
        return None

    @staticmethod
    def _add_ratelimit_headers(request: web.Request, resp: web.StreamResponse) -> None:
        if resp.status == 429 or "X-RateLimit-Limit" in resp.headers:
            return
        try:
            canonical = request.match_info.route.resource.canonical  # type: ignore[union-attr]
        except AttributeError:
            canonical = request.path
        bucket = hashlib.md5(f"{request.method} {canonical}".encode()).hexdigest()[:16]
        resp.headers["X-RateLimit-Limit"] = "50"
        resp.headers["X-RateLimit-Remaining"] = "49"
        resp.headers["X-RateLimit-Reset"] = f"{time.time() + 1.0:.3f}"
        resp.headers["X-RateLimit-Reset-After"] = "1.000"
        resp.headers["X-RateLimit-Bucket"] = bucket

    async def _read_payload(self: "FakeDiscord", request: web.Request) -> tuple[dict, list[Upload]]:
        """Parse a JSON or multipart (payload_json + files[n]) body."""
        files: list[Upload] = []
        payload: Any = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            total = 0
            async for part in reader:
                name = part.name or ""
                if name == "payload_json":
                    try:
                        payload = json.loads(await part.text())
                    except ValueError:
                        raise APIError(400, 50109, "The request body contains invalid JSON.")
                elif part.filename is not None or name.startswith("file"):
                    data = await part.read(decode=False)
                    total += len(data)
                    m = re.fullmatch(r"files?\[(\d+)\]", name)
                    index = int(m.group(1)) if m else len(files)
                    files.append(Upload(index, name, part.filename or f"file{index}", bytes(data)))
                else:
                    text = await part.text()
                    try:
                        payload[name] = json.loads(text)
                    except ValueError:
                        payload[name] = text
            if total > 25 * 1024 * 1024 + 1024 * 1024:
                raise APIError(413, 40005, "Request entity too large")
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    payload = json.loads(raw)
                except ValueError:
                    raise APIError(400, 50109, "The request body contains invalid JSON.")
        request[PAYLOAD_KEY] = payload
        request[FILES_KEY] = [f.filename for f in files]
        if payload is None:
            payload = {}
        return payload, files

    # ------------------------------------------------------------------ lookups

    def _channel(self: "FakeDiscord", request: web.Request) -> FakeChannel:
        try:
            channel = self.channels.get(int(request.match_info["channel_id"]))
        except ValueError:
            channel = None
        if channel is None:
            raise APIError(404, 10003, "Unknown Channel")
        if channel.guild_id is not None:
            # a server only users installed the app in: the bot itself has no access at all
            if not self.bot_in_guild(channel.guild_id):
                raise APIError(403, 50001, "Missing Access")
            perms = self.permissions_in(channel, self.bot_user.id)
            if not perms & Perm.VIEW_CHANNEL:
                raise APIError(403, 50001, "Missing Access")
        elif channel.is_group_dm:  # bots are never recipients of group DMs
            raise APIError(403, 50001, "Missing Access")
        return channel

    def _channel_message(self: "FakeDiscord", request: web.Request, channel: FakeChannel) -> FakeMessage:
        try:
            msg = self._messages.get(int(request.match_info["message_id"]))
        except ValueError:
            msg = None
        if msg is None or msg.deleted or msg.ephemeral or msg.channel_id != channel.id:
            raise APIError(404, 10008, "Unknown Message")
        return msg

    def _check_app(self: "FakeDiscord", request: web.Request) -> None:
        if request.match_info["app_id"] != str(self.application_id):
            raise APIError(403, 50001, "Missing Access")

    # ------------------------------------------------------------------ message building & validation

    def _validate_message(self: "FakeDiscord", p: dict, files: list[Upload], *, creating: bool) -> None:
        if not isinstance(p, dict):
            raise form_error("_", "Must be an object.", "MODEL_TYPE_CONVERT")
        content = p.get("content")
        if content is not None:
            if not isinstance(content, str):
                raise form_error("content", "Could not interpret value as string.", "BASE_TYPE_STRING")
            if len(content) > 2000:
                raise form_error("content", "Must be 2000 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        embeds = p.get("embeds")
        if embeds:
            self._validate_embeds(embeds)
        components = p.get("components")
        flags = int(p.get("flags") or 0)
        if components:
            self._validate_components(components, v2=bool(flags & FLAG_COMPONENTS_V2))
        if flags & FLAG_COMPONENTS_V2 and (content or embeds):
            raise form_error("content", "The 'content' and 'embeds' fields cannot be used with IS_COMPONENTS_V2.",
                             "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2")
        validate_allowed_mentions(p.get("allowed_mentions"))
        if len(files) > 10:
            raise form_error("files", "Must be 10 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        attachments = p.get("attachments")
        if attachments is not None and len(attachments) > 10:
            raise form_error("attachments", "Must be 10 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        if creating and not (content or embeds or files or components or p.get("sticker_ids") or p.get("poll")):
            raise APIError(400, 50006, "Cannot send an empty message")

    @staticmethod
    def _validate_embeds(embeds: list) -> None:
        if len(embeds) > 10:
            raise form_error("embeds", "Must be 10 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        total = 0
        limits = {"title": 256, "description": 4096}
        for i, emb in enumerate(embeds):
            for key, limit in limits.items():
                value = emb.get(key) or ""
                total += len(value)
                if len(value) > limit:
                    raise form_error(f"embeds.{i}.{key}", f"Must be {limit} or fewer in length.", "BASE_TYPE_MAX_LENGTH")
            fields = emb.get("fields") or []
            if len(fields) > 25:
                raise form_error(f"embeds.{i}.fields", "Must be 25 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
            for j, f in enumerate(fields):
                name, value = f.get("name") or "", f.get("value") or ""
                if not name or not value:
                    raise form_error(f"embeds.{i}.fields.{j}", "This field is required", "BASE_TYPE_REQUIRED")
                if len(name) > 256 or len(value) > 1024:
                    raise form_error(f"embeds.{i}.fields.{j}", "Field too long.", "BASE_TYPE_MAX_LENGTH")
                total += len(name) + len(value)
            footer = (emb.get("footer") or {}).get("text") or ""
            author = (emb.get("author") or {}).get("name") or ""
            if len(footer) > 2048 or len(author) > 256:
                raise form_error(f"embeds.{i}", "Footer/author too long.", "BASE_TYPE_MAX_LENGTH")
            total += len(footer) + len(author)
        if total > 6000:
            raise form_error("embeds", "Embed size exceeds maximum size of 6000", "MAX_EMBED_SIZE_EXCEEDED")

    @staticmethod
    def _validate_components(components: list, *, v2: bool) -> None:
        seen: set[str] = set()
        total = 0
        for comp in iter_components(components):
            total += 1
            cid = comp.get("custom_id")
            if cid is not None:
                if not (1 <= len(cid) <= 100):
                    raise form_error("components", "custom_id must be 1-100 characters.", "BASE_TYPE_BAD_LENGTH")
                if cid in seen:
                    raise form_error("components", "Component custom id cannot be duplicated",
                                     "COMPONENT_CUSTOM_ID_DUPLICATED")
                seen.add(cid)
            if comp.get("type") == 2 and len(comp.get("label") or "") > 80:
                raise form_error("components", "Button label must be 80 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
            if comp.get("type") == 3 and len(comp.get("options") or []) > 25:
                raise form_error("components", "Select options must be 25 or fewer.", "BASE_TYPE_MAX_LENGTH")
        if v2:
            if total > 40:
                raise form_error("components", "Must be 40 or fewer in total.", "BASE_TYPE_MAX_LENGTH")
            return
        if len(components) > 5:
            raise form_error("components", "Must be 5 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        for i, row in enumerate(components):
            if row.get("type") != 1:
                raise form_error(f"components.{i}", "Top-level components must be action rows.", "UNION_TYPE_CHOICES")
            inner = row.get("components") or []
            if not inner or len(inner) > 5:
                raise form_error(f"components.{i}.components", "Must be between 1 and 5 in length.",
                                 "BASE_TYPE_BAD_LENGTH")
            if any(c.get("type") != 2 for c in inner) and len(inner) != 1:
                raise form_error(f"components.{i}.components", "A select must be alone in its row.",
                                 "COMPONENT_LAYOUT_WIDTH_EXCEEDED")

    def _make_attachments(self: "FakeDiscord", payload: dict, files: list[Upload], *, channel_id: int, limit: int,
                          existing: Optional[list[FakeAttachment]] = None) -> list[FakeAttachment]:
        if len(files) > 10:
            raise form_error("files", "Must be 10 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        for f in files:
            if len(f.data) > limit:
                raise APIError(413, 40005, "Request entity too large")
        meta_list = payload.get("attachments")
        meta = {str(a.get("id")): a for a in (meta_list or []) if isinstance(a, dict)}
        existing_ids = {str(a.id) for a in existing or []}
        new: list[FakeAttachment] = []
        for f in files:
            m = meta.get(str(f.index)) if str(f.index) not in existing_ids else None
            m = m or {}
            filename = m.get("filename") or f.filename
            aid = self.new_id()
            att = FakeAttachment(
                id=aid, filename=filename, data=f.data, content_type=guess_content_type(filename),
                url=f"{self.url}/attachments/{channel_id}/{aid}/{filename}",
                description=m.get("description"), channel_id=channel_id, title=m.get("title"),
            )
            self.attachments[aid] = att
            new.append(att)
        if existing is None:
            return new
        if meta_list is None:
            return list(existing) + new
        keep = [a for a in existing if str(a.id) in meta]
        return keep + new

    def _create_message(self: "FakeDiscord", channel: FakeChannel, payload: dict, files: list[Upload], *,
                        source: str, limit: int, flags_allowed: int, ix: Optional[FakeInteraction] = None,
                        msg_type: int = 0, extra_flags: int = 0, creating_check: bool = True) -> FakeMessage:
        self._validate_message(payload, files, creating=creating_check)
        flags = (int(payload.get("flags") or 0) & flags_allowed) | extra_flags
        mid = self.new_id()
        attachments = self._make_attachments(payload, files, channel_id=channel.id, limit=limit)
        ref = payload.get("message_reference")
        if ref:
            target_id = ref.get("message_id")
            target = self._messages.get(int(target_id)) if target_id else None
            if target is None or target.deleted:
                if ref.get("fail_if_not_exists", True):
                    raise form_error("message_reference", "Unknown message", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE")
                ref = None
            else:
                ref = {"type": ref.get("type", 0), "message_id": str(target.id), "channel_id": str(target.channel_id)}
                if target.guild_id:
                    ref["guild_id"] = str(target.guild_id)
                msg_type = 19
        msg = FakeMessage(
            id=mid, channel_id=channel.id, guild_id=channel.guild_id, author=self.bot_user,
            content=payload.get("content") or "", embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []), flags=flags, attachments=attachments,
            type=msg_type, tts=bool(payload.get("tts")), nonce=payload.get("nonce"),
            allowed_mentions=payload.get("allowed_mentions"), message_reference=ref or None, source=source,
        )
        if ix is not None:
            msg.webhook_id = self.application_id
            msg.application_id = self.application_id
            msg.interaction_id = ix.id
        return self._store_message(msg)

    def _edit_message(self: "FakeDiscord", msg: FakeMessage, payload: dict, files: list[Upload], *,
                      limit: int) -> FakeMessage:
        self._validate_message(payload, files, creating=False)
        attachments = msg.attachments
        if files or "attachments" in payload:
            attachments = self._make_attachments(payload, files, channel_id=msg.channel_id, limit=limit,
                                                  existing=msg.attachments)
        content = msg.content if "content" not in payload else (payload["content"] or "")
        embeds = msg.embeds if "embeds" not in payload else list(payload["embeds"] or [])
        components = msg.components if "components" not in payload else list(payload["components"] or [])
        if not (content or embeds or attachments or components or msg.loading):
            raise APIError(400, 50006, "Cannot send an empty message")
        msg.content, msg.embeds, msg.components, msg.attachments = content, embeds, components, attachments
        if "flags" in payload and payload["flags"] is not None:
            new = int(payload["flags"])
            msg.flags = (msg.flags & ~FLAG_SUPPRESS_EMBEDS) | (new & FLAG_SUPPRESS_EMBEDS)
            if new & FLAG_COMPONENTS_V2:
                msg.flags |= FLAG_COMPONENTS_V2
        if "allowed_mentions" in payload:
            msg.allowed_mentions = payload["allowed_mentions"]
        msg.flags &= ~FLAG_LOADING
        msg.edited_timestamp = iso()
        record = dict(payload)
        if files:
            record["_files"] = [f.filename for f in files]
        msg.edits.append((time.monotonic(), record))
        self._compute_mentions(msg)
        self._changes.notify()
        return msg

    def _delete_message(self: "FakeDiscord", msg: FakeMessage) -> None:
        msg.deleted = True
        msg.deleted_at = time.monotonic()
        self._changes.notify()

    # ------------------------------------------------------------------ gateway + CDN

    async def _h_gateway_ws(self: "FakeDiscord", request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(self, ws, request.path, dict(request.query))
        self.connections.append(conn)
        try:
            await conn.run()
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
        return ws

    async def _h_cdn_attachment(self: "FakeDiscord", request: web.Request) -> web.Response:
        try:
            att = self.attachments.get(int(request.match_info["attachment_id"]))
        except ValueError:
            att = None
        if att is None:
            raise APIError(404, 0, "404: Not Found")
        return web.Response(body=att.data, content_type=att.content_type or "application/octet-stream")

    async def _h_cdn_asset(self: "FakeDiscord", request: web.Request) -> web.Response:
        return web.Response(body=TINY_PNG, content_type="image/png")

    # ------------------------------------------------------------------ meta

    async def _h_get_gateway(self: "FakeDiscord", request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _h_get_gateway_bot(self: "FakeDiscord", request: web.Request) -> web.Response:
        return json_response({
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": 1},
        })

    async def _h_get_me(self: "FakeDiscord", request: web.Request) -> web.Response:
        return json_response(self.bot_user_dict())

    async def _h_get_user(self: "FakeDiscord", request: web.Request) -> web.Response:
        try:
            user = self.users.get(int(request.match_info["user_id"]))
        except ValueError:
            user = None
        if user is None:
            raise APIError(404, 10013, "Unknown User")
        return json_response(user.to_dict())

    async def _h_create_dm(self: "FakeDiscord", request: web.Request) -> web.Response:
        payload, _ = await self._read_payload(request)
        try:
            user = self.users[int(payload.get("recipient_id"))]
        except (KeyError, TypeError, ValueError):
            raise form_error("recipient_id", "Unknown user", "BASE_TYPE_REQUIRED")
        return json_response(self.dm_channel(user).to_dict())

    async def _h_app_info(self: "FakeDiscord", request: web.Request) -> web.Response:
        return json_response(self.app_info())

    # ------------------------------------------------------------------ application commands

    def _command_store(self: "FakeDiscord", request: web.Request) -> tuple[dict[int, dict], Optional[int]]:
        self._check_app(request)
        gid = request.match_info.get("guild_id")
        if gid is None:
            return self._global_commands, None
        guild = self.guilds.get(int(gid))
        if guild is None or self.bot_user.id not in guild.members:
            raise APIError(403, 50001, "Missing Access")
        return self._guild_commands.setdefault(guild.id, {}), guild.id

    def _normalise_command(self: "FakeDiscord", data: dict, guild_id: Optional[int],
                           existing: Optional[dict]) -> dict:
        if not isinstance(data, dict):
            raise form_error("_", "Must be an object.", "MODEL_TYPE_CONVERT")
        ctype = int(data.get("type", 1))
        name = data.get("name")
        if not self._valid_command_name(name, ctype):
            raise form_error("name", "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME")
        name_locs = self._validate_localizations(data.get("name_localizations"), ["name_localizations"],
                                                 "name", ctype=ctype)
        description = data.get("description") or ""
        if ctype == 1 and not (1 <= len(description) <= 100):
            raise form_error("description", "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
        desc_locs = self._validate_localizations(data.get("description_localizations"),
                                                 ["description_localizations"], "description")
        options = data.get("options") or []
        if ctype != 1 and options:
            raise form_error("options", "Context menu commands cannot have options", "APPLICATION_COMMAND_OPTIONS")
        self._validate_options(options, ["options"])
        if ctype == 1:
            size = self._command_size(data)
            if size > MAX_COMMAND_SIZE:
                raise APIError(400, 50035, "Invalid Form Body", {"_errors": [{
                    "code": "APPLICATION_COMMAND_TOO_LARGE",
                    "message": f"Command exceeds maximum size ({MAX_COMMAND_SIZE}); it is {size}"}]})
        stored = {
            "id": existing["id"] if existing else str(self.new_id()),
            "application_id": str(self.application_id),
            "version": existing["version"] if existing else str(self.new_id()),
            "default_member_permissions": (
                None if data.get("default_member_permissions") is None else str(int(data["default_member_permissions"]))
            ),
            "type": ctype,
            "name": name,
            "name_localizations": name_locs,
            "description": description,
            "description_localizations": desc_locs,
            "dm_permission": data.get("dm_permission", True),
            "contexts": data.get("contexts"),
            "integration_types": data.get("integration_types") or [0],
            "nsfw": bool(data.get("nsfw", False)),
        }
        if options:
            stored["options"] = options
        if guild_id is not None:
            stored["guild_id"] = str(guild_id)
            stored.pop("dm_permission")
        if existing:
            compare = {k: v for k, v in stored.items() if k != "version"}
            old = {k: v for k, v in existing.items() if k != "version"}
            if compare != old:
                stored["version"] = str(self.new_id())
        return stored

    @staticmethod
    def _valid_command_name(name: Any, ctype: int) -> bool:
        if ctype == 1:
            return valid_chat_input_name(name)
        # USER and MESSAGE commands: 1-32 characters, mixed case and spaces allowed
        return isinstance(name, str) and 1 <= len(name) <= 32

    def _validate_localizations(self: "FakeDiscord", locs: Any, path: list, kind: str, *,
                                ctype: int = 1) -> Optional[dict]:
        """``name_localizations`` / ``description_localizations``: Discord locale keys, values under the same
        rules as the field they localise (``kind``: "name" of a command/option, "choice" name, "description")."""
        if locs is None:
            return None
        if not isinstance(locs, dict):
            raise form_error(path, "Must be an object.", "DICT_TYPE_CONVERT")
        for locale, value in locs.items():
            where = path + [locale]
            if locale not in LOCALES:
                raise form_error(where, f'Value "{locale}" is not a valid enum value.', "ENUM_TYPE_COERCE")
            if not isinstance(value, str):
                raise form_error(where, "Could not interpret value as string.", "BASE_TYPE_STRING")
            if kind == "name":
                if not self._valid_command_name(value, ctype):
                    raise form_error(where, "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME")
            elif not 1 <= len(value) <= 100:  # descriptions and choice names
                raise form_error(where, "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
        return dict(locs)

    def _validate_options(self: "FakeDiscord", options: list, path: list) -> None:
        if len(options) > 25:
            raise form_error(path, "Must be 25 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        names = set()
        seen_optional = False
        for i, opt in enumerate(options):
            p = path + [i]
            name = opt.get("name")
            if not valid_chat_input_name(name):
                raise form_error(p + ["name"], "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME")
            if name in names:
                raise form_error(p + ["name"], "Option names must be unique",
                                 "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS")
            names.add(name)
            self._validate_localizations(opt.get("name_localizations"), p + ["name_localizations"], "name")
            if not (1 <= len(opt.get("description") or "") <= 100):
                raise form_error(p + ["description"], "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
            self._validate_localizations(opt.get("description_localizations"), p + ["description_localizations"],
                                         "description")
            otype = opt.get("type")
            if otype not in range(1, 12):
                raise form_error(p + ["type"], "Value is not a valid option type.", "BASE_TYPE_CHOICES")
            if otype in (1, 2):
                self._validate_options(opt.get("options") or [], p + ["options"])
                continue
            if opt.get("required"):
                if seen_optional:
                    raise form_error(p, "Required options must be placed before non-required options",
                                     "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID")
            else:
                seen_optional = True
            choices = opt.get("choices") or []
            if len(choices) > 25:
                raise form_error(p + ["choices"], "Must be 25 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
            if choices and opt.get("autocomplete"):
                raise form_error(p + ["autocomplete"], "Autocomplete cannot be set with choices.",
                                 "APPLICATION_COMMAND_OPTIONS_AUTOCOMPLETE_CHOICES")
            if choices and otype not in (3, 4, 10):
                raise form_error(p + ["choices"], "Only STRING, INTEGER and NUMBER options can have choices.",
                                 "APPLICATION_COMMAND_OPTIONS_CHOICES_INVALID")
            for k, choice in enumerate(choices):
                self._validate_choice(choice, otype, p + ["choices", k])
        self._check_localized_option_names(options, path)

    def _validate_choice(self: "FakeDiscord", choice: Any, otype: int, p: list) -> None:
        if not isinstance(choice, dict):
            raise form_error(p, "Must be an object.", "MODEL_TYPE_CONVERT")
        cname = choice.get("name")
        if not isinstance(cname, str) or not 1 <= len(cname) <= 100:
            raise form_error(p + ["name"], "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
        self._validate_localizations(choice.get("name_localizations"), p + ["name_localizations"], "choice")
        value = choice.get("value")
        if otype == 3:
            if not isinstance(value, str):
                raise form_error(p + ["value"], "Could not interpret value as string.", "BASE_TYPE_STRING")
            if len(value) > 100:
                raise form_error(p + ["value"], "Must be 100 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
        elif isinstance(value, bool) or not isinstance(value, int if otype == 4 else (int, float)):
            raise form_error(p + ["value"], "Value is not a valid number for this option type.",
                             "NUMBER_TYPE_COERCE")

    @staticmethod
    def _check_localized_option_names(options: list, path: list) -> None:
        """Discord: a localized option name must differ from every other option's default name and from the
        other options' names in that locale (a localization equal to the option's own default is ignored)."""
        defaults = [o.get("name") for o in options]
        locs = [o.get("name_localizations") or {} for o in options]
        for i, own in enumerate(locs):
            for locale, value in own.items():
                if value == defaults[i]:
                    continue
                others = [j for j in range(len(options)) if j != i]
                if any(value == defaults[j] or value == locs[j].get(locale) for j in others):
                    raise form_error(path + [i, "name_localizations", locale],
                                     "Option names must be unique (default names and names in each locale)",
                                     "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS")

    @staticmethod
    def _command_size(data: dict) -> int:
        """Discord's 8000-character budget of a slash command: names, descriptions and choice values of the
        command, its options and choices; a localized field counts with its longest variant."""

        def longest(value: Any, locs: Any) -> int:
            sizes = [len(value) if isinstance(value, str) else 0]
            if isinstance(locs, dict):
                sizes += [len(v) for v in locs.values() if isinstance(v, str)]
            return max(sizes)

        def walk(node: dict) -> int:
            total = longest(node.get("name"), node.get("name_localizations"))
            total += longest(node.get("description"), node.get("description_localizations"))
            for choice in node.get("choices") or []:
                if isinstance(choice, dict):
                    total += longest(choice.get("name"), choice.get("name_localizations"))
                    total += len(str(choice.get("value", "")))
            return total + sum(walk(o) for o in node.get("options") or [] if isinstance(o, dict))

        return walk(data)

    async def _h_commands_get(self: "FakeDiscord", request: web.Request) -> web.Response:
        store, _ = self._command_store(request)
        return json_response(list(store.values()))

    async def _h_commands_put(self: "FakeDiscord", request: web.Request) -> web.Response:
        store, gid = self._command_store(request)
        payload, _ = await self._read_payload(request)
        if not isinstance(payload, list):
            raise form_error("_", "Must be an array.", "BASE_TYPE_ARRAY")
        if sum(1 for c in payload if int(c.get("type", 1)) == 1) > 100:
            raise APIError(400, 30032, "Maximum number of application commands reached (100)")
        seen = set()
        new: dict[int, dict] = {}
        by_key = {(c["name"], c["type"]): c for c in store.values()}
        for i, data in enumerate(payload):
            key = (data.get("name"), int(data.get("type", 1)))
            if key in seen:
                raise form_error(f"{i}.name", "Application command names must be unique",
                                 "APPLICATION_COMMANDS_DUPLICATE_NAME")
            seen.add(key)
            try:
                stored = self._normalise_command(data, gid, by_key.get(key))
            except APIError as err:
                if err.errors:
                    err.errors = {str(i): err.errors}
                raise
            new[int(stored["id"])] = stored
        store.clear()
        store.update(new)
        self._changes.notify()
        return json_response(list(store.values()))

    async def _h_commands_post(self: "FakeDiscord", request: web.Request) -> web.Response:
        store, gid = self._command_store(request)
        payload, _ = await self._read_payload(request)
        key = (payload.get("name"), int(payload.get("type", 1)))
        existing = next((c for c in store.values() if (c["name"], c["type"]) == key), None)
        stored = self._normalise_command(payload, gid, existing)
        store[int(stored["id"])] = stored
        self._changes.notify()
        return json_response(stored, status=200 if existing else 201)

    async def _h_commands_permissions(self: "FakeDiscord", request: web.Request) -> web.Response:
        self._command_store(request)
        return json_response([])

    def _command(self: "FakeDiscord", request: web.Request) -> tuple[dict[int, dict], dict, Optional[int]]:
        store, gid = self._command_store(request)
        try:
            cmd = store.get(int(request.match_info["command_id"]))
        except ValueError:
            cmd = None
        if cmd is None:
            raise APIError(404, 10063, "Unknown application command")
        return store, cmd, gid

    async def _h_command_get(self: "FakeDiscord", request: web.Request) -> web.Response:
        _, cmd, _ = self._command(request)
        return json_response(cmd)

    async def _h_command_patch(self: "FakeDiscord", request: web.Request) -> web.Response:
        store, cmd, gid = self._command(request)
        payload, _ = await self._read_payload(request)
        merged = {k: v for k, v in cmd.items() if k not in ("id", "application_id", "version", "guild_id")}
        merged.update(payload)
        stored = self._normalise_command(merged, gid, cmd)
        store[int(stored["id"])] = stored
        self._changes.notify()
        return json_response(stored)

    async def _h_command_delete(self: "FakeDiscord", request: web.Request) -> web.Response:
        store, cmd, _ = self._command(request)
        del store[int(cmd["id"])]
        self._changes.notify()
        return no_content()

    # ------------------------------------------------------------------ interaction callbacks

    async def _h_interaction_callback(self: "FakeDiscord", request: web.Request) -> web.Response:
        t = request[T0_KEY]
        try:
            iid = int(request.match_info["interaction_id"])
        except ValueError:
            raise APIError(404, 10062, "Unknown interaction")
        ix = self.interactions.get(iid)
        payload, files = await self._read_payload(request)
        if ix is None or ix.token != request.match_info["token"]:
            raise APIError(404, 10062, "Unknown interaction")
        ctype = payload.get("type") if isinstance(payload, dict) else None
        data = payload.get("data") if isinstance(payload, dict) else None

        def reject(err: APIError) -> APIError:
            ix.rejected.append((ctype, data, t, err.status, err.code))
            self._changes.notify()
            return err

        if ix.callbacks:
            raise reject(APIError(400, 40060, "Interaction has already been acknowledged."))
        if t - ix.created_at > self.ack_deadline:
            raise reject(APIError(404, 10062, "Unknown interaction"))
        # type 6 is accepted for every modal submit (discord.py's defer() sends it), 7 needs a message to update
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6}}[ix.type]
        if ix.type == 5 and ix.source_message is not None:
            allowed = allowed | {7}
        if ctype not in allowed:
            raise reject(form_error("type", f"Interaction response type {ctype} is not valid for interaction "
                                            f"type {ix.type}", "INTERACTION_RESPONSE_TYPE_INVALID"))
        try:
            message, echo = self._apply_callback(ix, ctype, data or {}, files)
        except APIError as err:
            raise reject(err)
        ix.callbacks.append((ctype, data, t))
        self._changes.notify()
        if echo:
            await self._echo(echo, message)

        if not _truthy(request.query.get("with_response")):
            return no_content()
        info: dict[str, Any] = {"id": str(ix.id), "type": ix.type}
        resource: dict[str, Any] = {"type": ctype}
        if message is not None:
            info.update(
                response_message_id=str(message.id),
                response_message_loading=bool(message.flags & FLAG_LOADING),
                response_message_ephemeral=message.ephemeral,
            )
            if ctype in (4, 5, 7):
                resource["message"] = self.message_dict(message)
        return json_response({"interaction": info, "resource": resource})

    def _apply_callback(self: "FakeDiscord", ix: FakeInteraction, ctype: int, data: dict,
                        files: list[Upload]) -> tuple[Optional[FakeMessage], Optional[str]]:
        msg_type = 20 if ix.type == 2 and (ix.payload.get("data") or {}).get("type", 1) == 1 else (
            23 if ix.type == 2 else 0)
        if ctype in (4, 5):
            forced = FLAG_EPHEMERAL if ix.forced_ephemeral else 0
            if ctype == 5:
                flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | forced
                payload: dict[str, Any] = {"flags": flags}
                msg = self._create_message(ix.channel, payload, [], source="interaction", limit=ix.attachment_size_limit,
                                           flags_allowed=FLAG_EPHEMERAL, ix=ix, msg_type=msg_type,
                                           extra_flags=FLAG_LOADING, creating_check=False)
            else:
                msg = self._create_message(
                    ix.channel, data, files, source="interaction", limit=ix.attachment_size_limit,
                    flags_allowed=FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
                    ix=ix, msg_type=msg_type, extra_flags=forced,
                )
            msg.interaction_metadata = self.interaction_metadata(ix)
            msg.interaction_legacy = self.interaction_legacy(ix)
            ix.original = msg
            return msg, "MESSAGE_CREATE"
        if ctype == 6:
            ix.original = ix.source_message
            return ix.source_message, None
        if ctype == 7:
            msg = ix.source_message
            assert msg is not None
            if msg.deleted:
                raise APIError(404, 10008, "Unknown Message")
            self._edit_message(msg, data, files, limit=ix.attachment_size_limit)
            ix.original = msg
            return msg, "MESSAGE_UPDATE"
        if ctype == 8:
            choices = data.get("choices")
            if not isinstance(choices, list):
                raise form_error("data.choices", "This field is required", "BASE_TYPE_REQUIRED")
            if len(choices) > 25:
                raise form_error("data.choices", "Must be 25 or fewer in length.", "BASE_TYPE_MAX_LENGTH")
            for i, choice in enumerate(choices):
                name = choice.get("name")
                if not isinstance(name, str) or not (1 <= len(name) <= 100):
                    raise form_error(f"data.choices.{i}.name", "Must be between 1 and 100 in length.",
                                     "BASE_TYPE_BAD_LENGTH")
                if isinstance(choice.get("value"), str) and len(choice["value"]) > 100:
                    raise form_error(f"data.choices.{i}.value", "Must be 100 or fewer in length.",
                                     "BASE_TYPE_MAX_LENGTH")
            ix.choices = choices
            return None, None
        if ctype == 9:
            cid = data.get("custom_id")
            if not isinstance(cid, str) or not (1 <= len(cid) <= 100):
                raise form_error("data.custom_id", "Must be between 1 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
            title = data.get("title") or ""
            if not (1 <= len(title) <= 45):
                raise form_error("data.title", "Must be between 1 and 45 in length.", "BASE_TYPE_BAD_LENGTH")
            comps = data.get("components") or []
            if not (1 <= len(comps) <= 5):
                raise form_error("data.components", "Must be between 1 and 5 in length.", "BASE_TYPE_BAD_LENGTH")
            ix.modal = data
            self._modals[cid] = (ix, data)
            return None, None
        raise form_error("type", "Invalid interaction response type", "BASE_TYPE_CHOICES")

    # ------------------------------------------------------------------ interaction webhooks

    def _webhook_interaction(self: "FakeDiscord", request: web.Request) -> FakeInteraction:
        if request.match_info["app_id"] != str(self.application_id):
            raise APIError(404, 10015, "Unknown Webhook")
        ix = self._by_token.get(request.match_info["token"])
        if ix is None or time.monotonic() - ix.created_at > self.token_lifetime:
            raise APIError(401, 50027, "Invalid Webhook Token")
        if not ix.callbacks or ix.response_type in (8, 9):
            raise APIError(404, 10015, "Unknown Webhook")
        return ix

    def _webhook_message(self: "FakeDiscord", request: web.Request, ix: FakeInteraction) -> FakeMessage:
        mid = request.match_info["message_id"]
        if mid == "@original":
            msg = ix.original
        else:
            try:
                msg = self._messages.get(int(mid))
            except ValueError:
                msg = None
            if msg is not None and msg is not ix.original and msg not in ix.followups:
                msg = None
        if msg is None or msg.deleted:
            raise APIError(404, 10008, "Unknown Message")
        return msg

    async def _h_webhook_execute(self: "FakeDiscord", request: web.Request) -> web.Response:
        payload, files = await self._read_payload(request)
        ix = self._webhook_interaction(request)
        # Discord: 5 follow-ups per interaction when only the user install authorised it
        if ix.followup_limited and ix.followup_creates >= 5:
            raise APIError(400, 40094, "This interaction has hit the maximum number of follow up messages")
        if ix.response_type == 5 and ix.original is not None and ix.original.loading and not ix.original.deleted:
            # The first follow-up after a "thinking" defer fills the deferred message (same id, same ephemerality).
            self._validate_message(payload, files, creating=True)
            msg = self._edit_message(ix.original, payload, files, limit=ix.attachment_size_limit)
            event = "MESSAGE_UPDATE"
        else:
            msg_type = 20 if ix.type == 2 else 0
            msg = self._create_message(
                ix.channel, payload, files, source="webhook", limit=ix.attachment_size_limit,
                flags_allowed=FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
                ix=ix, msg_type=msg_type, extra_flags=FLAG_EPHEMERAL if ix.forced_ephemeral else 0,
            )
            msg.interaction_metadata = self.interaction_metadata(ix, followup_of=ix.original)
            event = "MESSAGE_CREATE"
        ix.followup_creates += 1
        ix.followups.append(msg)
        self._changes.notify()
        await self._echo(event, msg)
        if _truthy(request.query.get("wait")):
            return json_response(self.message_dict(msg))
        return no_content()

    async def _h_webhook_message_get(self: "FakeDiscord", request: web.Request) -> web.Response:
        ix = self._webhook_interaction(request)
        return json_response(self.message_dict(self._webhook_message(request, ix)))

    async def _h_webhook_message_patch(self: "FakeDiscord", request: web.Request) -> web.Response:
        payload, files = await self._read_payload(request)
        ix = self._webhook_interaction(request)
        msg = self._webhook_message(request, ix)
        self._edit_message(msg, payload, files, limit=ix.attachment_size_limit)
        await self._echo("MESSAGE_UPDATE", msg)
        return json_response(self.message_dict(msg))

    async def _h_webhook_message_delete(self: "FakeDiscord", request: web.Request) -> web.Response:
        ix = self._webhook_interaction(request)
        msg = self._webhook_message(request, ix)
        self._delete_message(msg)
        await self._echo("MESSAGE_DELETE", msg)
        return no_content()

    # ------------------------------------------------------------------ channels & messages

    async def _h_channel_get(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        return json_response(channel.to_dict())

    async def _h_typing(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        self.typing.append((time.monotonic(), channel.id))
        return no_content()

    async def _h_messages_list(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        q = request.query
        limit = max(1, min(100, int(q.get("limit", 50))))
        msgs = [m for m in self.messages(channel) if not m.deleted and not m.ephemeral]
        if "before" in q:
            msgs = [m for m in msgs if m.id < int(q["before"])]
        if "after" in q:
            msgs = [m for m in msgs if m.id > int(q["after"])]
            msgs = msgs[:limit]
        if "around" in q:
            around = int(q["around"])
            older = [m for m in msgs if m.id <= around][-((limit + 1) // 2):]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        msgs = list(reversed(msgs))[:limit]
        return json_response([self.message_dict(m) for m in msgs])

    async def _h_message_create(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        payload, files = await self._read_payload(request)
        perms = self.permissions_in(channel, self.bot_user.id)
        if not perms & Perm.SEND_MESSAGES:
            raise APIError(403, 50013, "Missing Permissions")
        if files and not perms & Perm.ATTACH_FILES:
            raise APIError(403, 50013, "Missing Permissions")
        nonce = payload.get("nonce") if isinstance(payload, dict) else None
        if nonce is not None and payload.get("enforce_nonce") and f"{channel.id}:{nonce}" in self._nonces:
            return json_response(self.message_dict(self._nonces[f"{channel.id}:{nonce}"]))
        msg = self._create_message(
            channel, payload, files, source="channel", limit=self.channel_attachment_size_limit,
            flags_allowed=FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
        )
        if nonce is not None:
            self._nonces[f"{channel.id}:{nonce}"] = msg
        await self._echo("MESSAGE_CREATE", msg)
        return json_response(self.message_dict(msg))

    async def _h_message_get(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        return json_response(self.message_dict(self._channel_message(request, channel)))

    async def _h_message_patch(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        payload, files = await self._read_payload(request)
        msg = self._channel_message(request, channel)
        if msg.author.id != self.bot_user.id:
            if set(payload) - {"flags"}:
                raise APIError(403, 50005, "Cannot edit a message authored by another user")
        self._edit_message(msg, payload, files, limit=self.channel_attachment_size_limit)
        await self._echo("MESSAGE_UPDATE", msg)
        return json_response(self.message_dict(msg))

    async def _h_message_delete(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        if msg.author.id != self.bot_user.id and not self.permissions_in(channel, self.bot_user.id) & Perm.MANAGE_MESSAGES:
            raise APIError(403, 50013, "Missing Permissions")
        self._delete_message(msg)
        await self._echo("MESSAGE_DELETE", msg)
        return no_content()

    async def _h_messages_bulk_delete(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        payload, _ = await self._read_payload(request)
        ids = [int(i) for i in payload.get("messages") or []]
        if not (2 <= len(ids) <= 100):
            raise form_error("messages", "Must be between 2 and 100 in length.", "BASE_TYPE_BAD_LENGTH")
        deleted = []
        for mid in ids:
            msg = self._messages.get(mid)
            if msg is not None and not msg.deleted and msg.channel_id == channel.id and not msg.ephemeral:
                self._delete_message(msg)
                deleted.append(str(mid))
        data = {"ids": deleted, "channel_id": str(channel.id)}
        if channel.guild_id:
            data["guild_id"] = str(channel.guild_id)
        await self.dispatch("MESSAGE_DELETE_BULK", data)
        return no_content()

    async def _h_pin(self: "FakeDiscord", request: web.Request) -> web.Response:
        return await self._set_pinned(request, True)

    async def _h_unpin(self: "FakeDiscord", request: web.Request) -> web.Response:
        return await self._set_pinned(request, False)

    async def _set_pinned(self: "FakeDiscord", request: web.Request, pinned: bool) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        if not self.permissions_in(channel, self.bot_user.id) & Perm.MANAGE_MESSAGES:
            raise APIError(403, 50013, "Missing Permissions")
        if msg.pinned != pinned:
            msg.pinned = pinned
            self._changes.notify()
            await self._echo("MESSAGE_UPDATE", msg)
        return no_content()

    # ------------------------------------------------------------------ reactions

    def _emoji_param(self: "FakeDiscord", request: web.Request) -> str:
        emoji = request.match_info["emoji"]
        if not emoji:
            raise APIError(400, 10014, "Unknown Emoji")
        return emoji

    async def _h_reaction_add(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        emoji = self._emoji_param(request)
        if emoji not in msg.reactions and not self.permissions_in(channel, self.bot_user.id) & Perm.ADD_REACTIONS:
            raise APIError(403, 50013, "Missing Permissions")
        if len(msg.reactions) >= 20 and emoji not in msg.reactions:
            raise APIError(400, 30010, "Maximum number of reactions reached (20)")
        await self._react(msg, self.bot_user, emoji, add=True)
        return no_content()

    async def _h_reaction_remove(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        emoji = self._emoji_param(request)
        uid = request.match_info["user_id"]
        if uid == "@me":
            user = self.bot_user
        else:
            if not self.permissions_in(channel, self.bot_user.id) & Perm.MANAGE_MESSAGES:
                raise APIError(403, 50013, "Missing Permissions")
            try:
                user = self.users[int(uid)]
            except (KeyError, ValueError):
                raise APIError(404, 10013, "Unknown User")
        await self._react(msg, user, emoji, add=False)
        return no_content()

    async def _h_reaction_users(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        emoji = self._emoji_param(request)
        users = [self.users[u].to_dict() for u in msg.reactions.get(emoji, [])]
        return json_response(users)

    async def _h_reactions_clear(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        if not self.permissions_in(channel, self.bot_user.id) & Perm.MANAGE_MESSAGES:
            raise APIError(403, 50013, "Missing Permissions")
        msg.reactions.clear()
        self._changes.notify()
        data = {"channel_id": str(channel.id), "message_id": str(msg.id)}
        if channel.guild_id:
            data["guild_id"] = str(channel.guild_id)
        await self.dispatch("MESSAGE_REACTION_REMOVE_ALL", data)
        return no_content()

    async def _h_reactions_clear_emoji(self: "FakeDiscord", request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._channel_message(request, channel)
        if not self.permissions_in(channel, self.bot_user.id) & Perm.MANAGE_MESSAGES:
            raise APIError(403, 50013, "Missing Permissions")
        emoji = self._emoji_param(request)
        msg.reactions.pop(emoji, None)
        self._changes.notify()
        data = {"channel_id": str(channel.id), "message_id": str(msg.id), "emoji": self._emoji_dict(emoji)}
        if channel.guild_id:
            data["guild_id"] = str(channel.guild_id)
        await self.dispatch("MESSAGE_REACTION_REMOVE_EMOJI", data)
        return no_content()

    # ------------------------------------------------------------------ guilds

    def _guild(self: "FakeDiscord", request: web.Request):
        try:
            guild = self.guilds.get(int(request.match_info["guild_id"]))
        except ValueError:
            guild = None
        if guild is None:
            raise APIError(404, 10004, "Unknown Guild")
        if self.bot_user.id not in guild.members:
            raise APIError(403, 50001, "Missing Access")
        return guild

    async def _h_guild_get(self: "FakeDiscord", request: web.Request) -> web.Response:
        guild = self._guild(request)
        data = guild.to_dict()
        if _truthy(request.query.get("with_counts")):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def _h_guild_channels(self: "FakeDiscord", request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response([c.to_dict() for c in guild.channels])

    async def _h_guild_roles(self: "FakeDiscord", request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response([r.to_dict() for r in guild.roles.values()])

    async def _h_guild_members(self: "FakeDiscord", request: web.Request) -> web.Response:
        guild = self._guild(request)
        limit = max(1, min(1000, int(request.query.get("limit", 1))))
        after = int(request.query.get("after", 0))
        members = sorted((m for m in guild.members.values() if m.user.id > after), key=lambda m: m.user.id)
        return json_response([self.member_dict(guild, m) for m in members[:limit]])

    async def _h_guild_member(self: "FakeDiscord", request: web.Request) -> web.Response:
        guild = self._guild(request)
        try:
            member = guild.members.get(int(request.match_info["user_id"]))
        except ValueError:
            member = None
        if member is None:
            raise APIError(404, 10007, "Unknown Member")
        return json_response(self.member_dict(guild, member))

