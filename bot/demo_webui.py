"""An embedded demo Stable Diffusion WebUI: the A1111 v1.10.1 `/sdapi/v1` HTTP API without a GPU.

New users can try sdcord without a WebUI, and every test runs against it. It follows the contract in
the team's WebUI API reference (§12 "Fake server MUST reproduce"): compact JSON with the server's key
orders, `info` as a JSON *string*, bare base64 PNGs whose `parameters` text chunk equals
`info.infotexts[i]`, the full `parameters` echo, pydantic-v1 lenient coercion and 422 bodies, the
A1111 error middleware bodies (Forge and SD.Next dialects on request), Basic auth on every /sdapi
route except /loras, one job at a time in arrival order, `/progress` with live previews, interrupt
and skip, v1.10 sampler/scheduler resolution, hires fix and img2img.

Images are procedural (gradients and soft shapes from a hash of prompt + seed, plus fine noise so PNG
sizes are realistic) and deterministic. All image work runs in worker threads so this server can run
in-process next to the bot. Never imports discord.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import colorsys
import copy
import dataclasses
import datetime
import email.message
import gzip
import hashlib
import io
import json
import logging
import math
import random
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, PngImagePlugin

from bot.infotext import create_infotext, quote

__all__ = ["DemoConfig", "DemoResponse", "DemoWebUI", "create_app", "demo_of", "serve"]

log = logging.getLogger(__name__)

API = "/sdapi/v1/"
Dialect = Literal["a1111", "forge", "sdnext"]
FORGE_VERSION = "f2.0.1v1.10.1-previous-669-gdfdcbab6"

# --------------------------------------------------------------------------------------------------
# Catalogue data (A1111 v1.10.1; samplers and schedulers exactly as the reference fixtures)
# --------------------------------------------------------------------------------------------------

_T = "True"
SAMPLERS: list[dict[str, Any]] = [
    {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}},
    {"name": "DPM++ SDE", "aliases": ["k_dpmpp_sde"],
     "options": {"scheduler": "karras", "second_order": _T, "brownian_noise": _T}},
    {"name": "DPM++ 2M SDE", "aliases": ["k_dpmpp_2m_sde"],
     "options": {"scheduler": "exponential", "brownian_noise": _T}},
    {"name": "DPM++ 2M SDE Heun", "aliases": ["k_dpmpp_2m_sde_heun"],
     "options": {"scheduler": "exponential", "brownian_noise": _T, "solver_type": "heun"}},
    {"name": "DPM++ 2S a", "aliases": ["k_dpmpp_2s_a"],
     "options": {"scheduler": "karras", "uses_ensd": _T, "second_order": _T}},
    {"name": "DPM++ 3M SDE", "aliases": ["k_dpmpp_3m_sde"],
     "options": {"scheduler": "exponential", "discard_next_to_last_sigma": _T, "brownian_noise": _T}},
    {"name": "Euler a", "aliases": ["k_euler_a", "k_euler_ancestral"], "options": {"uses_ensd": _T}},
    {"name": "Euler", "aliases": ["k_euler"], "options": {}},
    {"name": "LMS", "aliases": ["k_lms"], "options": {}},
    {"name": "Heun", "aliases": ["k_heun"], "options": {"second_order": _T}},
    {"name": "DPM2", "aliases": ["k_dpm_2"],
     "options": {"scheduler": "karras", "discard_next_to_last_sigma": _T, "second_order": _T}},
    {"name": "DPM2 a", "aliases": ["k_dpm_2_a"],
     "options": {"scheduler": "karras", "discard_next_to_last_sigma": _T, "uses_ensd": _T, "second_order": _T}},
    {"name": "DPM fast", "aliases": ["k_dpm_fast"], "options": {"uses_ensd": _T}},
    {"name": "DPM adaptive", "aliases": ["k_dpm_ad"], "options": {"uses_ensd": _T}},
    {"name": "Restart", "aliases": ["restart"], "options": {"scheduler": "karras", "second_order": _T}},
    {"name": "DDIM", "aliases": ["ddim"], "options": {}},
    {"name": "DDIM CFG++", "aliases": ["ddim_cfgpp"], "options": {}},
    {"name": "PLMS", "aliases": ["plms"], "options": {}},
    {"name": "UniPC", "aliases": ["unipc"], "options": {}},
    {"name": "LCM", "aliases": ["k_lcm"], "options": {}},
]


def _sched(name: str, label: str, rho: float, inner: bool, aliases: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "label": label, "aliases": aliases, "default_rho": rho, "need_inner_model": inner}


SCHEDULERS: list[dict[str, Any]] = [
    _sched("automatic", "Automatic", -1.0, False),
    _sched("uniform", "Uniform", -1.0, True),
    _sched("karras", "Karras", 7.0, False),
    _sched("exponential", "Exponential", -1.0, False),
    _sched("polyexponential", "Polyexponential", 1.0, False),
    _sched("sgm_uniform", "SGM Uniform", -1.0, True, ["SGMUniform"]),
    _sched("kl_optimal", "KL Optimal", -1.0, False),
    _sched("align_your_steps", "Align Your Steps", -1.0, False),
    _sched("simple", "Simple", -1.0, True),
    _sched("normal", "Normal", -1.0, True),
    _sched("ddim", "DDIM", -1.0, True),
    _sched("beta", "Beta", -1.0, True),
]

_ESRGAN_URL = "https://github.com/xinntao/Real-ESRGAN/releases/download"
UPSCALERS: list[dict[str, Any]] = [
    {"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4.0},
    {"name": "Lanczos", "model_name": None, "model_path": None, "model_url": None, "scale": 4.0},
    {"name": "Nearest", "model_name": None, "model_path": None, "model_url": None, "scale": 4.0},
    {"name": "ESRGAN_4x", "model_name": "ESRGAN_4x",
     "model_path": "https://github.com/cszn/KAIR/releases/download/v1.0/ESRGAN.pth", "model_url": None, "scale": 4.0},
    {"name": "R-ESRGAN 4x+", "model_name": None,
     "model_path": f"{_ESRGAN_URL}/v0.1.0/RealESRGAN_x4plus.pth", "model_url": None, "scale": 4.0},
    {"name": "R-ESRGAN 4x+ Anime6B", "model_name": None,
     "model_path": f"{_ESRGAN_URL}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth", "model_url": None, "scale": 4.0},
    {"name": "SwinIR 4x", "model_name": "SwinIR 4x",
     "model_path": "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth",
     "model_url": None, "scale": 4.0},
]

LATENT_UPSCALE_MODES = ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)"]

_MODELS_DIR = "/home/sd/stable-diffusion-webui/models"


def default_models() -> list[dict[str, Any]]:
    """Three checkpoints shaped like the sd-models fixture; the one in a subfolder was never hashed."""
    return [
        {"title": "v1-5-pruned-emaonly.safetensors [6ce0161689]", "model_name": "v1-5-pruned-emaonly",
         "hash": "6ce0161689", "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
         "filename": f"{_MODELS_DIR}/Stable-diffusion/v1-5-pruned-emaonly.safetensors", "config": None},
        {"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0",
         "hash": "31e35c80fc", "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
         "filename": f"{_MODELS_DIR}/Stable-diffusion/sd_xl_base_1.0.safetensors", "config": None},
        {"title": "SDXL/juggernautXL_v9.safetensors", "model_name": "SDXL_juggernautXL_v9", "hash": None,
         "sha256": None, "filename": f"{_MODELS_DIR}/Stable-diffusion/SDXL/juggernautXL_v9.safetensors",
         "config": None},
    ]


def default_styles() -> list[dict[str, Any]]:
    return [
        {"name": "Cinematic", "prompt": "cinematic still of {prompt}, shallow depth of field, film grain, highly detailed",
         "negative_prompt": "cartoon, drawing, lowres"},
        {"name": "Watercolor", "prompt": "watercolor painting, soft washes, paper texture",
         "negative_prompt": "photo, 3d render"},
        {"name": "Clean", "prompt": "", "negative_prompt": "blurry, lowres, jpeg artifacts, watermark"},
    ]


def default_loras() -> list[dict[str, Any]]:
    return [
        {"name": "add_detail", "alias": "add_detail", "path": f"{_MODELS_DIR}/Lora/add_detail.safetensors",
         "metadata": {"ss_output_name": "add_detail", "ss_network_dim": "64", "ss_network_alpha": "32.0",
                      "ss_base_model_version": "sd_v1", "ss_resolution": "(512, 512)"}},
        {"name": "pixel-art-xl", "alias": "pixel-art-xl", "path": f"{_MODELS_DIR}/Lora/pixel-art-xl.safetensors",
         "metadata": {"ss_output_name": "pixel-art-xl", "ss_base_model_version": "sdxl_base_v1-0"}},
    ]


VAES = [{"model_name": "vae-ft-mse-840000-ema-pruned.safetensors",
         "filename": f"{_MODELS_DIR}/VAE/vae-ft-mse-840000-ema-pruned.safetensors"}]
EMBEDDINGS = {"loaded": {"EasyNegative": {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                          "shape": 768, "vectors": 8}},
              "skipped": {}}

TXT2IMG_SCRIPTS = ["prompt matrix", "prompts from file or textbox", "x/y/z plot"]
IMG2IMG_SCRIPTS = ["img2img alternative test", "loopback", "outpainting mk2", "poor man's outpainting",
                   "prompt matrix", "prompts from file or textbox", "sd upscale", "x/y/z plot"]
ALWAYSON_SCRIPTS = ["extra options", "hypertile", "lora", "refiner", "sampler", "seed"]
IMG2IMG_ALWAYSON_SCRIPTS = [*ALWAYSON_SCRIPTS, "soft inpainting"]


def _default_options() -> dict[str, Any]:
    """A representative subset of A1111 v1.10.1 options (GET /options holds every key)."""
    return {
        "samples_save": True, "samples_format": "png", "samples_filename_pattern": "", "save_images_add_number": True,
        "save_images_replace_action": "Replace", "grid_save": True, "grid_format": "png", "grid_extended_filename": False,
        "grid_only_if_multiple": True, "grid_prevent_empty_spots": False, "n_rows": -1, "enable_pnginfo": True,
        "save_txt": False, "jpeg_quality": 80, "webp_lossless": False, "export_for_4chan": True,
        "img_downscale_threshold": 4.0, "target_side_length": 4000.0, "img_max_size_mp": 200.0,
        "outdir_samples": "", "outdir_txt2img_samples": "outputs/txt2img-images",
        "outdir_img2img_samples": "outputs/img2img-images", "outdir_extras_samples": "outputs/extras-images",
        "outdir_grids": "", "outdir_txt2img_grids": "outputs/txt2img-grids", "outdir_img2img_grids": "outputs/img2img-grids",
        "save_to_dirs": True, "grid_save_to_dirs": True, "use_save_to_dirs_for_ui": False,
        "ESRGAN_tile": 192, "ESRGAN_tile_overlap": 8, "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
        "upscaler_for_img2img": None, "face_restoration": False, "face_restoration_model": "CodeFormer",
        "code_former_weight": 0.5, "face_restoration_unload": False, "auto_launch_browser": "Local",
        "show_warnings": False, "memmon_poll_rate": 8, "samples_log_stdout": False, "multiple_tqdm": True,
        "enable_upscale_progressbar": True, "api_enable_requests": True, "api_forbid_local_requests": True,
        "api_useragent": "", "unload_models_when_training": False, "sd_model_checkpoint": None,
        "sd_checkpoints_limit": 1, "sd_checkpoints_keep_in_cpu": True, "sd_checkpoint_cache": 0, "sd_unet": "Automatic",
        "enable_quantization": False, "emphasis": "Original", "enable_batch_seeds": True,
        "comma_padding_backtrack": 20, "sdxl_clip_l_skip": False, "CLIP_stop_at_last_layers": 1,
        "upcast_attn": False, "randn_source": "GPU", "tiling": False, "hires_fix_refiner_pass": "second pass",
        "sd_vae_checkpoint_cache": 0, "sd_vae": "Automatic", "sd_vae_overrides_per_model_preferences": True,
        "auto_vae_precision_bfloat16": False, "auto_vae_precision": True, "sd_vae_encode_method": "Full",
        "sd_vae_decode_method": "Full", "inpainting_mask_weight": 1.0, "initial_noise_multiplier": 1.0,
        "img2img_extra_noise": 0.0, "img2img_color_correction": False, "img2img_fix_steps": False,
        "img2img_background_color": "#ffffff", "token_merging_ratio": 0.0, "token_merging_ratio_img2img": 0.0,
        "token_merging_ratio_hr": 0.0, "pad_cond_uncond": False, "pad_cond_uncond_v0": False,
        "persistent_cond_cache": True, "batch_cond_uncond": True, "fp8_storage": "Disable",
        "cache_fp16_weight": False, "auto_backcompat": True, "use_old_emphasis_implementation": False,
        "use_old_karras_scheduler_sigmas": False, "no_dpmpp_sde_batch_determinism": False,
        "use_old_hires_fix_width_height": False, "hires_fix_use_firstpass_conds": False,
        "use_old_scheduling": False, "use_downcasted_alpha_bar": False, "refiner_switch_by_sample_steps": False,
        "lora_functional": False, "lora_preferred_name": "Alias from file", "lora_add_hashes_to_infotext": True,
        "return_grid": True, "do_not_show_images": False, "js_modal_lightbox": True, "add_model_hash_to_info": True,
        "add_model_name_to_info": True, "add_user_name_to_info": False, "add_version_to_infotext": True,
        "disable_weights_auto_swap": True, "infotext_skip_pasting": [], "infotext_styles": "Apply if any",
        "show_progressbar": True, "live_previews_enable": True, "live_previews_image_format": "png",
        "show_progress_grid": True, "show_progress_every_n_steps": 10, "show_progress_type": "Approx NN",
        "live_preview_allow_lowvram_full": False, "live_preview_content": "Prompt", "live_preview_refresh_period": 1000.0,
        "live_preview_fast_interrupt": False, "js_live_preview_in_modal_lightbox": False, "hide_samplers": [],
        "eta_ddim": 0.0, "eta_ancestral": 1.0, "ddim_discretize": "uniform", "s_churn": 0.0, "s_tmin": 0.0,
        "s_tmax": 0.0, "s_noise": 1.0, "sigma_min": 0.0, "sigma_max": 0.0, "rho": 0.0, "eta_noise_seed_delta": 0,
        "always_discard_next_to_last_sigma": False, "sgm_noise_multiplier": False, "uni_pc_variant": "bh1",
        "uni_pc_skip_type": "time_uniform", "uni_pc_order": 3, "uni_pc_lower_order_final": True,
        "sd_noise_schedule": "Default", "skip_early_cond": 0.0, "beta_dist_alpha": 0.6, "beta_dist_beta": 0.6,
        "postprocessing_enable_in_main_ui": [], "postprocessing_disable_in_extras": [],
        "postprocessing_operation_order": [], "upscaling_max_images_in_cache": 5,
        "postprocessing_existing_caption_action": "Ignore", "disabled_extensions": [], "disable_all_extensions": "none",
        "restore_config_state_file": "", "sd_checkpoint_hash": None, "latent_upscale_default_mode": "Latent",
    }


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class DemoConfig:
    """How the demo WebUI behaves. Defaults: A1111 v1.10.1 with a fast preview cadence."""

    step_delay: float = 0.0
    """Seconds per sampling step (0 still yields to the event loop every step)."""
    auth: tuple[str, str] | None = None
    """`--api-auth user:pass`: Basic auth on every /sdapi route except /loras and /refresh-loras."""
    dialect: Dialect = "a1111"
    """Error-body dialect and fork differences: a1111, forge (pydantic v2 422s, `message`, no /sd-vae,
    /sd-modules) or sdnext (`code` in error bodies, no /schedulers, /version)."""
    preview_every: int = 1
    """`show_progress_every_n_steps`: sampling steps between live previews."""
    version: str = "v1.10.1"
    """`info.version` / infotext `Version` (the forge dialect reports Forge's version while this is left at
    the default)."""
    models: list[dict[str, Any]] = field(default_factory=default_models)
    checkpoint: str | None = None
    """Alias of the loaded checkpoint (the settings model); None means the first hashed model."""
    styles: list[dict[str, Any]] = field(default_factory=default_styles)
    loras: list[dict[str, Any]] = field(default_factory=default_loras)
    load_delay: float = 0.0
    """Seconds each job spends "loading" (job_count == -1) before sampling."""
    strict_samplers: bool = False
    """v1.9 behaviour: an unknown or combined ("DPM++ 2M Karras") sampler name gives 404 "Sampler not found"."""
    max_pixels: int = 64 * 1024 * 1024
    """Total output pixels of one job above which it fails with a CUDA out-of-memory 500."""
    noise: int = 6
    """Amplitude of the fine noise added to images (realistic PNG sizes); 0 gives tiny PNGs."""
    seed: int | None = None
    """Seed of the random source for `seed: -1` (None: unpredictable)."""
    history: int = 200
    """How many entries `received` and `responses` keep (a long-running demo must not grow forever)."""

    @property
    def effective_version(self) -> str:
        if self.dialect == "forge" and self.version == "v1.10.1":
            return FORGE_VERSION
        return self.version


# --------------------------------------------------------------------------------------------------
# Request schemas and pydantic-like validation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _F:
    name: str
    kind: str  # s, i, f, b, ls (list of str), l (list), d (dict)
    default: Any = None
    nullable: bool = True
    required: bool = False
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    literal: tuple[Any, ...] | None = None


def _fields(spec: str) -> list[_F]:
    out = []
    for item in spec.split():
        name, kind, default = item.split(":", 2)
        out.append(_F(name, kind, json.loads(default)))
    return out


_COMMON_HEAD = _fields(
    'prompt:s:"" negative_prompt:s:"" styles:ls:null seed:i:-1 subseed:i:-1 subseed_strength:f:0 '
    "seed_resize_from_h:i:-1 seed_resize_from_w:i:-1 sampler_name:s:null scheduler:s:null batch_size:i:1 "
    "n_iter:i:1 steps:i:50 cfg_scale:f:7.0 width:i:512 height:i:512 restore_faces:b:null tiling:b:null "
    "do_not_save_samples:b:false do_not_save_grid:b:false eta:f:null denoising_strength:f:null "
    "s_min_uncond:f:null s_churn:f:null s_tmax:f:null s_tmin:f:null s_noise:f:null override_settings:d:null "
    "override_settings_restore_afterwards:b:true refiner_checkpoint:s:null refiner_switch_at:f:null "
    "disable_extra_networks:b:false firstpass_image:s:null comments:d:null"
)
_TXT2IMG_ONLY = _fields(
    "enable_hr:b:false firstphase_width:i:0 firstphase_height:i:0 hr_scale:f:2.0 hr_upscaler:s:null "
    "hr_second_pass_steps:i:0 hr_resize_x:i:0 hr_resize_y:i:0 hr_checkpoint_name:s:null hr_sampler_name:s:null "
    'hr_scheduler:s:null hr_prompt:s:"" hr_negative_prompt:s:"" force_task_id:s:null sampler_index:s:"Euler"'
)
_IMG2IMG_ONLY = _fields(
    "init_images:l:null resize_mode:i:0 image_cfg_scale:f:null mask:s:null mask_blur_x:i:4 mask_blur_y:i:4 "
    "mask_blur:i:null mask_round:b:true inpainting_fill:i:0 inpaint_full_res:b:true inpaint_full_res_padding:i:0 "
    "inpainting_mask_invert:i:0 initial_noise_multiplier:f:null latent_mask:s:null force_task_id:s:null "
    'sampler_index:s:"Euler" include_init_images:b:false'
)
_COMMON_TAIL = _fields(
    "script_name:s:null script_args:l:[] send_images:b:true save_images:b:false alwayson_scripts:d:{} infotext:s:null"
)
TXT2IMG_FIELDS: list[_F] = _COMMON_HEAD + _TXT2IMG_ONLY + _COMMON_TAIL
IMG2IMG_FIELDS: list[_F] = (
    [dataclasses.replace(f, default=0.75) if f.name == "denoising_strength" else f for f in _COMMON_HEAD]
    + _IMG2IMG_ONLY + _COMMON_TAIL
)
EXTRAS_FIELDS: list[_F] = [
    _F("resize_mode", "i", 0, nullable=False, literal=(0, 1)),
    _F("show_extras_results", "b", True, nullable=False),
    _F("gfpgan_visibility", "f", 0, nullable=False, ge=0, le=1),
    _F("codeformer_visibility", "f", 0, nullable=False, ge=0, le=1),
    _F("codeformer_weight", "f", 0, nullable=False, ge=0, le=1),
    _F("upscaling_resize", "f", 2, nullable=False, gt=0),
    _F("upscaling_resize_w", "i", 512, nullable=False, ge=1),
    _F("upscaling_resize_h", "i", 512, nullable=False, ge=1),
    _F("upscaling_crop", "b", True, nullable=False),
    _F("upscaler_1", "s", "None", nullable=False),
    _F("upscaler_2", "s", "None", nullable=False),
    _F("extras_upscaler_2_visibility", "f", 0, nullable=False, ge=0, le=1),
    _F("upscale_first", "b", False, nullable=False),
    _F("image", "s", "", nullable=False),
]
PNGINFO_FIELDS: list[_F] = [_F("image", "s", None, nullable=False, required=True)]

_BOOL_TRUE = {1, "1", "on", "t", "true", "y", "yes"}
_BOOL_FALSE = {0, "0", "off", "f", "false", "n", "no"}
_V2_URL = "https://errors.pydantic.dev/2.8/v/"


class _Invalid(Exception):
    def __init__(self, v1: tuple[str, str, dict | None], v2: tuple[str, str, dict | None], loc: tuple = ()):
        super().__init__(v1[0])
        self.v1, self.v2, self.loc = v1, v2, loc


def _coerce_v1(kind: str, v: Any) -> Any:
    """pydantic v1 (A1111, SD.Next) lax coercion."""
    if kind == "i":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, (str, float, bool)):
            try:
                return int(v)
            except (TypeError, ValueError, OverflowError):
                pass
        raise _Invalid(("value is not a valid integer", "type_error.integer", None), _V2_INT(v))
    if kind == "f":
        if isinstance(v, float):
            return v
        if isinstance(v, (int, str)):
            try:
                return float(v)
            except (TypeError, ValueError, OverflowError):
                pass
        raise _Invalid(("value is not a valid float", "type_error.float", None), _V2_FLOAT(v))
    if kind == "s":
        if isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return str(v)
        raise _Invalid(("str type expected", "type_error.str", None), ("string_type", "Input should be a valid string", None))
    if kind == "b":
        if v is True or v is False:
            return v
        key = v.lower() if isinstance(v, str) else v
        if isinstance(key, (str, int, float)):
            if key in _BOOL_TRUE:
                return True
            if key in _BOOL_FALSE:
                return False
        raise _Invalid(("value could not be parsed to a boolean", "type_error.bool", None), _V2_BOOL(v))
    if kind in ("l", "ls"):
        if not isinstance(v, list):
            raise _Invalid(("value is not a valid list", "type_error.list", None), ("list_type", "Input should be a valid list", None))
        return list(v) if kind == "l" else _coerce_items(_coerce_v1, v)
    if kind == "d":
        if isinstance(v, dict):
            return v
        try:
            return dict(v)
        except (TypeError, ValueError):
            raise _Invalid(("value is not a valid dict", "type_error.dict", None),
                           ("dict_type", "Input should be a valid dictionary", None)) from None
    raise AssertionError(kind)


def _coerce_items(coerce: Any, items: list[Any]) -> list[str]:
    """A list of strings, each coerced by the dialect's rules; a bad item's index goes in `loc`."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(coerce("s", item))
        except _Invalid as exc:
            exc.loc = (i,)
            raise
    return out


def _V2_INT(v: Any) -> tuple[str, str, None]:
    if isinstance(v, float):
        return ("int_from_float", "Input should be a valid integer, got a number with a fractional part", None)
    if isinstance(v, str):
        return ("int_parsing", "Input should be a valid integer, unable to parse string as an integer", None)
    return ("int_type", "Input should be a valid integer", None)


def _V2_FLOAT(v: Any) -> tuple[str, str, None]:
    if isinstance(v, str):
        return ("float_parsing", "Input should be a valid number, unable to parse string as a number", None)
    return ("float_type", "Input should be a valid number", None)


def _V2_BOOL(v: Any) -> tuple[str, str, None]:
    if isinstance(v, (str, int, float)):
        return ("bool_parsing", "Input should be a valid boolean, unable to interpret input", None)
    return ("bool_type", "Input should be a valid boolean", None)


def _coerce_v2(kind: str, v: Any) -> Any:
    """pydantic v2 (Forge) lax-mode coercion: stricter than v1."""
    v1_unused = ("", "", None)
    if kind == "i":
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int):
            return v
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return int(v.strip())
            except ValueError:
                pass
        raise _Invalid(v1_unused, _V2_INT(v))
    if kind == "f":
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                pass
        raise _Invalid(v1_unused, _V2_FLOAT(v))
    if kind == "s":
        if isinstance(v, str):
            return v
        raise _Invalid(v1_unused, ("string_type", "Input should be a valid string", None))
    if kind == "b":
        if isinstance(v, bool):
            return v
        key = v.strip().lower() if isinstance(v, str) else v
        if isinstance(key, (str, int, float)):
            if key in _BOOL_TRUE:
                return True
            if key in _BOOL_FALSE:
                return False
        raise _Invalid(v1_unused, _V2_BOOL(v))
    if kind in ("l", "ls"):
        if not isinstance(v, list):
            raise _Invalid(v1_unused, ("list_type", "Input should be a valid list", None))
        return list(v) if kind == "l" else _coerce_items(_coerce_v2, v)
    if kind == "d":
        if isinstance(v, dict):
            return v
        raise _Invalid(v1_unused, ("dict_type", "Input should be a valid dictionary", None))
    raise AssertionError(kind)


def _constraint_error(f: _F, v: Any) -> _Invalid | None:
    if f.literal is not None:
        try:
            ok = v in f.literal and not isinstance(v, str)
        except TypeError:
            ok = False
        if not ok:
            permitted = ", ".join(map(str, f.literal))
            expected = " or ".join(map(str, f.literal))
            return _Invalid((f"unexpected value; permitted: {permitted}", "value_error.const",
                             {"given": v, "permitted": list(f.literal)}),
                            ("literal_error", f"Input should be {expected}", {"expected": expected}))
        return None
    for attr, op, word, v1code, v2code in (
        ("gt", lambda a, b: a > b, "greater than", "not_gt", "greater_than"),
        ("ge", lambda a, b: a >= b, "greater than or equal to", "not_ge", "greater_than_equal"),
        ("le", lambda a, b: a <= b, "less than or equal to", "not_le", "less_than_equal"),
    ):
        limit = getattr(f, attr)
        if limit is not None and not op(v, limit):
            limit_out = int(limit) if float(limit).is_integer() else limit
            return _Invalid((f"ensure this value is {word} {limit_out}", f"value_error.number.{v1code}",
                             {"limit_value": limit_out}),
                            (v2code, f"Input should be {word} {limit_out}", {attr: limit_out}))
    return None


def validate_request(fields: list[_F], body: Any, dialect: Dialect) -> tuple[dict[str, Any] | None, list[dict] | None]:
    """Validate a JSON body like FastAPI + pydantic would. Returns (values in field order, None) or (None, 422 errors)."""
    v2 = dialect == "forge"
    if not isinstance(body, dict):
        if v2:
            return None, [{"type": "model_attributes_type", "loc": ["body"],
                           "msg": "Input should be a valid dictionary or object to extract fields from",
                           "input": body if not isinstance(body, bytes) else body.decode("utf-8", "replace"),
                           "url": _V2_URL + "model_attributes_type"}]
        return None, [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
    out: dict[str, Any] = {}
    errors: list[dict] = []
    coerce = _coerce_v2 if v2 else _coerce_v1
    for f in fields:
        if f.name not in body:
            if f.required:
                if v2:
                    errors.append({"type": "missing", "loc": ["body", f.name], "msg": "Field required", "input": body,
                                   "url": _V2_URL + "missing"})
                else:
                    errors.append({"loc": ["body", f.name], "msg": "field required", "type": "value_error.missing"})
                continue
            out[f.name] = copy.copy(f.default) if isinstance(f.default, (list, dict)) else f.default
            continue
        value = body[f.name]
        if value is None:
            if f.nullable:
                out[f.name] = None
                continue
            if v2:
                exc = _Invalid(("", "", None), _V2_INT(value) if f.kind == "i" else
                               ({"f": _V2_FLOAT(value), "b": _V2_BOOL(value)}.get(f.kind)
                                or ("string_type", "Input should be a valid string", None)))
            else:
                exc = _Invalid(("none is not an allowed value", "type_error.none.not_allowed", None), ("", "", None))
        else:
            try:
                out[f.name] = coerce(f.kind, value)
                exc = _constraint_error(f, out[f.name]) if (f.literal or f.ge is not None or f.le is not None
                                                          or f.gt is not None) else None
                if exc is None:
                    continue
                if f.literal is not None and not v2:
                    exc.v1[2]["given"] = value
            except _Invalid as caught:
                exc = caught
        loc = ["body", f.name, *exc.loc]
        if v2:
            typ, msg, ctx = exc.v2
            item_input = value
            for part in exc.loc:
                item_input = item_input[part]
            err = {"type": typ, "loc": loc, "msg": msg, "input": item_input}
            if ctx:
                err["ctx"] = ctx
            err["url"] = _V2_URL + typ
        else:
            msg, typ, ctx = exc.v1
            err = {"loc": loc, "msg": msg, "type": typ}
            if ctx:
                err["ctx"] = ctx
        errors.append(err)
    if errors:
        return None, errors
    return out, None


# --------------------------------------------------------------------------------------------------
# Infotext parser (§7), used by /png-info
# --------------------------------------------------------------------------------------------------

_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_ATTENTION = re.compile(r"(?<!\\)[(\[]")


def _local_parse_infotext(x: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    prompt, negative, done_with_prompt = "", "", False
    *lines, lastline = x.strip().split("\n")
    if len(_RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for k, v in _RE_PARAM.findall(lastline):
        if v and v[0] == '"' and v[-1] == '"':
            try:
                v = json.loads(v)
            except ValueError:
                pass
        m = _RE_IMAGESIZE.match(v) if isinstance(v, str) else None
        if m is not None:
            res[f"{k}-1"] = m.group(1)
            res[f"{k}-2"] = m.group(2)
        else:
            res[k] = v
    res["Prompt"] = prompt
    res["Negative prompt"] = negative
    defaults: list[tuple[str, Any]] = [
        ("Clip skip", "1"), ("Hires resize-1", 0), ("Hires resize-2", 0), ("Hires sampler", "Use same sampler"),
        ("Hires schedule type", "Use same scheduler"), ("Hires checkpoint", "Use same checkpoint"),
        ("Hires prompt", ""), ("Hires negative prompt", ""), ("Mask mode", "Inpaint masked"),
        ("Masked content", "original"), ("Inpaint area", "Whole picture"), ("Masked area padding", 32),
        ("RNG", "GPU"), ("Schedule type", "Automatic"), ("Schedule max sigma", 0), ("Schedule min sigma", 0),
        ("Schedule rho", 0), ("VAE Encoder", "Full"), ("VAE Decoder", "Full"), ("FP8 weight", "Disable"),
    ]
    for key, value in defaults:
        if key == "Hires resize-2":
            continue
        if key == "Hires resize-1":
            if "Hires resize-1" not in res:
                res["Hires resize-1"] = 0
                res["Hires resize-2"] = 0
            continue
        res.setdefault(key, value)
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False
    if "Emphasis" not in res and (_RE_ATTENTION.search(prompt) or _RE_ATTENTION.search(negative)):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)
    return res


def parse_infotext(text: str) -> dict[str, Any]:
    """Parse an infotext like A1111's `parse_generation_parameters` (the shared parser when present)."""
    from bot import infotext as _infotext_module

    shared = getattr(_infotext_module, "parse_generation_parameters", None)
    if callable(shared):
        try:
            parsed = shared(text)
            if isinstance(parsed, dict):
                return parsed
        except Exception:  # noqa: BLE001 - fall back to the local parser
            log.debug("shared infotext parser failed; using the demo's own", exc_info=True)
    return _local_parse_infotext(text)


# --------------------------------------------------------------------------------------------------
# Procedural images (thread-side; Pillow bulk operations only)
# --------------------------------------------------------------------------------------------------


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0.0, min(1.0, s)), max(0.0, min(1.0, v)))
    return int(r * 255), int(g * 255), int(b * 255)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


_CANVAS = 160


def _soften(layer: Image.Image, radius: float) -> Image.Image:
    """Blur an RGBA layer premultiplied, so transparent black does not darken the edges."""
    return layer.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")


def _scene(key: bytes, width: int, height: int) -> Image.Image:
    """A small landscape-like painting (sky, glow, soft shapes, hills) determined by `key`."""
    rng = random.Random(key)
    scale = _CANVAS / max(width, height)
    cw, ch = max(16, round(width * scale)), max(16, round(height * scale))
    hue = rng.random()
    night = rng.random() < 0.3
    top = _rgb(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.45, 0.8), rng.uniform(0.12, 0.3) if night else rng.uniform(0.45, 0.7))
    horizon = _rgb(hue + rng.choice([0.08, -0.08, 0.5, 0.12]), rng.uniform(0.2, 0.6),
                   rng.uniform(0.4, 0.6) if night else rng.uniform(0.8, 1.0))
    grad = Image.linear_gradient("L").resize((cw, ch), Image.Resampling.BILINEAR)
    img = Image.composite(Image.new("RGB", (cw, ch), horizon), Image.new("RGB", (cw, ch), top), grad)

    layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # a glowing sun or moon
    sun_r = rng.uniform(0.07, 0.16) * max(cw, ch)
    sx, sy = rng.uniform(0.15, 0.85) * cw, rng.uniform(0.12, 0.45) * ch
    sun = _rgb(hue + 0.1, 0.15 if night else 0.45, 1.0)
    for i in range(6, 0, -1):
        r = sun_r * (1 + i * 0.45)
        draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=sun + (int(22 - i * 3),))
    draw.ellipse((sx - sun_r, sy - sun_r, sx + sun_r, sy + sun_r), fill=sun + (235,))
    # soft floating shapes (clouds, bokeh)
    for _ in range(rng.randint(4, 9)):
        r = rng.uniform(0.03, 0.14) * max(cw, ch)
        x, y = rng.uniform(0, cw), rng.uniform(0, ch * 0.6)
        colour = _mix(_rgb(hue + rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.5), 1.0), horizon, rng.random() * 0.5)
        draw.ellipse((x - r * 1.8, y - r, x + r * 1.8, y + r), fill=colour + (rng.randint(40, 110),))
    layer = _soften(layer, max(1.0, cw / 80))
    img = Image.alpha_composite(img.convert("RGBA"), layer)

    # layered hills, lighter (hazier) far away
    hills = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw = ImageDraw.Draw(hills)
    ground = _rgb(hue + rng.choice([0.3, 0.45, 0.55, -0.2]), rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.45))
    layers = rng.randint(2, 4)
    for j in range(layers):
        depth = j / max(1, layers - 1)
        base = ch * (0.5 + 0.35 * depth + rng.uniform(-0.05, 0.05))
        n = rng.randint(5, 11)
        pts = [(0.0, float(ch))]
        phase, amp = rng.uniform(0, 6.28), rng.uniform(0.03, 0.12) * ch
        for k in range(n + 1):
            x = cw * k / n
            pts.append((x, base - amp * math.sin(phase + k * rng.uniform(0.6, 1.4)) - rng.uniform(0, amp * 0.6)))
        pts.append((float(cw), float(ch)))
        colour = _mix(horizon, ground, 0.35 + 0.65 * depth)
        colour = _mix(colour, (0, 0, 0), 0.35 * depth if not night else 0.6 * depth)
        draw.polygon(pts, fill=colour + (255,))
    hills = _soften(hills, max(0.6, cw / 240))
    img = Image.alpha_composite(img, hills).convert("RGB")
    return img


def _noise(key: bytes, width: int, height: int, amplitude: int) -> Image.Image:
    rnd = random.Random(key + b"/grain")
    raw = Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))
    span = 2 * amplitude + 1
    return raw.point([v * span // 256 for v in range(256)] * 3)


def render_image(key: bytes, width: int, height: int, noise: int = 6) -> Image.Image:
    """The deterministic "generated" image for `key` at width x height (RGB)."""
    img = _scene(key, width, height).resize((width, height), Image.Resampling.BICUBIC)
    if noise > 0:
        img = ImageChops.add(img, _noise(key, width, height, noise), 1.0, -noise)
    return img


def _latent_noise(key: bytes, width: int, height: int) -> Image.Image:
    """Coarse colourful noise: what a barely denoised latent decodes to."""
    rnd = random.Random(key + b"/latent")
    lw, lh = max(1, width // 8), max(1, height // 8)
    small = Image.frombytes("RGB", (lw, lh), rnd.randbytes(lw * lh * 3))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def _partial(final: Image.Image, key: bytes, fraction: float) -> Image.Image:
    """An image interrupted at `fraction` of its sampling steps."""
    if fraction >= 1.0:
        return final
    t = max(0.0, min(1.0, fraction)) ** 0.7
    return Image.blend(_latent_noise(key, *final.size), final, t)


def _grid(images: list[Image.Image], rows: int | None = None) -> Image.Image:
    if rows is None:
        rows = max(1, round(math.sqrt(len(images))))
    rows = min(rows, len(images))
    cols = math.ceil(len(images) / rows)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h), (0, 0, 0))
    for i, im in enumerate(images):
        grid.paste(im, (i % cols * w, i // cols * h))
    return grid


def encode_png(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes the way A1111 writes them: every text item via `PngInfo.add_text` (tEXt, or iTXt when not Latin-1)."""
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _b64png(image: Image.Image, text: dict[str, str] | None = None) -> str:
    return _b64png_bytes(image, text).decode("ascii")


def _b64png_bytes(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    return base64.b64encode(encode_png(image, text))


def decode_image(data: str) -> Image.Image:
    """A1111 `decode_base64_to_image` for data URIs and bare base64 (raises ValueError)."""
    if not isinstance(data, str):
        raise ValueError("not a string")
    if data.startswith("data:image/"):
        data = data.split(";", 1)[1].split(",", 1)[1] if ";" in data and "," in data else ""
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
    except Exception as exc:  # noqa: BLE001 - any decoding failure is "Invalid encoded image"
        raise ValueError("Invalid encoded image") from exc
    return ImageOps.exif_transpose(image) or image


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


class _Checkpoint:
    def __init__(self, entry: dict[str, Any]):
        self.entry = entry
        title = entry["title"]
        self.name = re.sub(r" \[[0-9a-f]{8,10}\]$", "", title)
        filename = entry.get("filename") or self.name
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        self.name_for_extra = base.rsplit(".", 1)[0] if "." in base else base
        self.legacy_hash = hashlib.sha256(("legacy:" + filename).encode()).hexdigest()[:8]

    @property
    def shorthash(self) -> str | None:
        return self.entry.get("hash")

    @property
    def sha256(self) -> str | None:
        return self.entry.get("sha256")

    @property
    def title(self) -> str:
        return self.entry["title"]

    def ids(self) -> set[str]:
        ids = {self.legacy_hash, self.entry.get("model_name") or "", self.title, self.name, self.name_for_extra,
               f"{self.name} [{self.legacy_hash}]"}
        if self.shorthash:
            ids |= {self.shorthash, self.sha256 or "", f"{self.name} [{self.shorthash}]",
                    f"{self.name_for_extra} [{self.shorthash}]"}
        ids.discard("")
        return ids

    def ensure_hashed(self) -> None:
        """A never-loaded checkpoint gets its sha256 on first load, and its title gains " [hash]"."""
        if not self.shorthash:
            digest = hashlib.sha256(("sha256:" + (self.entry.get("filename") or self.name)).encode()).hexdigest()
            self.entry["sha256"] = digest
            self.entry["hash"] = digest[:10]
            self.entry["title"] = f"{self.name} [{digest[:10]}]"


# --------------------------------------------------------------------------------------------------
# Server state and errors
# --------------------------------------------------------------------------------------------------


class _State:
    """A1111 `shared.state` (modules/shared_state.py), the part /progress reports."""

    def __init__(self) -> None:
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.job = ""
        self.job_count = 0
        self.job_timestamp = "0"
        self.job_no = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.time_start = time.time()
        self.current_image: str | None = None
        self.current_image_sampling_step = 0
        self.textinfo: str | None = None
        self.preview_source: tuple[list[Image.Image], list[bytes]] | None = None

    def dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "interrupted": self.interrupted,
                "stopping_generation": self.stopping_generation, "job": self.job, "job_count": self.job_count,
                "job_timestamp": self.job_timestamp, "job_no": self.job_no, "sampling_step": self.sampling_step,
                "sampling_steps": self.sampling_steps}

    def begin(self, job: str) -> None:
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.job_no = 0
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self.current_image = None
        self.current_image_sampling_step = 0
        self.skipped = self.interrupted = self.stopping_generation = False
        self.textinfo = None
        self.job = job
        self.preview_source = None

    def nextjob(self, *, more: bool) -> None:
        self.job_no += 1
        if more:  # the last job's step counter is left stale, as /progress shows it after a job
            self.sampling_step = 0
        self.current_image_sampling_step = 0

    def end(self) -> None:
        self.job = ""
        self.job_count = 0
        self.preview_source = None


class _ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _dumps(obj: Any) -> bytes:
    """FastAPI JSONResponse rendering: compact, non-ASCII kept."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type="application/json", headers=headers)


_OOM_TEXT = ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity; 5.12 GiB already "
             "allocated; 1.02 GiB free; 5.50 GiB reserved in total by PyTorch) If reserved memory is >> allocated "
             "memory try setting max_split_size_mb to avoid fragmentation.  See documentation for Memory Management "
             "and PYTORCH_CUDA_ALLOC_CONF")

_HTTP_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                 422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
                 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class _Plan:
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
    model: _Checkpoint
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


@dataclass(frozen=True, slots=True)
class DemoResponse:
    """What the demo answered to one generation/extras request (for tests comparing what the bot posted)."""

    route: str
    images: list[bytes]
    """The PNG files exactly as sent (base64-decoded), in response order."""
    infotexts: list[str]
    info: dict[str, Any]
    parameters: dict[str, Any]


class _Lazy:
    """A per-image extra parameter computed at infotext time (A1111 stores lambdas; `info` shows null)."""

    def __init__(self, fn: Callable[[int], Any]):
        self.fn = fn


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------

_DEMO_KEY: web.AppKey[DemoWebUI] = web.AppKey("sdcord_demo_webui", object)  # type: ignore[arg-type]


class DemoWebUI:
    """One demo WebUI instance. `app` can be mounted anywhere; `start()` serves it on a port."""

    def __init__(self, config: DemoConfig | None = None):
        self.config = config or DemoConfig()
        self.dialect: Dialect = self.config.dialect
        self.state = _State()
        self.received: list[tuple[str, dict]] = []
        """(route, JSON body) of every generation/extras request, route like "txt2img", oldest first."""
        self.responses: list[DemoResponse] = []
        """Every successful generation/extras answer, oldest first."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.jobs_served = 0
        self._lock = asyncio.Lock()  # FIFO: asyncio.Lock wakes waiters in arrival order and never barges
        self._injections: dict[str, deque[tuple[int, Any]]] = {}
        self._rng = random.Random(self.config.seed)
        self._checkpoints = [_Checkpoint(copy.deepcopy(m)) for m in self.config.models]
        self._styles = {s["name"]: s for s in self.config.styles}
        self._options = _default_options()
        self._options["show_progress_every_n_steps"] = self.config.preview_every
        chosen = self._find_checkpoint(self.config.checkpoint) if self.config.checkpoint else None
        if chosen is None and self._checkpoints:
            chosen = next((c for c in self._checkpoints if c.shorthash), self._checkpoints[0])
        if chosen is not None:
            chosen.ensure_hashed()
            self._options["sd_model_checkpoint"] = chosen.title
            self._options["sd_checkpoint_hash"] = chosen.sha256
        self._settings_model = chosen
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self.port: int | None = None
        self.app = self._build_app()

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL, e.g. http://127.0.0.1:54321."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        log.info("demo WebUI (%s dialect) listening on %s", self.dialect, self.url)
        return self.url

    async def stop(self) -> None:
        await self._cancel_jobs()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _cancel_jobs(self, _app: web.Application | None = None) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> DemoWebUI:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- test hooks

    def _remember(self, history: list, item: Any) -> None:
        history.append(item)
        limit = max(1, self.config.history)
        if len(history) > limit:
            del history[: len(history) - limit]

    def inject_error(self, route: str, status: int, body: Any = None, *, times: int = 1) -> None:
        """Make the next `times` requests to `route` ("txt2img" or "/sdapi/v1/txt2img") answer `status`.

        With body None: a 500 is a CUDA out-of-memory error and anything else an HTTPException, both in
        the configured dialect. A dict/list/str body is sent as JSON; bytes are sent raw (text/plain).
        """
        path = route if route.startswith("/") else API + route
        queue = self._injections.setdefault(path, deque())
        for _ in range(times):
            queue.append((status, body))

    @property
    def checkpoint_titles(self) -> list[str]:
        return [c.title for c in self._checkpoints]

    # ---------------------------------------------------------------- dialect helpers

    def http_exception(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> _ApiError:
        if self.dialect == "forge":
            return _ApiError(status, {"detail": detail}, headers)
        if self.dialect == "sdnext":
            return _ApiError(status, {"error": "HTTPException", "code": status, "detail": detail, "body": "", "errors": ""})
        return _ApiError(status, {"error": "HTTPException", "detail": detail, "body": "", "errors": ""})

    def exception(self, error: str, message: str, status: int = 500) -> _ApiError:
        if self.dialect == "forge":
            return _ApiError(status, {"error": error, "detail": "", "body": "", "message": message})
        if self.dialect == "sdnext":
            return _ApiError(status, {"error": error, "code": status, "detail": "", "body": "", "errors": message})
        return _ApiError(status, {"error": error, "detail": "", "body": "", "errors": message})

    def _oom(self) -> _ApiError:
        text = _OOM_TEXT if self.dialect != "forge" else "CUDA out of memory. Tried to allocate 2.00 GiB"
        return self.exception("OutOfMemoryError", text)

    def _validation(self, errors: list[dict]) -> _ApiError:
        return _ApiError(422, {"detail": errors})

    # ---------------------------------------------------------------- app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app[_DEMO_KEY] = self
        app.on_shutdown.append(self._cancel_jobs)
        r = app.router
        post = {
            "txt2img": self._txt2img, "img2img": self._img2img, "extra-single-image": self._extra_single_image,
            "png-info": self._png_info, "interrupt": self._interrupt, "skip": self._skip, "options": self._set_options,
            "refresh-checkpoints": self._null, "refresh-vae": self._null, "refresh-loras": self._null_noauth,
            "refresh-embeddings": self._null,
        }
        get = {
            "progress": self._progress, "sd-models": self._sd_models, "samplers": self._samplers,
            "upscalers": self._upscalers, "latent-upscale-modes": self._latent_modes,
            "prompt-styles": self._prompt_styles, "loras": self._loras, "options": self._get_options,
            "embeddings": self._embeddings, "scripts": self._scripts, "memory": self._memory,
            "cmd-flags": self._cmd_flags,
        }
        if self.dialect != "sdnext":
            get["schedulers"] = self._schedulers
        if self.dialect == "forge":
            get["sd-modules"] = self._sd_vae
        else:
            get["sd-vae"] = self._sd_vae
        if self.dialect == "sdnext":
            get["version"] = self._sdnext_version
        for name, handler in post.items():
            r.add_post(API + name, handler)
        for name, handler in get.items():
            r.add_get(API + name, handler)  # starlette also answers HEAD on GET routes
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except _ApiError as exc:
            response = self._error_response(exc)
        except web.HTTPException as exc:  # routing: unknown path / wrong method
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            reason = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status, exc.reason)
            response = _json({"detail": reason}, exc.status, headers)
        if self.dialect != "forge":  # Forge disabled A1111's log_and_time middleware
            response.headers["X-Process-Time"] = str(round(time.perf_counter() - started, 4))
        if isinstance(response, web.Response) and isinstance(response.body, (bytes, bytearray)):
            body = bytes(response.body)
            if len(body) >= 1000 and "gzip" in request.headers.get("Accept-Encoding", "").lower():
                compressed = await asyncio.to_thread(gzip.compress, body, 9) if len(body) > 65536 else gzip.compress(body, 9)
                response.body = compressed
                response.headers["Content-Encoding"] = "gzip"
                response.headers["Vary"] = "Accept-Encoding"
        return response

    def _error_response(self, exc: _ApiError) -> web.Response:
        if isinstance(exc.body, (bytes, bytearray)):
            return web.Response(body=bytes(exc.body), status=exc.status, content_type="text/plain", headers=exc.headers)
        return _json(exc.body, exc.status, exc.headers or None)

    # ---------------------------------------------------------------- request plumbing

    def _check_auth(self, request: web.Request) -> None:
        creds = self.config.auth
        if creds is None:
            return
        if self.dialect == "sdnext":
            bad = _ApiError(401, {"error": "HTTPException", "code": 401, "detail": "Unauthorized", "body": "", "errors": ""})
        header = request.headers.get("Authorization", "")
        scheme, _, param = header.partition(" ")
        forge_headers = {"WWW-Authenticate": "Basic"} if self.dialect == "forge" else None
        if not header or scheme.lower() != "basic":
            if self.dialect == "sdnext":
                raise bad
            raise self.http_exception(401, "Not authenticated", forge_headers)
        try:
            decoded = base64.b64decode(param).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            decoded = None
        if decoded is None or ":" not in decoded:
            if self.dialect == "sdnext":
                raise bad
            raise self.http_exception(401, "Invalid authentication credentials", forge_headers)
        user, _, password = decoded.partition(":")
        ok_user = secrets.compare_digest(user.encode(), creds[0].encode())
        ok_pass = secrets.compare_digest(password.encode(), creds[1].encode())
        if not (ok_user and ok_pass):
            if self.dialect == "sdnext":
                raise bad
            raise self.http_exception(401, "Incorrect username or password", forge_headers)

    def _take_injection(self, path: str) -> None:
        queue = self._injections.get(path)
        if not queue:
            return
        status, body = queue.popleft()
        if body is None:
            if status == 500:
                raise self._oom()
            raise self.http_exception(status, _HTTP_REASONS.get(status, "Error"))
        if isinstance(body, str):
            raise _ApiError(status, body)
        raise _ApiError(status, body)

    async def _read_json(self, request: web.Request) -> Any:
        """FastAPI 0.94 body handling: missing body, invalid JSON, non-JSON content type."""
        raw = await request.read()
        if not raw:
            return _MISSING
        ctype = request.headers.get("Content-Type")
        if ctype:
            msg = email.message.Message()
            msg["content-type"] = ctype
            sub = msg.get_content_subtype()
            if msg.get_content_maintype() != "application" or not (sub == "json" or sub.endswith("+json")):
                return raw
        try:
            return await asyncio.to_thread(json.loads, raw) if len(raw) > 262144 else json.loads(raw)
        except json.JSONDecodeError as exc:
            if self.dialect == "forge":
                raise self._validation([{"type": "json_invalid", "loc": ["body", exc.pos], "msg": "JSON decode error",
                                         "input": {}, "ctx": {"error": exc.msg}}]) from None
            raise self._validation([{"loc": ["body", exc.pos], "msg": str(exc), "type": "value_error.jsondecode",
                                     "ctx": {"msg": exc.msg, "doc": exc.doc, "pos": exc.pos, "lineno": exc.lineno,
                                             "colno": exc.colno}}]) from None
        except (UnicodeDecodeError, ValueError):
            raise self.http_exception(400, "There was an error parsing the body") from None

    def _missing_body(self) -> _ApiError:
        if self.dialect == "forge":
            return self._validation([{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None,
                                      "url": _V2_URL + "missing"}])
        return self._validation([{"loc": ["body"], "msg": "field required", "type": "value_error.missing"}])

    async def _body(self, request: web.Request, fields: list[_F], *, record: bool = False,
                    auth: bool = True) -> dict[str, Any]:
        """Parse, record, authenticate, validate, inject: in FastAPI's order."""
        body = await self._read_json(request)
        if record and isinstance(body, dict):
            self._remember(self.received, (request.path.removeprefix(API), body))
        if auth:
            self._check_auth(request)
        if body is _MISSING:
            raise self._missing_body()
        values, errors = validate_request(fields, body, self.dialect)
        if errors:
            raise self._validation(errors)
        self._take_injection(request.path)
        assert values is not None
        return values

    def _guard(self, request: web.Request, *, auth: bool = True) -> None:
        if auth:
            self._check_auth(request)
        self._take_injection(request.path)

    # ---------------------------------------------------------------- catalogue routes

    async def _sd_models(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json([c.entry for c in self._checkpoints])

    async def _samplers(self, request: web.Request) -> web.Response:
        self._guard(request)
        if self.dialect == "forge":  # dict[str, Any]: real booleans
            return _json([{**s, "options": {k: (True if v == _T else v) for k, v in s["options"].items()}}
                          for s in SAMPLERS])
        return _json(SAMPLERS)

    async def _schedulers(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json(SCHEDULERS)

    async def _upscalers(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json(UPSCALERS)

    async def _latent_modes(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json([{"name": n} for n in LATENT_UPSCALE_MODES])

    async def _prompt_styles(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json([{"name": s["name"], "prompt": s.get("prompt", ""), "negative_prompt": s.get("negative_prompt", "")}
                      for s in self.config.styles])

    async def _loras(self, request: web.Request) -> web.Response:
        self._guard(request, auth=False)  # registered by the Lora extension with a bare @app.get: no --api-auth
        return _json(self.config.loras)

    async def _sd_vae(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json(VAES)

    async def _embeddings(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json(EMBEDDINGS)

    async def _scripts(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json({"txt2img": TXT2IMG_SCRIPTS, "img2img": IMG2IMG_SCRIPTS})

    async def _memory(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json({"ram": {"free": 24.0e9, "used": 8.0e9, "total": 32.0e9}, "cuda": {"error": "unavailable"}})

    async def _cmd_flags(self, request: web.Request) -> web.Response:
        self._guard(request)
        flags = {"api": True, "nowebui": False, "listen": False, "port": self.port,
                 "api_auth": None if self.config.auth is None else "***", "skip_torch_cuda_test": True}
        return _json(flags)

    async def _sdnext_version(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json({"app": "sd.next", "updated": "2025-03-02", "hash": "431bcc36",
                      "url": "https://github.com/vladmandic/sdnext/tree/master"})

    async def _get_options(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json(self._options)

    async def _set_options(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        self._check_auth(request)
        if body is _MISSING:
            raise self._missing_body()
        if not isinstance(body, dict):
            raise self._validation([{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}])
        self._take_injection(request.path)
        for key, value in body.items():
            if key == "sd_model_checkpoint":
                ckpt = self._find_checkpoint(value) if isinstance(value, str) else None
                if ckpt is None:
                    raise self.exception("RuntimeError", f"model {value!r} not found")
                ckpt.ensure_hashed()
                self._settings_model = ckpt
                self._options["sd_model_checkpoint"] = ckpt.title
                self._options["sd_checkpoint_hash"] = ckpt.sha256
            elif key not in self._options:
                raise self.exception("KeyError", repr(key))
            else:
                self._options[key] = value
        if self.dialect == "sdnext":
            return _json({"updated": [{k: True} for k in body]})
        return _json(None)

    async def _null(self, request: web.Request) -> web.Response:
        self._guard(request)
        return _json(None)

    async def _null_noauth(self, request: web.Request) -> web.Response:
        self._guard(request, auth=False)
        return _json(None)

    async def _interrupt(self, request: web.Request) -> web.Response:
        self._guard(request)
        self.state.interrupted = True
        return _json({})

    async def _skip(self, request: web.Request) -> web.Response:
        self._guard(request)
        self.state.skipped = True
        return _json(None)

    # ---------------------------------------------------------------- progress

    async def _progress(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        raw = request.query.get("skip_current_image", "false")
        try:
            skip = _coerce_v1("b", raw) if self.dialect != "forge" else _coerce_v2("b", raw)
        except _Invalid:
            if self.dialect == "forge":
                raise self._validation([{"type": "bool_parsing", "loc": ["query", "skip_current_image"],
                                         "msg": "Input should be a valid boolean, unable to interpret input",
                                         "input": raw, "url": _V2_URL + "bool_parsing"}]) from None
            raise self._validation([{"loc": ["query", "skip_current_image"],
                                     "msg": "value could not be parsed to a boolean", "type": "type_error.bool"}]) from None
        self._take_injection(request.path)
        st = self.state
        if st.job_count == 0:
            return _json({"progress": 0.0, "eta_relative": 0.0, "state": st.dict(), "current_image": None,
                          "textinfo": st.textinfo})
        progress = 0.01
        if st.job_count > 0:
            progress += st.job_no / st.job_count
        if st.sampling_steps > 0 and st.job_count != 0:
            progress += 1 / st.job_count * st.sampling_step / st.sampling_steps
        elapsed = time.time() - st.time_start
        eta_relative = elapsed / progress - elapsed
        progress = min(progress, 1)
        if not skip:
            await self._set_current_image()
        current = st.current_image if not skip else None
        return _json({"progress": progress, "eta_relative": eta_relative, "state": st.dict(),
                      "current_image": current, "textinfo": st.textinfo})

    async def _set_current_image(self) -> None:
        st = self.state
        every = int(self._options.get("show_progress_every_n_steps", self.config.preview_every) or 0)
        if not self._options.get("live_previews_enable", True) or every == -1 or st.preview_source is None:
            return
        if st.sampling_step - st.current_image_sampling_step < every:
            return
        step, steps = st.sampling_step, max(1, st.sampling_steps)
        thumbs, keys = st.preview_source
        fraction = (step + 1) / steps
        st.current_image_sampling_step = step
        preview = await asyncio.to_thread(self._render_preview, thumbs, keys, fraction)
        if st.preview_source is not None and st.preview_source[0] is thumbs:
            st.current_image = preview

    @staticmethod
    def _render_preview(thumbs: list[Image.Image], keys: list[bytes], fraction: float) -> str:
        frames = [_partial(t, k, fraction) for t, k in zip(thumbs, keys, strict=True)]
        image = _grid(frames) if len(frames) > 1 else frames[0]
        return _b64png(image)

    # ---------------------------------------------------------------- generation: planning

    def _find_checkpoint(self, alias: str) -> _Checkpoint | None:
        for ckpt in self._checkpoints:
            if alias in ckpt.ids():
                return ckpt
        return None

    def _apply_styles(self, text: str, names: list[str], key: str) -> str:
        for name in names:
            style = self._styles.get(name)
            if style is None:
                continue
            style_text = style.get(key) or ""
            if "{prompt}" in style_text:
                text = style_text.replace("{prompt}", text)
            else:
                text = ", ".join(p for p in (text.strip(), style_text.strip()) if p)
        return text

    def _resolve_sampler(self, name: str | None, scheduler: str | None) -> tuple[str, str | None]:
        """v1.10 `get_sampler_and_scheduler` + processing-time autocorrection + `get_sigmas` default."""
        names = {s["name"]: s for s in SAMPLERS}
        by_key = {**{s["name"]: s for s in SCHEDULERS}, **{s["label"]: s for s in SCHEDULERS}}
        automatic = SCHEDULERS[0]
        if self.config.strict_samplers:  # v1.9: exact lookup, 404 otherwise; no name splitting
            sampler = names.get(name or "")
            if sampler is None:
                raise self.http_exception(404, "Sampler not found")
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
                resolved = resolved[: -(len(sch["label"]) + 1)]
                break
        sampler = names.get(resolved, SAMPLERS[0])
        if sampler["options"].get("scheduler") == found["name"]:
            found = automatic
        if found is automatic and sampler["options"].get("scheduler"):
            found = by_key[sampler["options"]["scheduler"]]
        return sampler["name"], found["label"]

    def _check_scripts(self, req: dict[str, Any], kind: str) -> None:
        selectable = TXT2IMG_SCRIPTS if kind == "txt2img" else IMG2IMG_SCRIPTS
        alwayson = ALWAYSON_SCRIPTS if kind == "txt2img" else IMG2IMG_ALWAYSON_SCRIPTS
        script_name = req.get("script_name")
        if script_name and script_name.lower() not in selectable:
            raise self.http_exception(422, f"Script '{script_name}' not found")
        for name in (req.get("alwayson_scripts") or {}):
            lowered = str(name).lower()
            if lowered in alwayson:
                continue
            if lowered in selectable:
                raise self.http_exception(422, "Cannot have a selectable script in the always on scripts params")
            raise self.http_exception(422, f"Script '{name}' not found")

    def _plan(self, req: dict[str, Any], kind: str) -> _Plan:
        self._check_scripts(req, kind)
        for key in ("steps", "width", "height", "batch_size", "n_iter", "cfg_scale"):
            if req[key] is None:
                raise self.exception("TypeError", "unsupported operand type(s) for *: 'NoneType' and 'int'")
        sampler, schedule = self._resolve_sampler(req["sampler_name"] or req["sampler_index"], req["scheduler"])

        opts = dict(self._options)
        model = self._settings_model
        override = req.get("override_settings") or {}
        if not isinstance(override, dict):
            override = {}
        for key, value in override.items():
            if key == "sd_model_checkpoint":
                found = self._find_checkpoint(value) if isinstance(value, str) else None
                if found is not None:  # an unknown checkpoint is dropped silently (runs on the settings model)
                    model = found
                continue
            if key not in opts:
                raise self.exception("KeyError", repr(key))
            if key not in ("api_enable_requests", "api_forbid_local_requests", "api_useragent"):
                opts[key] = value
        if model is None:
            raise self.exception("RuntimeError", "No checkpoints found")

        for key in ("refiner_checkpoint",) + (("hr_checkpoint_name",) if kind == "txt2img" else ()):
            name = req.get(key)
            if name and name not in ("None", "Use same checkpoint") and self._find_checkpoint(name) is None:
                raise self.exception("Exception", f"Could not find checkpoint with name {name}")

        batch_size, n_iter = req["batch_size"], req["n_iter"]
        init_images: list[str] = []
        if kind == "img2img":
            if req["init_images"] is None:
                if self.dialect == "sdnext":
                    raise _ApiError(400, {"error": "Init image is none"})
                raise self.http_exception(404, "Init image not found")
            init_images = req["init_images"]
            if len(init_images) > batch_size:
                raise self.exception("RuntimeError",
                                     f"bad number of images passed: {len(init_images)}; expecting {batch_size} or less")
            if len(init_images) > 1:
                batch_size = len(init_images)
        total = max(0, batch_size) * max(0, n_iter)

        styles = req["styles"] or []
        prompts = [self._apply_styles(req["prompt"] or "", styles, "prompt")] * total
        negatives = [self._apply_styles(req["negative_prompt"] or "", styles, "negative_prompt")] * total
        seed = req["seed"]
        if seed is None or seed == -1:
            seed = self._rng.randrange(4294967294)
        subseed = req["subseed"]
        if subseed is None or subseed == -1:
            subseed = self._rng.randrange(4294967294)
        strength = req["subseed_strength"] or 0
        seeds = [int(seed) + (k if strength == 0 else 0) for k in range(total)]
        subseeds = [int(subseed) + k for k in range(total)]

        width, height, steps = req["width"], req["height"], req["steps"]
        out_w, out_h = width // 8 * 8, height // 8 * 8
        extra: dict[str, Any] = {}
        denoising = req["denoising_strength"]
        plan = _Plan(kind=kind, req=req, prompts=prompts, negatives=negatives, seeds=seeds, subseeds=subseeds,
                     subseed_strength=float(strength), batch_size=batch_size, n_iter=n_iter, steps=steps,
                     sampling_steps=max(1, steps), width=width, height=height, out_w=out_w, out_h=out_h,
                     sampler=sampler, schedule=schedule, cfg=float(req["cfg_scale"]), model=model, opts=opts,
                     extra=extra, denoising=denoising, init_images=init_images)
        if kind == "txt2img" and req["enable_hr"]:
            self._plan_hires(plan)
        if kind == "img2img":
            plan.mask = req["mask"]
            if denoising is not None:
                plan.sampling_steps = int(min(denoising, 0.999) * max(1, steps)) + 1
            if plan.mask is not None:
                blur = req["mask_blur"]
                if blur is not None:
                    extra["Mask blur"] = blur
                elif req["mask_blur_x"] == req["mask_blur_y"]:
                    extra["Mask blur"] = req["mask_blur_x"]
                else:
                    extra["Mask blur x"] = req["mask_blur_x"]
                    extra["Mask blur y"] = req["mask_blur_y"]
                if req["inpainting_mask_invert"]:
                    extra["Mask mode"] = "Inpaint not masked"
                fills = ["fill", "original", "latent noise", "latent nothing"]
                extra["Masked content"] = fills[req["inpainting_fill"]] if 0 <= (req["inpainting_fill"] or 0) < 4 else None
                if req["inpaint_full_res"]:
                    extra["Inpaint area"] = "Only masked"
                    extra["Masked area padding"] = req["inpaint_full_res_padding"]
        self._network_hashes(plan)
        if schedule not in (None, "Automatic"):
            extra["Schedule type"] = schedule
        vae = opts.get("sd_vae")
        plan.vae = vae if any(v["model_name"] == vae for v in VAES) else None
        return plan

    def _plan_hires(self, plan: _Plan) -> None:
        req, extra = plan.req, plan.extra
        plan.hr = True
        extra["Denoising strength"] = plan.denoising
        hr_sampler = req["hr_sampler_name"]
        if hr_sampler is not None and hr_sampler != plan.sampler:
            extra["Hires sampler"] = hr_sampler
        prompt0, neg0 = req["prompt"] or "", req["negative_prompt"] or ""
        hr_prompt, hr_neg = req["hr_prompt"] or "", req["hr_negative_prompt"] or ""
        extra["Hires prompt"] = _Lazy(lambda k: hr_prompt if hr_prompt and hr_prompt != prompt0 else None)
        extra["Hires negative prompt"] = _Lazy(lambda k: hr_neg if hr_neg and hr_neg != neg0 else None)
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

    def _network_hashes(self, plan: _Plan) -> None:
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

    # ---------------------------------------------------------------- generation: running

    def _image_key(self, plan: _Plan, k: int) -> bytes:
        parts = [plan.prompts[k], plan.negatives[k], str(plan.seeds[k]), plan.model.name_for_extra]
        if plan.subseed_strength != 0:
            parts += [str(plan.subseeds[k]), repr(plan.subseed_strength)]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()

    def _render_batch(self, plan: _Plan, indices: range, inits: list[Image.Image], mask: Image.Image | None,
                      width: int, height: int) -> tuple[list[Image.Image], list[Image.Image], list[bytes]]:
        finals, thumbs, keys = [], [], []
        noise = self.config.noise
        for n, k in enumerate(indices):
            key = self._image_key(plan, k)
            image = render_image(key, width, height, noise)
            if inits:
                init = inits[n % len(inits)]
                resized = _fit(init, width, height, plan.req.get("resize_mode") or 0)
                alpha = max(0.0, min(1.0, plan.denoising if plan.denoising is not None else 0.75))
                blended = Image.blend(resized, image, alpha)
                if mask is not None:
                    m = _fit(mask, width, height, plan.req.get("resize_mode") or 0).convert("L")
                    if plan.req.get("inpainting_mask_invert"):
                        m = ImageOps.invert(m)
                    blended = Image.composite(blended, resized, m)
                image = blended
            finals.append(image)
            thumb = image.copy()
            thumb.thumbnail((128, 128))
            thumbs.append(thumb)
            keys.append(key)
        return finals, thumbs, keys

    async def _sample(self, steps: int) -> float:
        st = self.state
        st.sampling_steps = steps
        delay = self.config.step_delay
        for i in range(steps):
            if st.interrupted or st.skipped or st.stopping_generation:
                return i / steps
            st.sampling_step = i
            await asyncio.sleep(delay)
        return 1.0

    async def _run_generation(self, plan: _Plan) -> list[Image.Image]:
        async with self._lock:
            st = self.state
            st.begin("scripts_txt2img" if plan.kind == "txt2img" else "scripts_img2img")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await self._generate(plan)
            finally:
                st.end()
                self.in_flight -= 1

    async def _generate(self, plan: _Plan) -> list[Image.Image]:
        st, req = self.state, plan.req
        await asyncio.sleep(self.config.load_delay)
        plan.model.ensure_hashed()
        inits: list[Image.Image] = []
        mask = None
        if plan.kind == "img2img":
            try:
                inits = await asyncio.to_thread(lambda: [decode_image(x).convert("RGB") for x in plan.init_images])
                if plan.mask is not None:
                    mask = await asyncio.to_thread(decode_image, plan.mask)
            except ValueError:
                raise self.http_exception(500, "Invalid encoded image") from None
            if plan.denoising is None:
                raise self.exception("TypeError", "'<' not supported between instances of 'float' and 'NoneType'")
        if plan.out_w < 8 or plan.out_h < 8:
            raise self.exception("RuntimeError", "Given input size: (4x0x0). Calculated output size is too small")
        final_w, final_h = (plan.hr_w, plan.hr_h) if plan.hr else (plan.out_w, plan.out_h)
        if plan.hr and (final_w < 8 or final_h < 8):
            raise self.exception("RuntimeError", "Calculated hires size is too small")
        if final_w * final_h * max(1, plan.batch_size) * max(1, plan.n_iter) > self.config.max_pixels:
            raise self._oom()
        if plan.hr:
            upscaler = req["hr_upscaler"]
            if upscaler is not None and upscaler not in LATENT_UPSCALE_MODES and not any(
                    u["name"] == upscaler for u in UPSCALERS):
                raise self.exception("Exception", f"could not find upscaler named {upscaler}")

        st.job_count = plan.n_iter * (2 if plan.hr else 1)
        images: list[Image.Image] = []
        bs = plan.batch_size
        for n in range(plan.n_iter):
            if st.skipped:
                st.skipped = False
            if st.interrupted or st.stopping_generation:
                break
            if plan.n_iter > 1:
                st.job = f"Batch {n + 1} out of {plan.n_iter}"
            indices = range(n * bs, (n + 1) * bs)
            finals, thumbs, keys = await asyncio.to_thread(self._render_batch, plan, indices, inits, mask,
                                                           final_w, final_h)
            st.preview_source = (thumbs, keys)
            last = n == plan.n_iter - 1
            fraction = await self._sample(plan.sampling_steps)
            if plan.hr and not (st.interrupted or st.skipped or st.stopping_generation):
                st.nextjob(more=True)
                hr_sampler = req["hr_sampler_name"]
                if hr_sampler is not None and hr_sampler not in {s["name"] for s in SAMPLERS}:
                    raise self.exception("AssertionError", f"bad sampler name: {hr_sampler}")
                if plan.denoising is None:
                    raise self.exception("TypeError", "'>' not supported between instances of 'NoneType' and 'int'")
                hr_fraction = await self._sample(plan.hr_steps)
                outs = await asyncio.to_thread(_finish, finals, keys, None, 0.5 + 0.5 * hr_fraction)
            else:  # no hires pass (or it was interrupted before it): first-pass size
                outs = await asyncio.to_thread(_finish, finals, keys, (plan.out_w, plan.out_h), fraction)
            images.extend(outs)
            st.nextjob(more=not last)
        self.jobs_served += 1
        return images

    def _infotext(self, plan: _Plan, k: int) -> str:
        req, opts = plan.req, plan.opts
        restore = req["restore_faces"] if req["restore_faces"] is not None else bool(opts.get("face_restoration"))
        tiling = req["tiling"] if req["tiling"] is not None else bool(opts.get("tiling"))
        clip_skip = opts.get("CLIP_stop_at_last_layers") or 1
        sampler_opts = next((s["options"] for s in SAMPLERS if s["name"] == plan.sampler), {})
        ensd = opts.get("eta_noise_seed_delta") or 0
        w_from, h_from = req["seed_resize_from_w"], req["seed_resize_from_h"]
        tm = opts.get("token_merging_ratio") or 0
        params: dict[str, Any] = {
            "Steps": plan.steps,
            "Sampler": plan.sampler,
            "Schedule type": plan.schedule,
            "CFG scale": plan.cfg,
            "Image CFG scale": req.get("image_cfg_scale"),
            "Seed": plan.seeds[k],
            "Face restoration": opts.get("face_restoration_model") if restore else None,
            "Size": f"{plan.width}x{plan.height}",
            "Model hash": plan.model.shorthash if opts.get("add_model_hash_to_info") else None,
            "Model": plan.model.name_for_extra if opts.get("add_model_name_to_info") else None,
            "VAE hash": hashlib.sha256(plan.vae.encode()).hexdigest()[:10] if plan.vae else None,
            "VAE": plan.vae,
            "Variation seed": None if plan.subseed_strength == 0 else plan.subseeds[k],
            "Variation seed strength": None if plan.subseed_strength == 0 else plan.subseed_strength,
            "Seed resize from": None if (w_from or -1) <= 0 or (h_from or -1) <= 0 else f"{w_from}x{h_from}",
            "Denoising strength": plan.denoising if plan.kind == "img2img" else None,
            "Clip skip": None if clip_skip <= 1 else clip_skip,
            "ENSD": ensd if ensd != 0 and sampler_opts.get("uses_ensd") else None,
            "Token merging ratio": None if tm == 0 else tm,
            "RNG": None if opts.get("randn_source") in (None, "GPU") else opts.get("randn_source"),
            "Tiling": "True" if tiling else None,
        }
        for key, value in plan.extra.items():
            params[key] = value.fn(k) if isinstance(value, _Lazy) else value
        params["Version"] = self.config.effective_version if opts.get("add_version_to_infotext") else None
        return create_infotext(plan.prompts[k], plan.negatives[k], params)

    def _info(self, plan: _Plan, infotexts: list[str], index_of_first_image: int) -> dict[str, Any]:
        req, opts = plan.req, plan.opts
        restore = req["restore_faces"] if req["restore_faces"] is not None else bool(opts.get("face_restoration"))
        return {
            "prompt": plan.prompts[0] if plan.prompts else req["prompt"],
            "all_prompts": plan.prompts,
            "negative_prompt": plan.negatives[0] if plan.negatives else req["negative_prompt"],
            "all_negative_prompts": plan.negatives,
            "seed": plan.seeds[0] if plan.seeds else -1,
            "all_seeds": plan.seeds,
            "subseed": plan.subseeds[0] if plan.subseeds else -1,
            "all_subseeds": plan.subseeds,
            "subseed_strength": plan.subseed_strength,
            "width": plan.width,
            "height": plan.height,
            "sampler_name": plan.sampler,
            "cfg_scale": plan.cfg,
            "steps": plan.steps,
            "batch_size": plan.batch_size,
            "restore_faces": restore,
            "face_restoration_model": opts.get("face_restoration_model") if restore else None,
            "sd_model_name": plan.model.name_for_extra,
            "sd_model_hash": plan.model.shorthash,
            "sd_vae_name": plan.vae,
            "sd_vae_hash": hashlib.sha256(plan.vae.encode()).hexdigest()[:10] if plan.vae else None,
            "seed_resize_from_w": req["seed_resize_from_w"],
            "seed_resize_from_h": req["seed_resize_from_h"],
            "denoising_strength": plan.denoising,
            "extra_generation_params": {k: (None if isinstance(v, _Lazy) else v) for k, v in plan.extra.items()},
            "index_of_first_image": index_of_first_image,
            "infotexts": infotexts,
            "styles": req["styles"] or [],
            "job_timestamp": self.state.job_timestamp,
            "clip_skip": opts.get("CLIP_stop_at_last_layers") or 1,
            "is_using_inpainting_conditioning": False,
            "version": self.config.effective_version,
        }

    async def _generation(self, request: web.Request, kind: str) -> web.Response:
        fields = TXT2IMG_FIELDS if kind == "txt2img" else IMG2IMG_FIELDS
        req = await self._body(request, fields, record=True)
        plan = self._plan(req, kind)
        task = asyncio.ensure_future(self._run_generation(plan))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # the job runs to completion even if the client goes away (A1111 never cancels a job)
        images = await asyncio.shield(task)
        job_timestamp = self.state.job_timestamp
        infotexts = [self._infotext(plan, k) for k in range(len(images))]
        index_of_first_image = 0
        if req["save_images"] and len(images) >= 2 and plan.opts.get("return_grid", True):
            grid = await asyncio.to_thread(_grid, images)
            images = [grid, *images]
            infotexts = [infotexts[0], *infotexts]
            index_of_first_image = 1
        if req["send_images"]:
            pngs = await asyncio.gather(*(asyncio.to_thread(encode_png, im, {"parameters": text})
                                          for im, text in zip(images, infotexts, strict=True)))
            encoded = await asyncio.to_thread(lambda: [base64.b64encode(png) for png in pngs])
        else:
            pngs, encoded = [], []
        info = self._info(plan, infotexts, index_of_first_image)
        info["job_timestamp"] = job_timestamp
        echo = dict(req)
        if kind == "img2img" and not req["include_init_images"]:
            echo["init_images"] = None
            echo["mask"] = None
        body = await asyncio.to_thread(self._render_generation_body, encoded, echo, info)
        self._remember(self.responses, DemoResponse(kind, list(pngs), infotexts, info, echo))
        return web.Response(body=body, content_type="application/json")

    @staticmethod
    def _render_generation_body(images: list[bytes], parameters: dict[str, Any], info: dict[str, Any]) -> bytes:
        """Same bytes as FastAPI's rendering; base64 needs no escaping, so the (multi-MB) images are spliced
        in rather than run through json.dumps, which would hold the GIL for the whole body."""
        info_text = json.dumps(info, default=lambda o: None)  # Processed.js(): default separators, ensure_ascii
        return b"".join((b'{"images":[', b",".join(b'"' + image + b'"' for image in images), b'],"parameters":',
                         _dumps(parameters), b',"info":', _dumps(info_text), b"}"))

    async def _txt2img(self, request: web.Request) -> web.Response:
        return await self._generation(request, "txt2img")

    async def _img2img(self, request: web.Request) -> web.Response:
        return await self._generation(request, "img2img")

    # ---------------------------------------------------------------- extras and png-info

    async def _extra_single_image(self, request: web.Request) -> web.Response:
        req = await self._body(request, EXTRAS_FIELDS, record=True)
        names = {u["name"] for u in UPSCALERS}
        task = asyncio.ensure_future(self._run_extras(req, names))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        html_info, image_b64 = await asyncio.shield(task)
        self._remember(self.responses, DemoResponse("extra-single-image", [base64.b64decode(image_b64)], [],
                                                    {"html_info": html_info}, req))
        return _json({"html_info": html_info, "image": image_b64})

    async def _run_extras(self, req: dict[str, Any], names: set[str]) -> tuple[str, str]:
        async with self._lock:
            st = self.state
            st.begin("extras")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                try:
                    image = await asyncio.to_thread(decode_image, req["image"])
                except ValueError:
                    raise self.http_exception(500, "Invalid encoded image") from None
                st.job_count = 1
                info: dict[str, Any] = {}
                up1 = None if req["upscaler_1"] == "None" else req["upscaler_1"]
                if up1 is not None and up1 not in names:
                    raise self.exception("AssertionError", f"could not find upscaler named {up1}")
                if up1 is not None:
                    by = req["upscaling_resize"]
                    if req["resize_mode"] == 1:
                        target = (req["upscaling_resize_w"], req["upscaling_resize_h"])
                        info["Postprocess upscale to"] = f"{target[0]}x{target[1]}"
                        info["Postprocess crop to"] = f"{target[0]}x{target[1]}" if req["upscaling_crop"] else None
                    else:
                        target = (max(1, int(image.width * by)), max(1, int(image.height * by)))
                        info["Postprocess upscale by"] = int(by) if float(by).is_integer() else by
                    info["Postprocess upscaler"] = up1
                    up2 = None if req["upscaler_2"] == "None" else req["upscaler_2"]
                    if up2 is not None and req["extras_upscaler_2_visibility"] > 0:
                        if up2 not in names:
                            raise self.exception("AssertionError", f"could not find upscaler named {up2}")
                        info["Postprocess upscaler 2"] = up2
                    if target[0] * target[1] > self.config.max_pixels:
                        raise self._oom()
                else:
                    target = image.size
                st.sampling_steps = 1
                st.sampling_step = 0
                await asyncio.sleep(self.config.step_delay)
                text = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in info.items() if v is not None)
                html = "<p>" + "<br>\n".join(_html_escape(line) for line in text.split("\n")) + "</p>" if text else "<p></p>"
                encoded = await asyncio.to_thread(self._upscale_encode, image, target, up1, bool(req["resize_mode"] == 1
                                                                                                 and req["upscaling_crop"]), text)
                st.nextjob(more=False)
                self.jobs_served += 1
                return html, encoded
            finally:
                st.end()
                self.in_flight -= 1

    @staticmethod
    def _upscale_encode(image: Image.Image, target: tuple[int, int], upscaler: str | None, crop: bool, text: str) -> str:
        texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
        out = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        if upscaler is not None and target != image.size:
            method = Image.Resampling.NEAREST if upscaler == "Nearest" else Image.Resampling.LANCZOS
            if crop:
                out = ImageOps.fit(out, target, method)
            else:
                out = out.resize(target, method)
            if upscaler not in ("Nearest", "Lanczos"):
                out = out.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))
        if text:
            texts["postprocessing"] = text
        return _b64png(out, texts)

    async def _png_info(self, request: web.Request) -> web.Response:
        req = await self._body(request, PNGINFO_FIELDS)
        data = req["image"].strip()
        if not data:
            return _json({"info": "", "items": {}, "parameters": {}})
        try:
            image = await asyncio.to_thread(decode_image, data)
        except ValueError:
            raise self.http_exception(500, "Invalid encoded image") from None
        items = dict(image.info or {})
        geninfo = items.pop("parameters", None)
        for key in ("jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background",
                    "timestamp", "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop"):
            items.pop(key, None)
        items = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in items.items()
                 if isinstance(v, (str, int, float, bool, bytes))}
        geninfo = geninfo if isinstance(geninfo, str) else ""
        return _json({"info": geninfo, "items": items, "parameters": parse_infotext(geninfo)})


_MISSING: Any = object()


def _finish(finals: list[Image.Image], keys: list[bytes], size: tuple[int, int] | None,
            fraction: float) -> list[Image.Image]:
    """The batch's output images: resized to `size` if given, partially denoised if interrupted."""
    out = []
    for image, key in zip(finals, keys, strict=True):
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        out.append(_partial(image, key, fraction))
    return out


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _fit(image: Image.Image, width: int, height: int, resize_mode: int) -> Image.Image:
    """img2img resize modes: 0 just resize, 1 crop and resize, 2 resize and fill (3 latent = 0)."""
    image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    if image.size == (width, height):
        return image
    if resize_mode == 1:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if resize_mode == 2:
        inner = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        canvas = inner.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(8))
        canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
        return canvas
    return image.resize((width, height), Image.Resampling.LANCZOS)


def create_app(config: DemoConfig) -> web.Application:
    """An aiohttp application serving a fresh demo WebUI (its DemoWebUI is `app[...]`, see `demo_of`)."""
    return DemoWebUI(config).app


def demo_of(app: web.Application) -> DemoWebUI:
    """The DemoWebUI behind an app made by `create_app`."""
    return app[_DEMO_KEY]


async def serve(host: str, port: int, config: DemoConfig) -> None:
    """Run a demo WebUI on host:port until cancelled (for `sdcord demo-webui`)."""
    demo = DemoWebUI(config)
    url = await demo.start(host, port)
    log.info("demo WebUI ready at %s (API at %s/sdapi/v1/)", url, url)
    try:
        await asyncio.Event().wait()
    finally:
        await demo.stop()


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description="sdcord demo Stable Diffusion WebUI (no GPU)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--step-delay", type=float, default=0.05)
    parser.add_argument("--api-auth", default=None, help="user:pass")
    parser.add_argument("--dialect", choices=["a1111", "forge", "sdnext"], default="a1111")
    args = parser.parse_args(argv)
    auth = tuple(args.api_auth.split(":", 1)) if args.api_auth else None
    logging.basicConfig(level=logging.INFO)
    config = DemoConfig(step_delay=args.step_delay, auth=auth, dialect=args.dialect)  # type: ignore[arg-type]
    try:
        asyncio.run(serve(args.host, args.port, config))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
