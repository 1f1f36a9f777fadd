"""/extra-single-image (upscaling) and /png-info."""

from __future__ import annotations

import asyncio
from typing import Any

from PIL import Image

from bot.images.infotext import parse_generation_parameters, quote

from .data import UPSCALERS, DemoConfig
from .images import decode_image, upscale_png
from .responses import ErrorBodies
from .state import ProgressState

# PIL `info` keys that are not PNG text (A1111's `read_info_from_image` drops them).
_IGNORED_INFO_KEYS = ("jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background",
                      "timestamp", "duration", "progressive", "progression", "icc_profile", "chromaticity",
                      "photoshop")


class Postprocessor:
    """Runs one extras job: decode, check upscalers, "upscale", write the `postprocessing` text."""

    def __init__(self, config: DemoConfig, state: ProgressState, errors: ErrorBodies):
        self.config = config
        self.state = state
        self.errors = errors

    async def run(self, req: dict[str, Any]) -> tuple[str, str]:
        """(html_info, base64 PNG); call it inside the job queue."""
        st = self.state
        try:
            image = await asyncio.to_thread(decode_image, req["image"])
        except ValueError:
            raise self.errors.http_exception(500, "Invalid encoded image") from None
        st.job_count = 1
        up1 = None if req["upscaler_1"] == "None" else req["upscaler_1"]
        target, info = self._upscale_plan(req, image, up1)
        st.sampling_steps = 1
        st.sampling_step = 0
        await asyncio.sleep(self.config.step_delay)
        text = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in info.items() if v is not None)
        html = "<p>" + "<br>\n".join(_html_escape(line) for line in text.split("\n")) + "</p>" if text else "<p></p>"
        crop = bool(req["resize_mode"] == 1 and req["upscaling_crop"])
        encoded = await asyncio.to_thread(upscale_png, image, target, up1, crop, text)
        st.nextjob(more=False)
        return html, encoded

    def _upscale_plan(self, req: dict[str, Any], image: Image.Image,
                      up1: str | None) -> tuple[tuple[int, int], dict[str, Any]]:
        """The target size and the `postprocessing` parameters, after A1111's upscaler checks."""
        names = {u["name"] for u in UPSCALERS}
        info: dict[str, Any] = {}
        if up1 is not None and up1 not in names:
            raise self.errors.exception("AssertionError", f"could not find upscaler named {up1}")
        if up1 is None:
            return image.size, info
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
                raise self.errors.exception("AssertionError", f"could not find upscaler named {up2}")
            info["Postprocess upscaler 2"] = up2
        if target[0] * target[1] > self.config.max_pixels:
            raise self.errors.oom()
        return target, info


def png_info(image: Image.Image) -> dict[str, Any]:
    """The /png-info answer for a decoded image: its `parameters` text, parsed, and its other text items."""
    items = dict(image.info or {})
    geninfo = items.pop("parameters", None)
    for key in _IGNORED_INFO_KEYS:
        items.pop(key, None)
    items = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in items.items()
             if isinstance(v, (str, int, float, bool, bytes))}
    geninfo = geninfo if isinstance(geninfo, str) else ""
    return {"info": geninfo, "items": items, "parameters": parse_generation_parameters(geninfo)}


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
