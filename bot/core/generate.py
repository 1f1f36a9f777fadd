"""Running one job on one backend: request -> WebUI -> upload-ready images with their infotext.
No Discord imports.

The WebUI's PNG bytes pass through untouched (its own `parameters` chunk wins); Pillow runs only
when an image must be re-encoded to fit the upload limit, in a worker thread, like every other byte
crunching step here.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.errors import JobInterrupted, WebUIError, WebUIValidationError
from bot.images import png
from bot.images.infotext import parse_generation_parameters
from bot.text import Opt, T, Text, text_from_json
from bot.webui.client import GenerationResult, WebUIClient
from bot.webui.flavours import reported_scheduler

from .describe import suggestions
from .files import DataFiles
from .jobs import DescribeRequest, DrawRequest, UpscaleRequest, notes_from_json, notes_to_json

__all__ = [
    "MAX_INPUT_PIXELS", "REQUEST_SIZE_LIMIT", "SWITCH_INTERVAL", "Generator", "Outcome", "OutputImage",
    "favour_event_loop_latency", "parameters_or_none", "prepare_uploads", "without_metadata",
]

log = logging.getLogger(__name__)

MAX_INPUT_PIXELS = 25_000_000  # user images bigger than this are refused before decoding

# How often (seconds) a thread holding the GIL must let another thread run. Python's default 5 ms
# means the event loop can wait 5 ms or more each time a worker thread decodes or encodes images;
# 1 ms keeps every stall short at a negligible cost in thread throughput (bench/overhead.py).
SWITCH_INTERVAL = 0.001

# Discord: "The maximum request size when sending a message is 25 MiB" (all files together).
REQUEST_SIZE_LIMIT = 25 * 1024 * 1024


def favour_event_loop_latency() -> None:
    """Let the event loop thread take the GIL back quickly from image-processing threads."""
    sys.setswitchinterval(SWITCH_INTERVAL)


@dataclass(frozen=True, slots=True)
class OutputImage:
    filename: str
    data: bytes = field(repr=False)
    infotext: str | None
    seed: int | None
    note: Text | None = None  # set when the image had to be re-encoded to fit the upload limit


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
    notes: list[Text] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict, repr=False)
    size: tuple[int, int] | None = None  # of the first image, as posted
    suggestions: list[str] = field(default_factory=list)  # /describe: prompts to draw

    def without_data(self) -> Outcome:
        """The same outcome with its image bytes dropped (they are kept in the data dir)."""
        return dataclasses.replace(self, images=[dataclasses.replace(i, data=b"") for i in self.images])

    def record(self) -> dict[str, Any]:
        """What the job store keeps (the images themselves go to the data dir until delivered)."""
        return {
            "images": [{"filename": i.filename, "infotext": i.infotext, "seed": i.seed,
                        "note": i.note.to_json() if i.note else None} for i in self.images],
            "prompt": self.prompt, "seeds": self.seeds, "steps": self.steps, "sampler": self.sampler,
            "scheduler": self.scheduler, "model": self.model, "elapsed": self.elapsed,
            "notes": notes_to_json(self.notes), "size": list(self.size) if self.size else None,
            "suggestions": self.suggestions,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any], images: list[bytes]) -> Outcome:
        entries = data.get("images") or []
        return cls(
            images=[OutputImage(e["filename"], b, e.get("infotext"), e.get("seed"),
                                text_from_json(e["note"]) if e.get("note") else None)
                    for e, b in zip(entries, images, strict=True)],
            prompt=str(data.get("prompt", "")), seeds=list(data.get("seeds") or []), steps=data.get("steps"),
            sampler=data.get("sampler"), scheduler=data.get("scheduler"), model=data.get("model"),
            elapsed=float(data.get("elapsed") or 0.0), notes=notes_from_json(data.get("notes")),
            size=tuple(data["size"]) if data.get("size") else None,  # type: ignore[arg-type]
            suggestions=[str(s) for s in data.get("suggestions") or []],
        )


async def _size_of(images: list[OutputImage]) -> tuple[int, int] | None:
    """The first image's width and height, from its header (in a thread)."""
    if not images:
        return None

    def read() -> tuple[int, int] | None:
        try:
            _, width, height = png.check_upload(images[0].data, max_pixels=1 << 40)
        except png.ImageDataError:
            return None
        return width, height

    return await asyncio.to_thread(read)


def parameters_or_none(data: bytes) -> str | None:
    """An image's WebUI parameters, or None (also for anything that isn't a readable image)."""
    try:
        return png.read_parameters(data)
    except png.ImageDataError:
        return None


def without_metadata(data: bytes) -> bytes:
    """An input image (img2img, upscale) as the WebUI gets it and the data dir keeps it: without the
    metadata that doesn't change its pixels (an 8 MB text chunk would otherwise travel as base64 in
    the request body). Byte-level, no re-encoding; read its infotext from the original bytes first.
    Sync: run it in a thread. Damaged structure: the bytes as they are (the WebUI decides)."""
    try:
        return png.strip_metadata(data)
    except png.ImageDataError as exc:
        log.warning("Could not strip the metadata of an input image (%d bytes): %s", len(data), exc)
        return data


def _params_of(infotext: str | None) -> dict[str, Any]:
    return parse_generation_parameters(infotext) if infotext else {}


class Generator:
    """Runs requests on a WebUI client and numbers and fits the images."""

    def __init__(self, files: DataFiles, *, inputs: Callable[[str], Awaitable[bytes | None]] | None = None) -> None:
        self.files = files
        self._load = inputs  # where job inputs are read (the engine's: the data dir, else a shared database)
        self._counter_lock = asyncio.Lock()
        self.numbers: Callable[[int], Awaitable[int]] | None = None  # else the data dir's counter file
        self._no_tags: set[str] = set()  # backends whose interrogate has no deepdanbooru

    async def _input(self, digest: str) -> bytes:
        data = await (self._load(digest) if self._load else asyncio.to_thread(self.files.load_input, digest))
        if data is None:
            raise JobInterrupted(T("failure.input_gone"))
        return data

    async def generate(self, request: DrawRequest, client: WebUIClient, *, filesize_limit: int,
                       init_image: bytes | None = None) -> Outcome:
        """Run txt2img, or img2img when the request has an input image, and return upload-ready
        images; raises WebUIError on WebUI failures."""
        started = time.monotonic()
        await self._check_backend(request, client)
        if request.init_image is not None:
            data = init_image if init_image is not None else await self._input(request.init_image)
            encoded = await asyncio.to_thread(lambda: base64.b64encode(data).decode("ascii"))
            body = {**request.payload, "init_images": [encoded]}
            del encoded
            if request.mask is not None:  # inpainting (Zoom out's new border)
                mask = await self._input(request.mask)
                body["mask"] = await asyncio.to_thread(lambda: base64.b64encode(mask).decode("ascii"))
            result = await client.img2img(body)
            del body
        else:
            result = await client.txt2img(request.payload)
        images = await self._finish_images(result, request, filesize_limit)
        first = images[0].infotext if images else None
        params = await asyncio.to_thread(_params_of, first)
        info = result.info
        if getattr(client, "kind", "webui") == "form":  # it has no sampler or schedule to choose: claim none
            sampler = scheduler = None
        else:
            sampler = info.get("sampler_name") or params.get("Sampler") or request.payload.get("sampler_name")
            scheduler = reported_scheduler(params, request.payload, getattr(client, "flavour", None))
        model = info.get("sd_model_name") or params.get("Model") or request.model
        return Outcome(
            images=images,
            prompt=request.payload["prompt"],
            seeds=[img.seed for img in images if img.seed is not None],
            steps=info.get("steps") or request.payload.get("steps"),
            sampler=sampler,
            scheduler=scheduler,
            model=model,
            elapsed=time.monotonic() - started,
            notes=list(request.notes) + [img.note for img in images if img.note],
            info=info,
            size=await _size_of(images),
        )

    @staticmethod
    async def _check_backend(request: DrawRequest, client: WebUIClient) -> None:
        """The router checked what the backend can apply when the job was given to it; a WebUI whose flavour
        wasn't known yet (`detect_flavour`) is asked now, so an asked option it can't apply (an SD.Next
        without that schedule type) fails the job instead of being left out silently."""
        detect = getattr(client, "detect_flavour", None)
        missing = getattr(client, "missing", None)
        if detect is None or missing is None or getattr(client, "flavour", None) is not None:
            return
        await detect()
        gaps = list(missing(request.kind, request.payload, frozenset(getattr(request, "asked", ()) or ())))
        if gaps:
            raise WebUIValidationError(T("failure.unsupported", options=[Opt(g) for g in gaps]),
                                       backend=getattr(client, "display_url", ""),
                                       detail=f"this WebUI ({client.flavour}) can't apply: {', '.join(gaps)}")

    async def describe(self, request: DescribeRequest, client: WebUIClient,
                       allowed: Callable[[str], bool] = lambda _: True) -> Outcome:
        """Interrogate the image with CLIP, and with deepdanbooru where the WebUI has it (a WebUI without it
        answers with an error: the tags are left out), and make up to four prompt suggestions that pass
        `allowed` (the server's blocklist)."""
        started = time.monotonic()
        image = await self._input(request.image)
        caption = await client.interrogate(image, "clip")
        tags = None
        where = str(getattr(client, "display_url", client))
        if where not in self._no_tags:
            try:
                tags = await client.interrogate(image, "deepdanbooru")
            except WebUIError as exc:
                log.info("No deepdanbooru tags from %s: %s", where, exc.detail or exc)
                if exc.status == 404:  # "Model not found": this WebUI has no deepdanbooru; don't ask again
                    self._no_tags.add(where)
        del image
        found = [s for s in suggestions(caption, tags) if allowed(s)]
        return Outcome(images=[], prompt=caption, seeds=[], steps=None, sampler=None, scheduler=None, model=None,
                       elapsed=time.monotonic() - started, suggestions=found)

    async def upscale(self, request: UpscaleRequest, client: WebUIClient, *, filesize_limit: int) -> Outcome:
        """Run extra-single-image; the result keeps the source's infotext (the WebUI keeps the
        `parameters` chunk and adds `postprocessing`; sdcord makes sure of the first)."""
        started = time.monotonic()
        image = await self._input(request.image)
        result = await client.extra_single_image(
            image, resize_mode=0, upscaling_resize=request.scale, upscaler_1=request.upscaler)
        del image
        params = await asyncio.to_thread(_params_of, request.infotext)
        seed = int(params["Seed"]) if str(params.get("Seed", "")).isdigit() else None
        images = await self._uploads([(result.image, request.infotext, seed)], filesize_limit)
        return Outcome(images=images, prompt="", seeds=[seed] if seed is not None else [], steps=None,
                       sampler=None, scheduler=None, model=params.get("Model"), elapsed=time.monotonic() - started,
                       notes=[i.note for i in images if i.note], size=await _size_of(images))

    async def _finish_images(self, result: GenerationResult, request: DrawRequest,
                             filesize_limit: int) -> list[OutputImage]:
        start = result.index_of_first_image
        count = int(request.payload.get("batch_size", 1)) * int(request.payload.get("n_iter", 1))
        raw = result.images[start : start + count] or result.images[start:]
        pairs = []
        for k, data in enumerate(raw):
            i = start + k
            infotext = result.infotexts[i] if i < len(result.infotexts) else None
            seed = result.seeds[k] if k < len(result.seeds) else None
            pairs.append((data, infotext, seed))
        return await self._uploads(pairs, filesize_limit)

    async def _uploads(self, pairs: list[tuple[bytes, str | None, int | None]],
                       filesize_limit: int) -> list[OutputImage]:
        """Number the images and make them upload-ready (in a thread): each within its share of the
        interaction's file limit and of Discord's 25 MiB per message."""
        per_file = min(filesize_limit, REQUEST_SIZE_LIMIT // max(1, len(pairs)))
        async with self._counter_lock:
            first_number = None
            if self.numbers is not None:  # a counter shared by several processes (PostgreSQL)
                try:
                    first_number = await self.numbers(len(pairs))
                except Exception as exc:  # only file names depend on it: never fail a finished job for it
                    log.warning("The shared image counter is unreachable (%r); numbering from the data dir", exc)
            if first_number is None:
                first_number = await asyncio.to_thread(self.files.take_numbers, len(pairs))
        return await asyncio.to_thread(prepare_uploads, pairs, per_file, first_number)


def prepare_uploads(
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
        note = T("note.image", name=name, note=fitted.note) if fitted.note else None
        out.append(OutputImage(name, fitted.data, infotext, seed, note))
    return out
