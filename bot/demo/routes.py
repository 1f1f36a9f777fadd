"""The /sdapi/v1 route handlers: the catalogue and settings routes, and the job routes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .adetailer import MODELS as ADETAILER_MODELS
from .adetailer import VERSION as ADETAILER_VERSION
from .data import (
    EMBEDDINGS,
    EXTENSION_SCRIPTS,
    IMG2IMG_SCRIPTS,
    LATENT_UPSCALE_MODES,
    SAMPLERS,
    SCHEDULERS,
    TRUE,
    TXT2IMG_SCRIPTS,
    UPSCALERS,
    VAES,
    DemoConfig,
)
from .extras import Postprocessor, png_info
from .gate import MISSING, RequestGate
from .generation import Generator, build_info, build_infotext, render_generation_body
from .images import decode_image, encode_png, grid
from .interrogate import clip_caption, deepbooru_tags
from .jobs import JobQueue
from .planning import Planner
from .responses import DemoResponse, json_response
from .sdnext import SAMPLERS as SDNEXT_SAMPLERS
from .sdnext import build_info as sdnext_build_info
from .sdnext import build_infotext as sdnext_build_infotext
from .sdnext import fields as sdnext_fields
from .sdnext import upscalers as sdnext_upscalers
from .sdnext import version as sdnext_infotext_version
from .settings import WebUISettings
from .state import ProgressState
from .validation import (
    EXTRAS_FIELDS,
    IMG2IMG_FIELDS,
    INTERROGATE_FIELDS,
    PNGINFO_FIELDS,
    TXT2IMG_FIELDS,
    not_a_dict_errors,
    validate_query_bool,
)

Handler = Callable[[web.Request], Any]


class CatalogueRoutes:
    """Lists (models, samplers, ...), options, refreshes, interrupt and skip."""

    def __init__(self, config: DemoConfig, settings: WebUISettings, gate: RequestGate, state: ProgressState,
                 port: Callable[[], int | None]):
        self.config = config
        self.dialect = config.dialect
        self.settings = settings
        self.gate = gate
        self.errors = gate.errors
        self.state = state
        self._port = port

    async def _list(self, request: web.Request, value: Any, *, auth: bool = True) -> web.Response:
        self.gate.guard(request, auth=auth)
        return json_response(value)

    async def sd_models(self, request: web.Request) -> web.Response:
        return await self._list(request, [c.entry for c in self.settings.checkpoints])

    async def samplers(self, request: web.Request) -> web.Response:
        if self.dialect == "sdnext":
            return await self._list(request, SDNEXT_SAMPLERS)
        if self.dialect == "forge":  # dict[str, Any]: real booleans
            return await self._list(request, [{**s, "options": {k: (True if v == TRUE else v)
                                                                for k, v in s["options"].items()}}
                                              for s in SAMPLERS])
        return await self._list(request, SAMPLERS)

    async def schedulers(self, request: web.Request) -> web.Response:
        return await self._list(request, SCHEDULERS)

    async def upscalers(self, request: web.Request) -> web.Response:
        return await self._list(request, sdnext_upscalers() if self.dialect == "sdnext" else UPSCALERS)

    async def latent_modes(self, request: web.Request) -> web.Response:
        return await self._list(request, [{"name": n} for n in LATENT_UPSCALE_MODES])

    async def prompt_styles(self, request: web.Request) -> web.Response:
        return await self._list(request, [{"name": s["name"], "prompt": s.get("prompt", ""),
                                           "negative_prompt": s.get("negative_prompt", "")}
                                          for s in self.config.styles])

    async def loras(self, request: web.Request) -> web.Response:
        # registered by the Lora extension with a bare @app.get: no --api-auth
        return await self._list(request, self.config.loras, auth=False)

    async def sd_vae(self, request: web.Request) -> web.Response:
        return await self._list(request, VAES)

    async def embeddings(self, request: web.Request) -> web.Response:
        return await self._list(request, EMBEDDINGS)

    async def scripts(self, request: web.Request) -> web.Response:
        extra = [EXTENSION_SCRIPTS[name] for name in self.config.extensions]  # extensions' scripts load last
        return await self._list(request, {"txt2img": [*TXT2IMG_SCRIPTS, *extra],
                                          "img2img": [*IMG2IMG_SCRIPTS, *extra]})

    async def adetailer_version(self, request: web.Request) -> web.Response:
        # ADetailer's own routes are bare `@app.get`s: no --api-auth
        return await self._list(request, {"version": ADETAILER_VERSION}, auth=False)

    async def adetailer_models(self, request: web.Request) -> web.Response:
        return await self._list(request, {"ad_model": ADETAILER_MODELS}, auth=False)

    async def memory(self, request: web.Request) -> web.Response:
        return await self._list(request, {"ram": {"free": 24.0e9, "used": 8.0e9, "total": 32.0e9},
                                          "cuda": {"error": "unavailable"}})

    async def cmd_flags(self, request: web.Request) -> web.Response:
        self.gate.guard(request)
        return json_response({"api": True, "nowebui": False, "listen": False, "port": self._port(),
                              "api_auth": None if self.config.auth is None else "***", "skip_torch_cuda_test": True})

    async def sdnext_version(self, request: web.Request) -> web.Response:
        return await self._list(request, {"app": "sd.next", "updated": "2025-03-02", "hash": "431bcc36",
                                          "url": "https://github.com/vladmandic/sdnext/tree/master"})

    async def get_options(self, request: web.Request) -> web.Response:
        return await self._list(request, self.settings.options)

    async def set_options(self, request: web.Request) -> web.Response:
        body = await self.gate.read_json(request)
        self.gate.check_auth(request)
        if body is MISSING:
            raise self.gate.missing_body()
        if not isinstance(body, dict):
            raise self.errors.validation(not_a_dict_errors())
        self.gate.take_injection(request.path)
        self.settings.update(body, self.errors)
        if self.dialect == "sdnext":
            return json_response({"updated": [{k: True} for k in body]})
        return json_response(None)

    async def null(self, request: web.Request) -> web.Response:
        return await self._list(request, None)

    async def null_noauth(self, request: web.Request) -> web.Response:
        return await self._list(request, None, auth=False)

    async def interrupt(self, request: web.Request) -> web.Response:
        self.gate.guard(request)
        self.state.interrupted = True
        return json_response({})

    async def skip(self, request: web.Request) -> web.Response:
        self.gate.guard(request)
        self.state.skipped = True
        return json_response(None)


class JobRoutes:
    """txt2img, img2img, extras, png-info and /progress."""

    def __init__(self, config: DemoConfig, settings: WebUISettings, gate: RequestGate, queue: JobQueue,
                 record: Callable[[DemoResponse], None]):
        self.config = config
        self.settings = settings
        self.gate = gate
        self.errors = gate.errors
        self.queue = queue
        self.state = queue.state
        self.planner = Planner(config, settings, self.errors)
        self.generator = Generator(config, self.state, self.errors)
        self.postprocessor = Postprocessor(config, self.state, self.errors)
        self._record = record

    async def txt2img(self, request: web.Request) -> web.Response:
        return await self._generation(request, "txt2img")

    async def img2img(self, request: web.Request) -> web.Response:
        return await self._generation(request, "img2img")

    async def _generation(self, request: web.Request, kind: str) -> web.Response:
        dialect_sdnext = self.config.dialect == "sdnext"
        if dialect_sdnext:
            fields = sdnext_fields(kind)
        else:
            fields = TXT2IMG_FIELDS if kind == "txt2img" else IMG2IMG_FIELDS
        req = await self.gate.body(request, fields, record=True)
        plan = self.planner.plan(req, kind)
        images = await self.queue.submit(f"scripts_{kind}", lambda: self.generator.generate(plan))
        job_timestamp = self.state.job_timestamp
        version = self.config.effective_version
        if dialect_sdnext:
            version = sdnext_infotext_version(self.config.version)
            infotexts = [sdnext_build_infotext(plan, k, version) for k in range(len(images))]
        else:
            infotexts = [build_infotext(plan, k, version) for k in range(len(images))]
        index_of_first_image = 0
        if req["save_images"] and len(images) >= 2 and plan.opts.get("return_grid", True):
            sheet = await asyncio.to_thread(grid, images)
            images = [sheet, *images]
            infotexts = [infotexts[0], *infotexts]
            index_of_first_image = 1
        if req["send_images"]:
            pngs = await asyncio.gather(*(asyncio.to_thread(encode_png, im, {"parameters": text})
                                          for im, text in zip(images, infotexts, strict=True)))
            encoded = await asyncio.to_thread(lambda: [base64.b64encode(png) for png in pngs])
        else:
            pngs, encoded = [], []
        if dialect_sdnext:
            info = sdnext_build_info(plan, infotexts, index_of_first_image, job_timestamp)
        else:
            info = build_info(plan, infotexts, index_of_first_image, job_timestamp, version)
        echo = dict(req)
        if kind == "img2img" and not req["include_init_images"]:
            echo["init_images"] = None
            echo["mask"] = None
        body = await asyncio.to_thread(render_generation_body, encoded, echo, info)
        self._record(DemoResponse(kind, list(pngs), infotexts, info, echo))
        return web.Response(body=body, content_type="application/json")

    async def extra_single_image(self, request: web.Request) -> web.Response:
        req = await self.gate.body(request, EXTRAS_FIELDS, record=True)
        html_info, image_b64 = await self.queue.submit("extras", lambda: self.postprocessor.run(req))
        self._record(DemoResponse("extra-single-image", [base64.b64decode(image_b64)], [],
                                  {"html_info": html_info}, req))
        return json_response({"html_info": html_info, "image": image_b64})

    async def interrogate(self, request: web.Request) -> web.Response:
        """A1111 `interrogateapi`: decode (500 "Invalid encoded image"), then inside the queue lock the model
        ("clip" runs as shared-state job "interrogate"; DeepDanbooru leaves the state alone; anything else is
        404 "Model not found")."""
        req = await self.gate.body(request, INTERROGATE_FIELDS, record=True)
        try:
            image = await asyncio.to_thread(lambda: decode_image(req["image"]).convert("RGB"))
        except ValueError:
            raise self.errors.http_exception(500, "Invalid encoded image") from None
        model = req["model"]
        caption_of = {"clip": clip_caption}
        if self.config.deepdanbooru:
            caption_of["deepdanbooru"] = deepbooru_tags

        async def work() -> str:
            if model not in caption_of:
                raise self.errors.http_exception(404, "Model not found")
            await asyncio.sleep(self.config.interrogate_seconds)
            return await asyncio.to_thread(caption_of[model], image, dict(self.settings.options))

        caption = await self.queue.submit("interrogate" if model == "clip" else None, work)
        self._record(DemoResponse("interrogate", [], [], {"caption": caption}, req))
        return json_response({"caption": caption})

    async def png_info(self, request: web.Request) -> web.Response:
        req = await self.gate.body(request, PNGINFO_FIELDS)
        data = req["image"].strip()
        if not data:
            return json_response({"info": "", "items": {}, "parameters": {}})
        try:
            image = await asyncio.to_thread(decode_image, data)
        except ValueError:
            raise self.errors.http_exception(500, "Invalid encoded image") from None
        return json_response(png_info(image))

    async def progress(self, request: web.Request) -> web.Response:
        self.gate.check_auth(request)
        raw = request.query.get("skip_current_image", "false")
        skip, errors = validate_query_bool(raw, "skip_current_image", self.errors.dialect)
        if errors:
            raise self.errors.validation(errors)
        self.gate.take_injection(request.path)
        st = self.state
        if st.job_count == 0:
            return json_response({"progress": 0.0, "eta_relative": 0.0, "state": st.dict(), "current_image": None,
                                  "textinfo": st.textinfo})
        progress, eta_relative = st.progress()
        if not skip:
            await st.refresh_preview(*self.settings.preview_cadence(self.config.preview_every))
        current = st.current_image if not skip else None
        return json_response({"progress": progress, "eta_relative": eta_relative, "state": st.dict(),
                              "current_image": current, "textinfo": st.textinfo})
