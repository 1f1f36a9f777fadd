"""Response bodies: FastAPI-style JSON rendering and the error bodies of each WebUI dialect."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .data import Dialect

OOM_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity; 5.12 GiB already "
            "allocated; 1.02 GiB free; 5.50 GiB reserved in total by PyTorch) If reserved memory is >> allocated "
            "memory try setting max_split_size_mb to avoid fragmentation.  See documentation for Memory Management "
            "and PYTORCH_CUDA_ALLOC_CONF")

HTTP_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
                502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class ApiError(Exception):
    """An error answer: raised anywhere in a handler, rendered by the middleware."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> web.Response:
        if isinstance(self.body, (bytes, bytearray)):
            return web.Response(body=bytes(self.body), status=self.status, content_type="text/plain",
                                headers=self.headers)
        return json_response(self.body, self.status, self.headers or None)


def dumps(obj: Any) -> bytes:
    """FastAPI JSONResponse rendering: compact, non-ASCII kept."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type="application/json", headers=headers)


@dataclass(frozen=True, slots=True)
class DemoResponse:
    """What the demo answered to one generation/extras request (for tests comparing what the bot posted)."""

    route: str
    images: list[bytes]
    """The PNG files exactly as sent (base64-decoded), in response order."""
    infotexts: list[str]
    info: dict[str, Any]
    parameters: dict[str, Any]


class ErrorBodies:
    """The error answers of one dialect (A1111's error middleware, Forge's and SD.Next's variants)."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect

    def http_exception(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> ApiError:
        if self.dialect == "forge":
            return ApiError(status, {"detail": detail}, headers)
        if self.dialect == "sdnext":  # middleware handle_exception: "errors" is str(e), "404: Sampler not found"
            return ApiError(status, {"error": "HTTPException", "code": status, "detail": detail, "body": "",
                                     "errors": f"{status}: {detail}"})
        return ApiError(status, {"error": "HTTPException", "detail": detail, "body": "", "errors": ""})

    def exception(self, error: str, message: str, status: int = 500) -> ApiError:
        """An uncaught Python exception (`error` is its class name) turned into a 500 by the middleware."""
        if self.dialect == "forge":
            return ApiError(status, {"error": error, "detail": "", "body": "", "message": message})
        if self.dialect == "sdnext":
            return ApiError(status, {"error": error, "code": status, "detail": "", "body": "", "errors": message})
        return ApiError(status, {"error": error, "detail": "", "body": "", "errors": message})

    def oom(self) -> ApiError:
        text = OOM_TEXT if self.dialect != "forge" else "CUDA out of memory. Tried to allocate 2.00 GiB"
        return self.exception("OutOfMemoryError", text)

    def validation(self, errors: list[dict]) -> ApiError:
        return ApiError(422, {"detail": errors})

    def unauthorized(self, detail: str) -> ApiError:
        """A failed `--api-auth` check (SD.Next always says "Unauthorized"; Forge asks for Basic)."""
        if self.dialect == "sdnext":
            return ApiError(401, {"error": "HTTPException", "code": 401, "detail": "Unauthorized", "body": "",
                                  "errors": "401: Unauthorized"})
        headers = {"WWW-Authenticate": "Basic"} if self.dialect == "forge" else None
        return self.http_exception(401, detail, headers)

    def injected(self, status: int, body: Any) -> ApiError:
        """An error set up by `DemoWebUI.inject_error`: a dialect body for None, `body` as given otherwise."""
        if body is None:
            if status == 500:
                return self.oom()
            return self.http_exception(status, HTTP_REASONS.get(status, "Error"))
        return ApiError(status, body)
