"""The sdnext dialect: where SD.Next (vladmandic/automatic @431bcc36, diffusers backend, pydantic 1.10)
differs from A1111 for a txt2img/img2img request, and what this demo does about it.

* Request model (`modules/api/models.py` `PydanticModelGenerator`): every field of the processing class
  (`modules/processing_class.py` `StableDiffusionProcessing.__init__`) is `Optional`, but the extra fields the
  API adds are not: `sampler_name: str = "UniPC"`, `hr_sampler_name: str = "Same as primary"`,
  `sampler_index: Union[int, str] = 0`, `script_name`, `script_args`, `send_images`, `save_images`,
  `alwayson_scripts` (and img2img's `denoising_strength: float = 0.5`), so JSON null there is a 422
  "none is not an allowed value". The model has no Config `extra`, so unknown keys (`scheduler`,
  `hr_scheduler`, `infotext`, ...) are dropped (pydantic 1.10's default `Extra.ignore`).
* Samplers (`modules/sd_samplers_diffusers.py` `samplers_data_diffusers`): diffusers names, no aliases or
  options; `validate_sampler_name(sampler_name or sampler_index)` is an exact lookup, 404 "Sampler not found".
* The sigma schedule is the option `schedulers_sigma` (`DiffusionSampler.__init__`), applied only when the
  sampler's config has the matching `use_*_sigmas` flag or a `sigma_schedule`; a request sets it through
  `override_settings`. The infotext writes `Sampler sigma: <value>` whenever the option isn't `default`,
  whether or not the sampler took it (`modules/processing_info.py`).
* Hires (`modules/processing_diffusers.py` `process_hires`): the image is resized only when
  `hr_resize_mode` > 0 (0 is "None"), with an upscaler from SD.Next's own list (latent ones are "Latent
  Bilinear", ...; an unknown name fails in `images_resize.resize_image`); the second pass runs when the
  upscaler is latent (or `hr_force`) and its strength (`hr_denoising_strength`, else `denoising_strength`)
  is above 0.
* Infotext (`processing_info.create_infotext`) and `info` (`processing.Processed.js`) have their own keys
  and order.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from .data import UPSCALERS
from .info import info_head
from .validation import Field, _fields

if TYPE_CHECKING:
    from .planning import Plan
    from .responses import ApiError, ErrorBodies

GIT_COMMIT = "431bcc3"  # installer.git_commit: the first 7 characters of the commit

SAMPLER_NAMES = [
    "Default", "UniPC", "DDIM", "Euler", "Euler a", "Euler SGM", "Euler EDM", "Euler FlowMatch",
    "DPM++", "DPM++ 2M", "DPM++ 3M", "DPM++ 1S", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M EDM", "DPM++ Cosine",
    "DPM SDE", "DPM++ Inverse", "DPM++ 2M Inverse", "DPM++ 3M Inverse",
    "DPM2 FlowMatch", "DPM2a FlowMatch", "DPM2++ 2M FlowMatch", "DPM2++ 2S FlowMatch", "DPM2++ SDE FlowMatch",
    "DPM2++ 2M SDE FlowMatch", "DPM2++ 3M SDE FlowMatch", "Heun", "Heun FlowMatch",
    "DEIS", "SA Solver", "DC Solver", "VDM Solver", "BDIA DDIM", "PNDM", "IPNDM", "DDPM", "LMSD", "KDPM2",
    "KDPM2 a", "CMSI", "LCM", "TCD", "TDD", "PeRFlow", "UFOGen", "Same as primary",
]
SAMPLERS: list[dict[str, Any]] = [{"name": n, "aliases": [], "options": {}} for n in SAMPLER_NAMES]

_KEB = frozenset(("karras", "exponential", "betas", "lambdas", "flowmatch"))
# The sigma values each sampler's diffusers config takes (`config` in sd_samplers_diffusers.py: the keys
# use_karras_sigmas / use_exponential_sigmas / use_beta_sigmas / use_lu_lambdas / use_flow_sigmas, or
# sigma_schedule).
_SIGMA_KEYS: dict[str, frozenset[str]] = {
    "UniPC": frozenset(("karras", "exponential", "betas", "flowmatch")),
    "Euler": frozenset(("karras", "exponential", "betas")), "Euler SGM": frozenset(("karras", "exponential", "betas")),
    "Euler EDM": frozenset(("karras", "exponential")),  # sigma_schedule
    "Euler FlowMatch": frozenset(("karras", "exponential", "betas")),
    **{n: _KEB for n in ("DPM++", "DPM++ 2M", "DPM++ 3M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ Inverse",
                         "DPM++ 2M Inverse", "DPM++ 3M Inverse")},
    "DPM++ 1S": frozenset(("karras", "exponential", "betas", "flowmatch")),
    "DPM++ Cosine": frozenset(("karras", "exponential")),  # sigma_schedule
    "DPM SDE": frozenset(("karras", "exponential", "betas")),
    **{n: frozenset(("karras", "exponential", "betas", "lambdas")) for n in (  # sigma_schedule
        "DPM2 FlowMatch", "DPM2a FlowMatch", "DPM2++ 2M FlowMatch", "DPM2++ 2S FlowMatch", "DPM2++ SDE FlowMatch",
        "DPM2++ 2M SDE FlowMatch", "DPM2++ 3M SDE FlowMatch")},
    "Heun": frozenset(("karras", "exponential", "betas")),
    "DEIS": frozenset(("karras", "exponential", "betas", "flowmatch")),
    "SA Solver": frozenset(("karras", "exponential", "betas", "flowmatch")),
    **{n: frozenset(("karras", "exponential", "betas")) for n in ("LMSD", "KDPM2", "KDPM2 a")},
}

LATENT_UPSCALERS = ["Latent Nearest", "Latent Nearest exact", "Latent Area", "Latent Bilinear", "Latent Bicubic",
                    "Latent Bilinear antialias", "Latent Bicubic antialias"]

# The sampler options of SD.Next's settings (modules/shared.py "sampler-params") a request may override.
OPTIONS: dict[str, Any] = {
    "schedulers_sigma": "default", "schedulers_timesteps": "", "schedulers_timestep_spacing": "default",
    "schedulers_beta_schedule": "default", "schedulers_prediction_type": "default", "schedulers_solver_order": 0,
    "schedulers_use_loworder": True, "schedulers_use_thresholding": False, "schedulers_rescale_betas": False,
    "schedulers_shift": 3, "scheduler_eta": 1.0, "prompt_attention": "native",
}
_OPTION_DEFAULTS = dict(OPTIONS)

# ----------------------------------------------------------------------------- request fields

_NOT_NULL = {"sampler_index", "sampler_name", "hr_sampler_name", "script_name", "script_args", "send_images",
             "save_images", "alwayson_scripts", "include_init_images"}

_CLASS_FIELDS = (
    'prompt:s:"" negative_prompt:s:"" seed:i:-1 subseed:i:-1 subseed_strength:f:0 seed_resize_from_h:i:-1 '
    "seed_resize_from_w:i:-1 batch_size:i:1 n_iter:i:1 steps:i:20 clip_skip:i:1 width:i:1024 height:i:1024 "
    'sampler_index:s:0 sampler_name:s:"UniPC" hr_sampler_name:s:"Same_as_primary" eta:f:null cfg_scale:f:6.0 '
    "cfg_end:f:1 diffusers_guidance_rescale:f:0.7 pag_scale:f:0.0 pag_adaptive:f:0.5 styles:ls:[] tiling:b:false "
    'vae_type:s:"Full" hidiffusion:b:false do_not_reload_embeddings:b:false restore_faces:b:false '
    'detailer_enabled:b:false detailer_prompt:s:"" detailer_negative:s:"" detailer_steps:i:10 '
    "detailer_strength:f:0.3 hdr_mode:i:0 hdr_brightness:f:0 hdr_color:f:0 hdr_sharpen:f:0 hdr_clamp:b:false "
    "hdr_boundary:f:4.0 hdr_threshold:f:0.95 hdr_maximize:b:false hdr_max_center:f:0.6 hdr_max_boundry:f:1.0 "
    'hdr_color_picker:s:null hdr_tint_ratio:f:0 init_images:l:null resize_mode:i:0 resize_name:s:"None" '
    'resize_context:s:"None" denoising_strength:f:0.3 image_cfg_scale:f:null initial_noise_multiplier:f:null '
    "scale_by:f:1 selected_scale_tab:i:0 mask:s:null mask_blur:i:4 inpainting_fill:i:0 inpaint_full_res:b:false "
    "inpaint_full_res_padding:i:0 inpainting_mask_invert:i:0 enable_hr:b:false firstphase_width:i:0 "
    'firstphase_height:i:0 hr_scale:f:2.0 hr_force:b:false hr_resize_mode:i:0 hr_resize_context:s:"None" '
    "hr_upscaler:s:null hr_second_pass_steps:i:0 hr_resize_x:i:0 hr_resize_y:i:0 hr_denoising_strength:f:0.0 "
    'refiner_steps:i:5 refiner_start:f:0 refiner_prompt:s:"" refiner_negative:s:"" hr_refiner_start:f:0 '
    "do_not_save_samples:b:false do_not_save_grid:b:false script_args:l:[] override_settings:d:{} "
    "override_settings_restore_afterwards:b:true"
)
_TXT2IMG_EXTRA = 'script_name:s:"none" send_images:b:true save_images:b:false alwayson_scripts:d:{} extra:d:{}'
_IMG2IMG_EXTRA = ("include_init_images:b:false script_name:s:null send_images:b:true save_images:b:false "
                  "alwayson_scripts:d:{} extra:d:{}")


def _spec(spec: str) -> list[Field]:
    out = []
    for f in _fields(spec):
        default = "Same as primary" if f.default == "Same_as_primary" else f.default
        out.append(dataclasses.replace(f, default=default, nullable=f.name not in _NOT_NULL or default is None))
    return out


TXT2IMG_FIELDS: list[Field] = _spec(_CLASS_FIELDS + " " + _TXT2IMG_EXTRA)
IMG2IMG_FIELDS: list[Field] = [
    dataclasses.replace(f, default=0.5, nullable=False) if f.name == "denoising_strength" else f
    for f in _spec(_CLASS_FIELDS + " " + _IMG2IMG_EXTRA)
]


def fields(kind: str) -> list[Field]:
    return TXT2IMG_FIELDS if kind == "txt2img" else IMG2IMG_FIELDS


# ----------------------------------------------------------------------------- planning


def resolve_sampler(req: dict[str, Any]) -> str | None:
    """`helpers.validate_sampler_name(sampler_name or sampler_index)`: the exact name, or None (a 404)."""
    name = req.get("sampler_name") or req.get("sampler_index")
    return name if isinstance(name, str) and name in SAMPLER_NAMES else None


def sigma_applied(sampler: str, opts: dict[str, Any]) -> bool:
    """Whether this sampler samples with the `schedulers_sigma` option's schedule (not its own default)."""
    sigma = str(opts.get("schedulers_sigma") or "default")
    if sigma == "default" or str(opts.get("schedulers_timesteps") or "").strip():
        return False
    return sigma in _SIGMA_KEYS.get(sampler, frozenset())


def plan_hires(plan: Plan, errors: ErrorBodies) -> None:
    """`process_hires`: the resize (hr_resize_mode > 0) and the second pass (latent upscaler or hr_force)."""
    req = plan.req
    upscaler = req["hr_upscaler"]
    if upscaler is None:
        raise errors.exception("AttributeError", "'NoneType' object has no attribute 'lower'")
    mode = req["hr_resize_mode"] or 0
    scale = req["hr_scale"] if req["hr_scale"] is not None else 2.0
    rx, ry = req["hr_resize_x"] or 0, req["hr_resize_y"] or 0
    w, h = plan.width, plan.height
    if rx == 0 and ry == 0:
        tw, th = int(w * scale), int(h * scale)
    elif ry == 0:
        tw, th = rx, rx * h // max(1, w)
    elif rx == 0:
        tw, th = ry * w // max(1, h), ry
    else:
        tw, th = rx, ry
    is_resize = mode > 0 and (upscaler != "None" or mode == 5)
    known = {*LATENT_UPSCALERS, *(str(u["name"]) for u in UPSCALERS)}
    if is_resize and (tw > w or th > h) and upscaler.lower().replace("-", " ") not in {
            u.lower().replace("-", " ") for u in known}:
        raise errors.exception("UnboundLocalError",
                               "cannot access local variable 'selected_upscaler' where it is not associated with a value")
    hr_strength = req["hr_denoising_strength"] or 0
    strength = hr_strength if hr_strength > 0 else plan.denoising
    if strength is None:
        raise errors.exception("TypeError", "'>' not supported between instances of 'NoneType' and 'int'")
    second = (upscaler.lower().startswith("latent") or bool(req["hr_force"])) and strength > 0
    ops = ["txt2img"] + (["upscale"] if is_resize else []) + (["hires"] if second else [])
    plan.hr = is_resize or second
    plan.hr_w, plan.hr_h = (tw // 8 * 8, th // 8 * 8) if is_resize else (plan.out_w, plan.out_h)
    if second:
        base = req["hr_second_pass_steps"] or 0
        calculated = int((base if base > 0 else plan.steps) // strength) + 1
        plan.hr_steps = max(1, int(calculated * min(strength, 1.0)))
    else:
        plan.hr_steps = 0
    hires: dict[str, Any] = {
        "Refine": bool(req["enable_hr"]), "Hires force": bool(req["hr_force"]) or second,
        "Hires steps": req["hr_second_pass_steps"], "HiRes mode": mode if is_resize else None,
        "HiRes context": req["hr_resize_context"] if mode == 5 else None,
        "Hires upscaler": upscaler if is_resize else None,
    }
    if rx > 0 or ry > 0:
        hires["Hires fixed"] = f"{rx}x{ry}" if is_resize else None
    else:
        hires["Hires scale"] = scale if is_resize else None
    hires["Hires size"] = f"{tw}x{th}" if is_resize else None
    hires["Hires strength"] = strength
    hr_sampler = req["hr_sampler_name"]
    hr_sampler = plan.sampler if hr_sampler == "Same as primary" else hr_sampler
    hires["Hires sampler"] = hr_sampler if hr_sampler != plan.sampler else None
    hires["Hires CFG scale"] = req["image_cfg_scale"]
    plan.extra["_sdnext"] = {"ops": ops, "hires": hires if plan.hr else {}}


def upscalers() -> list[dict[str, Any]]:
    """/upscalers: the non-latent ones of the demo's list, and SD.Next's latent upscalers."""
    latent = [{"name": n, "model_name": None, "model_path": None, "model_url": None, "scale": 2.0}
              for n in LATENT_UPSCALERS]
    return [*UPSCALERS[:1], *latent, *UPSCALERS[1:]]


# ----------------------------------------------------------------------------- results


def _quote(value: Any) -> Any:
    """modules/infotext.py quote()."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return value
    return json.dumps(value, ensure_ascii=False)


def _pipeline(plan: Plan) -> str:
    return "StableDiffusionXLPipeline" if "xl" in plan.model.name_for_extra.lower() else "StableDiffusionPipeline"


def version(configured: str) -> str:
    """The infotext's Version: SD.Next's commit, unless the demo was configured with another version."""
    return configured if configured != "v1.10.1" else GIT_COMMIT


def build_infotext(plan: Plan, k: int, version_text: str) -> str:
    """The infotext of image `k` (`processing_info.create_infotext`, native backend)."""
    req, opts = plan.req, plan.opts
    state = plan.extra.get("_sdnext") or {}
    ops = state.get("ops") or (["img2img"] if plan.kind == "img2img" else ["txt2img"])
    batched = plan.n_iter > 1 or plan.batch_size > 1
    w_from, h_from = req["seed_resize_from_w"], req["seed_resize_from_h"]
    cfg = plan.cfg
    args: dict[str, Any] = {
        "Steps": plan.steps,
        "Size": f"{plan.width}x{plan.height}",
        "Sampler": plan.sampler if plan.sampler != "Default" else None,
        "Seed": plan.seeds[k],
        "Seed resize from": None if w_from == 0 or h_from == 0 else f"{w_from}x{h_from}",
        "CFG scale": cfg if cfg > 1.0 else None,
        "CFG rescale": req["diffusers_guidance_rescale"] if (req["diffusers_guidance_rescale"] or 0) > 0 else None,
        "CFG end": req["cfg_end"] if (req["cfg_end"] if req["cfg_end"] is not None else 1) < 1.0 else None,
        "Clip skip": req["clip_skip"] if (req["clip_skip"] or 1) > 1 else None,
        "Batch": f"{plan.n_iter}x{plan.batch_size}" if batched else None,
        "Model": plan.model.name_for_extra.replace(",", "").replace(":", ""),
        "Model hash": plan.model.shorthash,
        "Refiner prompt": req["refiner_prompt"] or None,
        "Refiner negative": req["refiner_negative"] or None,
        "Styles": "; ".join(req["styles"]) if req["styles"] else None,
        "App": "SD.Next",
        "Version": version_text,
        "Backend": None,
        "Pipeline": _pipeline(plan),
        "Parser": opts.get("prompt_attention") if opts.get("prompt_attention", "native") != "native" else None,
        "Comment": None,
        "Operations": "; ".join(ops),
    }
    if batched:
        args["Index"] = f"{k // max(1, plan.batch_size) + 1}x{k + 1}"
    if "txt2img" in ops:
        args["Variation seed"] = plan.subseeds[k] if plan.subseed_strength > 0 else None
        args["Variation strength"] = plan.subseed_strength if plan.subseed_strength > 0 else None
    args.update(state.get("hires") or {})
    if plan.kind == "img2img":
        args["Image CFG scale"] = req["image_cfg_scale"]
        args["Resize scale"] = req["scale_by"]
        args["Denoising strength"] = plan.denoising
    for key in ("schedulers_timesteps", "schedulers_timestep_spacing", "schedulers_sigma", "schedulers_solver_order",
                "schedulers_prediction_type", "schedulers_beta_schedule"):
        label = {"schedulers_timesteps": "Sampler timesteps", "schedulers_timestep_spacing": "Sampler spacing",
                 "schedulers_sigma": "Sampler sigma", "schedulers_solver_order": "Sampler order",
                 "schedulers_prediction_type": "Sampler type",
                 "schedulers_beta_schedule": "Sampler beta schedule"}[key]
        value = opts.get(key, _OPTION_DEFAULTS[key])
        args[label] = value if value != _OPTION_DEFAULTS[key] else None
    for key, value in plan.extra.items():
        if not key.startswith("_"):
            args[key] = value.fn(k) if hasattr(value, "fn") else value
    args = {key: value for key, value in args.items()
            if value is not None and not (isinstance(value, str) and (not value or value == "0x0"))}
    params = ", ".join(key if key == value else f"{key}: {_quote(value)}" for key, value in args.items())
    negative = plan.negatives[k] or ""
    return f"{plan.prompts[k]}\nNegative prompt: {negative}\n{params}".strip()


def build_info(plan: Plan, infotexts: list[str], index_of_first_image: int, job_timestamp: str) -> dict[str, Any]:
    """`Processed.js()`: SD.Next's keys (no sd_model_name, no version)."""
    req = plan.req
    cfg_end = req["cfg_end"] if req["cfg_end"] is not None else 1
    return {
        **info_head(plan),
        "cfg_scale": plan.cfg if plan.cfg > 1 else None,
        "cfg_end": cfg_end if cfg_end < 0 else None,
        "steps": plan.steps,
        "batch_size": max(1, plan.batch_size),
        "detailer": bool(req["detailer_enabled"]),
        "detailer_model": None,
        "sd_model_hash": plan.model.shorthash or "",
        "seed_resize_from_w": req["seed_resize_from_w"],
        "seed_resize_from_h": req["seed_resize_from_h"],
        "denoising_strength": plan.denoising,
        "extra_generation_params": {},
        "index_of_first_image": index_of_first_image,
        "infotexts": infotexts,
        "styles": req["styles"],
        "job_timestamp": job_timestamp,
        "clip_skip": req["clip_skip"],
    }


def no_sampler(errors: ErrorBodies) -> ApiError:
    return errors.http_exception(404, "Sampler not found")
