"""Client for a "Stable Diffusion API server" (`WEBUI_URL=form+http://host:port`): form-encoded POSTs to
`/txt2img` and `/img2img` that answer with image URLs.

    POST /txt2img   prompt, seed, num_outputs (1-4), width, height (each in (0, 1024]),
                    num_inference_steps (0, 150], guidance_scale (0, 20]
    POST /img2img   the same, plus strength (0, 1) and init_image (base64)
    -> {"images": [{"image_url": "...", "mime_type": "image/png", "seed": 3090352432285578}, ...],
        "status": "success"}

The engine speaks the WebUI's payload language; this client maps it onto those fields (batch_size ->
num_outputs, steps -> num_inference_steps, cfg_scale -> guidance_scale, denoising_strength -> strength,
init_images[0] -> init_image) and says through `missing` what a request asks for that the server has no
field for. A seed of -1 is picked here, so it can be shown and rerun.

Every image is downloaded (http/https only, redirects only to the same scheme and at most three, capped
at `max_download` bytes by Content-Length and while streaming, with its own timeouts), checked to be a
whole PNG/JPEG/WebP, and given the A1111 `parameters` text the server doesn't write (non-PNG images are
converted to PNG for that), so the rest of sdcord handles it like a WebUI's.

The server has no progress, interrupt, catalogue or upscaling endpoints: `progress()` is always idle,
`interrupt()` does nothing, the catalogue lists are empty and `extra_single_image` refuses.

Never imports discord.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Collection
from typing import Any

import aiohttp
import orjson
from yarl import URL

from bot.errors import (
    WebUIConnectionError,
    WebUIError,
    WebUIResponseError,
    WebUIServerError,
    WebUITimeoutError,
    WebUIValidationError,
)
from bot.images import png
from bot.images.infotext import create_infotext
from bot.text import Opt, T

from .client import GenerationResult, Progress
from .errors import error_from_response, short
from .http import SessionOwner, parse_base_url, transport_error

__all__ = ["DEFAULT_MAX_DOWNLOAD", "FORM_PREFIX", "LIMITS", "FormClient"]

log = logging.getLogger(__name__)

FORM_PREFIX = "form+"
MiB = 1024 * 1024
DEFAULT_MAX_DOWNLOAD = 25 * MiB
DEFAULT_MAX_PIXELS = 25_000_000  # a downloaded image with more pixels is refused before it is decoded
MAX_REDIRECTS = 3
MAX_ANSWER = 4 * MiB  # the JSON answer to a generation (image URLs, not images)
_CHUNK = 64 * 1024
_REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
_PROMPT_LORA = re.compile(r"<(?:lora|lyco):", re.IGNORECASE)
_SERVER_FIELD = "Server"  # the infotext field naming the kind of server (A1111's parser keeps it as is)

LIMITS = {"side": 1024, "outputs": 4, "steps": 150, "cfg_scale": 20.0}
"""The server's ranges: width/height (0, 1024], num_outputs 1-4, steps (0, 150], guidance (0, 20]."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _text_number(value: float) -> str:
    """A float form field as Python writes it: 7.0, 0.6."""
    return repr(float(value))


class FormClient(SessionOwner):
    """Client for one form-encoded Stable Diffusion API server: a `backend.Backend`."""

    kind = "form"

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        generation_timeout: float = 1800.0,
        catalogue_timeout: float = 15.0,
        connect_timeout: float = 5.0,
        download_timeout: float = 120.0,
        read_timeout: float = 30.0,
        max_download: int = DEFAULT_MAX_DOWNLOAD,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        name: str | None = None,
    ):
        text = url.strip()
        if text.lower().startswith(FORM_PREFIX):
            text = text[len(FORM_PREFIX):]
        base, url_auth = parse_base_url(text, api_suffixes=())
        self._connect(base, url_auth, auth, shown=FORM_PREFIX + str(base).removesuffix("/"), name=name,
                      generation_timeout=generation_timeout, catalogue_timeout=catalogue_timeout,
                      connect_timeout=connect_timeout)
        self.download_timeout = download_timeout
        self.read_timeout = read_timeout
        if max_download <= 0:
            raise ValueError("max_download must be positive")
        self.max_download = max_download
        self.max_pixels = max_pixels
        self._download_t = aiohttp.ClientTimeout(total=download_timeout, sock_connect=connect_timeout,
                                                 sock_read=read_timeout)

    def __repr__(self) -> str:
        return f"FormClient({self.display_url!r}, name={self.name!r})"

    # ---------------------------------------------------------------- what it can do

    def missing(self, request_kind: str, payload: dict[str, Any], asked: Collection[str]) -> list[str]:
        """The /draw options of this request the server has no field (or no room) for; [] = it can run it.

        Sampler, scheduler, model and negative prompt count only when asked for on purpose (the bot always
        fills in a default sampler and scheduler; a default negative prompt is simply not sent); the rest
        is read from the payload: hires fix, styles, LoRAs in the prompt, numbers outside the server's
        ranges, a variation seed, and upscaling, which it can't do at all."""
        if request_kind in ("upscale", "describe"):
            return [request_kind]
        asked = set(asked)
        out: list[str] = []

        def add(name: str) -> None:
            if name not in out:
                out.append(name)

        if "negative_prompt" in asked and str(payload.get("negative_prompt") or "").strip():
            add("negative_prompt")
        for name in ("model", "sampler", "scheduler"):
            if name in asked:
                add(name)
        if payload.get("enable_hr"):
            add("hires")
        if payload.get("styles"):
            add("style")
        if _PROMPT_LORA.search(str(payload.get("prompt") or "")):
            add("lora")
        for name in ("width", "height"):
            side = _number(payload.get(name))
            if side is not None and not 0 < side <= LIMITS["side"]:
                add(name)
        outputs = (_int(payload.get("batch_size", 1)) or 1) * (_int(payload.get("n_iter", 1)) or 1)
        if not 1 <= outputs <= LIMITS["outputs"]:
            add("batch")
        steps = _number(payload.get("steps"))
        if steps is not None and not 0 < steps <= LIMITS["steps"]:
            add("steps")
        cfg = _number(payload.get("cfg_scale"))
        if cfg is not None and not 0 < cfg <= LIMITS["cfg_scale"]:
            add("cfg_scale")
        if (_number(payload.get("subseed_strength")) or 0) > 0:
            add("variation")
        if (payload.get("override_settings") or {}).get("CLIP_stop_at_last_layers") is not None:
            add("clip_skip")
        if payload.get("tiling"):
            add("tiling")
        if payload.get("alwayson_scripts"):
            add("fix_faces")
        if "inpainting_fill" in payload:
            add("mask")
        if request_kind == "img2img":
            strength = _number(payload.get("denoising_strength"))
            if strength is not None and not 0 < strength < 1:
                add("strength")
        return out

    # ---------------------------------------------------------------- session

    # `_get_session`, `close` and `async with` come from SessionOwner

    # ---------------------------------------------------------------- transport

    def _headers(self, url: URL, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._auth_header is not None and url.origin() == self._base.origin():  # never to another host
            headers["Authorization"] = self._auth_header
        return headers

    async def _request(self, method: str, path: str, *, body: bytes | None,
                       timeout: aiohttp.ClientTimeout) -> tuple[int, bytes, float]:
        """One exchange with the server itself (never retried). Returns (status, body, seconds) for 2xx."""
        url = self._base.join(URL(path))
        headers = self._headers(url, "application/json")
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        started = time.monotonic()
        try:
            async with self._get_session().request(method, url, data=body, headers=headers, timeout=timeout,
                                                   allow_redirects=False) as resp:
                status = resp.status
                raw = await _read_capped(resp, MAX_ANSWER)
        except _TooBig:
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=f"{self.display_url}: the /{path} answer is over {MAX_ANSWER} bytes") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, backend=self.display_url, what=f"{method} /{path}", limit=timeout.total,
                                  job=timeout is self._generation_t) from None
        elapsed = time.monotonic() - started
        log.debug("%s %s /%s -> %d (%d bytes, %.2fs)", self.name, method, path, status, len(raw), elapsed)
        if not 200 <= status < 300:
            raise self._http_error(status, raw, path)
        return status, raw, elapsed

    def _http_error(self, status: int, raw: bytes, path: str) -> WebUIError:
        error = error_from_response(status, raw, backend=self.display_url, path=path,
                                    had_auth=self._auth_header is not None)
        if status == 405 or (status == 404 and error.message == T("failure.no_api")):
            # no such route: not a form server (an A1111 WebUI has no /txt2img at its root)
            return WebUIResponseError(T("failure.not_form"), backend=self.display_url, status=status,
                                      detail=f"{self.display_url} has no {'POST ' if status == 405 else ''}/{path} "
                                             "endpoint: is it a Stable Diffusion API server?")
        return error

    # ---------------------------------------------------------------- generation

    async def txt2img(self, payload: dict[str, Any]) -> GenerationResult:
        """POST /txt2img (never retried)."""
        return await self._generate("txt2img", payload)

    async def img2img(self, payload: dict[str, Any]) -> GenerationResult:
        """POST /img2img (never retried). `init_images[0]` is a base64 string (or the image's bytes)."""
        return await self._generate("img2img", payload)

    async def _generate(self, kind: str, payload: dict[str, Any]) -> GenerationResult:
        unsupported = self.missing(kind, payload, ())
        if unsupported:
            raise WebUIValidationError(
                T("failure.unsupported", options=[Opt(m) for m in unsupported]), backend=self.display_url,
                fields=[(name, "not supported by this server") for name in unsupported],
                detail=f"{self.display_url} has no field for: {', '.join(unsupported)}")
        fields = await self._fields(kind, payload)
        body = await _encode_form(fields)
        started = time.monotonic()
        _, raw, _ = await self._request("POST", kind, body=body, timeout=self._generation_t)
        del body
        items = self._images_of(raw, kind)
        datas = await self._download_all([url for url, _ in items])
        sent_seed = int(fields["seed"])
        seeds = [seed if seed is not None else sent_seed + k for k, (_, seed) in enumerate(items)]
        shown = {k: v for k, v in fields.items() if k != "init_image"}
        infotexts, images = [], []
        for data, seed in zip(datas, seeds, strict=True):
            infotext, image = await asyncio.to_thread(self._finish_image, data, fields, seed)
            infotexts.append(infotext)
            images.append(image)
        elapsed = time.monotonic() - started
        info = self._info(kind, fields, seeds, infotexts)
        return GenerationResult(images=images, infotexts=infotexts, seeds=seeds, info=info, parameters=shown,
                                elapsed=elapsed, index_of_first_image=0)

    async def _fields(self, kind: str, payload: dict[str, Any]) -> dict[str, str]:
        """The form fields for `payload` (WebUI names mapped onto the server's)."""
        seed = _int(payload.get("seed", -1))
        if seed is None or seed < 0:
            seed = secrets.randbelow(2**32)  # picked here, so it can be shown and rerun
        outputs = (_int(payload.get("batch_size", 1)) or 1) * (_int(payload.get("n_iter", 1)) or 1)
        fields = {"prompt": str(payload.get("prompt") or ""), "seed": str(seed), "num_outputs": str(outputs)}
        for ours, theirs in (("width", "width"), ("height", "height"), ("steps", "num_inference_steps")):
            value = _int(payload.get(ours))
            if value is not None:
                fields[theirs] = str(value)
        cfg = _number(payload.get("cfg_scale"))
        if cfg is not None:
            fields["guidance_scale"] = _text_number(cfg)
        if kind == "img2img":
            strength = _number(payload.get("denoising_strength"))
            if strength is not None:
                fields["strength"] = _text_number(strength)
            inits = payload.get("init_images") or []
            if not inits:
                raise WebUIValidationError(T("failure.rejected"), backend=self.display_url,
                                           fields=[("init_image", "missing")], detail="img2img without an image")
            fields["init_image"] = await _base64_of(inits[0])
        return fields

    def _images_of(self, raw: bytes, path: str) -> list[tuple[str, int | None]]:
        """(image_url, seed) of every image in a generation answer; raises the server's failure."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=short(f"{self.display_url} sent a /{path} answer that is not JSON: "
                                                  + raw[:200].decode("utf-8", "replace"))) from None
        if not isinstance(data, dict):
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=f"{self.display_url} sent a /{path} answer that is not an object")
        status = data.get("status")
        if status != "success":
            raise self._status_error(data, status)
        items = data.get("images")
        out: list[tuple[str, int | None]] = []
        for item in items if isinstance(items, list) else []:
            url = item.get("image_url") if isinstance(item, dict) else None
            if not isinstance(url, str) or not url.strip():
                continue
            seed = item.get("seed")
            if isinstance(seed, str) and seed.isdigit():
                seed = int(seed)
            out.append((url.strip(), seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
                        else None))
        if not out:
            raise WebUIResponseError(T("failure.bad_answer"), backend=self.display_url, status=200,
                                     detail=short(f"{self.display_url} answered /{path} with no image URL: "
                                                  + raw[:200].decode("utf-8", "replace")))
        return out

    def _status_error(self, data: dict[str, Any], status: Any) -> WebUIError:
        """A 2xx answer whose `status` is not "success"."""
        said = next((str(data[k]) for k in ("message", "detail", "error", "errors") if data.get(k)), "")
        detail = short(f"{self.display_url} answered status {status!r}: {said or '(no message)'}", 500)
        lowered = said.lower()
        if "out of memory" in lowered:
            return WebUIServerError(T("failure.oom"), backend=self.display_url, status=200, detail=detail,
                                    error_type="OutOfMemoryError", out_of_memory=True)
        error = data.get("error")
        if isinstance(error, str) and error.isidentifier() and error.endswith(("Error", "Exception")):
            return WebUIServerError(T("failure.server_error", error=error[:60]), backend=self.display_url,
                                    status=200, detail=detail, error_type=error)
        return WebUIValidationError(T("failure.rejected"), backend=self.display_url, status=200, detail=detail)

    def _finish_image(self, data: bytes, fields: dict[str, str], seed: int) -> tuple[str, bytes]:
        """(infotext, PNG carrying it) of one downloaded image (worker thread)."""
        try:
            kind, width, height = png.check_upload(data, max_pixels=self.max_pixels)
        except png.ImageDataError as exc:
            raise self._download_error(f"the image is not usable ({type(exc).__name__}: {exc})") from None
        size = (f"{fields['width']}x{fields['height']}" if "width" in fields and "height" in fields
                else f"{width}x{height}")
        params: dict[str, Any] = {
            "Steps": fields.get("num_inference_steps"),
            "CFG scale": fields.get("guidance_scale"),
            "Seed": seed,
            "Size": size,
            "Denoising strength": fields.get("strength"),
            _SERVER_FIELD: "form",
        }
        infotext = create_infotext(fields["prompt"], "", params)  # the negative prompt is never sent
        return infotext, _png_with(data, kind, infotext)

    def _info(self, kind: str, fields: dict[str, str], seeds: list[int], infotexts: list[str]) -> dict[str, Any]:
        """`info` shaped like the WebUI's (what the engine reads from it)."""
        steps = _int(fields.get("num_inference_steps"))
        cfg = _number(fields.get("guidance_scale"))
        return {
            "prompt": fields["prompt"], "all_prompts": [fields["prompt"]] * len(seeds),
            "negative_prompt": "", "seed": seeds[0] if seeds else None, "all_seeds": seeds,
            "steps": steps, "cfg_scale": cfg,
            "width": _int(fields.get("width")), "height": _int(fields.get("height")),
            "sampler_name": None, "sd_model_name": None, "batch_size": len(seeds),
            "denoising_strength": _number(fields.get("strength")) if kind == "img2img" else None,
            "infotexts": infotexts, "index_of_first_image": 0,
            "backend": self.display_url, "kind": self.kind,
        }

    # ---------------------------------------------------------------- downloads

    async def _download_all(self, urls: list[str]) -> list[bytes]:
        """Every image, concurrently; the first failure cancels the rest."""
        tasks = [asyncio.ensure_future(self._download(url, n)) for n, url in enumerate(urls)]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        failed = next((t for t in tasks if t in done and t.exception() is not None), None)
        if failed is not None:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]

    def _download_error(self, why: str, status: int | None = None) -> WebUIResponseError:
        return WebUIResponseError(T("failure.download"), backend=self.display_url, status=status,
                                  detail=short(f"{self.display_url}: {why}", 500))

    async def _download(self, raw_url: str, n: int) -> bytes:
        try:
            url = self._base.join(URL(raw_url))  # a relative URL is the server's own
        except (ValueError, TypeError):
            raise self._download_error(f"image {n + 1} has an unusable URL") from None
        shown = ""
        try:
            for _ in range(MAX_REDIRECTS + 1):
                shown = str(url.with_user(None).with_password(None).with_query(None).with_fragment(None))
                if url.scheme not in ("http", "https") or not url.host:
                    raise self._download_error(f"image {n + 1} is at {url.scheme or '(no scheme)'}: URL "
                                               "(only http and https are fetched)")
                async with self._get_session().get(url, headers=self._headers(url, "image/*"),
                                                   allow_redirects=False, timeout=self._download_t) as resp:
                    if resp.status in _REDIRECT_STATUSES:
                        location = resp.headers.get("Location", "")
                        target = url.join(URL(location)) if location else None
                        if target is None or target.scheme != url.scheme:
                            raise self._download_error(
                                f"image {n + 1} at {shown} redirects to "
                                f"{target.scheme + ':' if target is not None else 'nowhere'} (only to {url.scheme}:)",
                                resp.status)
                        url = target
                        continue
                    if resp.status != 200:
                        raise self._download_error(f"image {n + 1} at {shown} answered HTTP {resp.status}",
                                                   resp.status)
                    if resp.content_length is not None and resp.content_length > self.max_download:
                        raise self._download_error(f"image {n + 1} at {shown} is {resp.content_length} bytes, "
                                                   f"over the {self.max_download}-byte limit", 200)
                    try:
                        return await _read_capped(resp, self.max_download)
                    except _TooBig:
                        raise self._download_error(f"image {n + 1} at {shown} is over the "
                                                   f"{self.max_download}-byte limit", 200) from None
            raise self._download_error(f"image {n + 1} redirects more than {MAX_REDIRECTS} times")
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = transport_error(exc, backend=self.display_url, what=f"GET {shown or 'image'}",
                                    limit=self.download_timeout, job=False)
            if isinstance(error, WebUIConnectionError):
                error.reached = True  # the job ran already: it must not run again elsewhere
            if isinstance(error, WebUITimeoutError) and isinstance(exc, aiohttp.SocketTimeoutError):
                error.message = T("failure.timeout_answer", seconds=f"{self.read_timeout:g}")
                error.detail = f"{self.display_url}: GET {shown} sent nothing for {self.read_timeout:g} s"
            raise error from None

    # ---------------------------------------------------------------- what the server doesn't have

    async def extra_single_image(self, image: bytes, **params: Any) -> Any:
        raise WebUIResponseError(T("failure.unsupported", options=[Opt("upscale")]), backend=self.display_url,
                                 detail=f"{self.display_url} can't upscale (no extras endpoint)")

    async def progress(self, *, skip_current_image: bool = True) -> Progress:
        """Always idle: the server has no progress endpoint."""
        return Progress(progress=0.0, eta_relative=0.0, state={"job_count": 0}, current_image=None, textinfo=None)

    async def interrupt(self) -> None:
        """Nothing to call: the server can't stop a job."""

    async def sd_models(self) -> list[dict[str, Any]]:
        return []

    async def samplers(self) -> list[dict[str, Any]]:
        return []

    async def schedulers(self) -> list[dict[str, Any]]:
        return []

    async def upscalers(self) -> list[dict[str, Any]]:
        return []

    async def prompt_styles(self) -> list[dict[str, Any]]:
        return []

    async def loras(self) -> list[dict[str, Any]]:
        return []

    async def options(self) -> dict[str, Any]:
        return {}

    async def scripts(self) -> dict[str, list[str]]:
        return {}  # no extensions: fix_faces is refused for it (`missing`)

    async def version_info(self) -> dict[str, Any]:
        """Check that the server answers and has /txt2img (a GET: a POST would be a generation; 405
        Method Not Allowed means the route is there). Raises a WebUIError when it can't be used."""
        url = self._base.join(URL("txt2img"))
        try:
            async with self._get_session().get(url, headers=self._headers(url, "*/*"), allow_redirects=False,
                                               timeout=self._catalogue_t) as resp:
                status = resp.status
                raw = await _read_capped(resp, 64 * 1024)
        except _TooBig:
            status, raw = 200, b""
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_error(exc, backend=self.display_url, what="GET /txt2img", limit=self.catalogue_timeout,
                                  job=False) from None
        if status == 404:
            raise WebUIResponseError(T("failure.not_form"), backend=self.display_url, status=404,
                                     detail=f"{self.display_url} has no /txt2img endpoint: is it a Stable "
                                            "Diffusion API server?")
        if not (200 <= status < 300 or status == 405):
            raise self._http_error(status, raw, "txt2img")
        return {
            "backend": self.display_url, "kind": self.kind, "flavour": "form", "version": None, "api": True,
            "schedulers": False, "sd_modules": False, "models": 0,
            "detail": f"Stable Diffusion API server (form-encoded /txt2img and /img2img; up to "
                      f"{LIMITS['outputs']} images of at most {LIMITS['side']}x{LIMITS['side']}; no negative "
                      "prompt, model, sampler, scheduler, styles, LoRAs, hires fix, upscaling or progress)",
        }


class _TooBig(Exception):
    pass


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, counted while it arrives; _TooBig past `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise _TooBig
        chunks.append(chunk)
    return b"".join(chunks)


async def _base64_of(image: Any) -> str:
    """init_image: bare base64 (a data URI loses its prefix; bytes are encoded, in a thread)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return await asyncio.to_thread(lambda: base64.b64encode(bytes(image)).decode("ascii"))
    text = str(image)
    if text.startswith("data:"):
        text = text.partition(",")[2]
    return text


async def _encode_form(fields: dict[str, str]) -> bytes:
    """application/x-www-form-urlencoded, UTF-8; a big body (an init image) is encoded in a thread."""
    def encode() -> bytes:
        return urllib.parse.urlencode(fields, encoding="utf-8").encode("ascii")

    if sum(len(v) for v in fields.values()) > 65536:
        return await asyncio.to_thread(encode)
    return encode()


def _png_with(data: bytes, kind: str, infotext: str) -> bytes:
    """The image as a PNG whose `parameters` chunk is `infotext` (worker thread)."""
    if kind == "png":
        marked = png.ensure_parameters(data, infotext)
        if marked is not data:
            return marked
        # the server wrote a parameters chunk of its own: ours describes the job, so it replaces it
        return png.add_text_chunk(png.strip_metadata(data), "parameters", infotext)
    from PIL import Image, ImageOps  # only a JPEG or WebP answer needs Pillow

    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened) or opened
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
    return png.add_text_chunk(buf.getvalue(), "parameters", infotext)
