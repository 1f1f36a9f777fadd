"""An embedded demo Stable Diffusion WebUI: the A1111 v1.10.1 `/sdapi/v1` HTTP API without a GPU.

New users can try sdcord without a WebUI, and every test runs against it. It follows the contract in
the team's WebUI API reference (§12 "Fake server MUST reproduce"): compact JSON with the server's key
orders, `info` as a JSON *string*, bare base64 PNGs whose `parameters` text chunk equals
`info.infotexts[i]`, the full `parameters` echo, pydantic-v1 lenient coercion and 422 bodies, the
A1111 error middleware bodies (Forge and SD.Next dialects on request), Basic auth on every /sdapi
route except /loras, one job at a time in arrival order, `/progress` with live previews, interrupt
and skip, v1.10 sampler/scheduler resolution, hires fix, img2img with inpainting masks, /interrogate
(CLIP and DeepDanbooru captions) and, as an installable extension, ADetailer.

Images are procedural and deterministic; all image work runs in worker threads so this server can
run in-process next to the bot. Never imports discord.

Modules: `data` (catalogue, `DemoConfig`), `validation` (request fields, 422 bodies), `responses`
(JSON and dialect error bodies), `settings` (options, checkpoints), `state` (/progress state),
`images`, `planning` and `generation` (txt2img/img2img), `inpainting` (masks), `adetailer` (the
extension), `interrogate` (captions), `extras` (upscaling, png-info), `jobs` (the FIFO queue), `gate`
(auth, bodies, injected errors), `routes` and `server` (`DemoWebUI`).

`form` (`DemoFormServer`) is the other kind of image server sdcord speaks to: a form-encoded "Stable
Diffusion API server" (`/txt2img`, `/img2img` answering with image URLs), `DemoConfig(kind="form")`.
"""

from __future__ import annotations

from .data import EXTENSIONS, DemoConfig, Dialect
from .form import DemoFormServer
from .images import decode_image, encode_png, render_image
from .responses import DemoResponse
from .server import DemoWebUI, create_app, demo_of, main, serve
from .validation import validate_request

__all__ = [
    "EXTENSIONS",
    "DemoConfig",
    "DemoFormServer",
    "DemoResponse",
    "DemoWebUI",
    "Dialect",
    "create_app",
    "decode_image",
    "demo_of",
    "encode_png",
    "main",
    "render_image",
    "serve",
    "validate_request",
]
