"""Turn a WebUI's non-2xx answer into the matching WebUIError (reference §10: the status code plus the
body's `error` field). `.message` is a message for the user (plain words, never the server's raw text); `.detail`
keeps the server's own text for the log and the error id."""

from __future__ import annotations

from typing import Any

import orjson

from bot.errors import (
    WebUIAuthError,
    WebUIError,
    WebUIResponseError,
    WebUIServerError,
    WebUIValidationError,
)
from bot.text import T

__all__ = ["error_from_response", "short"]

_MAX_DETAIL = 500


def _detail_text(body: Any, raw: bytes) -> str:
    """§10: `detail` when a string; joined `detail[*].msg` when a list; else `errors`, `message`, raw text."""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        if isinstance(detail, list):
            msgs = [str(item.get("msg", "")) if isinstance(item, dict) else str(item) for item in detail]
            joined = "; ".join(m for m in msgs if m)
            if joined:
                return joined
        for key in ("errors", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if value and not isinstance(value, str):
                return str(value)
    if isinstance(body, str) and body:
        return body
    return raw.decode("utf-8", "replace").strip()


def _field_name(loc: Any) -> str:
    """["body", "steps"] -> "steps"; ["body", "styles", 0] -> "styles.0"; ["body"] -> "body"."""
    if not isinstance(loc, (list, tuple)) or not loc:
        return "body"
    parts = list(loc)
    if parts[0] in ("body", "query", "path", "header") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


def _validation_fields(detail: Any) -> list[tuple[str, str]]:
    """(field, message) from pydantic v1 `{loc,msg,type}` and v2 `{type,loc,msg,input,url}` lists."""
    out: list[tuple[str, str]] = []
    for item in detail if isinstance(detail, list) else []:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc")
        name = _field_name(loc)
        if isinstance(loc, (list, tuple)) and len(loc) == 2 and isinstance(loc[1], int):
            name = "body"  # invalid JSON: ["body", <char position>]
        out.append((name, str(item.get("msg", "invalid value"))))
    return out


def short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_from_response(status: int, raw: bytes, *, backend: str, path: str, had_auth: bool) -> WebUIError:
    """Classify a non-2xx answer (status, raw body) into a WebUIError subclass."""
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    detail = short(_detail_text(body, raw), _MAX_DETAIL)
    error_type = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
    common = {"backend": backend, "status": status, "detail": detail}

    if status in (401, 403):
        return WebUIAuthError(T("failure.auth" if had_auth else "failure.auth_missing"), **common)

    if status == 422:
        raw_detail = body.get("detail") if isinstance(body, dict) else None
        fields = _validation_fields(raw_detail)
        if fields:  # field names are short and safe to show; what pydantic said about them goes to the log
            names = ", ".join(dict.fromkeys(name for name, _ in fields[:5]))
            return WebUIValidationError(T("failure.rejected_fields", fields=names), fields=fields, **common)
        return WebUIValidationError(T("failure.rejected"), fields=fields, **common)

    if status >= 500:
        lowered = detail.lower()
        oom = error_type == "OutOfMemoryError" or "out of memory" in lowered
        if oom:
            msg = T("failure.oom")
        elif error_type == "NansException" or "nans was produced" in lowered or "all nans" in lowered:
            msg = T("failure.nan")
        elif error_type and error_type != "HTTPException" and error_type.isidentifier():
            msg = T("failure.server_error", error=error_type[:60])
        else:
            msg = T("failure.server_status", status=status)
        return WebUIServerError(msg, error_type=error_type, out_of_memory=oom, **common)

    if status == 404 and detail in ("Not Found", ""):
        return WebUIResponseError(T("failure.no_api"),
                                  **{**common, "detail": f"{backend} has no /{path} endpoint (started without --api?)"})
    if status in (400, 404) and "sampler not found" in detail.lower():  # 404 up to A1111 1.9 and in SD.Next, 400 since 1.10
        return WebUIResponseError(T("failure.sampler_not_found"), **common)
    return WebUIResponseError(T("failure.server_status", status=status), **common)
