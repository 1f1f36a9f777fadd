"""What the demo WebUI knows: its catalogue (A1111 v1.10.1 samplers, schedulers, upscalers, models,
styles, LoRAs, options) and `DemoConfig`.

Samplers and schedulers are exactly as in the reference fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

API = "/sdapi/v1/"
Dialect = Literal["a1111", "forge", "sdnext"]
Kind = Literal["webui", "form"]
FORGE_VERSION = "f2.0.1v1.10.1-previous-669-gdfdcbab6"

TRUE = "True"  # sampler option flags are strings in A1111 (Forge sends booleans)
SAMPLERS: list[dict[str, Any]] = [
    {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}},
    {"name": "DPM++ SDE", "aliases": ["k_dpmpp_sde"],
     "options": {"scheduler": "karras", "second_order": TRUE, "brownian_noise": TRUE}},
    {"name": "DPM++ 2M SDE", "aliases": ["k_dpmpp_2m_sde"],
     "options": {"scheduler": "exponential", "brownian_noise": TRUE}},
    {"name": "DPM++ 2M SDE Heun", "aliases": ["k_dpmpp_2m_sde_heun"],
     "options": {"scheduler": "exponential", "brownian_noise": TRUE, "solver_type": "heun"}},
    {"name": "DPM++ 2S a", "aliases": ["k_dpmpp_2s_a"],
     "options": {"scheduler": "karras", "uses_ensd": TRUE, "second_order": TRUE}},
    {"name": "DPM++ 3M SDE", "aliases": ["k_dpmpp_3m_sde"],
     "options": {"scheduler": "exponential", "discard_next_to_last_sigma": TRUE, "brownian_noise": TRUE}},
    {"name": "Euler a", "aliases": ["k_euler_a", "k_euler_ancestral"], "options": {"uses_ensd": TRUE}},
    {"name": "Euler", "aliases": ["k_euler"], "options": {}},
    {"name": "LMS", "aliases": ["k_lms"], "options": {}},
    {"name": "Heun", "aliases": ["k_heun"], "options": {"second_order": TRUE}},
    {"name": "DPM2", "aliases": ["k_dpm_2"],
     "options": {"scheduler": "karras", "discard_next_to_last_sigma": TRUE, "second_order": TRUE}},
    {"name": "DPM2 a", "aliases": ["k_dpm_2_a"],
     "options": {"scheduler": "karras", "discard_next_to_last_sigma": TRUE, "uses_ensd": TRUE, "second_order": TRUE}},
    {"name": "DPM fast", "aliases": ["k_dpm_fast"], "options": {"uses_ensd": TRUE}},
    {"name": "DPM adaptive", "aliases": ["k_dpm_ad"], "options": {"uses_ensd": TRUE}},
    {"name": "Restart", "aliases": ["restart"], "options": {"scheduler": "karras", "second_order": TRUE}},
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

EXTENSIONS = ("adetailer",)
"""Extensions `DemoConfig.extensions` can install (`sdcord demo-webui --extension NAME`)."""
EXTENSION_SCRIPTS = {"adetailer": "adetailer"}
"""Each extension's always-on script, by its lower-cased title (what /scripts lists and
`alwayson_scripts` keys are matched against, case-insensitively)."""


def default_options() -> dict[str, Any]:
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
        "interrogate_keep_models_in_memory": False, "interrogate_return_ranks": False,
        "interrogate_clip_num_beams": 1, "interrogate_clip_min_length": 24, "interrogate_clip_max_length": 48,
        "interrogate_clip_dict_limit": 1500, "interrogate_clip_skip_categories": [],
        "interrogate_deepbooru_score_threshold": 0.5, "deepbooru_sort_alpha": True, "deepbooru_use_spaces": True,
        "deepbooru_escape": True, "deepbooru_filter_tags": "",
    }


@dataclass
class DemoConfig:
    """How the demo WebUI behaves. Defaults: A1111 v1.10.1 with a fast preview cadence."""

    step_delay: float = 0.0
    """Seconds per sampling step (0 still yields to the event loop every step)."""
    kind: Kind = "webui"
    """"webui": the A1111 `/sdapi/v1` API (`DemoWebUI`); "form": a form-encoded API server (`DemoFormServer`:
    step_delay, auth, noise, seed and history apply)."""
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
    switch_delay: float = 0.0
    """Seconds a job on another checkpoint than the loaded one costs extra (loading it, and loading the
    settings model back afterwards when `override_settings_restore_afterwards`, as A1111 does)."""
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
    extensions: tuple[str, ...] = ()
    """Installed extensions (`EXTENSIONS`): "adetailer" lists the ADetailer script in /scripts, accepts it in
    `alwayson_scripts`, adds its settings and `/adetailer/v1/*` routes, and runs it on every image."""
    deepdanbooru: bool = True
    """Whether /interrogate knows the "deepdanbooru" model (False: it is answered like an unknown model)."""
    interrogate_delay: float | None = None
    """Seconds an /interrogate job holds the queue; None: as long as 10 sampling steps (10 x step_delay)."""

    def __post_init__(self) -> None:
        names = tuple(str(name).lower() for name in self.extensions)
        unknown = [name for name in names if name not in EXTENSIONS]
        if unknown:
            raise ValueError(f"unknown demo extension(s) {unknown}; known: {list(EXTENSIONS)}")
        self.extensions = tuple(dict.fromkeys(names))  # lower case, each once, in the given order

    @property
    def interrogate_seconds(self) -> float:
        return self.interrogate_delay if self.interrogate_delay is not None else 10 * self.step_delay

    @property
    def effective_version(self) -> str:
        if self.dialect == "forge" and self.version == "v1.10.1":
            return FORGE_VERSION
        return self.version

