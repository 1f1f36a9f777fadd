"""img2img with a mask (inpainting, outpainting): what A1111 v1.10.1 does with the mask, in Pillow (threads only).

`modules/processing.py` `StableDiffusionProcessingImg2Img.init` and the overlay in `process_images_inner`:

1. The mask becomes greyscale (an RGBA mask with transparency: its alpha, rounded when `mask_round`), is
   inverted with `inpainting_mask_invert`, and blurred by `mask_blur_x` / `mask_blur_y` (a Gaussian of that
   sigma; `mask_blur`, when an int, sets both).
2. "Whole picture" (`inpaint_full_res` false): the mask and the init image are resized to width x height
   (the request's `resize_mode`); the overlay mask is the blurred mask doubled (so the new content reaches
   a little past the blur's middle).
   "Only masked" (`inpaint_full_res`, the API default): the masked area's bounding box, grown by
   `inpaint_full_res_padding` and widened to width:height, is cut out of the (unresized) init image and
   processed at width x height; the result is scaled back into that box, so the output keeps the init
   image's size. A blank mask turns this off (plain img2img, no "Inpaint area" in the infotext).
3. The masked area starts (`inpainting_fill`) as 0 "fill" (colours spread from the unmasked area by
   ever-smaller blurs), 1 "original" (the init pixels), 2 "latent noise" or 3 "latent nothing"; the
   unmasked latents are kept while sampling.
4. The init image, with the inverted overlay mask as alpha, is composited over the result: the unmasked
   area keeps the init image's exact pixels.

The demo keeps that geometry and those steps; "sampling" is `content(start, mask)`, the caller's blend of
the starting picture with its procedural image. In "only masked" mode the mask is resized to the init
image first if their sizes differ (A1111 would cut the box at the mask's own coordinates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from .images import fit, latent_noise

__all__ = ["FILLS", "InpaintSettings", "Inpainted", "crop_region", "expand_crop_region", "fill_masked",
           "inpaint", "prepare_mask"]

FILLS = ["fill", "original", "latent noise", "latent nothing"]
"""`inpainting_fill` 0..3 as the infotext's "Masked content" names them."""

_LATENT_ZERO = (112, 104, 94)  # what an all-zero SD latent decodes to: a muddy grey-brown

Content = Callable[[Image.Image, Image.Image], Image.Image]
"""(starting picture, mask), both at the processing size -> the sampled picture (same size)."""


@dataclass(frozen=True, slots=True)
class InpaintSettings:
    """The mask fields of an img2img request (or of ADetailer's inner inpainting pass)."""

    blur_x: int = 4
    blur_y: int = 4
    fill: int | None = 0  # None (JSON null): filled like 0, but no "Masked content" key
    full_res: bool = True
    padding: int | None = 0
    invert: bool = False
    round: bool = True
    resize_mode: int = 0

    @classmethod
    def from_request(cls, req: dict[str, Any]) -> InpaintSettings:
        """From a validated img2img request (SD.Next's has no `mask_blur_x`/`_y`/`mask_round`: defaults)."""
        blur = req.get("mask_blur")
        # A1111's `mask_blur` setter takes only an int; otherwise the x/y fields stay
        bx, by = (blur, blur) if isinstance(blur, int) else (req.get("mask_blur_x", 4) or 0,
                                                             req.get("mask_blur_y", 4) or 0)
        return cls(blur_x=bx, blur_y=by, fill=req.get("inpainting_fill", 0), full_res=bool(req.get("inpaint_full_res")),
                   padding=req.get("inpaint_full_res_padding", 0), invert=bool(req.get("inpainting_mask_invert")),
                   round=req.get("mask_round") is not False, resize_mode=req.get("resize_mode") or 0)

    @property
    def blur(self) -> int | None:
        """The infotext's "Mask blur" (None when x and y differ)."""
        return self.blur_x if self.blur_x == self.blur_y else None


def _binary(mask: Image.Image, rounded: bool) -> Image.Image:
    """`create_binary_mask`: greyscale; a mask with real transparency is its alpha channel."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        alpha = mask.getchannel("A")
        return alpha.point(lambda v: 255 if v > 128 else 0) if rounded else alpha
    return mask.convert("L")


def prepare_mask(mask: Image.Image, s: InpaintSettings) -> Image.Image:
    """Steps 1: the greyscale, inverted and blurred mask, at the mask's own size."""
    m = _binary(mask, s.round)
    if s.invert:
        m = ImageOps.invert(m)
    if s.blur_x > 0 or s.blur_y > 0:
        m = m.filter(ImageFilter.GaussianBlur((max(0, s.blur_x), max(0, s.blur_y))))
    return m


def crop_region(mask: Image.Image, pad: int = 0) -> tuple[int, int, int, int] | None:
    """`masking.get_crop_region_v2`: the box around every non-black pixel, grown by `pad`; None when blank."""
    box = mask.getbbox()
    if box is None:
        return None
    if not pad:
        return box
    x1, y1, x2, y2 = box
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.width), min(y2 + pad, mask.height)


def expand_crop_region(box: tuple[int, int, int, int], width: int, height: int, image_w: int,
                       image_h: int) -> tuple[int, int, int, int]:
    """`masking.expand_crop_region`: widen the box to the processing size's aspect ratio, inside the image."""
    x1, y1, x2, y2 = box
    if (x2 - x1) / max(1, y2 - y1) > width / height:
        grow = int((x2 - x1) / (width / height) - (y2 - y1))
        y1, y2 = _widen(y1 - grow // 2, y2 + grow - grow // 2, image_h)
    else:
        grow = int((y2 - y1) * (width / height) - (x2 - x1))
        x1, x2 = _widen(x1 - grow // 2, x2 + grow - grow // 2, image_w)
    return x1, y1, x2, y2


def _widen(lo: int, hi: int, limit: int) -> tuple[int, int]:
    """Shift [lo, hi) back inside [0, limit), then clip it."""
    if hi >= limit:
        lo, hi = lo - (hi - limit), limit
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, limit)


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """`masking.fill` ("fill"): the masked area painted with the unmasked area's colours, spread by blurs
    from very wide to none, each layered over the last (the unmasked pixels end on top, unchanged)."""
    keep = Image.new("RGBa", image.size)
    keep.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    out = Image.new("RGBA", image.size)
    for radius, times in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        layer = (keep.filter(ImageFilter.GaussianBlur(radius)) if radius else keep).convert("RGBA")
        for _ in range(times):
            out.alpha_composite(layer)
    return out.convert("RGB")


def _latent_mask(mask: Image.Image, rounded: bool) -> Image.Image:
    """The mask at latent resolution (1/8, rounded with `mask_round`), back at full size: which pixels
    sampling may change."""
    w, h = mask.size
    small = mask.resize((max(1, w // 8), max(1, h // 8)), Image.Resampling.BILINEAR)
    if rounded:
        small = small.point(lambda v: 255 if v >= 128 else 0)
    return small.resize((w, h), Image.Resampling.BILINEAR)


def _flatten(image: Image.Image, background: str = "#ffffff") -> Image.Image:
    """`images.flatten`: transparency onto `img2img_background_color`."""
    if image.mode == "RGBA":
        canvas = Image.new("RGBA", image.size, background)
        canvas.paste(image, mask=image)
        image = canvas
    return image.convert("RGB")


class Inpainted:
    """A masked img2img image: `sampled` at the processing size (what scripts' `postprocess_image` sees), and
    `finish` to put a (possibly post-processed) sampled picture back into the init image."""

    def __init__(self, sampled: Image.Image, base: Image.Image, overlay_mask: Image.Image,
                 crop: tuple[int, int, int, int] | None):
        self.sampled, self._base, self._overlay_mask, self._crop = sampled, base, overlay_mask, crop

    def finish(self, sampled: Image.Image | None = None) -> Image.Image:
        """`apply_overlay`: scaled back into the crop box (only masked), the init image composited over the
        unmasked area."""
        picture = self.sampled if sampled is None else sampled
        base = self._base
        if self._crop is not None:
            x1, y1, x2, y2 = self._crop
            out = Image.new("RGBA", base.size)
            out.paste(fit(picture.convert("RGB"), x2 - x1, y2 - y1, 1), (x1, y1))
        else:
            out = picture.convert("RGBA")
            if out.size != base.size:
                out = out.resize(base.size, Image.Resampling.LANCZOS)
        overlay = base.convert("RGBA")
        overlay.putalpha(ImageOps.invert(self._overlay_mask.convert("L")))
        out.alpha_composite(overlay)
        return out.convert("RGB")


def inpaint(init: Image.Image, mask: Image.Image, s: InpaintSettings, width: int, height: int,
            content: Content, key: bytes, background: str = "#ffffff") -> Inpainted | None:
    """One masked img2img image; `mask` is `prepare_mask`'s result. None when "only masked" finds a blank
    mask (the caller then runs plain img2img, as A1111 does)."""
    image = _flatten(init, background)
    crop = None
    if s.full_res:
        m = mask if mask.size == image.size else fit(mask, image.width, image.height, s.resize_mode)
        box = crop_region(m, s.padding or 0)
        if box is None:
            return None
        crop = expand_crop_region(box, width, height, m.width, m.height)
        overlay_mask = m
        image_mask = fit(m.crop(crop), width, height, 2)
        work = fit(image.crop(crop), width, height, 2)
        base = image
    else:
        image_mask = fit(mask, width, height, s.resize_mode)
        overlay_mask = image_mask.point(lambda v: min(255, v * 2))
        base = work = fit(image, width, height, s.resize_mode)  # "latent" resize (3) counts as 0 here
    start = fill_masked(work, image_mask) if s.fill != 1 else work
    latent = _latent_mask(image_mask, s.round)
    if s.fill == 2:
        start = Image.composite(latent_noise(key, width, height), start, latent)
    elif s.fill == 3:
        start = Image.composite(Image.new("RGB", (width, height), _LATENT_ZERO), start, latent)
    sampled = Image.composite(content(start, image_mask), start, latent)
    return Inpainted(sampled, base, overlay_mask, crop)
