"""What every /sdapi request goes through before its handler runs: body parsing, `--api-auth`,
validation and injected errors, in FastAPI's order."""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.message
import json
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .data import API
from .responses import ApiError, ErrorBodies
from .validation import Field, json_decode_errors, missing_body_errors, validate_request

MISSING: Any = object()
"""`read_json` result for a request without a body."""


class RequestGate:
    """Authentication, error injection and body handling for one demo WebUI."""

    def __init__(self, auth: tuple[str, str] | None, errors: ErrorBodies,
                 record: Callable[[str, dict], None]):
        self.auth = auth
        self.errors = errors
        self._record = record
        self._injections: dict[str, deque[tuple[int, Any]]] = {}

    def inject(self, route: str, status: int, body: Any, times: int) -> None:
        path = route if route.startswith("/") else API + route
        queue = self._injections.setdefault(path, deque())
        for _ in range(times):
            queue.append((status, body))

    def take_injection(self, path: str) -> None:
        """Raise the next error injected for `path`, if any."""
        queue = self._injections.get(path)
        if queue:
            raise self.errors.injected(*queue.popleft())

    def check_auth(self, request: web.Request) -> None:
        """HTTP Basic auth like A1111's `auth` dependency (constant-time comparison)."""
        creds = self.auth
        if creds is None:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, param = header.partition(" ")
        if not header or scheme.lower() != "basic":
            raise self.errors.unauthorized("Not authenticated")
        try:
            decoded = base64.b64decode(param).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            decoded = None
        if decoded is None or ":" not in decoded:
            raise self.errors.unauthorized("Invalid authentication credentials")
        user, _, password = decoded.partition(":")
        ok_user = secrets.compare_digest(user.encode(), creds[0].encode())
        ok_pass = secrets.compare_digest(password.encode(), creds[1].encode())
        if not (ok_user and ok_pass):
            raise self.errors.unauthorized("Incorrect username or password")

    async def read_json(self, request: web.Request) -> Any:
        """FastAPI 0.94 body handling: missing body (`MISSING`), invalid JSON, non-JSON content type (raw bytes)."""
        raw = await request.read()
        if not raw:
            return MISSING
        ctype = request.headers.get("Content-Type")
        if ctype:
            msg = email.message.Message()
            msg["content-type"] = ctype
            sub = msg.get_content_subtype()
            if msg.get_content_maintype() != "application" or not (sub == "json" or sub.endswith("+json")):
                return raw
        try:
            return await asyncio.to_thread(json.loads, raw) if len(raw) > 262144 else json.loads(raw)
        except json.JSONDecodeError as exc:
            raise self.errors.validation(json_decode_errors(exc, self.errors.dialect)) from None
        except (UnicodeDecodeError, ValueError):
            raise self.errors.http_exception(400, "There was an error parsing the body") from None

    def missing_body(self) -> ApiError:
        return self.errors.validation(missing_body_errors(self.errors.dialect))

    async def body(self, request: web.Request, fields: list[Field], *, record: bool = False,
                   auth: bool = True) -> dict[str, Any]:
        """Parse, record, authenticate, validate, inject: in FastAPI's order."""
        body = await self.read_json(request)
        if record and isinstance(body, dict):
            self._record(request.path.removeprefix(API), body)
        if auth:
            self.check_auth(request)
        if body is MISSING:
            raise self.missing_body()
        values, errors = validate_request(fields, body, self.errors.dialect)
        if errors:
            raise self.errors.validation(errors)
        self.take_injection(request.path)
        assert values is not None
        return values

    def guard(self, request: web.Request, *, auth: bool = True) -> None:
        """Auth and injected errors for a route without a body."""
        if auth:
            self.check_auth(request)
        self.take_injection(request.path)
