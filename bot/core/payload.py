"""The one place that turns a user's /draw options into a WebUI payload.

Defaults come from the configuration, limits are enforced with a message that names each bad
option and its allowed range, and only the fields sdcord exposes reach the payload.
No Discord imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.config import ABS_MAX_SIDE, ABS_MIN_SIDE, Settings
from bot.errors import OptionError
from bot.images.params import draw_fields

from .catalogue import Catalogue
from .jobs import PayloadFacts

__all__ = ["DrawOptions", "OptionError", "BuiltPayload", "build_request", "options_from_payload", "fit_size",
           "MAX_PROMPT_LENGTH", "MAX_SEED", "options_from_infotext"]

MAX_PROMPT_LENGTH = 1500
MAX_SEED = 4294967295
MIN_CFG, MAX_CFG = 1.0, 30.0
MIN_LORA_WEIGHT, MAX_LORA_WEIGHT = -1.0, 2.0
MAX_HIRES = 2.0
HIRES_DENOISE = 0.5  # the hires pass must be told its denoising strength (A1111 fails without one)
HIRES_UPSCALER = "Latent"  # the WebUI's own default hires upscaler
DEFAULT_STRENGTH = 0.6  # img2img denoising strength when /draw gives none


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


@dataclass(frozen=True, slots=True)
class BuiltPayload(PayloadFacts):
    payload: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # adjustments the user should be told about
    names_checked: bool = False  # model/sampler/scheduler were checked against the WebUI's catalogue
    options: DrawOptions | None = field(default=None, repr=False)  # the resolved options it was built from
    settings: Settings | None = field(default=None, repr=False)  # the (server-adjusted) settings used

    @property
    def init_image(self) -> bytes | None:
        """The img2img input (base64'd at send time), or None for txt2img."""
        return self.options.init_image if self.options else None

    @property
    def spoiler(self) -> bool:
        return bool(self.options and self.options.spoiler)

    @property
    def kind(self) -> str:
        return "img2img" if self.init_image is not None else "txt2img"


def _round8(value: int) -> int:
    return max(ABS_MIN_SIDE, min(ABS_MAX_SIDE, (value + 4) // 8 * 8))  # nearest; halves round up


def _side(name: str, value: int | None, default: int, problems: list[str], notes: list[str]) -> int:
    if value is None:
        return default
    if not ABS_MIN_SIDE <= value <= ABS_MAX_SIDE:
        problems.append(f"`{name}` must be between {ABS_MIN_SIDE} and {ABS_MAX_SIDE} (got {value}).")
        return default
    rounded = _round8(value)
    if rounded != value:
        notes.append(f"{name} {value} rounded to {rounded} (multiples of 8)")
    return rounded


def _text(name: str, value: str | None, problems: list[str], *, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        problems.append(f"`{name}` can't be empty.")
    if len(text) > MAX_PROMPT_LENGTH:
        problems.append(f"`{name}` is too long: at most {MAX_PROMPT_LENGTH} characters (got {len(text)}).")
    return text


def _name(
    kind: str, value: str | None, default: str | None, catalogue: Catalogue | None, problems: list[str]
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
        problems.append(f"`{kind}`: the WebUI has no {kind} called {text[:80]!r}; pick one from the list.")
    return resolved


def build_request(opts: DrawOptions, settings: Settings, catalogue: Catalogue | None = None) -> BuiltPayload:
    """Validate `opts` and build the WebUI payload (txt2img, or img2img when `opts.init_image` is set:
    the image itself is added, base64'd in a thread, when the job is sent). Raises OptionError naming
    every bad option.

    With a catalogue, model/sampler/scheduler names are checked and normalised to what the WebUI
    expects (A1111 1.10 silently replaces unknown samplers, so the WebUI won't tell us).
    """
    problems: list[str] = []
    notes: list[str] = []

    prompt = _text("prompt", opts.prompt, problems, required=True)
    negative = _text("negative_prompt", opts.negative_prompt, problems)
    if opts.negative_prompt is None:
        negative = settings.default_negative_prompt

    steps = settings.default_steps if opts.steps is None else opts.steps
    if not 1 <= steps <= settings.max_steps:
        problems.append(f"`steps` must be between 1 and {settings.max_steps} (got {steps}).")

    cfg = settings.default_cfg_scale if opts.cfg_scale is None else float(opts.cfg_scale)
    if not MIN_CFG <= cfg <= MAX_CFG:
        problems.append(f"`cfg_scale` must be between {MIN_CFG:g} and {MAX_CFG:g} (got {cfg:g}).")

    seed = -1 if opts.seed is None else opts.seed
    if not -1 <= seed <= MAX_SEED:
        problems.append(f"`seed` must be between -1 (random) and {MAX_SEED} (got {seed}).")

    batch = 1 if opts.batch is None else opts.batch
    if not 1 <= batch <= settings.max_batch:
        problems.append(f"`batch` must be between 1 and {settings.max_batch} (got {batch}).")

    default_w, default_h = settings.default_width, settings.default_height
    if opts.init_size is not None:
        default_w, default_h = fit_size(*opts.init_size, settings.max_pixels)
    width = _side("width", opts.width, default_w, problems, notes)
    height = _side("height", opts.height, default_h, problems, notes)
    if width * height > settings.max_pixels:
        problems.append(
            f"`width` x `height` is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {settings.max_pixels:,} pixels per image."
        )

    variation = opts.variation_strength
    if variation is not None and not 0 <= variation <= 1:
        problems.append(f"`variation_strength` must be between 0 and 1 (got {variation:g}).")

    strength = DEFAULT_STRENGTH if opts.strength is None else float(opts.strength)
    if not 0 <= strength <= 1:
        problems.append(f"`strength` must be between 0 and 1 (got {strength:g}).")
    if opts.strength is not None and opts.init_image is None:
        problems.append("`strength` needs an `init_image`.")

    hires = opts.hires
    if hires is not None and opts.init_image is not None and hires > 1:
        problems.append("`hires` works only without `init_image` (img2img has no hires pass).")
        hires = None
    if hires is not None and not 1 <= hires <= MAX_HIRES:
        problems.append(f"`hires` must be between 1 and {MAX_HIRES:g} (got {hires:g}).")
        hires = None
    if hires and hires > 1:
        final_w, final_h = int(width * hires), int(height * hires)
        if final_w * final_h > settings.max_pixels and width * height <= settings.max_pixels:
            problems.append(
                f"`hires` {hires:g}x of {width}x{height} makes {final_w}x{final_h} = {final_w * final_h:,} pixels; "
                f"the limit is {settings.max_pixels:,} pixels per image.")

    style = _name("style", opts.style, None, catalogue, problems)
    lora = _name("lora", opts.lora, None, catalogue, problems)
    weight = 1.0 if opts.lora_weight is None else float(opts.lora_weight)
    if not MIN_LORA_WEIGHT <= weight <= MAX_LORA_WEIGHT:
        problems.append(f"`lora_weight` must be between {MIN_LORA_WEIGHT:g} and {MAX_LORA_WEIGHT:g} (got {weight:g}).")
    if opts.lora_weight is not None and lora is None:
        problems.append("`lora_weight` needs a `lora`.")

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
        payload["resize_mode"] = 0
    if variation:
        payload["subseed"] = -1
        payload["subseed_strength"] = float(variation)
    if model is not None:
        # Per request only: never POST /options, which would switch the model for every WebUI user.
        payload["override_settings"] = {"sd_model_checkpoint": model}
        payload["override_settings_restore_afterwards"] = True
    return BuiltPayload(payload, notes, names_checked=catalogue is not None, options=opts, settings=settings)


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
    )


def options_from_infotext(infotext: str, *, new_seed: bool = False) -> DrawOptions:
    """A /draw request that reruns the image described by `infotext` (see `params.draw_fields`).
    Raises ValueError when the text has no generation parameters."""
    return DrawOptions(**draw_fields(infotext, new_seed=new_seed))
