"""Turning what a user asked for into a checked request, in its context. No Discord imports.

Validation costs the WebUI nothing (the cached catalogue); `finalize` makes sure names were checked
against the WebUI's own lists, which may need one WebUI call on a cold cache. Reruns come from the
job store, else from an image's own WebUI parameters.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.errors import OptionError, WebUIError
from bot.images import png
from bot.text import Opt, T

from .catalogue import Catalogue, CatalogueCache
from .files import DataFiles
from .generate import MAX_INPUT_PIXELS, parameters_or_none
from .payload import BuiltPayload, DrawOptions, build_request, options_from_infotext, options_from_payload
from .policy import Preferences, ServerPolicy, resolve_options
from .store import JobRecord
from .zoom import ZOOM_STRENGTH, outpaint_canvas

__all__ = ["DRAW_FIELDS", "DescribeInput", "Limits", "Place", "Preparer", "UpscaleInput"]

DRAW_FIELDS = ("negative_prompt", "model", "sampler", "scheduler", "steps", "width", "height")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a job would run: the server's rules depend on it."""

    user_id: int
    guild_id: int | None
    channel_id: int | None
    channel_nsfw: bool = False
    private: bool = False  # no server's settings apply: a DM, a group DM, a server the bot is not in


@dataclass(frozen=True, slots=True)
class Limits:
    """What holds for one user in one place (for /help): the caps, the rate limit, the NSFW policy."""

    max_steps: int
    max_pixels: int
    max_batch: int
    rate: tuple[int, float]  # jobs per seconds
    max_queued: int
    nsfw_mode: str  # "off" | "safe" | "refuse"
    private: bool  # no server's settings apply here (PRIVATE_CONTEXTS / PRIVATE_NSFW do)
    refused: Any = None  # why no job can start here (a Text), or None
    daily: int = 0  # jobs per UTC day here (0: no daily limit)


@dataclass(frozen=True, slots=True)
class UpscaleInput:
    """A checked upscale, before it is stored (the image is kept by content when it is)."""

    image: bytes = field(repr=False)
    infotext: str | None
    scale: float
    upscaler: str
    source_job: str | None = None
    index: int = 0
    kind = "upscale"


@dataclass(frozen=True, slots=True)
class DescribeInput:
    """A checked /describe image, before it is stored (kept by content when it is)."""

    image: bytes = field(repr=False)
    kind = "describe"


class Preparer:
    def __init__(self, settings: Settings, catalogue: CatalogueCache, prefs: Preferences, files: DataFiles,
                 find: Callable[..., Awaitable[JobRecord | None]], *,
                 inputs: Callable[[str], Awaitable[bytes | None]] | None = None) -> None:
        self._load = inputs  # where kept inputs are read (else the data dir)
        self.settings = settings
        self.catalogue = catalogue
        self.prefs = prefs
        self.files = files
        self._find = find

    def prepare(self, opts: DrawOptions, settings: Settings | None = None) -> BuiltPayload:
        """Validate with whatever catalogue is cached (no WebUI call); raises OptionError."""
        return build_request(opts, settings or self.settings, self.catalogue.current)

    async def prepare_for(self, opts: DrawOptions, place: Place, *, preset: str | None = None) -> BuiltPayload:
        """Validate a request in its context: the channel rules and NSFW policy of the server, then
        explicit options > the named preset > the user's defaults > the server's > the global ones."""
        prefs = await self.prefs.user_prefs(place.user_id)
        preset_values = None
        if preset:
            preset_values = prefs.get("presets", {}).get(preset)
            if preset_values is None:
                raise OptionError([T("problem.no_preset", option=Opt("preset"), name=preset[:50])])
        opts = resolve_options(opts, preset=preset_values, user=prefs.get("defaults"))
        settings = self.settings
        policy = await self.check_place(place)
        if policy is not None:
            settings = policy.effective(self.settings)
            opts = policy.apply(opts, settings, place.channel_nsfw)
        built = self.prepare(opts, settings)
        if policy is not None:  # every path comes here: commands, buttons, Edit, reactions, /describe's prompts
            policy.check_prompt(" ".join([built.payload["prompt"], *map(str, built.payload.get("styles") or ())]))
        if preset:
            built = dataclasses.replace(built, notes=[T("note.preset", name=preset), *built.notes])
        return built

    async def check_place(self, place: Place) -> ServerPolicy | None:
        """Every job, whatever starts it: raise OptionError where the server doesn't allow images (its
        channel list, its NSFW policy). Returns the server's policy, if it has one. Where no server's
        settings apply (private), PRIVATE_CONTEXTS and PRIVATE_NSFW stand in for them."""
        if place.private:
            if not self.settings.private_contexts:
                raise OptionError([T("refuse.private")])
            if self.settings.private_nsfw == "refuse" and not place.channel_nsfw:
                raise OptionError([T("refuse.private_nsfw")])
            return ServerPolicy(nsfw_mode=self.settings.private_nsfw)
        policy = await self.prefs.server_policy(place.guild_id)
        if policy is not None:
            policy.check_channel(place.channel_id, place.channel_nsfw)
        return policy

    async def limits_for(self, place: Place) -> Limits:
        """The limits in force for `place` (for /help): the server's or the private ones, never above the bot's."""
        refused = None
        try:
            policy = await self.check_place(place)
        except OptionError as exc:
            refused = exc.problems[0] if exc.problems else None
            policy = None if not place.private else ServerPolicy(nsfw_mode=self.settings.private_nsfw)
        if policy is None and not place.private:
            policy = await self.prefs.server_policy(place.guild_id)
        settings = policy.effective(self.settings) if policy is not None else self.settings
        daily = policy.daily(self.settings) if policy is not None and not place.private else self.settings.daily_limit
        return Limits(settings.max_steps, settings.max_pixels, settings.max_batch, self.settings.rate_limit,
                      self.settings.max_queued_per_user, policy.nsfw_mode if policy else "off", place.private,
                      refused, daily)

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

    async def upscale(self, data: bytes, size: tuple[int, int], *, scale: float, upscaler: str | None,
                      option: str = "image") -> UpscaleInput:
        """An upscale of a checked image: the result bounded by MAX_UPSCALE_PIXELS, the upscaler resolved
        against the WebUI's list (default: its best general one). Raises OptionError."""
        width, height = size
        out_w, out_h = int(width * scale), int(height * scale)
        if out_w * out_h > self.settings.max_upscale_pixels:
            raise OptionError([T("problem.upscale_pixels", option=Opt("scale"), factor=f"{scale:g}", w=width,
                                 h=height, fw=out_w, fh=out_h, pixels=out_w * out_h,
                                 limit=self.settings.max_upscale_pixels)])
        catalogue = await self.catalogue.get()
        name = catalogue.default_upscaler()
        if upscaler:
            found = catalogue.resolve_upscaler(upscaler) if catalogue.upscalers else upscaler
            if found is None:
                raise OptionError([T("problem.unknown_name", option=Opt("upscaler"), name=upscaler[:80])])
            name = found
        infotext = await asyncio.to_thread(parameters_or_none, data)
        return UpscaleInput(data, infotext, float(scale), name)

    async def rerun_options(
        self, *, job_id: str | None, message_id: int | None, images: Callable[[], Awaitable[list[bytes]]],
        new_seed: bool = True, index: int = 0, variation: float | None = None, same_seed: bool = False,
    ) -> tuple[DrawOptions, str | None]:
        """What to run again: the stored job's request, else the request rebuilt from the image's own
        WebUI parameters (any PNG made by a WebUI, even elsewhere). With `variation`, image `index`'s
        seed is kept and a random variation seed is added at that strength; `same_seed` keeps that seed
        alone (Zoom out). Returns (options, the stored job id or None). Raises OptionError when there is
        nothing to rerun."""
        record = await self._find(job_id=job_id, message_id=message_id)
        if record is not None and record.kind in ("txt2img", "img2img"):
            options = options_from_payload(record.payload, new_seed=new_seed and not (variation or same_seed))
            if isinstance((record.extra or {}).get("asked"), list):  # the same request: the same options asked
                asked = set(record.extra["asked"])
                options = dataclasses.replace(options, defaulted=frozenset(
                    f for f in ("negative_prompt", "model", "sampler", "scheduler", "steps", "cfg_scale", "width",
                                "height", "batch") if f not in asked))
            if record.kind == "img2img":
                options = await self._with_input(options, str(record.payload.get("init_image", "")))
                if record.payload.get("mask"):  # a Zoom out's border
                    mask, _ = await self._stored_input(str(record.payload["mask"]))
                    options = dataclasses.replace(options, mask=mask)
            if variation or same_seed:
                seed = record.seeds[index] if index < len(record.seeds) else options.seed
                options = dataclasses.replace(options, seed=seed, variation_strength=variation or None)
            return options, record.id
        found = await images()
        ordered = [found[index]] + found[:index] + found[index + 1:] if index < len(found) else found
        for data in ordered:
            text = await asyncio.to_thread(parameters_or_none, data)
            if text:
                try:
                    options = options_from_infotext(text, new_seed=new_seed and not (variation or same_seed))
                except ValueError:
                    continue
                if variation:
                    options = dataclasses.replace(options, variation_strength=variation)
                return options, None
        raise OptionError([T("problem.nothing_to_rerun")])

    async def zoom_out(self, options: DrawOptions, image: bytes, factor: float, place: Place) -> DrawOptions:
        """Zoom out of `image` (one result of the job `options` came from, with that image's seed: see
        `rerun_options(same_seed=True)`): img2img of the picture centred on a canvas `factor` times larger,
        fitted to the place's MAX_PIXELS, with only the new border masked; the job's prompt, model, sampler."""
        limits = await self.limits_for(place)
        canvas = await asyncio.to_thread(outpaint_canvas, image, factor, limits.max_pixels)
        width, height = canvas.size
        return dataclasses.replace(
            options, init_image=canvas.canvas, init_size=canvas.size, mask=canvas.mask, width=width, height=height,
            strength=ZOOM_STRENGTH, hires=None, batch=1, variation_strength=None, aspect=None,
            defaulted=options.defaulted - {"width", "height", "batch"})

    async def describe_again(self, record: JobRecord) -> DescribeInput:
        """A stored /describe job's image (Retry of a failed one). Raises OptionError when it is gone."""
        data, _ = await self._stored_input(str(record.payload.get("image", "")))
        return DescribeInput(data)

    async def upscale_again(self, record: JobRecord) -> UpscaleInput:
        """A stored upscale job's request, checked again (Retry of a failed upscale). Raises OptionError."""
        data, size = await self._stored_input(str(record.payload.get("image", "")))
        request = await self.upscale(data, size, scale=float(record.payload.get("scale") or 2.0),
                                     upscaler=record.payload.get("upscaler"))
        return dataclasses.replace(request, source_job=record.payload.get("source_job"),
                                   index=int(record.payload.get("index") or 0))

    async def _with_input(self, options: DrawOptions, digest: str) -> DrawOptions:
        data, size = await self._stored_input(digest)
        return dataclasses.replace(options, init_image=data, init_size=size)

    async def _stored_input(self, digest: str) -> tuple[bytes, tuple[int, int]]:
        """A stored job input and its size, read and checked in a thread; OptionError when it is gone."""
        data = await (self._load(digest) if self._load else asyncio.to_thread(self.files.load_input, digest))
        if data is None:
            raise OptionError([T("problem.input_gone")])
        _, width, height = await asyncio.to_thread(png.check_upload, data, max_pixels=MAX_INPUT_PIXELS)
        return data, (width, height)
