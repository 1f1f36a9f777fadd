"""Running a planned txt2img/img2img job step by step, and the infotexts and `info` it produces."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from bot.images.infotext import create_infotext

from .adetailer import ImageContext, Outcome, inpaint_limit, postprocess
from .data import LATENT_UPSCALE_MODES, SAMPLERS, UPSCALERS, DemoConfig
from .images import decode_image, finish, fit, render_image
from .info import info_head
from .inpainting import Inpainted, InpaintSettings, inpaint, prepare_mask
from .planning import Lazy, Plan
from .responses import ErrorBodies, dumps
from .state import ProgressState

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One batch, rendered ahead of its sampling steps (worker thread)."""

    finals: list[Image.Image] = field(default_factory=list)
    thumbs: list[Image.Image] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    ad: list[Outcome] | None = None
    """Each image after ADetailer (used once its inpainting passes have run), when it runs."""


class Generator:
    """Samples a `Plan` under the shared state: previews, interrupt/skip, hires pass, errors."""

    def __init__(self, config: DemoConfig, state: ProgressState, errors: ErrorBodies):
        self.config = config
        self.state = state
        self.errors = errors
        self.model_switches = 0  # jobs that ran on another checkpoint than the loaded one

    async def generate(self, plan: Plan) -> list[Image.Image]:
        """The job's images; call it inside the job queue (it owns the shared state meanwhile)."""
        st, req = self.state, plan.req
        await asyncio.sleep(self.config.load_delay)
        if plan.switched:
            self.model_switches += 1
            back = plan.req.get("override_settings_restore_afterwards", True) is not False
            await asyncio.sleep(self.config.switch_delay * (2 if back else 1))
        plan.model.ensure_hashed()
        inits, mask = await self._inputs(plan)
        final_w, final_h = self._check_sizes(plan)
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
            batch = await asyncio.to_thread(self._render_batch, plan, indices, inits, mask, final_w, final_h)
            finals, keys = batch.finals, batch.keys
            st.preview_source = (batch.thumbs, keys)
            last = n == plan.n_iter - 1
            fraction = await self._sample(plan.sampling_steps)
            if plan.hr and not st.stopped:
                st.nextjob(more=True)
                hr_sampler = req["hr_sampler_name"]
                if self.config.dialect != "sdnext" and hr_sampler is not None and hr_sampler not in {
                        s["name"] for s in SAMPLERS}:
                    raise self.errors.exception("AssertionError", f"bad sampler name: {hr_sampler}")
                if plan.denoising is None:
                    raise self.errors.exception("TypeError", "'>' not supported between instances of 'NoneType' and 'int'")
                hr_fraction = await self._sample(plan.hr_steps)
                outs = await asyncio.to_thread(finish, finals, keys, None, 0.5 + 0.5 * hr_fraction)
            else:  # no hires pass (or it was interrupted before it): first-pass size (img2img: as rendered)
                size = None if plan.kind == "img2img" else (plan.out_w, plan.out_h)
                outs = await asyncio.to_thread(finish, finals, keys, size, fraction)
            if batch.ad is not None and not st.stopped:
                st.nextjob(more=True)
                outs = await self._adetailer(batch.ad, outs, last)
            else:
                st.nextjob(more=not last)
            images.extend(outs)
        return images

    async def _adetailer(self, outcomes: list[Outcome], outs: list[Image.Image],
                         last: bool) -> list[Image.Image]:
        """ADetailer's inpainting passes after a batch (each a job of its own sampling steps); an image gets
        its ADetailer result only if none of its passes was interrupted or skipped."""
        st = self.state
        result = list(outs)
        remaining = sum(len(passes) for o in outcomes for _, passes in o.jobs)
        for i, outcome in enumerate(outcomes):
            if outcome.error:
                log.warning("Error running postprocess_image: adetailer: %s", outcome.error)
            done = True
            for count, passes in outcome.jobs:
                if st.stopped:
                    done = False
                    break
                st.job_count += count
                for steps in passes:
                    remaining -= 1
                    fraction = await self._sample(steps)
                    st.nextjob(more=not (last and remaining == 0))
                    if fraction < 1.0:
                        done = False
                        break
                if not done:
                    break
            if done and outcome.jobs:
                result[i] = outcome.image
        return result

    async def _inputs(self, plan: Plan) -> tuple[list[Image.Image], Image.Image | None]:
        """img2img: the decoded init images and the prepared (greyscale, inverted, blurred) mask."""
        if plan.kind != "img2img":
            return [], None
        raw = None
        try:
            inits = await asyncio.to_thread(lambda: [decode_image(x).convert("RGB") for x in plan.init_images])
            if plan.mask is not None:
                raw = await asyncio.to_thread(decode_image, plan.mask)
        except ValueError:
            raise self.errors.http_exception(500, "Invalid encoded image") from None
        if plan.denoising is None:
            raise self.errors.exception("TypeError", "'<' not supported between instances of 'float' and 'NoneType'")
        if raw is None or plan.inpaint is None:
            return inits, None
        s = plan.inpaint
        mask, limit = await asyncio.to_thread(self._masks, plan, raw, s)
        if plan.adetailer is not None:
            if limit is None:  # its process(): "img2img inpainting with no mask -- adetailer disabled"
                for key in plan.adetailer.extra_params():
                    plan.extra.pop(key, None)
                plan.adetailer = None
            elif not s.full_res:  # "whole picture": only detections touching the mask are inpainted
                plan.ad_limit = limit
        if mask is None:
            # 'Unable to perform "Inpaint Only mask" because mask is blank, switch to img2img mode.'
            for key in ("Inpaint area", "Masked area padding", "Masked content"):
                plan.extra.pop(key, None)
        return inits, mask

    @staticmethod
    def _masks(plan: Plan, raw: Image.Image, s: InpaintSettings) -> tuple[Image.Image | None, Image.Image | None]:
        """(worker thread) The prepared mask, None when "only masked" finds it blank; and the mask as
        ADetailer checks it, None when all black (or ADetailer does not run)."""
        limit = None
        if plan.adetailer is not None:
            limit = inpaint_limit(raw, s.invert, s.resize_mode, plan.width, plan.height)
            if limit.getbbox() is None:
                limit = None
        mask = prepare_mask(raw, s)
        if s.full_res and mask.getbbox() is None:
            return None, limit
        return mask, limit

    def _check_sizes(self, plan: Plan) -> tuple[int, int]:
        """The output size, after the checks A1111 fails on (too small, out of memory, unknown upscaler)."""
        if plan.out_w < 8 or plan.out_h < 8:
            raise self.errors.exception("RuntimeError", "Given input size: (4x0x0). Calculated output size is too small")
        final_w, final_h = (plan.hr_w, plan.hr_h) if plan.hr else (plan.out_w, plan.out_h)
        if plan.hr and (final_w < 8 or final_h < 8):
            raise self.errors.exception("RuntimeError", "Calculated hires size is too small")
        if final_w * final_h * max(1, plan.batch_size) * max(1, plan.n_iter) > self.config.max_pixels:
            raise self.errors.oom()
        if plan.hr and self.config.dialect != "sdnext":  # SD.Next's upscalers: sdnext.plan_hires
            upscaler = plan.req["hr_upscaler"]
            if upscaler is not None and upscaler not in LATENT_UPSCALE_MODES and not any(
                    u["name"] == upscaler for u in UPSCALERS):
                raise self.errors.exception("Exception", f"could not find upscaler named {upscaler}")
        return final_w, final_h

    async def _sample(self, steps: int) -> float:
        """Step through `steps` sampling steps; the fraction done when interrupted or skipped."""
        st = self.state
        st.sampling_steps = steps
        delay = self.config.step_delay
        for i in range(steps):
            if st.stopped:
                return i / steps
            st.sampling_step = i
            await asyncio.sleep(delay)
        return 1.0

    def _render_batch(self, plan: Plan, indices: range, inits: list[Image.Image], mask: Image.Image | None,
                      width: int, height: int) -> Batch:
        """Final images, preview thumbnails and keys of one batch, and ADetailer's results (worker thread)."""
        batch = Batch(ad=[] if plan.adetailer is not None else None)
        for n, k in enumerate(indices):
            key = image_key(plan, k)
            image, masked = self._render_one(plan, key, inits[n % len(inits)] if inits else None, mask, width,
                                             height)
            if batch.ad is not None and plan.adetailer is not None:
                ctx = self._ad_context(plan, k)
                if plan.ad_orig is not None:  # skip img2img: ADetailer works on the first init image itself
                    image = inits[0].convert("RGB")
                    outcome = postprocess(image, plan.adetailer, ctx)
                elif masked is not None:  # scripts see the sampled picture, before the overlay
                    outcome = postprocess(masked.sampled, plan.adetailer, ctx)
                    outcome.image = masked.finish(outcome.image)
                else:
                    outcome = postprocess(image, plan.adetailer, ctx)
                batch.ad.append(outcome)
            batch.finals.append(image)
            thumb = image.copy()
            thumb.thumbnail((128, 128))
            batch.thumbs.append(thumb)
            batch.keys.append(key)
        return batch

    def _render_one(self, plan: Plan, key: bytes, init: Image.Image | None, mask: Image.Image | None,
                    width: int, height: int) -> tuple[Image.Image, Inpainted | None]:
        """One image: txt2img's picture, img2img's blend with its init image, or the masked composite."""
        scene = render_image(key, width, height, self.config.noise)
        if init is None:
            return scene, None
        alpha = max(0.0, min(1.0, plan.denoising if plan.denoising is not None else 0.75))
        resize_mode = plan.req.get("resize_mode") or 0
        if mask is not None and plan.inpaint is not None:
            masked = inpaint(init, mask, plan.inpaint, width, height,
                             lambda start, _mask: Image.blend(start, scene, alpha), key,
                             str(plan.opts.get("img2img_background_color") or "#ffffff"))
            if masked is not None:
                return masked.finish(), masked
        return Image.blend(fit(init, width, height, resize_mode), scene, alpha), None

    @staticmethod
    def _ad_context(plan: Plan, k: int) -> ImageContext:
        steps, width, height = plan.ad_orig or (plan.steps, plan.width, plan.height)
        return ImageContext(prompt=plan.prompts[k], negative=plan.negatives[k], seed=plan.seeds[k], steps=steps,
                            width=width, height=height, opts=plan.opts, inpaint_mask=plan.ad_limit)


def image_key(plan: Plan, k: int) -> bytes:
    """What image `k` looks like depends on: prompts, seed, model (and the variation seed if used)."""
    parts = [plan.prompts[k], plan.negatives[k], str(plan.seeds[k]), plan.model.name_for_extra]
    if plan.subseed_strength != 0:
        parts += [str(plan.subseeds[k]), repr(plan.subseed_strength)]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()


def build_infotext(plan: Plan, k: int, version: str) -> str:
    """The infotext of image `k` (A1111 `create_infotext` with the job's options)."""
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
        params[key] = value.fn(k) if isinstance(value, Lazy) else value
    params["Version"] = version if opts.get("add_version_to_infotext") else None
    return create_infotext(plan.prompts[k], plan.negatives[k], params)


def build_info(plan: Plan, infotexts: list[str], index_of_first_image: int, job_timestamp: str,
               version: str) -> dict[str, Any]:
    """The `info` object of a generation response (A1111 `Processed.js()`)."""
    req, opts = plan.req, plan.opts
    restore = req["restore_faces"] if req["restore_faces"] is not None else bool(opts.get("face_restoration"))
    return {
        **info_head(plan),
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
        "extra_generation_params": {k: (None if isinstance(v, Lazy) else v) for k, v in plan.extra.items()},
        "index_of_first_image": index_of_first_image,
        "infotexts": infotexts,
        "styles": req["styles"] or [],
        "job_timestamp": job_timestamp,
        "clip_skip": opts.get("CLIP_stop_at_last_layers") or 1,
        "is_using_inpainting_conditioning": False,
        "version": version,
    }


def render_generation_body(images: list[bytes], parameters: dict[str, Any], info: dict[str, Any]) -> bytes:
    """Same bytes as FastAPI's rendering; base64 needs no escaping, so the (multi-MB) images are spliced
    in rather than run through json.dumps, which would hold the GIL for the whole body."""
    info_text = json.dumps(info, default=lambda o: None)  # Processed.js(): default separators, ensure_ascii
    return b"".join((b'{"images":[', b",".join(b'"' + image + b'"' for image in images), b'],"parameters":',
                     dumps(parameters), b',"info":', dumps(info_text), b"}"))
