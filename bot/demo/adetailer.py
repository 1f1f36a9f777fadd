"""The ADetailer extension (Bing-su/adetailer v25.3.0) as the demo WebUI runs it (`DemoConfig.extensions`).

What the real extension does, and the demo with it:

* It is an always-on script titled "ADetailer" (/scripts lists "adetailer"; `alwayson_scripts` keys match it
  case-insensitively). Its UI has `2 + ad_max_models` inputs: [enable (bool), skip img2img (bool), one dict per
  tab]. A1111 copies the request's `args` over the UI defaults ([False, False, {tab 1: "face_yolov8n.pt"},
  {tab 2..: "None"}]) up to that many; extra args are dropped.
* Enabled when the first arg is True or not a bool at all, and some dict validates (pydantic v1
  `ADetailerArgs`, `extra=forbid`: an unknown key or a bad value drops that dict) with a model other than
  "None" and `ad_tab_enable` true. Skip img2img is the second arg when it is a bool (img2img only; not with
  a mask, which disables ADetailer).
* `process()` writes the infotext keys of every valid dict (`extra_params`: each field's "ADetailer ..." name,
  minus those at their defaults; the n-th valid dict's keys get " 2nd", " 3rd", ... suffixes) and
  "ADetailer version". An img2img inpainting mask that is all black disables it (no keys).
* `postprocess_image()` runs each tab on each finished image: detect with the model (bounding boxes with a
  confidence over `ad_confidence`), filter (area ratio, top k), sort (`ad_bbox_sortby`), shift, dilate or
  erode, merge or invert the masks, then inpaint every mask in turn (an img2img pass: "original" fill,
  `ad_mask_blur`, `ad_denoising_strength`, "only masked" with `ad_inpaint_only_masked_padding`); each pass is
  a job of `int(min(denoise, 0.999) * steps) + 1` sampling steps. An unknown model raises inside the script,
  which A1111 logs: the image keeps what earlier tabs did and the job succeeds.

The demo's detector places a deterministic "face" (hands, person) from the image's pixels and the model; the
inpainting pass draws one there, so an ADetailer image visibly differs from the same request without it.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from .images import fit
from .inpainting import InpaintSettings, inpaint, prepare_mask
from .responses import ErrorBodies
from .validation import Invalid, coerce_v1

VERSION = "25.3.0"
TITLE = "ADetailer"
SCRIPT = "adetailer"
MODELS = ["face_yolov8n.pt", "face_yolov8s.pt", "hand_yolov8n.pt", "person_yolov8n-seg.pt", "person_yolov8s-seg.pt",
          "yolov8x-worldv2.pt", "mediapipe_face_full", "mediapipe_face_short", "mediapipe_face_mesh",
          "mediapipe_face_mesh_eyes_only"]
"""`model_mapping` of a fresh install: the Hugging Face models, then the mediapipe ones (/adetailer/v1/ad_model)."""
SCRIPT_DEFAULT = "dynamic_prompting,dynamic_thresholding,lora_block_weight,negpip,wildcard_recursive,wildcards"
OPTIONS: dict[str, Any] = {
    "ad_max_models": 4, "ad_extra_models_dir": "", "ad_save_images_dir": "", "ad_save_previews": False,
    "ad_save_images_before": False, "ad_only_selected_scripts": True, "ad_script_names": SCRIPT_DEFAULT,
    "ad_bbox_sortby": "None", "ad_same_seed_for_each_tab": False, "ad_dynamic_denoise_power": 0,
    "ad_match_inpaint_bbox_size": "Off",
}
"""The settings ADetailer adds (`on_ui_settings`), with their defaults."""
BBOX_SORTBY = ["None", "Position (left to right)", "Position (center to edge)", "Area (large to small)"]


@dataclass(frozen=True, slots=True)
class _Arg:
    attr: str
    name: str  # the infotext key
    kind: str  # s, i, f, b (pydantic v1 coercion) or "lit" (a Literal)
    default: Any
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False


_UNIT = (0.0, 1.0)
ARGS: list[_Arg] = [  # `ALL_ARGS` order (the infotext's), with `ADetailerArgs`' types and defaults
    _Arg("ad_model", "ADetailer model", "s", "None"),
    _Arg("ad_model_classes", "ADetailer model classes", "s", ""),
    _Arg("ad_tab_enable", "ADetailer tab enable", "b", True),
    _Arg("ad_prompt", "ADetailer prompt", "s", ""),
    _Arg("ad_negative_prompt", "ADetailer negative prompt", "s", ""),
    _Arg("ad_confidence", "ADetailer confidence", "f", 0.3, *_UNIT),
    _Arg("ad_mask_filter_method", "ADetailer method to decide top k masks", "lit", "Area",
         choices=("Area", "Confidence")),
    _Arg("ad_mask_k", "ADetailer mask only top k", "i", 0, ge=0),
    _Arg("ad_mask_min_ratio", "ADetailer mask min ratio", "f", 0.0, *_UNIT),
    _Arg("ad_mask_max_ratio", "ADetailer mask max ratio", "f", 1.0, *_UNIT),
    _Arg("ad_x_offset", "ADetailer x offset", "i", 0),
    _Arg("ad_y_offset", "ADetailer y offset", "i", 0),
    _Arg("ad_dilate_erode", "ADetailer dilate erode", "i", 4),
    _Arg("ad_mask_merge_invert", "ADetailer mask merge invert", "lit", "None",
         choices=("None", "Merge", "Merge and Invert")),
    _Arg("ad_mask_blur", "ADetailer mask blur", "i", 4, ge=0),
    _Arg("ad_denoising_strength", "ADetailer denoising strength", "f", 0.4, *_UNIT),
    _Arg("ad_inpaint_only_masked", "ADetailer inpaint only masked", "b", True),
    _Arg("ad_inpaint_only_masked_padding", "ADetailer inpaint padding", "i", 32, ge=0),
    _Arg("ad_use_inpaint_width_height", "ADetailer use inpaint width height", "b", False),
    _Arg("ad_inpaint_width", "ADetailer inpaint width", "i", 512, gt=0),
    _Arg("ad_inpaint_height", "ADetailer inpaint height", "i", 512, gt=0),
    _Arg("ad_use_steps", "ADetailer use separate steps", "b", False),
    _Arg("ad_steps", "ADetailer steps", "i", 28, gt=0),
    _Arg("ad_use_cfg_scale", "ADetailer use separate CFG scale", "b", False),
    _Arg("ad_cfg_scale", "ADetailer CFG scale", "f", 7.0, ge=0),
    _Arg("ad_use_checkpoint", "ADetailer use separate checkpoint", "b", False),
    _Arg("ad_checkpoint", "ADetailer checkpoint", "s", None, optional=True),
    _Arg("ad_use_vae", "ADetailer use separate VAE", "b", False),
    _Arg("ad_vae", "ADetailer VAE", "s", None, optional=True),
    _Arg("ad_use_sampler", "ADetailer use separate sampler", "b", False),
    _Arg("ad_sampler", "ADetailer sampler", "s", "DPM++ 2M Karras"),
    _Arg("ad_scheduler", "ADetailer scheduler", "s", "Use same scheduler"),
    _Arg("ad_use_noise_multiplier", "ADetailer use separate noise multiplier", "b", False),
    _Arg("ad_noise_multiplier", "ADetailer noise multiplier", "f", 1.0, 0.5, 1.5),
    _Arg("ad_use_clip_skip", "ADetailer use separate CLIP skip", "b", False),
    _Arg("ad_clip_skip", "ADetailer CLIP skip", "i", 1, 1, 12),
    _Arg("ad_restore_face", "ADetailer restore face", "b", False),
    _Arg("ad_controlnet_model", "ADetailer ControlNet model", "s", "None"),
    _Arg("ad_controlnet_module", "ADetailer ControlNet module", "s", "None"),
    _Arg("ad_controlnet_weight", "ADetailer ControlNet weight", "f", 1.0, *_UNIT),
    _Arg("ad_controlnet_guidance_start", "ADetailer ControlNet guidance start", "f", 0.0, *_UNIT),
    _Arg("ad_controlnet_guidance_end", "ADetailer ControlNet guidance end", "f", 1.0, *_UNIT),
]
_ATTRS = {a.attr for a in ARGS} | {"is_api"}  # is_api: any value (a "pre" validator turns it into a bool)
_TRUTHY = object()  # `ppop`'s default condition: the value is falsy

# (key, keys dropped with it, the value that drops them): `ADetailerArgs.extra_params`, in its order
_DROPS: list[tuple[str, tuple[str, ...], Any]] = [
    ("ADetailer model classes", (), _TRUTHY),
    ("ADetailer prompt", (), _TRUTHY),
    ("ADetailer negative prompt", (), _TRUTHY),
    ("ADetailer mask only top k", ("ADetailer method to decide top k masks",), 0),
    ("ADetailer mask min ratio", (), 0.0),
    ("ADetailer mask max ratio", (), 1.0),
    ("ADetailer x offset", (), 0),
    ("ADetailer y offset", (), 0),
    ("ADetailer mask merge invert", (), "None"),
    ("ADetailer inpaint only masked", ("ADetailer inpaint padding",), _TRUTHY),
    ("ADetailer use inpaint width height", ("ADetailer inpaint width", "ADetailer inpaint height"), _TRUTHY),
    ("ADetailer use separate steps", ("ADetailer steps",), _TRUTHY),
    ("ADetailer use separate CFG scale", ("ADetailer CFG scale",), _TRUTHY),
    ("ADetailer use separate checkpoint", ("ADetailer checkpoint",), _TRUTHY),
    ("ADetailer use separate VAE", ("ADetailer VAE",), _TRUTHY),
    ("ADetailer use separate sampler", ("ADetailer sampler", "ADetailer scheduler"), _TRUTHY),
    ("ADetailer scheduler", (), "Use same scheduler"),
    ("ADetailer use separate noise multiplier", ("ADetailer noise multiplier",), _TRUTHY),
    ("ADetailer use separate CLIP skip", ("ADetailer CLIP skip",), _TRUTHY),
    ("ADetailer restore face", (), _TRUTHY),
    ("ADetailer ControlNet model", ("ADetailer ControlNet module", "ADetailer ControlNet weight",
                                    "ADetailer ControlNet guidance start", "ADetailer ControlNet guidance end"),
     "None"),
    ("ADetailer ControlNet module", (), "None"),
    ("ADetailer ControlNet weight", (), 1.0),
    ("ADetailer ControlNet guidance start", (), 0.0),
    ("ADetailer ControlNet guidance end", (), 1.0),
]
# `ppop` drops the key itself too, except for "inpaint only masked", whose False stays in the infotext
_KEEPS_ITSELF = {"ADetailer inpaint only masked"}


def ordinal(n: int) -> str:
    return str(n) + ("th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th"))


def suffix(n: int) -> str:
    """The infotext suffix of the n-th (0-based) tab's keys: "", " 2nd", " 3rd", ..."""
    return "" if n == 0 else " " + ordinal(n + 1)


class Unit:
    """One validated tab (an `ADetailerArgs`)."""

    def __init__(self, values: dict[str, Any]):
        self.values = values

    def __getitem__(self, attr: str) -> Any:
        return self.values[attr]

    @property
    def skipped(self) -> bool:
        """`need_skip`: no model, or the tab is off."""
        return self["ad_model"] == "None" or self["ad_tab_enable"] is False

    def extra_params(self, n: int) -> dict[str, Any]:
        """The infotext keys of the n-th valid tab (none for a skipped one)."""
        if self.skipped:
            return {}
        params = {a.name: self.values[a.attr] for a in ARGS}
        params.pop("ADetailer tab enable")
        for key, others, cond in _DROPS:
            if key not in params:
                continue
            value = params[key]
            if (not value) if cond is _TRUTHY else value == cond:
                for k in ((key, *others) if key not in _KEEPS_ITSELF else others):
                    params.pop(k, None)
        return {k + suffix(n): v for k, v in params.items()}


def validate_unit(raw: dict[str, Any]) -> Unit | None:
    """`ADetailerArgs(**raw)` with pydantic v1 rules; None where it raises a ValidationError."""
    if any(key not in _ATTRS for key in raw):
        return None
    values: dict[str, Any] = {}
    for arg in ARGS:
        if arg.attr not in raw:
            values[arg.attr] = arg.default
            continue
        value = raw[arg.attr]
        if value is None:
            if not arg.optional:
                return None
            values[arg.attr] = None
            continue
        if arg.kind == "lit":
            if not (isinstance(value, str) and value in arg.choices):
                return None
        else:
            try:
                value = coerce_v1(arg.kind, value)
            except Invalid:
                return None
            if ((arg.ge is not None and value < arg.ge) or (arg.le is not None and value > arg.le)
                    or (arg.gt is not None and value <= arg.gt)):
                return None
        values[arg.attr] = value
    return Unit(values)


def default_tab(n: int) -> dict[str, Any]:
    """A tab's UI values (what A1111 passes for a tab the request leaves out)."""
    values = {a.attr: a.default for a in ARGS}
    values.update(ad_model=MODELS[0] if n == 0 else "None", ad_checkpoint="Use same checkpoint",
                  ad_vae="Use same VAE", ad_sampler="DPM++ 2M", ad_scheduler="Use same scheduler")
    return values


def _type_name(value: Any) -> str:
    return {type(None): "NoneType", bool: "bool", int: "int", float: "float", str: "str", list: "list",
            dict: "dict"}.get(type(value), type(value).__name__)


def script_args(entry: Any, max_models: int, errors: ErrorBodies, args: list[Any] | None = None) -> list[Any]:
    """ADetailer's slice of `p.script_args`: the UI defaults (or `args`) with the request's `args` copied over
    them, with the exceptions A1111's `init_script_args` raises for an odd `alwayson_scripts` entry."""
    if args is None:
        args = [False, False, *(default_tab(n) for n in range(max(1, max_models)))]
    else:
        args = list(args)
    if entry is None or isinstance(entry, (bool, int, float)):
        raise errors.exception("TypeError", f"argument of type '{_type_name(entry)}' is not iterable")
    if "args" not in entry:
        return args
    if isinstance(entry, list):
        raise errors.exception("TypeError", "list indices must be integers or slices, not str")
    if isinstance(entry, str):
        raise errors.exception("TypeError", "string indices must be integers")
    given = entry["args"]
    if not isinstance(given, (list, dict, str)):
        raise errors.exception("TypeError", f"object of type '{_type_name(given)}' has no len()")
    for i in range(min(len(args), len(given))):
        if isinstance(given, dict) and i not in given:  # JSON keys are strings: `args[0]` is a KeyError
            raise errors.exception("KeyError", str(i))
        args[i] = given[i]  # type: ignore[index]
    return args


@dataclass
class Run:
    """ADetailer's part in one job: its script args, read like the extension reads them."""

    enabled: bool
    skip_img2img: bool
    units: list[Unit] = field(default_factory=list)
    """Every dict that validates (skipped tabs included: they count for the suffixes)."""

    @classmethod
    def from_args(cls, args: list[Any], img2img: bool) -> Run:
        dicts = [a for a in args if isinstance(a, dict)]
        units = [u for u in (validate_unit(d) for d in dicts) if u is not None]
        first = args[0] if isinstance(args[0], bool) else True
        enabled = bool(dicts) and first and any(not u.skipped for u in units)
        skip = img2img and len(args) >= 2 and args[1] is True
        return cls(enabled, skip, units if enabled else [])

    def extra_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for n, unit in enumerate(self.units):
            params.update(unit.extra_params(n))
        params["ADetailer version"] = VERSION
        return params


# ----------------------------------------------------------------------------- detection and inpainting


@dataclass(frozen=True, slots=True)
class Detection:
    box: tuple[int, int, int, int]
    confidence: float
    shape: str  # "box" (a detector's rectangle) or "ellipse" (a segmentation / face mesh)


def _kind(model: str) -> str:
    if model.startswith("hand"):
        return "hand"
    if model.startswith(("person", "yolov8x-world")):
        return "person"
    if model == "mediapipe_face_mesh_eyes_only":
        return "eyes"
    return "face"


def detect(image: Image.Image, model: str, confidence: float) -> list[Detection]:
    """Where the demo's "detector" finds things in `image`: deterministic from its pixels and the model."""
    digest = hashlib.sha256(image.resize((16, 16), Image.Resampling.BOX).convert("RGB").tobytes()).digest()
    rng = random.Random(digest + model.encode())
    w, h = image.size
    side = min(w, h)
    kind = _kind(model)
    found: list[Detection] = []
    if kind in ("face", "eyes"):
        size = rng.uniform(0.16, 0.26) * side
        cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.3, 0.45) * h
        box = (cx - size / 2, cy - size * 0.62, cx + size / 2, cy + size * 0.62)
        score = rng.uniform(0.72, 0.93)
        if kind == "face":
            found.append(Detection(_ints(box, w, h), score, "ellipse" if "mesh" in model else "box"))
        else:
            for ex in (cx - size * 0.22, cx + size * 0.22):
                eye = (ex - size * 0.12, cy - size * 0.12, ex + size * 0.12, cy + size * 0.02)
                found.append(Detection(_ints(eye, w, h), score, "ellipse"))
    elif kind == "hand":
        for x_frac in (rng.uniform(0.18, 0.38), rng.uniform(0.62, 0.82)):
            size = rng.uniform(0.09, 0.14) * side
            cx, cy = x_frac * w, rng.uniform(0.62, 0.8) * h
            found.append(Detection(_ints((cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), w, h),
                                   rng.uniform(0.45, 0.85), "box"))
    else:
        bw, bh = rng.uniform(0.22, 0.34) * w, rng.uniform(0.55, 0.75) * h
        cx = rng.uniform(0.4, 0.6) * w
        box = (cx - bw / 2, h * 0.95 - bh, cx + bw / 2, h * 0.95)
        found.append(Detection(_ints(box, w, h), rng.uniform(0.8, 0.95), "ellipse" if "seg" in model else "box"))
    return [d for d in found if d.confidence >= confidence and d.box[2] > d.box[0] and d.box[3] > d.box[1]]


def _ints(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return max(0, round(x1)), max(0, round(y1)), min(w, round(x2)), min(h, round(y2))


def _mask(size: tuple[int, int], d: Detection) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    x1, y1, x2, y2 = d.box
    if d.shape == "ellipse":
        draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=255)
    else:
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=255)
    return mask


def _grow(mask: Image.Image, radius: int) -> Image.Image:
    """Binary dilation by a square of 2*radius+1 (two 1-D box blurs, each thresholded: exact, and fast)."""
    radius = min(radius, 250)
    for r in ((radius, 0), (0, radius)):
        mask = mask.filter(ImageFilter.BoxBlur(r)).point(lambda v: 255 if v > 0 else 0)
    return mask


def dilate_erode(mask: Image.Image, value: int) -> Image.Image:
    """`dilate_erode`: a positive kernel size grows the mask, a negative one shrinks it."""
    if value == 0:
        return mask
    radius = abs(value) // 2 or 1
    if value > 0:
        return _grow(mask, radius)
    return ImageOps.invert(_grow(ImageOps.invert(mask), radius))


def preprocess(detections: list[Detection], size: tuple[int, int], unit: Unit, sortby: str) -> list[Image.Image]:
    """`pred_preprocessing`: ratio filter, top k, sort, then `mask_preprocess` (offset, dilate/erode,
    merge/invert)."""
    area = size[0] * size[1]
    dets = [d for d in detections if unit["ad_mask_min_ratio"] <= (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])
            / area <= unit["ad_mask_max_ratio"]]
    k = unit["ad_mask_k"]
    if k:
        if unit["ad_mask_filter_method"] == "Area":
            dets = sorted(dets, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]), reverse=True)[:k]
        else:
            dets = sorted(dets, key=lambda d: d.confidence, reverse=True)[:k]
    order = BBOX_SORTBY.index(sortby) if sortby in BBOX_SORTBY else 0
    if order == 1:
        dets.sort(key=lambda d: d.box[0])
    elif order == 2:
        cx, cy = size[0] / 2, size[1] / 2
        dets.sort(key=lambda d: ((d.box[0] + d.box[2]) / 2 - cx) ** 2 + ((d.box[1] + d.box[3]) / 2 - cy) ** 2)
    elif order == 3:
        dets.sort(key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    masks = [_mask(size, d) for d in dets]
    x, y = unit["ad_x_offset"], unit["ad_y_offset"]
    if x or y:
        masks = [ImageChops.offset(m, x, -y) for m in masks]  # wraps around, like the extension's offset
    if unit["ad_dilate_erode"]:
        masks = [m for m in (dilate_erode(m, unit["ad_dilate_erode"]) for m in masks) if m.getbbox() is not None]
    mode = unit["ad_mask_merge_invert"]
    if masks and mode != "None":
        merged = masks[0]
        for m in masks[1:]:
            merged = ImageChops.lighter(merged, m)
        masks = [ImageOps.invert(merged) if mode == "Merge and Invert" else merged]
    return masks


def _palette(key: bytes) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    rng = random.Random(key)
    skin = (rng.randint(170, 245), rng.randint(120, 190), rng.randint(90, 160))
    hair = (rng.randint(20, 120), rng.randint(10, 80), rng.randint(0, 60))
    eyes = (rng.randint(20, 90), rng.randint(40, 120), rng.randint(60, 160))
    return skin, hair, eyes


def draw_detail(start: Image.Image, mask: Image.Image, kind: str, key: bytes) -> Image.Image:
    """What the inpainting pass paints inside the mask's box: a simple face (hands, eyes, a figure)."""
    box = mask.point(lambda v: 255 if v >= 128 else 0).getbbox() or (0, 0, *start.size)
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    skin, hair, eyes = _palette(key)
    out = start.copy()
    draw = ImageDraw.Draw(out)
    if kind == "face":
        draw.ellipse((x1 + w * 0.08, y1 + h * 0.02, x2 - w * 0.08, y1 + h * 0.55), fill=hair)
        draw.ellipse((x1 + w * 0.14, y1 + h * 0.12, x2 - w * 0.14, y2 - h * 0.04), fill=skin)
        for ex in (x1 + w * 0.36, x1 + w * 0.64):
            draw.ellipse((ex - w * 0.07, y1 + h * 0.42, ex + w * 0.07, y1 + h * 0.5), fill=(250, 250, 250))
            draw.ellipse((ex - w * 0.035, y1 + h * 0.425, ex + w * 0.035, y1 + h * 0.495), fill=eyes)
        draw.arc((x1 + w * 0.36, y1 + h * 0.6, x2 - w * 0.36, y1 + h * 0.78), 20, 160, fill=(150, 60, 60),
                 width=max(1, round(h * 0.025)))
    elif kind == "eyes":
        draw.ellipse((x1, y1, x2, y2), fill=(250, 250, 250))
        draw.ellipse((x1 + w * 0.3, y1 + h * 0.1, x2 - w * 0.3, y2 - h * 0.1), fill=eyes)
    elif kind == "hand":
        draw.rounded_rectangle((x1 + w * 0.15, y1 + h * 0.35, x2 - w * 0.15, y2 - h * 0.05),
                               radius=max(1, round(w * 0.15)), fill=skin)
        for i in range(4):
            fx = x1 + w * (0.2 + 0.16 * i)
            draw.rounded_rectangle((fx, y1 + h * 0.05, fx + w * 0.12, y1 + h * 0.5), radius=max(1, round(w * 0.05)),
                                   fill=skin)
    else:
        draw.ellipse((x1 + w * 0.32, y1, x2 - w * 0.32, y1 + h * 0.22), fill=skin)
        draw.rounded_rectangle((x1 + w * 0.15, y1 + h * 0.2, x2 - w * 0.15, y2), radius=max(1, round(w * 0.2)),
                               fill=hair)
    return out.filter(ImageFilter.SMOOTH)


@dataclass
class ImageContext:
    """What ADetailer reads from the job for one image (`p` and its `i`-th prompt and seed)."""

    prompt: str
    negative: str
    seed: int
    steps: int
    width: int
    height: int
    opts: dict[str, Any]
    inpaint_mask: Image.Image | None = None
    """The img2img mask (binary, processing size) when inpainting "whole picture": detections must touch it."""


@dataclass
class Outcome:
    """One image after ADetailer: the picture and the sampling steps of each inpainting pass, grouped by tab
    (each tab adds its masks to `job_count`)."""

    image: Image.Image
    jobs: list[tuple[int, list[int]]] = field(default_factory=list)
    error: str | None = None


def _prompts(text: str, main: str) -> list[str]:
    """`_get_prompt`: [SEP] separates one prompt per mask; empty is the job's prompt; [PROMPT] inserts it."""
    parts = re.split(r"\s*\[SEP\]\s*", text)
    return [main if not part else part.replace("[PROMPT]", main) for part in parts]


def postprocess(image: Image.Image, run: Run, ctx: ImageContext) -> Outcome:
    """`postprocess_image` for one image (worker thread)."""
    outcome = Outcome(image.convert("RGB"))
    same_seed = bool(ctx.opts.get("ad_same_seed_for_each_tab"))
    sortby = str(ctx.opts.get("ad_bbox_sortby", "None"))
    for n, unit in enumerate(run.units):
        if unit.skipped:
            continue
        model = unit["ad_model"]
        if model not in MODELS:  # `get_ad_model` raises; A1111 logs it and ends this script's run
            outcome.error = f"[-] ADetailer: Model {model!r} not found. Available models: {MODELS}"
            break
        current = outcome.image
        masks = preprocess(detect(current, model, unit["ad_confidence"]), current.size, unit, sortby)
        if ctx.inpaint_mask is not None and masks:
            limit = ctx.inpaint_mask.resize(masks[0].size, Image.Resampling.LANCZOS)
            masks = [m for m in masks if ImageChops.darker(limit, m).getbbox() is not None]
        prompts = _prompts(unit["ad_prompt"], ctx.prompt)
        negatives = _prompts(unit["ad_negative_prompt"], ctx.negative)
        width, height = ((unit["ad_inpaint_width"], unit["ad_inpaint_height"]) if unit["ad_use_inpaint_width_height"]
                         else (ctx.width, ctx.height))
        steps = unit["ad_steps"] if unit["ad_use_steps"] else ctx.steps
        denoise = unit["ad_denoising_strength"]
        settings = InpaintSettings(blur_x=unit["ad_mask_blur"], blur_y=unit["ad_mask_blur"], fill=1,
                                   full_res=unit["ad_inpaint_only_masked"],
                                   padding=unit["ad_inpaint_only_masked_padding"])
        passes: list[int] = []
        for j, mask in enumerate(masks):
            prompt = prompts[min(j, len(prompts) - 1)]
            if re.match(r"^\s*\[SKIP\]\s*$", prompt):
                continue
            seed = ctx.seed if same_seed else ctx.seed + j
            key = hashlib.sha256("\x1f".join((prompt, negatives[min(j, len(negatives) - 1)], str(seed), model,
                                              "adetailer")).encode()).digest()
            kind = _kind(model)
            strength = min(1.0, 0.3 + 0.7 * denoise)

            def content(start: Image.Image, m: Image.Image, kind: str = kind, key: bytes = key,
                        strength: float = strength) -> Image.Image:
                return Image.blend(start, draw_detail(start, m, kind, key), strength)

            result = inpaint(current, prepare_mask(mask, settings), settings, width, height, content, key)
            if result is not None:
                current = result.finish()
            passes.append(int(min(denoise, 0.999) * max(1, steps)) + 1)
        outcome.jobs.append((len(masks), passes))
        if passes:
            outcome.image = current
    return outcome


def inpaint_limit(mask: Image.Image, invert: bool, resize_mode: int, width: int, height: int) -> Image.Image:
    """`get_image_mask`: the img2img mask as ADetailer sees it (inverted if asked, at the processing size)."""
    m = mask.convert("L")
    if invert:
        m = ImageOps.invert(m)
    return fit(m, width, height, resize_mode)
