"""Zoom out: the picture of an earlier job, centred on a larger canvas, and the mask that tells the WebUI
to paint only the new border (img2img inpainting). No Discord imports.

The canvas is `factor` times the image, scaled down as a whole when it would pass MAX_PIXELS (or the
2048-pixel side), in multiples of 8 as the WebUI wants. The mask overlaps the old picture by a few pixels,
so the WebUI's mask blur blends the seam instead of leaving a frame. Pillow work: call these in a thread.
"""

from __future__ import annotations

import io

from PIL import Image

from bot.config import ABS_MAX_SIDE, ABS_MIN_SIDE

__all__ = ["ZOOM_STRENGTH", "OutpaintCanvas", "canvas_size", "outpaint_canvas"]

ZOOM_STRENGTH = 0.95  # the border is new: nearly full denoising there (the old picture is not masked)
SEAM = 4  # pixels of the old picture the mask covers, for the blur to blend


class OutpaintCanvas:
    """The canvas (PNG), its mask (PNG, white = paint anew), their size and where the old picture sits."""

    __slots__ = ("box", "canvas", "mask", "size")

    def __init__(self, canvas: bytes, mask: bytes, size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
        self.canvas, self.mask, self.size, self.box = canvas, mask, size, box


def canvas_size(width: int, height: int, factor: float, max_pixels: int) -> tuple[int, int]:
    """The zoomed-out size: `factor` times the picture, scaled down to fit, multiples of 8."""
    w, h = width * factor, height * factor
    scale = min(1.0, (max_pixels / (w * h)) ** 0.5, ABS_MAX_SIDE / max(w, h))
    return max(ABS_MIN_SIDE, int(w * scale) // 8 * 8), max(ABS_MIN_SIDE, int(h * scale) // 8 * 8)


def outpaint_canvas(data: bytes, factor: float, max_pixels: int) -> OutpaintCanvas:
    """Sync: the canvas and mask for zooming out of the image `data` by `factor`."""
    with Image.open(io.BytesIO(data)) as opened:
        picture = opened.convert("RGB")
    width, height = picture.size
    cw, ch = canvas_size(width, height, factor, max_pixels)
    k = min(cw / (width * factor), ch / (height * factor))
    inner = (max(8, round(width * k)), max(8, round(height * k)))
    if inner != picture.size:
        picture = picture.resize(inner, Image.Resampling.LANCZOS)
    left, top = (cw - inner[0]) // 2, (ch - inner[1]) // 2
    # The border starts as the picture's mean colour; the WebUI's "fill" repaints it from the surroundings.
    mean = picture.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    canvas = Image.new("RGB", (cw, ch), mean)
    canvas.paste(picture, (left, top))
    mask = Image.new("L", (cw, ch), 255)
    mask.paste(0, (left + SEAM, top + SEAM, left + inner[0] - SEAM, top + inner[1] - SEAM))
    return OutpaintCanvas(_png(canvas), _png(mask), (cw, ch), (left, top, left + inner[0], top + inner[1]))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)  # it only travels to the WebUI
    return out.getvalue()
