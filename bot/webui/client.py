"""Async client for the Stable Diffusion WebUI HTTP API (A1111 / Forge / SD.Next `/sdapi/v1`).

One aiohttp session per client, created lazily inside the running loop. Every call class has its own
explicit timeout (long for generation and extras, short for catalogue and progress). Generation POSTs
are never retried: a WebUI keeps running a job whose client went away, so a retry would run it twice.
Generation bodies are decoded while they arrive (`stream.GenerationStream`: the loop only finds the
strings, base64 is decoded in a worker thread), so a body is never held whole; they are requested
without gzip, which would otherwise cost the server a level-9 compression and us a decompression of
several megabytes.

Errors are classified per the reference's §10 rule (status code + the body's `error` field) into
WebUIError subclasses whose `.message` is one user-facing sentence (`errors.py`).

Never imports discord.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from bot.errors import (
    WebUIAuthError,
    WebUIConnectionError,
    WebUIError,
    WebUIResponseError,
    WebUIServerError,
    WebUITimeoutError,
    WebUIValidationError,
)
from bot.text import T

from . import flavours
from .errors import error_from_response
from .errors import short as _short
from .http import SessionOwner, transport_error
from .http import parse_base_url as _parse_base_url
from .stream import GenerationStream, looks_like_image

__all__ = [
    "ExtraResult",
    "GenerationResult",
    "Progress",
    "WebUIAuthError",
    "WebUIClient",
    "WebUIConnectionError",
    "WebUIError",
    "WebUIResponseError",
    "WebUIServerError",
    "WebUITimeoutError",
    "WebUIValidationError",
    "decode_generation_response",
    "error_from_response",
]

log = logging.getLogger(__name__)

_STREAM_CHUNK = 64 * 1024



# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationResult:
    images: list[bytes]
    """Decoded image files in response order (a grid first when `index_of_first_image` is 1). Items that
    are not image data (extensions may put strings there) are left out."""
    infotexts: list[str]
    seeds: list[int]
    info: dict[str, Any]
    parameters: dict[str, Any]
    elapsed: float
    index_of_first_image: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    progress: float
    eta_relative: float
    state: dict[str, Any]
    current_image: bytes | None
    textinfo: str | None

    @property
    def job_count(self) -> int:
        value = self.state.get("job_count", 0)
        return value if isinstance(value, int) else 0

    @property
    def idle(self) -> bool:
        """True when no job runs (`job_count == 0`; -1 means a job is loading)."""
        return self.job_count == 0

    @property
    def sampling_step(self) -> int:
        value = self.state.get("sampling_step", 0)
        return value if isinstance(value, int) else 0

    @property
    def sampling_steps(self) -> int:
        value = self.state.get("sampling_steps", 0)
        return value if isinstance(value, int) else 0


@dataclass(frozen=True, slots=True)
class ExtraResult:
    image: bytes
    html_info: str


def _b64_image(item: Any) -> bytes | None:
    """Decode one `images[]` item; None when it is not image data."""
    if isinstance(item, str):
        if not item.isascii():
            return None
        item = item.encode("ascii")
    if not isinstance(item, bytes) or not item:
        return None
    if item.startswith(b"data:"):
        _, _, item = item.partition(b",")
    try:
        data = _a2b(item)
    except (binascii.Error, ValueError):
        return None
    return data if looks_like_image(data) else None


_B64_SLICE = 256 * 1024  # base64 characters per decode call (a multiple of 4)


def _a2b(item: bytes) -> bytes:
    """Base64-decode in slices: one a2b_base64 call over a multi-MB image holds the GIL for
    several ms and stalls the event loop thread; a 256 KB slice holds it for well under 1 ms."""
    if len(item) <= _B64_SLICE or b"\n" in item or b"\r" in item or b" " in item:
        return binascii.a2b_base64(item)  # short, or with white space (slices would misalign)
    view = memoryview(item)
    return b"".join([binascii.a2b_base64(view[i:i + _B64_SLICE]) for i in range(0, len(item), _B64_SLICE)])


class _Malformed(Exception):
    pass


def decode_generation_response(raw: bytes, elapsed: float) -> GenerationResult:
    """Parse a whole txt2img/img2img response body (sync; run it in a thread). Raises WebUIResponseError.
    The client streams bodies (GenerationStream); this is for the ones shaped otherwise."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebUIResponseError(T("failure.bad_answer"), detail=_short(f"generation response is not JSON: {exc}")) from None
    if not isinstance(data, dict) or not isinstance(data.get("images", []), list):
        raise WebUIResponseError(T("failure.bad_answer"), detail=_short("generation response without an image list: "
                                                            + raw[:200].decode("utf-8", "replace")))
    items = data.get("images") or []
    images: list[bytes] = []
    skipped = 0
    for item in items:
        decoded = _b64_image(item)
        if decoded is None:
            skipped += 1
        else:
            images.append(decoded)
    if skipped:
        log.debug("ignored %d non-image item(s) in the WebUI's images list", skipped)
    return result_from(images, data, elapsed)


def result_from(images: list[bytes], data: dict[str, Any], elapsed: float) -> GenerationResult:
    """A GenerationResult from the decoded images and the rest of the body (`info`, `parameters`)."""
    info_raw = data.get("info")
    info: dict[str, Any] = {}
    if isinstance(info_raw, dict):
        info = info_raw
    elif isinstance(info_raw, str) and info_raw.strip():
        try:
            parsed = orjson.loads(info_raw)
        except orjson.JSONDecodeError:
            log.debug("the WebUI's info string is not JSON; ignoring it")
            parsed = None
        if isinstance(parsed, dict):
            info = parsed
    infotexts = [t for t in info.get("infotexts") or [] if isinstance(t, str)]
    seeds_raw = info.get("all_seeds")
    if not isinstance(seeds_raw, list):
        seeds_raw = [info["seed"]] if isinstance(info.get("seed"), int) else []
    seeds = [s for s in seeds_raw if isinstance(s, int) and not isinstance(s, bool)]
    index = info.get("index_of_first_image", 0)
    parameters = data.get("parameters")
    return GenerationResult(
        images=images,
        infotexts=infotexts,
        seeds=seeds,
        info=info,
        parameters=parameters if isinstance(parameters, dict) else {},
        elapsed=elapsed,
        index_of_first_image=index if isinstance(index, int) and index >= 0 else 0,
    )


def _decode_extra(raw: bytes) -> ExtraResult:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WebUIResponseError(T("failure.bad_answer"), detail="upscale response is not JSON") from None
    image = _b64_image(data.get("image")) if isinstance(data, dict) else None
    if image is None:
        raise WebUIResponseError(T("failure.bad_answer"), detail="upscale response has no image")
    html = data.get("html_info")
    return ExtraResult(image=image, html_info=html if isinstance(html, str) else "")


def _decode_progress(raw: bytes) -> Progress:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise _Malformed("progress is not an object")
    current = data.get("current_image")
    image = None
    if isinstance(current, str) and current:
        try:
            image = binascii.a2b_base64(current.partition(",")[2] if current.startswith("data:") else current)
        except (binascii.Error, ValueError):
            image = None
    state = data.get("state")
    textinfo = data.get("textinfo")
    progress, eta = data.get("progress"), data.get("eta_relative")
    return Progress(
        progress=float(progress) if isinstance(progress, (int, float)) else 0.0,
        eta_relative=float(eta) if isinstance(eta, (int, float)) else 0.0,
        state=state if isinstance(state, dict) else {},
        current_image=image,
        textinfo=textinfo if isinstance(textinfo, str) else None,
    )


# --------------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------------


class WebUIClient(SessionOwner):
    """Client for one WebUI server (A1111, Forge, SD.Next): the reference `backend.Backend`."""

    kind = "webui"

    def missing(self, request_kind: str, payload: dict[str, Any], asked: Any) -> list[str]:
        """Every /draw option has its field in the WebUI API; what this server's flavour can't apply (an
        asked schedule type SD.Next has no equivalent for, see `flavours`) is named here. Before the flavour
        is known (`detect_flavour`), nothing is."""
        return flavours.unsupported(self.flavour, request_kind, payload, asked or ())

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        generation_timeout: float = 1800.0,
        catalogue_timeout: float = 15.0,
        connect_timeout: float = 5.0,
        name: str | None = None,
    ):
        base, url_auth = _parse_base_url(base_url)
        self._connect(base, url_auth, auth, shown=str(base).removesuffix("/"), name=name,
                      generation_timeout=generation_timeout, catalogue_timeout=catalogue_timeout,
                      connect_timeout=connect_timeout)
        self.flavour: str | None = None
        """"a1111", "forge" or "sdnext" once known (`detect_flavour`, `version_info`); None before."""
        self._flavour_lock = asyncio.Lock()
        self._progress_t = aiohttp.ClientTimeout(total=min(catalogue_timeout, 10.0), sock_connect=connect_timeout)

    def __repr__(self) -> str:
        return f"WebUIClient({self.display_url!r}, name={self.name!r})"

    # ---------------------------------------------------------------- session

    # `_get_session`, `close` and `async with` come from SessionOwner

    # ---------------------------------------------------------------- transport

    async def _request(
        self,
        method: str,
        path: str,
        *,
        payload: Any = None,
        params: dict[str, str] | None = None,
        timeout: aiohttp.ClientTimeout,
        compressed: bool = True,
        sink: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> tuple[int, bytes, float]:
        """One HTTP exchange (never retried here). Returns (status, body, seconds). With `sink`, a 2xx
        body is handed to it chunk by chunk as it arrives instead (and b"" returned)."""
        session = self._get_session()
        url = self._base.join(URL(path))
        headers = {"Accept": "application/json"}
        if self._auth_header is not None:  # aiohttp drops it on a cross-origin redirect
            headers["Authorization"] = self._auth_header
        if not compressed:
            headers["Accept-Encoding"] = "identity"
        data = None
        if payload is not None:
            data = await _dumps(payload)
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        limit = timeout.total
        try:
            async with session.request(method, url, data=data, params=params, headers=headers,
                                       timeout=timeout) as resp:
                status = resp.status
                if sink is not None and 200 <= status < 300:
                    raw = b""
                    async for chunk in resp.content.iter_chunked(_STREAM_CHUNK):
                        await sink(chunk)
                else:
                    raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, backend=self.display_url, what=f"{method} /{path}", limit=limit,
                                  job=timeout is self._generation_t, hint="is it running with --api?") from None
        elapsed = time.monotonic() - started
        log.debug("%s %s /%s -> %d (%d bytes, %.2fs)", self.name, method, path, status, len(raw), elapsed)
        if not 200 <= status < 300:
            raise error_from_response(status, raw, backend=self.display_url, path=path,
                                      had_auth=self._auth_header is not None)
        return status, raw, elapsed

    async def _get_json(self, path: str, *, params: dict[str, str] | None = None) -> Any:
        _, raw, _ = await self._request("GET", path, params=params, timeout=self._catalogue_t)
        return self._parse_small(raw, path)

    def _parse_small(self, raw: bytes, path: str) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise WebUIResponseError(
                T("failure.bad_answer"), backend=self.display_url, status=200,
                detail=_short(f"{self.display_url} sent a /{path} answer that is not JSON: "
                              + raw[:200].decode("utf-8", "replace"))) from None

    async def _get_list(self, path: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        try:
            data = await self._get_json(path)
        except WebUIResponseError as exc:
            if missing_ok and exc.status == 404:
                return []
            raise
        if not isinstance(data, list):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=f"{self.display_url} sent a /{path} answer that is not a list")
        return [item for item in data if isinstance(item, dict)]

    # ---------------------------------------------------------------- generation

    async def _generate(self, path: str, payload: dict[str, Any]) -> GenerationResult:
        """The body is decoded while it arrives (GenerationStream): never held whole in memory. The payload
        is adapted to the server's flavour first (`flavours.adapt_payload`)."""
        payload = flavours.adapt_payload(await self.detect_flavour(), payload)
        stream = GenerationStream()

        async def sink(chunk: bytes) -> None:
            stream.feed(chunk)  # finds the strings: cheap, on the loop
            if stream.ready:
                await asyncio.to_thread(stream.decode)  # base64 -> bytes, in a thread

        _, _, elapsed = await self._request("POST", path, payload=payload, timeout=self._generation_t,
                                            compressed=False, sink=sink)
        try:
            images, rest, raw = await asyncio.to_thread(stream.finish)
            if rest is not None:
                result = result_from(images, rest, elapsed)
            else:  # not the usual shape: parse what is left whole, in a thread
                parsed = await asyncio.to_thread(decode_generation_response, raw or b"", elapsed)
                result = dataclasses.replace(parsed, images=images + parsed.images)
        except WebUIResponseError as exc:
            exc.backend = self.display_url
            exc.status = 200
            raise
        version = result.info.get("version")
        if isinstance(version, str) and version:
            self.last_version = version
        return result

    async def txt2img(self, payload: dict[str, Any]) -> GenerationResult:
        """POST /sdapi/v1/txt2img (never retried)."""
        return await self._generate("sdapi/v1/txt2img", payload)

    async def img2img(self, payload: dict[str, Any]) -> GenerationResult:
        """POST /sdapi/v1/img2img (never retried). `init_images` must be base64 strings."""
        return await self._generate("sdapi/v1/img2img", payload)

    async def extra_single_image(self, image: bytes, **params: Any) -> ExtraResult:
        """POST /sdapi/v1/extra-single-image, e.g. `upscaler_1="R-ESRGAN 4x+", upscaling_resize=2`."""
        payload = {**params, "image": await asyncio.to_thread(_b64, image)}
        _, raw, _ = await self._request("POST", "sdapi/v1/extra-single-image", payload=payload,
                                        timeout=self._generation_t, compressed=False)
        return await asyncio.to_thread(_decode_extra, raw)

    async def png_info(self, image: bytes) -> dict[str, Any]:
        """POST /sdapi/v1/png-info → {info, items, parameters}."""
        payload = {"image": await asyncio.to_thread(_b64, image)}
        _, raw, _ = await self._request("POST", "sdapi/v1/png-info", payload=payload, timeout=self._catalogue_t)
        data = self._parse_small(raw, "sdapi/v1/png-info")
        if not isinstance(data, dict):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail="the png-info answer is not an object")
        return data

    # ---------------------------------------------------------------- progress and control

    async def progress(self, *, skip_current_image: bool = True) -> Progress:
        """GET /sdapi/v1/progress. Idle means `job_count == 0` (see Progress.idle)."""
        _, raw, _ = await self._request(
            "GET", "sdapi/v1/progress", params={"skip_current_image": "true" if skip_current_image else "false"},
            timeout=self._progress_t)
        try:
            return await asyncio.to_thread(_decode_progress, raw) if len(raw) > 65536 else _decode_progress(raw)
        except (orjson.JSONDecodeError, _Malformed):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=f"{self.display_url} sent a progress answer sdcord can't read") from None

    async def interrupt(self) -> None:
        """POST /sdapi/v1/interrupt: the running job (whoever's) stops at its next step and returns 200."""
        await self._request("POST", "sdapi/v1/interrupt", timeout=self._catalogue_t)

    async def skip(self) -> None:
        """POST /sdapi/v1/skip: the current batch stops early; later batches run."""
        await self._request("POST", "sdapi/v1/skip", timeout=self._catalogue_t)

    # ---------------------------------------------------------------- catalogue

    async def sd_models(self) -> list[dict[str, Any]]:
        return await self._get_list("sdapi/v1/sd-models")

    async def samplers(self) -> list[dict[str, Any]]:
        """The samplers /draw can use (SD.Next's hires-only "Same as primary" left out)."""
        items = await self._get_list("sdapi/v1/samplers")
        if self.flavour is None and flavours.may_be_sdnext_samplers(items):
            await self.detect_flavour()
        return flavours.adapt_samplers(self.flavour, items)

    async def schedulers(self) -> list[dict[str, Any]]:
        """GET /sdapi/v1/schedulers. A WebUI without it: [] for A1111 ≤ 1.9.0, and for SD.Next the schedule
        types sdcord can apply there through its sigma option (`flavours.schedulers_for`)."""
        try:
            data = await self._get_json("sdapi/v1/schedulers")
        except WebUIResponseError as exc:
            if exc.status != 404:
                raise
            return flavours.schedulers_for(await self.detect_flavour())
        if not isinstance(data, list):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=f"{self.display_url} sent a /sdapi/v1/schedulers answer that is not a list")
        return [item for item in data if isinstance(item, dict)]

    async def upscalers(self) -> list[dict[str, Any]]:
        return await self._get_list("sdapi/v1/upscalers")

    async def latent_upscale_modes(self) -> list[dict[str, Any]]:
        return await self._get_list("sdapi/v1/latent-upscale-modes", missing_ok=True)

    async def prompt_styles(self) -> list[dict[str, Any]]:
        return await self._get_list("sdapi/v1/prompt-styles")

    async def loras(self) -> list[dict[str, Any]]:
        """[] when the Lora extension is off (404)."""
        return await self._get_list("sdapi/v1/loras", missing_ok=True)

    async def sd_vae(self) -> list[dict[str, Any]]:
        """[] on Forge, which removed /sd-vae."""
        return await self._get_list("sdapi/v1/sd-vae", missing_ok=True)

    async def scripts(self) -> dict[str, list[str]]:
        """GET /sdapi/v1/scripts: the script names (lower case, extensions such as ADetailer included) per
        mode, {"txt2img": [...], "img2img": [...]}; {} when the WebUI has no such route."""
        try:
            data = await self._get_json("sdapi/v1/scripts")
        except WebUIResponseError as exc:
            if exc.status == 404:
                return {}
            raise
        if not isinstance(data, dict):
            return {}
        return {mode: [str(n).casefold() for n in names if isinstance(n, str)]
                for mode, names in data.items() if mode in ("txt2img", "img2img") and isinstance(names, list)}

    async def interrogate(self, image: bytes, model: str = "clip") -> str:
        """POST /sdapi/v1/interrogate: a caption of the image (CLIP) or its tags (deepdanbooru). Base64 in a
        thread; the WebUI's errors are raised like a generation's."""
        encoded = await asyncio.to_thread(lambda: base64.b64encode(image).decode("ascii"))
        _, raw, _ = await self._request("POST", "sdapi/v1/interrogate", payload={"image": encoded, "model": model},
                                        timeout=self._generation_t)
        del encoded
        data = self._parse_small(raw, "sdapi/v1/interrogate")
        caption = data.get("caption") if isinstance(data, dict) else None
        if not isinstance(caption, str):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=f"{self.display_url} sent an interrogate answer without a caption")
        return caption

    async def options(self) -> dict[str, Any]:
        """GET /sdapi/v1/options (read only: sdcord never POSTs options; it uses override_settings)."""
        data = await self._get_json("sdapi/v1/options")
        if not isinstance(data, dict):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail="the options answer is not an object")
        return data

    # ---------------------------------------------------------------- doctor

    async def _probe(self, path: str) -> tuple[int, Any]:
        """GET path; 404/405 come back as a status instead of raising."""
        try:
            _, raw, _ = await self._request("GET", path, timeout=self._catalogue_t)
        except WebUIResponseError as exc:
            if exc.status in (404, 405):
                return exc.status, None
            raise
        try:
            return 200, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 200, None

    async def detect_flavour(self) -> str:
        """"a1111", "forge" or "sdnext", asked once and kept (reference §11: only SD.Next has /version, only
        Forge /sd-modules or a Version starting with "f"). Raises a WebUIError when the server can't be asked."""
        if self.flavour is not None:
            return self.flavour
        async with self._flavour_lock:
            if self.flavour is None:
                version_status, body = await self._probe("sdapi/v1/version")
                if version_status == 200 and isinstance(body, dict):
                    flavour = flavours.SDNEXT
                elif (self.last_version or "").startswith("f"):
                    flavour = flavours.FORGE
                else:
                    modules_status, _ = await self._probe("sdapi/v1/sd-modules")
                    flavour = flavours.FORGE if modules_status == 200 else flavours.A1111
                self.flavour = flavour
                log.debug("%s is %s", self.name, flavour)
            return self.flavour

    async def version_info(self) -> dict[str, Any]:
        """Best-effort flavour/version detection (reference §11) for a doctor command.

        Returns {"kind": "webui", "flavour": "a1111"|"forge"|"sdnext", "version": str|None, "api": True,
        "schedulers": bool, "sd_modules": bool, "models": int, "detail": str, "backend": display_url};
        "version" is known for SD.Next (the date of its commit, with "hash"), otherwise only after a
        generation (A1111/Forge report it in `info.version`). Raises a
        WebUIError when the API can't be used at all: unreachable, bad credentials, no --api (404), or a
        server that does not answer like a WebUI.
        """
        out: dict[str, Any] = {"backend": self.display_url, "kind": self.kind, "flavour": "unknown", "version": self.last_version,
                               "api": False, "schedulers": False, "sd_modules": False, "detail": ""}
        models = await self._get_json("sdapi/v1/sd-models")
        if not isinstance(models, list):
            raise WebUIResponseError(
                T("failure.not_webui"), backend=self.display_url, status=200,
                detail=f"the server at {self.display_url} answered, but not like a Stable Diffusion WebUI")
        out["api"] = True
        out["models"] = len(models)
        (sched_status, _), (modules_status, _), (version_status, version_body) = await asyncio.gather(
            self._probe("sdapi/v1/schedulers"), self._probe("sdapi/v1/sd-modules"), self._probe("sdapi/v1/version"))
        out["schedulers"] = sched_status == 200
        out["sd_modules"] = modules_status == 200
        version = self.last_version
        if version_status == 200 and isinstance(version_body, dict):
            out["flavour"] = "sdnext"
            # {"app": "sd.next", "updated": "2025-03-02", "hash": "431bcc36", "branch", "url"}, or
            # {"app", "version": "unknown", "branch"} when git fails (SD.Next installer.py get_version)
            sdnext_version = version_body.get("updated") or version_body.get("version") or version_body.get("hash")
            out["version"] = str(sdnext_version) if sdnext_version else version
            if version_body.get("hash"):
                out["hash"] = str(version_body["hash"])
            out["detail"] = "SD.Next"
        elif modules_status == 200 or (version or "").startswith("f"):
            out["flavour"] = "forge"
            out["detail"] = "Forge"
        elif sched_status == 200:
            out["flavour"] = "a1111"
            out["detail"] = "AUTOMATIC1111 1.9.1 or later"
        else:
            out["flavour"] = "a1111"
            out["detail"] = "AUTOMATIC1111 1.9.0 or older (no /schedulers)"
        self.flavour = out["flavour"]
        return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def _dumps(payload: Any) -> bytes:
    """orjson for request bodies; large ones (init images) are encoded in a thread."""
    def dump() -> bytes:
        try:
            return orjson.dumps(payload)
        except TypeError:
            import json

            return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")

    if isinstance(payload, dict) and any(isinstance(v, (str, list)) and len(v) > 65536 for v in payload.values()):
        return await asyncio.to_thread(dump)
    return dump()
