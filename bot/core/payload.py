"""The one place that turns a user's /draw options into a WebUI payload.

Defaults come from the configuration, limits are enforced with a message that names each bad
option and its allowed range, and only the fields sdcord exposes reach the payload.
No Discord imports here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from bot.config import ABS_MAX_SIDE, ABS_MIN_SIDE, Settings
from bot.errors import OptionError
from bot.images.infotext import create_infotext
from bot.images.params import draw_fields
from bot.text import Opt, T, Text

from .catalogue import Catalogue
from .jobs import PayloadFacts

__all__ = [
    "ASPECT_RATIOS",
    "MAX_CLIP_SKIP",
    "MAX_PROMPT_LENGTH",
    "MAX_SEED",
    "PROMPT_LORA",
    "BuiltPayload",
    "DrawOptions",
    "OptionError",
    "build_request",
    "check_prompt_loras",
    "fit_size",
    "aspect_size",
    "native_area",
    "options_from_infotext",
    "options_from_payload",
    "out_of_range",
    "payload_infotext",
]

MAX_PROMPT_LENGTH = 1500
MAX_SEED = 4294967295  # what /draw offers (the WebUIs' own random seeds are below 2^32)
MAX_ANY_SEED = 2**53 - 1  # what a rerun or Edit may carry: form API servers give seeds above 2^32
MIN_CFG, MAX_CFG = 1.0, 30.0
MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -1.0, 2.0
MAX_HIRES = 2.0
HIRES_DENOISE = 0.5  # the hires pass must be told its denoising strength (A1111 fails without one)
HIRES_UPSCALER = "Latent"  # the WebUI's own default hires upscaler
DEFAULT_STRENGTH = 0.6  # img2img denoising strength when /draw gives none
ASPECT_RATIOS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9")  # /draw ar:
ASPECT_TOLERANCE = 0.05  # a size's ratio may differ this much from the asked one (sides are multiples of 64)
MAX_CLIP_SKIP = 12
ADETAILER = "ADetailer"  # the extension's script title (A1111 matches alwayson_scripts keys case-insensitively)
ADETAILER_FACE_MODEL = "face_yolov8n.pt"  # ADetailer's default face detector
# Outpainting (Zoom out): the new border is masked and painted from scratch, the old image kept.
INPAINT_FIELDS = {"inpainting_fill": 0, "mask_blur": 8, "inpaint_full_res": False, "inpainting_mask_invert": 0}
# Checkpoint names that tell the model family's native size (SDXL-class 1024², SD 1.x 512²).
_NATIVE_1024 = re.compile(r"xl|pony|illustrious|noob|sd3|flux|playground|cascade|aura", re.IGNORECASE)
_NATIVE_512 = re.compile(r"v1[-_.]?5|sd[-_]?1[-_.]?5|sd[-_]?v?1\b|\b1\.5\b|v1-4|anything-v[34]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DrawOptions:
    """What a user asked for; None means "not given" (use the default)."""

    prompt: str
    negative_prompt: str | None = None
    model: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    batch: int | None = None
    variation_strength: float | None = None  # > 0: same seed, a random variation seed at this strength
    style: str | None = None  # a saved WebUI style (`styles`)
    lora: str | None = None  # appended to the prompt as <lora:name:weight>
    lora_weight: float | None = None
    hires: float | None = None  # hires fix scale, 1..2 (1 = off)
    spoiler: bool = False
    init_image: bytes | None = field(default=None, repr=False)  # img2img: an already checked image
    init_size: tuple[int, int] | None = None  # its width and height
    strength: float | None = None  # img2img denoising strength
    aspect: str | None = None  # "16:9": the size from this ratio, near the model's native area (width/height win)
    clip_skip: int | None = None  # 1..12 -> override_settings.CLIP_stop_at_last_layers
    tiling: bool = False  # seamless tiles
    fix_faces: bool = False  # ADetailer's face pass, where the WebUI has the extension
    mask: bytes | None = field(default=None, repr=False)  # inpainting (Zoom out): white = paint anew
    crop: bool = False  # img2img: crop the input to the new ratio (set by `ar`, kept by reruns), not stretch it
    defaulted: frozenset[str] = frozenset()  # fields holding the bot's defaults, not asked for (a rerun's)


@dataclass(frozen=True, slots=True)
class BuiltPayload(PayloadFacts):
    payload: dict[str, Any]
    notes: list[Text] = field(default_factory=list)  # adjustments the user should be told about
    names_checked: bool = False  # model/sampler/scheduler were checked against the WebUI's catalogue
    options: DrawOptions | None = field(default=None, repr=False)  # the resolved options it was built from
    settings: Settings | None = field(default=None, repr=False)  # the (server-adjusted) settings used

    @property
    def init_image(self) -> bytes | None:
        """The img2img input (base64'd at send time), or None for txt2img."""
        return self.options.init_image if self.options else None

    @property
    def mask(self) -> bytes | None:
        """The inpainting mask (white: paint anew), sent with the input image; None without one."""
        return self.options.mask if self.options else None

    @property
    def spoiler(self) -> bool:
        return bool(self.options and self.options.spoiler)

    @property
    def kind(self) -> str:
        return "img2img" if self.init_image is not None else "txt2img"

    @property
    def asked(self) -> frozenset[str]:
        """The options set on purpose (by the user, their preset or defaults, or the server's settings), as
        opposed to the bot's own defaults: a backend without a field for one of them can't run the job."""
        o = self.options
        if o is None:
            return frozenset()
        skip = {"prompt", "spoiler", "init_size", "init_image", "mask", "aspect", "crop", "defaulted", *o.defaulted}
        names = {f.name for f in fields(o) if f.name not in skip and getattr(o, f.name) not in (None, "", False)}
        if o.init_image is not None:
            names.add("init_image")
        if o.mask is not None:
            names.add("mask")
        return frozenset(names)


def _round8(value: int) -> int:
    return max(ABS_MIN_SIDE, min(ABS_MAX_SIDE, (value + 4) // 8 * 8))  # nearest; halves round up


def _num(value: float) -> str:
    """A number as a user reads it: 1000000, not 1e+06."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def out_of_range(name: str, value: float, low: float, high: float) -> Text:
    """The one message for a number outside its range."""
    return T("problem.range", option=Opt(name), low=_num(low), high=_num(high), value=_num(value))


def _side(name: str, value: int | None, default: int, problems: list[Text], notes: list[Text]) -> int:
    if value is None:
        return default
    if not ABS_MIN_SIDE <= value <= ABS_MAX_SIDE:
        problems.append(out_of_range(name, value, ABS_MIN_SIDE, ABS_MAX_SIDE))
        return default
    rounded = _round8(value)
    if rounded != value:
        notes.append(T("note.rounded", option=Opt(name), value=value, rounded=rounded))
    return rounded


def _text(name: str, value: str | None, problems: list[Text], *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        problems.append(T("problem.empty", option=Opt(name)))
    if len(text) > MAX_PROMPT_LENGTH:
        problems.append(T("problem.too_long", option=Opt(name), limit=MAX_PROMPT_LENGTH, length=len(text)))
    return text


def _name(
    kind: str, value: str | None, default: str | None, catalogue: Catalogue | None, problems: list[Text]
) -> str | None:
    """Resolve a model/sampler/scheduler name against the WebUI's own list when we have it."""
    text = (value or "").strip() or None
    if text is None:
        text = default
        if text is None:
            return None
    if catalogue is None or not catalogue.has(kind):  # type: ignore[arg-type]
        return text
    resolved = catalogue.resolver(kind)(text)  # type: ignore[arg-type]
    if resolved is None:
        if value is None:  # a configured default the WebUI doesn't know: let the WebUI decide
            return text
        problems.append(T("problem.unknown_name", option=Opt(kind), name=text[:80]))
    return resolved


PROMPT_LORA = re.compile(r"<(?:lora|lyco):([^:>]*)((?::[^:>]*)*)>", re.IGNORECASE)


def check_prompt_loras(name: str, text: str, catalogue: Catalogue | None, problems: list[Text]) -> None:
    """`<lora:name:weight>` typed in a prompt is held to the `lora` option's rules: a LoRA the WebUI has
    (when its list is known) and weights (text encoder, and UNet if given) within -1..2."""
    known = catalogue.resolver("lora") if catalogue is not None and catalogue.has("lora") else None
    for match in PROMPT_LORA.finditer(text):
        lora = match[1].strip()
        if not lora or (known is not None and known(lora) is None):
            problems.append(T("problem.prompt_lora", option=Opt(name), name=lora[:80]))
            continue
        for part in match[2].split(":")[1:3]:
            try:
                weight = float(part)
            except ValueError:
                weight = float("nan")
            if not MIN_LORA_WEIGHT <= weight <= MAX_LORA_WEIGHT:
                problems.append(T("problem.prompt_lora_weight", option=Opt(name), name=lora[:80],
                                  low=_num(MIN_LORA_WEIGHT), high=_num(MAX_LORA_WEIGHT), value=part.strip()[:20]))
                break


def build_request(opts: DrawOptions, settings: Settings, catalogue: Catalogue | None = None) -> BuiltPayload:
    """Validate `opts` and build the WebUI payload (txt2img, or img2img when `opts.init_image` is set:
    the image itself is added, base64'd in a thread, when the job is sent). Raises OptionError naming
    every bad option.

    With a catalogue, model/sampler/scheduler names are checked and normalised to what the WebUI
    expects (A1111 1.10 silently replaces unknown samplers, so the WebUI won't tell us).
    """
    problems: list[Text] = []
    notes: list[Text] = []

    prompt = _text("prompt", opts.prompt, problems, required=True)
    negative = _text("negative_prompt", opts.negative_prompt, problems)
    if opts.negative_prompt is None:
        negative = settings.default_negative_prompt

    steps = settings.default_steps if opts.steps is None else opts.steps
    if not 1 <= steps <= settings.max_steps:
        problems.append(out_of_range("steps", steps, 1, settings.max_steps))

    cfg = settings.default_cfg_scale if opts.cfg_scale is None else float(opts.cfg_scale)
    if not MIN_CFG <= cfg <= MAX_CFG:
        problems.append(out_of_range("cfg_scale", cfg, MIN_CFG, MAX_CFG))

    seed = -1 if opts.seed is None else opts.seed
    if not -1 <= seed <= MAX_ANY_SEED:
        problems.append(T("problem.seed", option=Opt("seed"), high=MAX_ANY_SEED, value=seed))

    batch = 1 if opts.batch is None else opts.batch
    if not 1 <= batch <= settings.max_batch:
        problems.append(out_of_range("batch", batch, 1, settings.max_batch))

    default_w, default_h = settings.default_width, settings.default_height
    if opts.init_size is not None:
        default_w, default_h = fit_size(*opts.init_size, settings.max_pixels)
        if (default_w, default_h) != tuple(opts.init_size) and opts.width is None and opts.height is None:
            notes.append(T("note.fitted", w=opts.init_size[0], h=opts.init_size[1], fw=default_w, fh=default_h))
    if opts.aspect is not None:
        default_w, default_h = _aspect_defaults(opts, settings, (default_w, default_h), problems, notes)
    width = _side("width", opts.width, default_w, problems, notes)
    height = _side("height", opts.height, default_h, problems, notes)
    if width * height > settings.max_pixels:
        problems.append(T("problem.pixels", width=Opt("width"), height=Opt("height"), w=width, h=height,
                          pixels=width * height, limit=settings.max_pixels))

    variation = opts.variation_strength
    if variation is not None and not 0 <= variation <= 1:
        problems.append(out_of_range("variation_strength", variation, 0, 1))

    strength = DEFAULT_STRENGTH if opts.strength is None else float(opts.strength)
    if not 0 <= strength <= 1:
        problems.append(out_of_range("strength", strength, 0, 1))
    if opts.strength is not None and opts.init_image is None:
        problems.append(T("problem.needs", option=Opt("strength"), other=Opt("init_image")))

    hires = opts.hires
    if hires is not None and opts.init_image is not None and hires > 1:
        problems.append(T("problem.hires_img2img", option=Opt("hires"), other=Opt("init_image")))
        hires = None
    if hires is not None and not 1 <= hires <= MAX_HIRES:
        problems.append(out_of_range("hires", hires, 1, MAX_HIRES))
        hires = None
    if hires and hires > 1:
        final_w, final_h = int(width * hires), int(height * hires)
        if final_w * final_h > settings.max_pixels and width * height <= settings.max_pixels:
            problems.append(T("problem.hires_pixels", option=Opt("hires"), factor=_num(hires), w=width, h=height,
                              fw=final_w, fh=final_h, pixels=final_w * final_h, limit=settings.max_pixels))

    clip_skip = opts.clip_skip
    if clip_skip is not None and not 1 <= clip_skip <= MAX_CLIP_SKIP:
        problems.append(out_of_range("clip_skip", clip_skip, 1, MAX_CLIP_SKIP))
    if opts.mask is not None and opts.init_image is None:
        problems.append(T("problem.needs", option=Opt("mask"), other=Opt("init_image")))

    style = _name("style", opts.style, None, catalogue, problems)
    lora = _name("lora", opts.lora, None, catalogue, problems)
    weight = 1.0 if opts.lora_weight is None else float(opts.lora_weight)
    if not MIN_LORA_WEIGHT <= weight <= MAX_LORA_WEIGHT:
        problems.append(out_of_range("lora_weight", weight, MIN_LORA_WEIGHT, MAX_LORA_WEIGHT))
    if opts.lora_weight is not None and lora is None:
        problems.append(T("problem.needs", option=Opt("lora_weight"), other=Opt("lora")))

    check_prompt_loras("prompt", prompt, catalogue, problems)
    check_prompt_loras("negative_prompt", negative, catalogue, problems)
    model = _name("model", opts.model, settings.default_model, catalogue, problems)
    sampler = _name("sampler", opts.sampler, settings.default_sampler, catalogue, problems)
    scheduler = _name("scheduler", opts.scheduler, settings.default_scheduler, catalogue, problems)

    if problems:
        raise OptionError(problems)

    payload: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": negative,
        "seed": seed,
        "sampler_name": sampler,
        "scheduler": scheduler,
        "steps": steps,
        "cfg_scale": cfg,
        "width": width,
        "height": height,
        "batch_size": batch,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
    }
    if lora is not None:
        payload["prompt"] = f"{prompt} <lora:{lora}:{weight:g}>"
    if style is not None:
        payload["styles"] = [style]
    if hires and hires > 1:
        payload.update({"enable_hr": True, "hr_scale": float(hires), "hr_upscaler": HIRES_UPSCALER,
                        "denoising_strength": HIRES_DENOISE, "hr_second_pass_steps": 0,
                        "hr_sampler_name": None, "hr_scheduler": None})
    if opts.init_image is not None:
        payload["denoising_strength"] = strength
        # A new aspect ratio for an input image: crop it to the ratio ("Crop and resize") rather than stretch it.
        crop = (opts.aspect is not None or opts.crop) and opts.mask is None
        payload["resize_mode"] = 1 if crop else 0
    if opts.mask is not None:
        payload.update(INPAINT_FIELDS)
    if variation:
        payload["subseed"] = -1
        payload["subseed_strength"] = float(variation)
    if opts.tiling:
        payload["tiling"] = True
    if opts.fix_faces:
        payload["alwayson_scripts"] = {ADETAILER: {"args": [True, False, {"ad_model": ADETAILER_FACE_MODEL}]}}
    overrides: dict[str, Any] = {}
    if model is not None:
        # Per request only: never POST /options, which would switch the model for every WebUI user.
        overrides["sd_model_checkpoint"] = model
    if clip_skip is not None:
        overrides["CLIP_stop_at_last_layers"] = int(clip_skip)
    if overrides:
        payload["override_settings"] = overrides
        payload["override_settings_restore_afterwards"] = True
    return BuiltPayload(payload, notes, names_checked=catalogue is not None, options=opts, settings=settings)


def parse_ratio(text: str) -> tuple[int, int] | None:
    """ "16:9" -> (16, 9); None for anything else."""
    match = re.fullmatch(r"\s*(\d{1,2})\s*[:x]\s*(\d{1,2})\s*", text or "")
    if not match or not int(match[1]) or not int(match[2]):
        return None
    return int(match[1]), int(match[2])


def native_area(model: str | None, fallback: int) -> int:
    """The pixel count a checkpoint was trained at, from its name (SDXL-class 1024², SD 1.x 512²); else
    `fallback` (the default size's)."""
    name = model or ""
    if _NATIVE_1024.search(name):
        return 1024 * 1024
    if _NATIVE_512.search(name):
        return 512 * 512
    return fallback


def aspect_size(ratio: tuple[int, int], area: int, max_pixels: int) -> tuple[int, int]:
    """Width and height in multiples of 64 with this ratio (within 5 %), the pixel count nearest `area`,
    never above `max_pixels`. Raises ValueError when no such size fits."""
    r = ratio[0] / ratio[1]
    best: tuple[float, int, int] | None = None
    for height in range(64, ABS_MAX_SIDE + 1, 64):
        width = round(height * r / 64) * 64
        if not 64 <= width <= ABS_MAX_SIDE or width * height > max_pixels:
            continue
        if abs(width / height - r) / r > ASPECT_TOLERANCE:
            continue
        score = abs(math.log(width * height / area))
        if best is None or score < best[0]:
            best = (score, width, height)
    if best is None:
        raise ValueError(f"no size with ratio {ratio} within {max_pixels} pixels")
    return best[1], best[2]


def _aspect_defaults(opts: DrawOptions, settings: Settings, defaults: tuple[int, int], problems: list[Text],
                     notes: list[Text]) -> tuple[int, int]:
    """The default width and height for `ar:`: both from the ratio, or the side not given from the one given."""
    ratio = parse_ratio(opts.aspect or "")
    if ratio is None or f"{ratio[0]}:{ratio[1]}" not in ASPECT_RATIOS:
        problems.append(T("problem.aspect", option=Opt("ar"), value=str(opts.aspect)[:10],
                          choices=", ".join(ASPECT_RATIOS)))
        return defaults
    if opts.width is not None and opts.height is not None:
        notes.append(T("note.aspect_ignored", option=Opt("ar")))
        return defaults
    if opts.width is not None:
        return defaults[0], _round8(round(opts.width * ratio[1] / ratio[0]))
    if opts.height is not None:
        return _round8(round(opts.height * ratio[0] / ratio[1])), defaults[1]
    area = native_area(opts.model or settings.default_model, settings.default_width * settings.default_height)
    try:
        return aspect_size(ratio, area, settings.max_pixels)
    except ValueError:
        problems.append(T("problem.aspect_pixels", option=Opt("ar"), value=opts.aspect, limit=settings.max_pixels))
        return defaults


def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """An image's own size, scaled down (aspect kept) to fit max_pixels and 64..2048, in multiples of 8."""
    scale = min(1.0, (max_pixels / (width * height)) ** 0.5, ABS_MAX_SIDE / max(width, height))
    w = max(ABS_MIN_SIDE, int(width * scale) // 8 * 8)
    h = max(ABS_MIN_SIDE, int(height * scale) // 8 * 8)
    return w, h


def options_from_payload(payload: dict[str, Any], *, new_seed: bool = False) -> DrawOptions:
    """The /draw options that produced a stored payload (for reruns; re-validated on build)."""
    overrides = payload.get("override_settings") or {}
    seed = payload.get("seed")
    return DrawOptions(
        prompt=str(payload.get("prompt", "")),
        negative_prompt=payload.get("negative_prompt"),
        model=overrides.get("sd_model_checkpoint"),
        sampler=payload.get("sampler_name"),
        scheduler=payload.get("scheduler"),
        steps=payload.get("steps"),
        cfg_scale=payload.get("cfg_scale"),
        seed=None if new_seed or seed in (None, -1) else int(seed),
        width=payload.get("width"),
        height=payload.get("height"),
        batch=payload.get("batch_size"),
        variation_strength=payload.get("subseed_strength") or None,
        style=(payload.get("styles") or [None])[0],
        hires=payload.get("hr_scale") if payload.get("enable_hr") else None,
        strength=payload.get("denoising_strength") if "resize_mode" in payload else None,
        crop=payload.get("resize_mode") == 1,
        clip_skip=overrides.get("CLIP_stop_at_last_layers"),
        tiling=bool(payload.get("tiling")),
        fix_faces=any(str(k).casefold() == ADETAILER.casefold() for k in payload.get("alwayson_scripts") or {}),
    )


def options_from_infotext(infotext: str, *, new_seed: bool = False) -> DrawOptions:
    """A /draw request that reruns the image described by `infotext` (see `params.draw_fields`).
    Raises ValueError when the text has no generation parameters."""
    return DrawOptions(**draw_fields(infotext, new_seed=new_seed))


def payload_infotext(payload: dict[str, Any]) -> str:
    """A stored request as WebUI infotext (what Edit shows for a job that has no image, e.g. a failed one)."""
    overrides = payload.get("override_settings") or {}
    params = {
        "Steps": payload.get("steps"), "Sampler": payload.get("sampler_name"),
        "Schedule type": payload.get("scheduler"), "CFG scale": payload.get("cfg_scale"),
        "Seed": payload.get("seed"),
        "Size": f"{payload.get('width')}x{payload.get('height')}" if payload.get("width") else None,
        "Model": overrides.get("sd_model_checkpoint"),
        "Denoising strength": payload.get("denoising_strength") if payload.get("enable_hr") else None,
        "Hires upscale": payload.get("hr_scale") if payload.get("enable_hr") else None,
        "Variation seed strength": payload.get("subseed_strength") or None,
        "Clip skip": overrides.get("CLIP_stop_at_last_layers"),
        "Tiling": True if payload.get("tiling") else None,
        "ADetailer model": ADETAILER_FACE_MODEL if options_from_payload(payload).fix_faces else None,
    }
    return create_infotext(str(payload.get("prompt", "")), str(payload.get("negative_prompt") or ""), params)
