"""Planning a txt2img/img2img job: what A1111's API handler and `StableDiffusionProcessing` decide
before sampling starts (scripts, sampler, settings overrides, seeds, sizes, hires, extra params)."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .adetailer import SCRIPT as ADETAILER_SCRIPT
from .adetailer import Run as ADetailerRun
from .adetailer import script_args as adetailer_script_args
from .data import (
    ALWAYSON_SCRIPTS,
    EMBEDDINGS,
    EXTENSION_SCRIPTS,
    IMG2IMG_ALWAYSON_SCRIPTS,
    IMG2IMG_SCRIPTS,
    SAMPLERS,
    SCHEDULERS,
    TXT2IMG_SCRIPTS,
    VAES,
    DemoConfig,
)
from .inpainting import FILLS, InpaintSettings
from .responses import ApiError, ErrorBodies
from .sdnext import plan_hires as sdnext_plan_hires
from .sdnext import resolve_sampler as sdnext_resolve_sampler
from .settings import Checkpoint, WebUISettings

# Settings an API request may not override (A1111 drops them from override_settings).
_PROTECTED_OPTIONS = ("api_enable_requests", "api_forbid_local_requests", "api_useragent")


class Lazy:
    """A per-image extra parameter computed at infotext time (A1111 stores lambdas; `info` shows null)."""

    def __init__(self, fn: Callable[[int], Any]):
        self.fn = fn


@dataclass
class Plan:
    """One validated generation request, resolved and ready to run."""

    kind: str
    req: dict[str, Any]
    prompts: list[str]
    negatives: list[str]
    seeds: list[int]
    subseeds: list[int]
    subseed_strength: float
    batch_size: int
    n_iter: int
    steps: int
    sampling_steps: int
    width: int
    height: int
    out_w: int
    out_h: int
    sampler: str
    schedule: str | None
    cfg: float
    model: Checkpoint
    opts: dict[str, Any]
    extra: dict[str, Any]
    denoising: float | None
    hr: bool = False
    hr_w: int = 0
    hr_h: int = 0
    hr_steps: int = 0
    init_images: list[str] = field(default_factory=list)
    mask: str | None = None
    vae: str | None = None
    switched: bool = False  # runs on another checkpoint than the loaded one (a model switch, and back)
    inpaint: InpaintSettings | None = None
    """img2img with a mask: the mask fields."""
    adetailer: ADetailerRun | None = None
    """The ADetailer extension's run when it is installed and enabled for this job."""
    ad_orig: tuple[int, int, int] | None = None
    """ADetailer "skip img2img": the job's (steps, width, height) before it set them to 1 and 128x128."""
    ad_limit: Any = None
    """ADetailer with "whole picture" inpainting: the img2img mask (PIL, processing size) detections must touch."""


def resolve_sampler(name: str | None, scheduler: str | None, *, strict: bool) -> tuple[str, str | None] | None:
    """v1.10 `get_sampler_and_scheduler` + processing-time autocorrection + `get_sigmas` default.

    With `strict` (v1.9): exact lookup without name splitting; None when the sampler is unknown.
    """
    names = {s["name"]: s for s in SAMPLERS}
    by_key = {**{s["name"]: s for s in SCHEDULERS}, **{s["label"]: s for s in SCHEDULERS}}
    automatic = SCHEDULERS[0]
    if strict:
        sampler = names.get(name or "")
        if sampler is None:
            return None
        found = by_key.get(scheduler) if scheduler is not None else None
        default = sampler["options"].get("scheduler")
        if (found is None or found is automatic) and default:
            return sampler["name"], by_key[default]["label"]
        return sampler["name"], (found["label"] if found else (scheduler if scheduler else None))
    found = by_key.get(scheduler, automatic) if scheduler is not None else automatic
    resolved = name or SAMPLERS[0]["name"]
    for sch in SCHEDULERS:
        options = [sch["label"], sch["name"], *(sch["aliases"] or [])]
        if any(resolved.endswith(" " + option) for option in options):
            found = sch
            resolved = resolved[: -(len(sch["label"]) + 1)]  # A1111 cuts the label's length
            break
    sampler = names.get(resolved, SAMPLERS[0])
    if sampler["options"].get("scheduler") == found["name"]:
        found = automatic
    if found is automatic and sampler["options"].get("scheduler"):
        found = by_key[sampler["options"]["scheduler"]]
    return sampler["name"], found["label"]


def apply_styles(styles: dict[str, dict[str, Any]], text: str, names: list[str], key: str) -> str:
    """A1111 prompt styles: `{prompt}` is replaced, otherwise the style text is appended."""
    for name in names:
        style = styles.get(name)
        if style is None:
            continue
        style_text = style.get(key) or ""
        if "{prompt}" in style_text:
            text = style_text.replace("{prompt}", text)
        else:
            text = ", ".join(p for p in (text.strip(), style_text.strip()) if p)
    return text


class Planner:
    """Turns a validated txt2img/img2img request into a `Plan`, raising the WebUI's errors."""

    def __init__(self, config: DemoConfig, settings: WebUISettings, errors: ErrorBodies):
        self.config = config
        self.settings = settings
        self.errors = errors
        self.rng = random.Random(config.seed)

    def plan(self, req: dict[str, Any], kind: str) -> Plan:
        dialect_sdnext = self.config.dialect == "sdnext"
        if not dialect_sdnext:  # SD.Next logs an unknown script and runs without it
            self._check_scripts(req, kind)
        for key in ("steps", "width", "height", "batch_size", "n_iter", "cfg_scale"):
            if req[key] is None:
                raise self.errors.exception("TypeError", "unsupported operand type(s) for *: 'NoneType' and 'int'")
        if dialect_sdnext:  # no scheduler field: the sigma schedule is the `schedulers_sigma` option
            name = sdnext_resolve_sampler(req)
            resolved = (name, None) if name is not None else None
        else:
            resolved = resolve_sampler(req["sampler_name"] or req["sampler_index"], req["scheduler"],
                                       strict=self.config.strict_samplers)
        if resolved is None:
            raise self.errors.http_exception(404, "Sampler not found")
        sampler, schedule = resolved
        opts, model = self._overridden_settings(req)
        self._check_checkpoints(req, kind)

        batch_size, n_iter = req["batch_size"], req["n_iter"]
        init_images: list[str] = []
        if kind == "img2img":
            init_images = self._init_images(req)
            if len(init_images) > 1:
                batch_size = len(init_images)
        total = max(0, batch_size) * max(0, n_iter)

        styles = req["styles"] or []
        prompts = [apply_styles(self.settings.styles, req["prompt"] or "", styles, "prompt")] * total
        negatives = [apply_styles(self.settings.styles, req["negative_prompt"] or "", styles, "negative_prompt")] * total
        seed = req["seed"]
        if seed is None or seed == -1:
            seed = self.rng.randrange(4294967294)
        subseed = req["subseed"]
        if subseed is None or subseed == -1:
            subseed = self.rng.randrange(4294967294)
        strength = req["subseed_strength"] or 0
        seeds = [int(seed) + (k if strength == 0 else 0) for k in range(total)]
        subseeds = [int(subseed) + k for k in range(total)]

        width, height, steps = req["width"], req["height"], req["steps"]
        denoising = req["denoising_strength"]
        plan = Plan(kind=kind, req=req, prompts=prompts, negatives=negatives, seeds=seeds, subseeds=subseeds,
                    subseed_strength=float(strength), batch_size=batch_size, n_iter=n_iter, steps=steps,
                    sampling_steps=max(1, steps), width=width, height=height, out_w=width // 8 * 8,
                    out_h=height // 8 * 8, sampler=sampler, schedule=schedule, cfg=float(req["cfg_scale"]),
                    model=model, opts=opts, extra={}, denoising=denoising, init_images=init_images)
        plan.switched = model is not self.settings.model
        if "adetailer" in self.config.extensions:  # its process() runs before init(): its keys come first
            self._plan_adetailer(plan)
        if kind == "txt2img" and req["enable_hr"]:
            if dialect_sdnext:
                sdnext_plan_hires(plan, self.errors)
            else:
                self._plan_hires(plan)
        if kind == "img2img":
            self._plan_img2img(plan)
        self._network_hashes(plan)
        if schedule not in (None, "Automatic"):
            plan.extra["Schedule type"] = schedule
        vae = opts.get("sd_vae")
        plan.vae = vae if any(v["model_name"] == vae for v in VAES) else None
        return plan

    def _check_scripts(self, req: dict[str, Any], kind: str) -> None:
        selectable = TXT2IMG_SCRIPTS if kind == "txt2img" else IMG2IMG_SCRIPTS
        alwayson = ALWAYSON_SCRIPTS if kind == "txt2img" else IMG2IMG_ALWAYSON_SCRIPTS
        alwayson = [*alwayson, *(EXTENSION_SCRIPTS[name] for name in self.config.extensions)]
        script_name = req.get("script_name")
        if script_name and script_name.lower() not in selectable:
            raise self.errors.http_exception(422, f"Script '{script_name}' not found")
        for name in (req.get("alwayson_scripts") or {}):
            lowered = str(name).lower()
            if lowered in alwayson:
                continue
            if lowered in selectable:
                raise self.errors.http_exception(422, "Cannot have a selectable script in the always on scripts params")
            raise self.errors.http_exception(422, f"Script '{name}' not found")

    def _overridden_settings(self, req: dict[str, Any]) -> tuple[dict[str, Any], Checkpoint]:
        """The options and model for this request: the settings with `override_settings` applied."""
        opts = dict(self.settings.options)
        model = self.settings.model
        override = req.get("override_settings") or {}
        if not isinstance(override, dict):
            override = {}
        for key, value in override.items():
            if key == "sd_model_checkpoint":
                found = self.settings.find_checkpoint(value) if isinstance(value, str) else None
                if found is not None:  # an unknown checkpoint is dropped silently (runs on the settings model)
                    model = found
                continue
            if key not in opts:
                raise self.errors.exception("KeyError", repr(key))
            if key not in _PROTECTED_OPTIONS:
                opts[key] = value
        if model is None:
            raise self.errors.exception("RuntimeError", "No checkpoints found")
        return opts, model

    def _check_checkpoints(self, req: dict[str, Any], kind: str) -> None:
        for key in ("refiner_checkpoint",) + (("hr_checkpoint_name",) if kind == "txt2img" else ()):
            name = req.get(key)
            if name and name not in ("None", "Use same checkpoint") and self.settings.find_checkpoint(name) is None:
                raise self.errors.exception("Exception", f"Could not find checkpoint with name {name}")

    def _init_images(self, req: dict[str, Any]) -> list[str]:
        if req["init_images"] is None:
            if self.errors.dialect == "sdnext":
                raise ApiError(400, {"error": "Init image is none"})
            raise self.errors.http_exception(404, "Init image not found")
        init_images = req["init_images"]
        if len(init_images) > req["batch_size"]:
            raise self.errors.exception(
                "RuntimeError", f"bad number of images passed: {len(init_images)}; expecting {req['batch_size']} or less")
        return init_images

    def _plan_img2img(self, plan: Plan) -> None:
        """The sampling steps, and the mask keys A1111's img2img `init()` writes, in its order. Keys that
        depend on the mask's pixels ("Inpaint area" for a blank mask) are settled by the generator."""
        req, extra = plan.req, plan.extra
        extra["Denoising strength"] = plan.denoising  # init()'s first key (the infotext has its own slot)
        plan.mask = req["mask"] or None  # A1111: `if mask:` (an empty string is no mask)
        if plan.denoising is not None:
            plan.sampling_steps = int(min(plan.denoising, 0.999) * max(1, plan.steps)) + 1
        if plan.mask is None:
            return
        s = plan.inpaint = InpaintSettings.from_request(req)
        if s.invert:
            extra["Mask mode"] = "Inpaint not masked"
        if s.blur_x > 0 or s.blur_y > 0:
            extra["Mask blur"] = s.blur  # None (left out of the infotext) when x and y differ
        if s.full_res:
            extra["Inpaint area"] = "Only masked"
            extra["Masked area padding"] = s.padding
        if s.fill in (0, 2, 3):
            extra["Masked content"] = FILLS[s.fill]

    def _plan_adetailer(self, plan: Plan) -> None:
        """ADetailer's script args and `process()`: enabled or not, its infotext keys, skip img2img."""
        req = plan.req
        entries = [v for k, v in (req.get("alwayson_scripts") or {}).items() if str(k).lower() == ADETAILER_SCRIPT]
        if not entries:
            return
        try:  # the UI reads `opts.data.get("ad_max_models", 2)`: its tab count
            max_models = max(1, int(plan.opts.get("ad_max_models", 2)))
        except (TypeError, ValueError):
            max_models = 2
        args: list[Any] | None = None
        for entry in entries:  # like A1111's loop: a later key's args overwrite an earlier one's
            args = adetailer_script_args(entry, max_models, self.errors, args)
        assert args is not None
        run = ADetailerRun.from_args(args, plan.kind == "img2img")
        if not run.enabled:
            return
        if run.skip_img2img:
            if req.get("mask"):  # "img2img inpainting with skip img2img is not supported"
                return
            plan.ad_orig = (plan.steps, plan.width, plan.height)
            plan.steps, plan.sampler, plan.width, plan.height = 1, "Euler", 128, 128
            plan.out_w, plan.out_h = 128, 128
        plan.adetailer = run
        plan.extra.update(run.extra_params())

    def _plan_hires(self, plan: Plan) -> None:
        req, extra = plan.req, plan.extra
        plan.hr = True
        extra["Denoising strength"] = plan.denoising
        hr_sampler = req["hr_sampler_name"]
        if hr_sampler is not None and hr_sampler != plan.sampler:
            extra["Hires sampler"] = hr_sampler
        prompt0, neg0 = req["prompt"] or "", req["negative_prompt"] or ""
        hr_prompt, hr_neg = req["hr_prompt"] or "", req["hr_negative_prompt"] or ""
        extra["Hires prompt"] = Lazy(lambda k: hr_prompt if hr_prompt and hr_prompt != prompt0 else None)
        extra["Hires negative prompt"] = Lazy(lambda k: hr_neg if hr_neg and hr_neg != neg0 else None)
        extra["Hires schedule type"] = None
        rx, ry = req["hr_resize_x"] or 0, req["hr_resize_y"] or 0
        w, h = plan.width, plan.height
        if rx == 0 and ry == 0:
            scale = req["hr_scale"] if req["hr_scale"] is not None else 2.0
            extra["Hires upscale"] = scale
            tw, th = int(w * scale), int(h * scale)
        else:
            extra["Hires resize"] = f"{rx}x{ry}"
            if ry == 0:
                tw, th = rx, rx * h // max(1, w)
            elif rx == 0:
                tw, th = ry * w // max(1, h), ry
            else:
                tw, th = rx, ry
        plan.hr_w, plan.hr_h = tw // 8 * 8, th // 8 * 8
        if req["hr_second_pass_steps"]:
            extra["Hires steps"] = req["hr_second_pass_steps"]
        if req["hr_upscaler"] is not None:
            extra["Hires upscaler"] = req["hr_upscaler"]
        hr_steps = req["hr_second_pass_steps"] or 0
        plan.hr_steps = hr_steps if hr_steps > 0 else (
            int(min(plan.denoising, 0.999) * max(1, plan.steps)) + 1 if plan.denoising is not None else plan.steps)
        hr_scheduler = req["hr_scheduler"]
        if hr_scheduler and hr_scheduler != plan.schedule and any(
                hr_scheduler in (s["name"], s["label"]) for s in SCHEDULERS[1:]):
            extra["Hires schedule type"] = next(s["label"] for s in SCHEDULERS if hr_scheduler in (s["name"], s["label"]))

    def _network_hashes(self, plan: Plan) -> None:
        """`Lora hashes` and `TI hashes` for the LoRAs and embeddings the prompts use."""
        if plan.req.get("disable_extra_networks"):
            return
        text = (plan.prompts[0] if plan.prompts else "")
        found: list[str] = []
        for match in re.finditer(r"<lora:([^:>]+)(?::[^>]*)?>", text):
            name = match.group(1)
            lora = next((x for x in self.config.loras if name in (x.get("alias"), x.get("name"))), None)
            if lora is not None:
                entry = f"{lora.get('alias') or lora['name']}: {hashlib.sha256(lora['name'].encode()).hexdigest()[:12]}"
                if entry not in found:
                    found.append(entry)
        if found:
            plan.extra["Lora hashes"] = ", ".join(found)
        both = text + "\n" + (plan.negatives[0] if plan.negatives else "")
        tis = [f"{name}: {hashlib.sha256(name.encode()).hexdigest()[:12]}" for name in EMBEDDINGS["loaded"]
               if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", both)]
        if tis:
            plan.extra["TI hashes"] = ", ".join(tis)
