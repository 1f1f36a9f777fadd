"""`DemoFormServer`: a demo "Stable Diffusion API server", the form-encoded kind (`WEBUI_URL=form+http://…`).

    POST /txt2img   prompt, seed, num_outputs (1-4), width, height (each in (0, 1024]),
                    num_inference_steps (0, 150], guidance_scale (0, 20]
    POST /img2img   the same, plus strength (0, 1) and init_image (base64)
    -> {"images": [{"image_url": ".../images/<id>.png", "mime_type": "image/png", "seed": 1234}],
        "status": "success"}
    GET /images/<id>.<ext>   the image (PNG without any text chunk, or JPEG/WebP on request)

Bodies must be `application/x-www-form-urlencoded` (or multipart); bad or missing fields answer 422 with
`{"status": "error", "message": …, "detail": [{"loc": ["body", field], "msg": …, "type": …}]}`. One job
runs at a time. Images come from the demo WebUI's renderer (`images.render_image`), so the same prompt
and seed look the same.

Test hooks: `received` (every form as the server got it), `content_types`, `inject_error` (an HTTP error
or a `{"status": "error"}` answer), `fail_downloads` (the next image downloads answer 404, are huge, are
not images, are slow, redirect, or redirect to another scheme), `seed_rule = "wide"` (seeds above 2**32),
`image_format` ("png", "jpeg", "webp") and `relative_urls`. Never imports discord.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import logging
import random
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from PIL import Image

from .data import DemoConfig
from .images import fit, render_image
from .site import DemoSite

__all__ = ["DOWNLOAD_FAULTS", "FORM_LIMITS", "DemoFormServer"]

log = logging.getLogger(__name__)

FORM_LIMITS = {"side": 1024, "outputs": 4, "steps": 150, "cfg_scale": 20.0}
DOWNLOAD_FAULTS = ("404", "huge", "huge_chunked", "not_image", "truncated", "slow", "redirect", "redirect_scheme")
_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _Answer(Exception):
    """An error answer raised in a handler, rendered by the middleware."""

    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status, self.body = status, body


def _json(body: Any, status: int = 200) -> web.Response:
    if isinstance(body, (bytes, bytearray)):  # an injected raw body
        return web.Response(body=bytes(body), status=status, content_type="text/plain")
    return web.json_response(body, status=status)


def _invalid(problems: list[tuple[str, str, str]]) -> _Answer:
    """422 naming every bad field: (field, message, type)."""
    return _Answer(422, {
        "status": "error",
        "message": "; ".join(f"{name}: {msg}" for name, msg, _ in problems),
        "detail": [{"loc": ["body", name], "msg": msg, "type": kind} for name, msg, kind in problems],
    })


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: str
    size: int
    delay: float


@dataclass(frozen=True, slots=True)
class _Job:
    kind: str
    prompt: str
    seeds: list[int]
    width: int
    height: int
    steps: int
    guidance: float
    strength: float | None
    init: Image.Image | None


class DemoFormServer(DemoSite):
    """One demo form API server. `start()` serves it on a port; `url` is its base URL."""

    label = "demo form API server"

    def __init__(self, config: DemoConfig | None = None):
        self.config = config or DemoConfig(kind="form")
        self.received: list[tuple[str, dict[str, str]]] = []
        """(route, form fields) of every /txt2img and /img2img request, oldest first."""
        self.content_types: list[str] = []
        """The Content-Type header of each of those requests."""
        self.responses: list[dict[str, Any]] = []
        """Every successful generation answer (its JSON), oldest first."""
        self.downloads: list[str] = []
        """The path of every image request, oldest first."""
        self.seed_rule = "sequential"
        """"sequential": image k of seed s has seed s + k; "wide": 2**40 + (s << 8) + k (above 2**32)."""
        self.image_format = "png"
        self.relative_urls = False
        """Answer `/images/<id>.png` instead of an absolute URL."""
        self.jobs_served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._faults: deque[_Fault] = deque()
        self._injections: dict[str, deque[tuple[int, Any]]] = {}
        self._lock = asyncio.Lock()
        self._rng = random.Random(self.config.seed)
        DemoSite.__init__(self)
        self.app = self._build_app()

    # ---------------------------------------------------------------- lifecycle

    @property
    def backend_url(self) -> str:
        """The WEBUI_URL entry for this server: form+http://host:port."""
        return f"form+{self.url}"

    # ---------------------------------------------------------------- test hooks

    def inject_error(self, route: str, status: int, body: Any = None, *, times: int = 1) -> None:
        """The next `times` requests to `route` ("txt2img" or "img2img") answer `status` with `body` (JSON,
        or bytes sent as text/plain; None: `{"status": "error", "message": "Internal Server Error"}`). A 200 with
        `{"status": "error", ...}` is a failure the server reports in the body."""
        queue = self._injections.setdefault(route.strip("/"), deque())
        for _ in range(times):
            queue.append((status, body))

    def fail_downloads(self, kind: str, *, times: int = 1, size: int = 32 * 1024 * 1024, delay: float = 5.0) -> None:
        """The next `times` image requests fail as `kind` (one of DOWNLOAD_FAULTS): "404"; "huge" (`size`
        bytes with a Content-Length) or "huge_chunked" (without one); "not_image" (an HTML page);
        "truncated" (half the image); "slow" (headers and 1 KiB, then `delay` seconds of silence);
        "redirect" (302 to the same URL: followed, then served) or "redirect_scheme" (302 to https:)."""
        if kind not in DOWNLOAD_FAULTS:
            raise ValueError(f"unknown download fault {kind!r}; one of {', '.join(DOWNLOAD_FAULTS)}")
        for _ in range(times):
            self._faults.append(_Fault(kind, size, delay))

    # ---------------------------------------------------------------- app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app.router.add_post("/txt2img", self._txt2img)
        app.router.add_post("/img2img", self._img2img)
        app.router.add_get("/images/{name}", self._image)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Answer as exc:
            return _json(exc.body, exc.status)
        except web.HTTPException as exc:  # routing: unknown path / wrong method
            if exc.status in (301, 302, 303, 307, 308):
                raise
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            reason = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status, exc.reason)
            return web.json_response({"detail": reason}, status=exc.status, headers=headers)

    def _check_auth(self, request: web.Request) -> None:
        creds = self.config.auth
        if creds is None:
            return
        scheme, _, param = request.headers.get("Authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(param, validate=True).decode() if scheme.lower() == "basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if not (sep and secrets.compare_digest(user.encode(), creds[0].encode())
                and secrets.compare_digest(password.encode(), creds[1].encode())):
            raise _Answer(401, {"status": "error", "message": "Unauthorized", "detail": "Unauthorized"})

    # ---------------------------------------------------------------- generation

    async def _txt2img(self, request: web.Request) -> web.Response:
        return await self._generation(request, "txt2img")

    async def _img2img(self, request: web.Request) -> web.Response:
        return await self._generation(request, "img2img")

    async def _generation(self, request: web.Request, kind: str) -> web.Response:
        ctype = request.headers.get("Content-Type", "")
        form: dict[str, str] = {}
        if ctype.split(";", 1)[0].strip().lower() in _FORM_TYPES:
            posted = await request.post()
            form = {k: v for k, v in posted.items() if isinstance(v, str)}
        else:
            await request.read()
        self._remember(self.received, (kind, form))
        self._remember(self.content_types, ctype)
        self._check_auth(request)
        job = await self._parse(kind, form)
        queue = self._injections.get(kind)
        if queue:
            status, body = queue.popleft()
            raise _Answer(status, body if body is not None else {"status": "error",
                                                                 "message": "Internal Server Error"})
        images = await self._run(job)
        base = "" if self.relative_urls else str(request.url.origin())
        fmt = self.image_format if self.image_format in _FORMATS else "png"
        items = []
        for data, seed in zip(images, job.seeds, strict=True):
            image_id = secrets.token_hex(8)
            self._images[image_id] = (data, _FORMATS[fmt][1])
            while len(self._images) > max(8, self.config.history * 4):
                self._images.popitem(last=False)
            ext = "jpg" if fmt == "jpeg" else fmt
            items.append({"image_url": f"{base}/images/{image_id}.{ext}", "mime_type": _FORMATS[fmt][1],
                          "seed": seed})
        answer = {"images": items, "status": "success"}
        self._remember(self.responses, answer)
        return _json(answer)

    async def _parse(self, kind: str, form: dict[str, str]) -> _Job:
        problems: list[tuple[str, str, str]] = []

        def number(name: str, conv: Callable[[str], Any], default: Any, ok: Callable[[Any], bool],
                   rule: str) -> Any:
            raw = form.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = conv(raw.strip())
            except ValueError:
                problems.append((name, f"value is not a valid {'integer' if conv is int else 'number'}",
                                 "type_error"))
                return default
            if not ok(value):
                problems.append((name, f"must be {rule}", "value_error"))
                return default
            return value

        side, outputs_max = FORM_LIMITS["side"], FORM_LIMITS["outputs"]
        if "prompt" not in form:
            problems.append(("prompt", "field required", "value_error.missing"))
        seed = number("seed", int, -1, lambda v: True, "")
        outputs = number("num_outputs", int, 1, lambda v: 1 <= v <= outputs_max, f"from 1 to {outputs_max}")
        steps = number("num_inference_steps", int, 50, lambda v: 0 < v <= FORM_LIMITS["steps"],
                       f"in (0, {FORM_LIMITS['steps']}]")
        guidance = number("guidance_scale", float, 7.5, lambda v: 0 < v <= FORM_LIMITS["cfg_scale"],
                          f"in (0, {FORM_LIMITS['cfg_scale']:g}]")
        width = number("width", int, None, lambda v: 0 < v <= side, f"in (0, {side}]")
        height = number("height", int, None, lambda v: 0 < v <= side, f"in (0, {side}]")
        strength, init = None, None
        if kind == "img2img":
            strength = number("strength", float, 0.8, lambda v: 0 < v < 1, "in (0, 1)")
            raw = form.get("init_image")
            if not raw:
                problems.append(("init_image", "field required", "value_error.missing"))
            else:
                try:
                    init = await asyncio.to_thread(_decode, raw)
                except ValueError:
                    problems.append(("init_image", "not a base64-encoded image", "value_error"))
        if problems:
            raise _invalid(problems)
        if init is not None:  # unset sides: the input's, within the server's limit
            scale = min(1.0, side / max(init.size))
            width = width or max(8, int(init.width * scale))
            height = height or max(8, int(init.height * scale))
        return _Job(kind, form.get("prompt", ""), self._seeds(seed, outputs), width or 512, height or 512,
                    steps, guidance, strength, init)

    def _seeds(self, seed: int, count: int) -> list[int]:
        if seed < 0:
            base = self._rng.randrange(2**52)  # the server's own seeds are wide
            return [base + k for k in range(count)]
        if self.seed_rule == "wide":
            return [2**40 + (seed << 8) + k for k in range(count)]
        return [seed + k for k in range(count)]

    async def _run(self, job: _Job) -> list[bytes]:
        """One job at a time: "sampling" takes step_delay per step, then the images are drawn (in a thread)."""
        async with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                delay = self.config.step_delay * job.steps
                await asyncio.sleep(delay)
                fmt = _FORMATS.get(self.image_format, _FORMATS["png"])[0]
                images = await asyncio.to_thread(self._render, job, fmt)
                self.jobs_served += 1
                return images
            finally:
                self.in_flight -= 1

    def _render(self, job: _Job, fmt: str) -> list[bytes]:
        out = []
        for seed in job.seeds:
            key = hashlib.sha256("\x1f".join((job.prompt, str(seed), "form")).encode("utf-8")).digest()
            image = render_image(key, job.width, job.height, self.config.noise)
            if job.init is not None:
                image = Image.blend(fit(job.init, job.width, job.height, 0), image, job.strength or 0.8)
            buf = io.BytesIO()
            image.save(buf, format=fmt)  # no text chunk: this kind of server writes no infotext
            out.append(buf.getvalue())
        return out

    # ---------------------------------------------------------------- images

    async def _image(self, request: web.Request) -> web.StreamResponse:
        self._remember(self.downloads, request.path)
        self._check_auth(request)
        image_id = request.match_info["name"].rsplit(".", 1)[0]
        fault = self._faults.popleft() if self._faults else None
        stored = self._images.get(image_id)
        if fault is not None and fault.kind == "redirect":
            raise web.HTTPFound(f"{request.path}?hop=1")
        if fault is not None and fault.kind == "redirect_scheme":
            raise web.HTTPFound(str(request.url.with_scheme("https")))
        if stored is None or (fault is not None and fault.kind == "404"):
            raise _Answer(404, {"detail": "Not Found"})
        data, mime = stored
        if fault is None:
            return web.Response(body=data, content_type=mime)
        if fault.kind == "not_image":
            return web.Response(body=b"<html><body>Temporarily unavailable</body></html>", content_type="text/html")
        if fault.kind == "truncated":
            return web.Response(body=data[: len(data) // 2], content_type=mime)
        response = web.StreamResponse(headers={"Content-Type": mime})
        if fault.kind == "huge":
            response.content_length = fault.size
        elif fault.kind == "huge_chunked":
            response.enable_chunked_encoding()
        else:  # slow
            response.content_length = len(data)
        await response.prepare(request)
        try:
            if fault.kind == "slow":
                await response.write(data[:1024])
                await _quiet(request, fault.delay)
                await response.write(data[1024:])
            else:
                chunk = data[:8] + bytes(64 * 1024 - 8)
                sent = 0
                while sent < fault.size:
                    piece = chunk[: fault.size - sent]
                    await response.write(piece)
                    sent += len(piece)
                    chunk = bytes(64 * 1024)
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client gave up, as it should
        return response

    def _remember(self, history: list, item: Any) -> None:
        history.append(item)
        limit = max(1, self.config.history)
        if len(history) > limit:
            del history[: len(history) - limit]


async def _quiet(request: web.Request, seconds: float) -> None:
    """Send nothing for `seconds`, or until the client hangs up (so stopping the server doesn't wait)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError
        await asyncio.sleep(min(0.05, max(0.0, until - loop.time())))


def _decode(data: str) -> Image.Image:
    """An init_image: bare base64 or a data URI (raises ValueError)."""
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=False)))
        image.load()
    except Exception as exc:  # any decoding failure is "not an image"
        raise ValueError("not an image") from exc
    return image.convert("RGB")
