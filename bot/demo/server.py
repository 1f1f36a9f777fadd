"""`DemoWebUI`: the aiohttp application, its middleware and lifecycle, and `serve` for the command line."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .data import API, EXTENSIONS, DemoConfig, Dialect
from .form import DemoFormServer
from .gate import RequestGate
from .jobs import JobQueue
from .responses import ApiError, DemoResponse, ErrorBodies, json_response
from .routes import CatalogueRoutes, Handler, JobRoutes
from .settings import WebUISettings
from .site import DemoSite
from .state import ProgressState

log = logging.getLogger(__name__)

_DEMO_KEY: web.AppKey[DemoWebUI] = web.AppKey("sdcord_demo_webui", object)  # type: ignore[arg-type]


class DemoWebUI(DemoSite):
    """One demo WebUI instance. `app` can be mounted anywhere; `start()` serves it on a port."""

    def __init__(self, config: DemoConfig | None = None):
        self.config = config or DemoConfig()
        self.dialect: Dialect = self.config.dialect
        self.state = ProgressState()
        self.received: list[tuple[str, dict]] = []
        """(route, JSON body) of every generation/extras/interrogate request, route like "txt2img" or
        "interrogate", oldest first."""
        self.responses: list[DemoResponse] = []
        """Every successful generation/extras/interrogate answer, oldest first (interrogate: no images,
        `info` {"caption": ...})."""
        self.errors = ErrorBodies(self.dialect)
        self.settings = WebUISettings(self.config)
        self.queue = JobQueue(self.state)
        self.gate = RequestGate(self.config.auth, self.errors,
                                lambda route, body: self._remember(self.received, (route, body)))
        self.catalogue_routes = CatalogueRoutes(self.config, self.settings, self.gate, self.state, lambda: self.port)
        self.job_routes = JobRoutes(self.config, self.settings, self.gate, self.queue,
                                    lambda response: self._remember(self.responses, response))
        DemoSite.__init__(self)
        self.app = self._build_app()

    # ---------------------------------------------------------------- lifecycle

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"demo WebUI ({self.dialect} dialect)"

    async def before_stop(self) -> None:
        await self.queue.cancel_all()

    # ---------------------------------------------------------------- test hooks

    @property
    def in_flight(self) -> int:
        """Jobs running right now (0 or 1)."""
        return self.queue.in_flight

    @property
    def max_in_flight(self) -> int:
        return self.queue.max_in_flight

    @property
    def max_asked_at_once(self) -> int:
        """The most generation requests it had at the same time (1: nobody sent a second before the first ended)."""
        return self.queue.max_asked

    @property
    def model_switches(self) -> int:
        """Jobs that ran on another checkpoint than the loaded one (each cost `switch_delay`, twice)."""
        return self.job_routes.generator.model_switches

    @property
    def jobs_served(self) -> int:
        """Jobs that finished without an error."""
        return self.queue.jobs_served

    @property
    def checkpoint_titles(self) -> list[str]:
        return [c.title for c in self.settings.checkpoints]

    def inject_error(self, route: str, status: int, body: Any = None, *, times: int = 1) -> None:
        """Make the next `times` requests to `route` ("txt2img" or "/sdapi/v1/txt2img") answer `status`.

        With body None: a 500 is a CUDA out-of-memory error and anything else an HTTPException, both in
        the configured dialect. A dict/list/str body is sent as JSON; bytes are sent raw (text/plain).
        """
        self.gate.inject(route, status, body, times)

    def http_exception(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> ApiError:
        return self.errors.http_exception(status, detail, headers)

    def exception(self, error: str, message: str, status: int = 500) -> ApiError:
        return self.errors.exception(error, message, status)

    def _remember(self, history: list, item: Any) -> None:
        history.append(item)
        limit = max(1, self.config.history)
        if len(history) > limit:
            del history[: len(history) - limit]

    # ---------------------------------------------------------------- app

    def _routes(self) -> tuple[dict[str, Handler], dict[str, Handler]]:
        """(POST routes, GET routes) of this dialect, by name under /sdapi/v1/."""
        cat, jobs = self.catalogue_routes, self.job_routes
        post: dict[str, Handler] = {
            "txt2img": jobs.txt2img, "img2img": jobs.img2img, "extra-single-image": jobs.extra_single_image,
            "png-info": jobs.png_info, "interrogate": jobs.interrogate, "interrupt": cat.interrupt, "skip": cat.skip,
            "options": cat.set_options,
            "refresh-checkpoints": cat.null, "refresh-vae": cat.null, "refresh-loras": cat.null_noauth,
            "refresh-embeddings": cat.null,
        }
        get: dict[str, Handler] = {
            "progress": jobs.progress, "sd-models": cat.sd_models, "samplers": cat.samplers,
            "upscalers": cat.upscalers, "latent-upscale-modes": cat.latent_modes,
            "prompt-styles": cat.prompt_styles, "loras": cat.loras, "options": cat.get_options,
            "embeddings": cat.embeddings, "scripts": cat.scripts, "memory": cat.memory, "cmd-flags": cat.cmd_flags,
        }
        if self.dialect != "sdnext":
            get["schedulers"] = cat.schedulers
        get["sd-modules" if self.dialect == "forge" else "sd-vae"] = cat.sd_vae
        if self.dialect == "sdnext":
            get["version"] = cat.sdnext_version
        return post, get

    def _extension_routes(self) -> dict[str, Handler]:
        """GET routes the installed extensions add outside /sdapi (full paths)."""
        cat = self.catalogue_routes
        routes: dict[str, Handler] = {}
        if "adetailer" in self.config.extensions:
            routes["/adetailer/v1/version"] = cat.adetailer_version
            routes["/adetailer/v1/ad_model"] = cat.adetailer_models
        return routes

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app[_DEMO_KEY] = self
        app.on_shutdown.append(self._cancel_jobs)
        post, get = self._routes()
        for name, handler in post.items():
            app.router.add_post(API + name, handler)
        for name, handler in get.items():
            app.router.add_get(API + name, handler)  # starlette also answers HEAD on GET routes
        for path, handler in self._extension_routes().items():
            app.router.add_get(path, handler)
        return app

    async def _cancel_jobs(self, _app: web.Application) -> None:
        await self.queue.cancel_all()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:  # routing: unknown path / wrong method
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            reason = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status, exc.reason)
            response = json_response({"detail": reason}, exc.status, headers)
        if self.dialect != "forge":  # Forge disabled A1111's log_and_time middleware
            response.headers["X-Process-Time"] = str(round(time.perf_counter() - started, 4))
        if isinstance(response, web.Response) and isinstance(response.body, (bytes, bytearray)):
            body = bytes(response.body)
            if len(body) >= 1000 and "gzip" in request.headers.get("Accept-Encoding", "").lower():
                if len(body) > 65536:
                    compressed = await asyncio.to_thread(gzip.compress, body, 9)
                else:
                    compressed = gzip.compress(body, 9)
                response.body = compressed
                response.headers["Content-Encoding"] = "gzip"
                response.headers["Vary"] = "Accept-Encoding"
        return response


def create_app(config: DemoConfig) -> web.Application:
    """An aiohttp application serving a fresh demo WebUI (its DemoWebUI is `app[...]`, see `demo_of`)."""
    return DemoWebUI(config).app


def demo_of(app: web.Application) -> DemoWebUI:
    """The DemoWebUI behind an app made by `create_app`."""
    return app[_DEMO_KEY]


async def serve(host: str, port: int, config: DemoConfig) -> None:
    """Run a demo WebUI (or, with `config.kind == "form"`, a demo form API server) on host:port until
    SIGTERM or SIGINT (or cancellation), then stop it cleanly."""
    demo: DemoWebUI | DemoFormServer = DemoFormServer(config) if config.kind == "form" else DemoWebUI(config)
    url = await demo.start(host, port)
    if isinstance(demo, DemoFormServer):
        log.info("demo form API server ready at %s (WEBUI_URL=form+%s)", url, url)
    else:
        log.info("demo WebUI ready at %s (API at %s/sdapi/v1/)", url, url)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stopping.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        await stopping.wait()
        log.info("demo WebUI stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await demo.stop()


def parser() -> argparse.ArgumentParser:
    """`python -m bot.demo`'s options (`sdcord demo-webui` has the same demo ones)."""
    p = argparse.ArgumentParser(description="sdcord demo Stable Diffusion WebUI (no GPU)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--step-delay", type=float, default=0.05)
    p.add_argument("--api-auth", default=None, help="user:pass")
    p.add_argument("--dialect", choices=["a1111", "forge", "sdnext"], default="a1111")
    p.add_argument("--kind", choices=["webui", "form"], default="webui",
                   help="webui: the A1111 API; form: a form-encoded API server (WEBUI_URL=form+http://...)")
    p.add_argument("--extension", action="append", choices=EXTENSIONS, default=[], metavar="NAME",
                   help=f"install a demo extension (repeatable): {', '.join(EXTENSIONS)}")
    return p


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    auth = tuple(args.api_auth.split(":", 1)) if args.api_auth else None
    return DemoConfig(step_delay=args.step_delay, auth=auth, dialect=args.dialect,  # type: ignore[arg-type]
                      kind=args.kind, extensions=tuple(args.extension))


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual use
    """`python -m bot.demo`: the demo WebUI alone, with a few options."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config = config_from_args(args)
    try:
        asyncio.run(serve(args.host, args.port, config))
    except KeyboardInterrupt:
        pass
