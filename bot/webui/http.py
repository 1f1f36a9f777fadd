"""What every backend client shares over HTTP: the base URL and its credentials, Basic auth, the session,
and one mapping of transport failures (refused, timed out, broken off) onto the `bot.errors` classes.

Never imports discord.
"""

from __future__ import annotations

import base64
from typing import Self

import aiohttp
from yarl import URL

from bot.errors import WebUIConnectionError, WebUIError, WebUITimeoutError
from bot.text import T

from .errors import short

__all__ = ["SessionOwner", "basic_auth", "new_session", "os_error_text", "parse_base_url", "transport_error"]

WEBUI_API_SUFFIXES = ("/sdapi/v1/", "/sdapi/")


def parse_base_url(base_url: str, *,
                   api_suffixes: tuple[str, ...] = WEBUI_API_SUFFIXES) -> tuple[URL, tuple[str, str] | None]:
    """(the server's base URL ending in "/", without credentials, query or fragment; its `user:pass@` or None).
    A pasted API URL ending in one of `api_suffixes` is cut back to the server's own address."""
    text = base_url.strip()
    if "://" not in text:
        text = "http://" + text
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("the WebUI URL must look like http://host:port")
    creds = None
    if url.user is not None:
        creds = (url.user, url.password or "")
    url = url.with_user(None).with_password(None).with_query(None).with_fragment(None)
    path = url.path if url.path.endswith("/") else url.path + "/"
    for suffix in api_suffixes:
        if path.endswith(suffix):
            path = path[: -len(suffix) + 1]
            break
    return url.with_path(path), creds


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value (built by hand: aiohttp.BasicAuth / auth= are deprecated in 3.14)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def new_session() -> aiohttp.ClientSession:
    """A client's one session (create it inside the running loop)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=16),
        headers={"User-Agent": "sdcord"},
        raise_for_status=False,
    )


def transport_error(exc: BaseException, *, backend: str, what: str, limit: float | None, job: bool,
                    hint: str = "") -> WebUIError:
    """The WebUIError for a request that failed below HTTP (`exc` is a TimeoutError or aiohttp.ClientError).

    `what` names the request for the log ("POST /sdapi/v1/txt2img"), `limit` is its total timeout, `job`
    says whether it was a generation (its timeout message differs), `hint` follows "can't reach …"."""
    tail = f": {hint}" if hint else ""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return WebUIConnectionError(
            T("failure.unreachable"), backend=backend, reached=False,
            detail=f"can't reach {backend} (no answer to the connection; {type(exc).__name__}){tail}")
    if isinstance(exc, TimeoutError):
        key = "failure.timeout_job" if job else "failure.timeout_answer"
        shown = f"{limit:g}" if limit is not None else "?"
        return WebUITimeoutError(T(key, seconds=shown), backend=backend,
                                 detail=f"{backend}: {what} got no answer within {shown} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return WebUIConnectionError(T("failure.unreachable"), backend=backend, reached=False,
                                    detail=short(f"can't reach {backend} ({os_error_text(exc)}){tail}"))
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError,
                        aiohttp.ClientConnectionError)):
        return WebUIConnectionError(
            T("failure.broke_off"), backend=backend,
            detail=short(f"the connection to {backend} broke off ({type(exc).__name__}: {exc})"))
    return WebUIConnectionError(T("failure.unreachable"), backend=backend,
                                detail=short(f"can't talk to {backend}: {type(exc).__name__}: {exc}"))


def os_error_text(exc: aiohttp.ClientConnectorError) -> str:
    os_error = getattr(exc, "os_error", None)
    if os_error is not None:
        return f"{type(os_error).__name__}: {getattr(os_error, 'strerror', None) or os_error}"
    return type(exc).__name__


class SessionOwner:
    """A client's one aiohttp session: made on first use, closed by `close` or `async with`; and what every
    kind of client knows of its server (`_connect`)."""

    _session: aiohttp.ClientSession | None = None

    def _connect(self, base: URL, url_auth: tuple[str, str] | None, auth: tuple[str, str] | None, *, shown: str,
                 name: str | None, generation_timeout: float, catalogue_timeout: float,
                 connect_timeout: float) -> None:
        """The server's address and credentials (explicit `auth` over the URL's), how it is named in logs
        (`shown`: never the credentials), and the timeouts of a generation and of a catalogue call."""
        self._base = base
        self._auth_pair = auth if auth is not None else url_auth
        # built by hand: aiohttp.BasicAuth / auth= are deprecated in aiohttp 3.14 and encode_basic_auth is new
        self._auth_header = basic_auth(*self._auth_pair) if self._auth_pair else None
        self.display_url: str = shown
        self.name = name or shown
        self.generation_timeout = generation_timeout
        self.catalogue_timeout = catalogue_timeout
        self.connect_timeout = connect_timeout
        self.last_version: str | None = None
        self._session = None
        self._generation_t = aiohttp.ClientTimeout(total=generation_timeout, sock_connect=connect_timeout)
        self._catalogue_t = aiohttp.ClientTimeout(total=catalogue_timeout, sock_connect=connect_timeout)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = new_session()
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
