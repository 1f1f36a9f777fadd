"""The generation engine: options -> payload -> WebUI -> upload-ready PNGs with their infotext.

Discord-free: the cog parses the interaction, calls this, and renders the reply.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import png
from .catalogue import Catalogue, CatalogueCache
from .config import Settings
from .infotext import parse_generation_parameters
from .params import options_from_infotext
from .policy import ServerPolicy, resolve_options
from .payload import BuiltPayload, DrawOptions, OptionError, build_request, options_from_payload
from .scheduler import Job, JobState, Scheduler
from .store import JobRecord, JobStore
from .webui import GenerationResult, WebUIClient, WebUIError

__all__ = ["DrawEngine", "Outcome", "OutputImage", "UpscaleRequest", "REQUEST_SIZE_LIMIT", "favour_event_loop_latency"]

log = logging.getLogger(__name__)

STORE_FILE = "sdcord.db"
DRAW_FIELDS = ("negative_prompt", "model", "sampler", "scheduler", "steps", "width", "height")
INPUTS_DIR = "inputs"  # img2img input images, named by their sha256
MAX_INPUT_PIXELS = 25_000_000  # user images bigger than this are refused before decoding

# How often (seconds) a thread holding the GIL must let another thread run. Python's default 5 ms
# means the event loop can wait 5 ms or more each time a worker thread decodes or encodes images;
# 1 ms keeps every stall short at a negligible cost in thread throughput (bench/overhead.py).
SWITCH_INTERVAL = 0.001

# Discord: "The maximum request size when sending a message is 25 MiB" (all files together).
REQUEST_SIZE_LIMIT = 25 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutputImage:
    filename: str
    data: bytes
    infotext: str | None
    seed: int | None
    note: str | None = None  # set when the image had to be re-encoded to fit the upload limit


@dataclass(frozen=True, slots=True)
class Outcome:
    images: list[OutputImage]
    prompt: str
    seeds: list[int]
    steps: int | None
    sampler: str | None
    scheduler: str | None
    model: str | None
    elapsed: float
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def favour_event_loop_latency() -> None:
    """Let the event loop thread take the GIL back quickly from image-processing threads."""
    sys.setswitchinterval(SWITCH_INTERVAL)


@dataclass(frozen=True, slots=True)
class UpscaleRequest:
    """Upscale one image with the WebUI's extras (`extra-single-image`); the result keeps its infotext."""

    image: bytes = field(repr=False)
    infotext: str | None
    scale: float = 2.0
    upscaler: str = "R-ESRGAN 4x+"
    source_job: str | None = None
    index: int = 0
    kind = "upscale"

    @property
    def title(self) -> str:
        return f"Upscale {self.scale:g}× of image {self.index + 1}"

    def record(self) -> dict[str, Any]:
        """What the job store keeps (not the image itself)."""
        return {"scale": self.scale, "upscaler": self.upscaler, "source_job": self.source_job, "index": self.index}


class _Counter:
    """The running image number of file names (`00042-SEED.png`), kept in the data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value: int | None = None

    def _load(self) -> int:
        try:
            return int(self.path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def take(self, n: int) -> int:
        """Reserve n numbers; returns the first. Sync: called from a worker thread."""
        if self.value is None:
            self.value = self._load()
        first = self.value + 1
        self.value += n
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(str(self.value))
        os.replace(tmp, self.path)
        return first


def parameters_or_none(data: bytes) -> str | None:
    """An image's WebUI parameters, or None (also for anything that isn't a readable image)."""
    try:
        return png.read_parameters(data)
    except png.ImageDataError:
        return None


def _params_of(infotext: str | None) -> dict[str, Any]:
    return parse_generation_parameters(infotext) if infotext else {}


class DrawEngine:
    """Owns the WebUI clients (one per backend), the catalogue cache and the fair scheduler; turns
    options into finished images."""

    def __init__(self, settings: Settings, clients: list[WebUIClient] | None = None) -> None:
        self.settings = settings
        self.clients = clients if clients is not None else [
            WebUIClient(b.url, auth=b.auth, generation_timeout=settings.generation_timeout, name=f"webui{i}")
            for i, b in enumerate(settings.backends)
        ]
        self.catalogue = CatalogueCache(self.clients)
        rate, per = settings.rate_limit
        self.scheduler = Scheduler(
            self.clients, self._run_job, rate=rate, per=per,
            max_queued_per_user=settings.max_queued_per_user, wait_limit=settings.backend_wait_limit,
        )
        self._counter = _Counter(settings.data_dir / "image-counter")
        self._counter_lock = asyncio.Lock()
        self.store: JobStore | None = None
        self._policies: dict[int, ServerPolicy] = {}
        self._prefs: dict[int, dict[str, Any]] = {}
        self._writes: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the job store, start the backend workers, warm the catalogue."""
        self.store = await JobStore.open(self.settings.data_dir / STORE_FILE)
        await self._close_interrupted_jobs()
        # Small tables, read on every command: keep them in memory so acknowledging never waits on disk.
        self._policies = {g: ServerPolicy.from_dict(d) for g, d in (await self.store.all_guild_settings()).items()}
        self._prefs = await self.store.all_user_prefs()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="job store writer")
        self.scheduler.listeners.append(self._record)
        self.scheduler.start()
        self.catalogue.refresh()

    async def close(self) -> None:
        """Stop the workers, finish pending store writes, close the store and the clients. Idempotent."""
        await self.scheduler.close()
        await self.catalogue.close()
        writer, self._writer = self._writer, None
        if writer is not None:
            self._writes.put_nowait(None)
            await asyncio.wait([writer], timeout=5)
        store, self.store = self.store, None
        if store is not None:
            await store.close()
        await asyncio.gather(*(c.close() for c in self.clients))

    # -- the job store -----------------------------------------------------------------------
    async def _close_interrupted_jobs(self) -> None:
        """Jobs left queued/running by a crash: mark them failed (they are not resumed yet)."""
        assert self.store is not None
        for record in await self.store.unfinished():
            await self.store.update(record.id, status="failed", finished_at=time.time(),
                                    error="The bot restarted before the job finished.")

    def _record(self, job: Job) -> None:
        """Scheduler listener: queue the job's new state for the store (written in order)."""
        now = time.time()
        if not job.seen:  # the first state change of a job is its submission
            job.seen = True
            request = job.payload
            if isinstance(request, UpscaleRequest):
                kind, stored = "upscale", request.record()
            else:
                kind, stored = request.kind, request.payload
                if request.init_image is not None:  # keep the input beside the store, by content hash
                    digest = hashlib.sha256(request.init_image).hexdigest()
                    stored = {**stored, "init_image": digest}
                    self._writes.put_nowait(("input", {"digest": digest, "data": request.init_image}))
            self._writes.put_nowait(("add", {
                "id": job.id, "kind": kind, "user_id": job.user_id, "payload": stored,
                "status": "queued", "created_at": now, "guild_id": job.guild_id, "channel_id": job.channel_id,
                "parent_id": job.parent_id,
            }))
            return
        changes: dict[str, Any] = {"status": job.state.value, "backend": job.backend}
        if job.state is JobState.RUNNING:
            changes["started_at"] = now
        elif job.is_final:
            changes["finished_at"] = now
            if isinstance(job.result, Outcome):
                changes["seeds"] = job.result.seeds
                changes["infotexts"] = [img.infotext or "" for img in job.result.images]
            if job.error is not None:
                changes["error"] = getattr(job.error, "message", None) or repr(job.error)
        self._writes.put_nowait((job.id, changes))

    def note_messages(self, job_id: str, **ids: int | None) -> None:
        """Remember the job's message and/or result message (for actions on them later)."""
        self._writes.put_nowait((job_id, {k: v for k, v in ids.items() if v is not None}))

    async def _write_loop(self) -> None:
        assert self.store is not None
        while True:
            item = await self._writes.get()
            try:
                if item is None:
                    return
                key, values = item
                if key == "add":
                    await self.store.add(JobRecord(**values))
                elif key == "input":
                    await asyncio.to_thread(self._save_input, values["digest"], values["data"])
                elif values:
                    await self.store.update(key, **values)
            except Exception:  # noqa: BLE001 - storage trouble must never break a job
                log.exception("Job store write failed (%s)", item[0] if item else "?")
            finally:
                self._writes.task_done()

    def _save_input(self, digest: str, data: bytes) -> None:
        path = self.settings.data_dir / INPUTS_DIR / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def _load_input(self, digest: str) -> bytes | None:
        path = self.settings.data_dir / INPUTS_DIR / digest
        return path.read_bytes() if len(digest) == 64 and path.exists() else None

    async def flush(self) -> None:
        """Wait until every queued store write is done."""
        await self._writes.join()

    async def _run_job(self, job: Job, client: WebUIClient) -> Outcome:
        if isinstance(job.payload, UpscaleRequest):
            return await self.upscale(job.payload, filesize_limit=job.filesize_limit, client=client)
        return await self.generate(job.payload, filesize_limit=job.filesize_limit, client=client)

    async def upscale(self, req: UpscaleRequest, *, filesize_limit: int, client: WebUIClient | None = None) -> Outcome:
        """Run extra-single-image; the result keeps the source's infotext (the WebUI keeps the
        `parameters` chunk and adds `postprocessing`; sdcord makes sure of the first)."""
        started = time.monotonic()
        result = await (client or self.clients[0]).extra_single_image(
            req.image, resize_mode=0, upscaling_resize=req.scale, upscaler_1=req.upscaler)
        params = await asyncio.to_thread(_params_of, req.infotext)
        seed = int(params["Seed"]) if str(params.get("Seed", "")).isdigit() else None
        images = await self._uploads([(result.image, req.infotext, seed)], filesize_limit)
        size = ""
        if images and png.image_format(images[0].data) == "png":
            w, h = png.png_dimensions(images[0].data)
            size = f" · {w}×{h}"
        return Outcome(images=images, prompt=f"Upscaled {req.scale:g}× with {req.upscaler}{size}",
                       seeds=[seed] if seed is not None else [], steps=None, sampler=None, scheduler=None,
                       model=params.get("Model"), elapsed=time.monotonic() - started,
                       notes=[i.note for i in images if i.note])

    # -- preparing -------------------------------------------------------------------------
    def prepare(self, opts: DrawOptions, settings: Settings | None = None) -> BuiltPayload:
        """Validate with whatever catalogue is cached (no WebUI call); raises OptionError."""
        return build_request(opts, settings or self.settings, self.catalogue.current)

    async def prepare_for(
        self, opts: DrawOptions, *, user_id: int, guild_id: int | None, channel_id: int | None,
        channel_nsfw: bool = False, preset: str | None = None,
    ) -> BuiltPayload:
        """Validate a request in its context: the channel rules and NSFW policy of the server, then
        explicit options > the named preset > the user's defaults > the server's > the global ones."""
        prefs = await self.user_prefs(user_id)
        preset_values = None
        if preset:
            preset_values = prefs.get("presets", {}).get(preset)
            if preset_values is None:
                raise OptionError([f"`preset`: you have no preset called {preset[:50]!r}; `/prefer save` makes one."])
        opts = resolve_options(opts, preset=preset_values, user=prefs.get("defaults"))
        settings = self.settings
        policy = await self.check_place(guild_id=guild_id, channel_id=channel_id, channel_nsfw=channel_nsfw)
        if policy is not None:
            settings = policy.effective(self.settings)
            opts = policy.apply(opts, settings, channel_nsfw)
        built = self.prepare(opts, settings)
        if preset:
            built = dataclasses.replace(built, notes=[f"preset “{preset}”", *built.notes])
        return built

    async def check_place(self, *, guild_id: int | None, channel_id: int | None,
                          channel_nsfw: bool) -> ServerPolicy | None:
        """Every job, whatever starts it: raise OptionError where the server doesn't allow images (its
        channel list, its NSFW policy). Returns the server's policy, if it has one."""
        policy = await self.server_policy(guild_id) if guild_id else None
        if policy is not None:
            policy.check_channel(channel_id, channel_nsfw)
        return policy

    async def finalize(self, built: BuiltPayload) -> BuiltPayload:
        """Make sure names were checked against the WebUI's lists (may call the WebUI)."""
        if built.names_checked or built.options is None:
            return built
        catalogue: Catalogue = await self.catalogue.get()
        rebuilt = build_request(built.options, built.settings or self.settings, catalogue)
        return dataclasses.replace(rebuilt, notes=[n for n in built.notes if n not in rebuilt.notes] + rebuilt.notes)

    async def validate_values(self, values: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
        """Check stored defaults (model, sampler, scheduler, steps, width, height, negative_prompt) the way
        /draw would, and return them normalised (names as the WebUI spells them). Raises OptionError."""
        try:
            catalogue: Catalogue | None = await self.catalogue.get()
        except WebUIError:
            catalogue = self.catalogue.current
        opts = DrawOptions("check", **{k: v for k, v in values.items() if k in DRAW_FIELDS})
        built = build_request(opts, settings or self.settings, catalogue)
        p = built.payload
        normal = {"model": built.model, "sampler": p["sampler_name"], "scheduler": p["scheduler"],
                  "steps": p["steps"], "width": p["width"], "height": p["height"],
                  "negative_prompt": p["negative_prompt"]}
        return {k: normal.get(k, v) for k, v in values.items()}

    # -- server settings and user preferences (cached; written through to the store) ---------
    async def server_policy(self, guild_id: int) -> ServerPolicy | None:
        """A server's settings (all loaded at start; written through on change), or None."""
        return self._policies.get(guild_id)

    async def set_server_policy(self, guild_id: int, policy: ServerPolicy, *, by: int, change: str) -> None:
        if self.store is not None:
            await self.store.set_guild_settings(guild_id, policy.to_dict(), by=by, change=change)
        self._policies[guild_id] = policy
        log.info("Server %s settings changed by %s: %s", guild_id, by, change)

    async def user_prefs(self, user_id: int) -> dict[str, Any]:
        """A user's defaults and presets (all loaded at start; written through on change)."""
        return self._prefs.get(user_id, {})

    async def set_user_prefs(self, user_id: int, prefs: dict[str, Any]) -> None:
        if self.store is not None:
            await self.store.set_user_prefs(user_id, prefs)
        self._prefs[user_id] = prefs

    async def find_job(self, *, job_id: str | None = None, message_id: int | None = None) -> JobRecord | None:
        """A stored job by id, else by its (job or result) message."""
        if self.store is None:
            return None
        record = await self.store.get(job_id) if job_id else None
        if record is None and message_id is not None:
            record = await self.store.by_message(message_id)
        return record

    async def rerun_options(
        self, *, job_id: str | None, message_id: int | None, images: Callable[[], Awaitable[list[bytes]]],
        new_seed: bool = True, index: int = 0, variation: float | None = None,
    ) -> tuple[DrawOptions, str | None]:
        """What to run again: the stored job's request, else the request rebuilt from the image's own
        WebUI parameters (any PNG made by a WebUI, even elsewhere). With `variation`, image `index`'s
        seed is kept and a random variation seed is added at that strength. Returns (options, the
        stored job id or None). Raises OptionError when there is nothing to rerun."""
        record = await self.find_job(job_id=job_id, message_id=message_id)
        if record is not None and record.kind in ("txt2img", "img2img"):
            options = options_from_payload(record.payload, new_seed=new_seed and not variation)
            if record.kind == "img2img":
                options = await self._with_input(options, str(record.payload.get("init_image", "")))
            if variation:
                seed = record.seeds[index] if index < len(record.seeds) else options.seed
                options = dataclasses.replace(options, seed=seed, variation_strength=variation)
            return options, record.id
        found = await images()
        ordered = [found[index]] + found[:index] + found[index + 1:] if index < len(found) else found
        for data in ordered:
            text = await asyncio.to_thread(parameters_or_none, data)
            if text:
                try:
                    options = options_from_infotext(text, new_seed=new_seed and not variation)
                except ValueError:
                    continue
                if variation:
                    options = dataclasses.replace(options, variation_strength=variation)
                return options, None
        raise OptionError(["This message has no image with WebUI generation parameters to run again."])

    async def _with_input(self, options: DrawOptions, digest: str) -> DrawOptions:
        data = await asyncio.to_thread(self._load_input, digest)
        if data is None:
            raise OptionError(["The input image of this img2img job is no longer stored, so it can't be rerun."])
        _, width, height = await asyncio.to_thread(png.check_upload, data, max_pixels=MAX_INPUT_PIXELS)
        return dataclasses.replace(options, init_image=data, init_size=(width, height))

    # -- generating ------------------------------------------------------------------------
    async def generate(
        self, built: BuiltPayload, *, filesize_limit: int, client: WebUIClient | None = None
    ) -> Outcome:
        """Run txt2img, or img2img when the request has an input image, on `client` (default: the first
        backend) and return upload-ready images; raises WebUIError on WebUI failures. Jobs go through
        the scheduler, which picks the client."""
        started = time.monotonic()
        client = client or self.clients[0]
        if built.init_image is not None:
            encoded = await asyncio.to_thread(lambda: base64.b64encode(built.init_image or b"").decode("ascii"))
            result = await client.img2img({**built.payload, "init_images": [encoded]})
        else:
            result = await client.txt2img(built.payload)
        images = await self._finish_images(result, built, filesize_limit)
        first = images[0].infotext if images else None
        params = await asyncio.to_thread(_params_of, first)
        info = result.info
        sampler = info.get("sampler_name") or params.get("Sampler") or built.payload.get("sampler_name")
        scheduler = params.get("Schedule type") or built.payload.get("scheduler")
        model = info.get("sd_model_name") or params.get("Model") or built.model
        return Outcome(
            images=images,
            prompt=built.payload["prompt"],
            seeds=[img.seed for img in images if img.seed is not None],
            steps=info.get("steps") or built.payload.get("steps"),
            sampler=sampler,
            scheduler=scheduler,
            model=model,
            elapsed=time.monotonic() - started,
            notes=list(built.notes) + [img.note for img in images if img.note],
            info=info,
        )

    async def _finish_images(
        self, result: GenerationResult, built: BuiltPayload, filesize_limit: int
    ) -> list[OutputImage]:
        start = result.index_of_first_image
        count = int(built.payload.get("batch_size", 1)) * int(built.payload.get("n_iter", 1))
        raw = result.images[start : start + count] or result.images[start:]
        pairs = []
        for k, data in enumerate(raw):
            i = start + k
            infotext = result.infotexts[i] if i < len(result.infotexts) else None
            seed = result.seeds[k] if k < len(result.seeds) else None
            pairs.append((data, infotext, seed))
        return await self._uploads(pairs, filesize_limit)

    async def _uploads(self, pairs: list[tuple[bytes, str | None, int | None]], filesize_limit: int) -> list[OutputImage]:
        """Number the images and make them upload-ready (in a thread): each within its share of the
        interaction's file limit and of Discord's 25 MiB per message."""
        per_file = min(filesize_limit, REQUEST_SIZE_LIMIT // max(1, len(pairs)))
        async with self._counter_lock:
            first_number = await asyncio.to_thread(self._counter.take, len(pairs))
        return await asyncio.to_thread(_prepare_uploads, pairs, per_file, first_number)


def _prepare_uploads(
    pairs: list[tuple[bytes, str | None, int | None]], limit: int, first_number: int
) -> list[OutputImage]:
    """Runs in a worker thread: make sure each PNG carries its infotext and fits the limit."""
    out = []
    for n, (data, infotext, seed) in enumerate(pairs):
        kind = png.image_format(data)
        if kind is None:  # extensions may put other data in `images`
            log.warning("Skipping a non-image item (%d bytes) in the WebUI's response", len(data))
            continue
        try:
            own = png.read_parameters(data)
        except png.ImageDataError as exc:
            log.warning("Could not read the parameters of image %d: %s", n, exc)
            own = None
        if own is not None:
            infotext = own  # the image's own chunk wins; its bytes pass through untouched
        elif kind == "png":
            data = png.ensure_parameters(data, infotext)
        fitted = png.fit_to_limit(data, limit, infotext)
        name = f"{first_number + n:05d}-{seed if seed is not None else 0}.{fitted.extension}"
        note = f"{name} {fitted.note}" if fitted.note else None
        out.append(OutputImage(name, fitted.data, infotext, seed, note))
    return out

