"""Request bodies checked the way FastAPI + pydantic check them, with the 422 bodies they produce.

A1111 and SD.Next run pydantic v1 (lax coercion, `type_error.*` codes); Forge runs pydantic v2
(stricter coercion, `int_parsing`-style codes and an `url` per error). `validate_request` returns
the values in field order with the defaults filled in, or the error list of the 422 body.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from .data import Dialect


@dataclass(frozen=True, slots=True)
class Field:
    """One request field: its JSON kind, default and pydantic constraints."""

    name: str
    kind: str  # s, i, f, b, ls (list of str), l (list), d (dict)
    default: Any = None
    nullable: bool = True
    required: bool = False
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    literal: tuple[Any, ...] | None = None


def _fields(spec: str) -> list[Field]:
    out = []
    for item in spec.split():
        name, kind, default = item.split(":", 2)
        out.append(Field(name, kind, json.loads(default)))
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
TXT2IMG_FIELDS: list[Field] = _COMMON_HEAD + _TXT2IMG_ONLY + _COMMON_TAIL
IMG2IMG_FIELDS: list[Field] = (
    [dataclasses.replace(f, default=0.75) if f.name == "denoising_strength" else f for f in _COMMON_HEAD]
    + _IMG2IMG_ONLY + _COMMON_TAIL
)
EXTRAS_FIELDS: list[Field] = [
    Field("resize_mode", "i", 0, nullable=False, literal=(0, 1)),
    Field("show_extras_results", "b", True, nullable=False),
    Field("gfpgan_visibility", "f", 0, nullable=False, ge=0, le=1),
    Field("codeformer_visibility", "f", 0, nullable=False, ge=0, le=1),
    Field("codeformer_weight", "f", 0, nullable=False, ge=0, le=1),
    Field("upscaling_resize", "f", 2, nullable=False, gt=0),
    Field("upscaling_resize_w", "i", 512, nullable=False, ge=1),
    Field("upscaling_resize_h", "i", 512, nullable=False, ge=1),
    Field("upscaling_crop", "b", True, nullable=False),
    Field("upscaler_1", "s", "None", nullable=False),
    Field("upscaler_2", "s", "None", nullable=False),
    Field("extras_upscaler_2_visibility", "f", 0, nullable=False, ge=0, le=1),
    Field("upscale_first", "b", False, nullable=False),
    Field("image", "s", "", nullable=False),
]
PNGINFO_FIELDS: list[Field] = [Field("image", "s", None, nullable=False, required=True)]
INTERROGATE_FIELDS: list[Field] = [  # `InterrogateRequest`: both non-Optional str with defaults
    Field("image", "s", "", nullable=False),
    Field("model", "s", "clip", nullable=False),
]

_BOOL_TRUE = {1, "1", "on", "t", "true", "y", "yes"}
_BOOL_FALSE = {0, "0", "off", "f", "false", "n", "no"}
V2_URL = "https://errors.pydantic.dev/2.8/v/"


class Invalid(Exception):
    """A rejected value: (msg, type, ctx) for pydantic v1, (type, msg, ctx) for v2, and where inside it."""

    def __init__(self, v1: tuple[str, str, dict | None], v2: tuple[str, str, dict | None], loc: tuple = ()):
        super().__init__(v1[0])
        self.v1, self.v2, self.loc = v1, v2, loc


def coerce_v1(kind: str, v: Any) -> Any:
    """pydantic v1 (A1111, SD.Next) lax coercion."""
    if kind == "i":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, (str, float, bool)):
            try:
                return int(v)
            except (TypeError, ValueError, OverflowError):
                pass
        raise Invalid(("value is not a valid integer", "type_error.integer", None), _v2_int(v))
    if kind == "f":
        if isinstance(v, float):
            return v
        if isinstance(v, (int, str)):
            try:
                return float(v)
            except (TypeError, ValueError, OverflowError):
                pass
        raise Invalid(("value is not a valid float", "type_error.float", None), _v2_float(v))
    if kind == "s":
        if isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return str(v)
        raise Invalid(("str type expected", "type_error.str", None), ("string_type", "Input should be a valid string", None))
    if kind == "b":
        if v is True or v is False:
            return v
        key = v.lower() if isinstance(v, str) else v
        if isinstance(key, (str, int, float)):
            if key in _BOOL_TRUE:
                return True
            if key in _BOOL_FALSE:
                return False
        raise Invalid(("value could not be parsed to a boolean", "type_error.bool", None), _v2_bool(v))
    if kind in ("l", "ls"):
        if not isinstance(v, list):
            raise Invalid(("value is not a valid list", "type_error.list", None), ("list_type", "Input should be a valid list", None))
        return list(v) if kind == "l" else _coerce_items(coerce_v1, v)
    if kind == "d":
        if isinstance(v, dict):
            return v
        try:
            return dict(v)
        except (TypeError, ValueError):
            raise Invalid(("value is not a valid dict", "type_error.dict", None),
                           ("dict_type", "Input should be a valid dictionary", None)) from None
    raise AssertionError(kind)


def _coerce_items(coerce: Any, items: list[Any]) -> list[str]:
    """A list of strings, each coerced by the dialect's rules; a bad item's index goes in `loc`."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(coerce("s", item))
        except Invalid as exc:
            exc.loc = (i,)
            raise
    return out


def _v2_int(v: Any) -> tuple[str, str, None]:
    if isinstance(v, float):
        return ("int_from_float", "Input should be a valid integer, got a number with a fractional part", None)
    if isinstance(v, str):
        return ("int_parsing", "Input should be a valid integer, unable to parse string as an integer", None)
    return ("int_type", "Input should be a valid integer", None)


def _v2_float(v: Any) -> tuple[str, str, None]:
    if isinstance(v, str):
        return ("float_parsing", "Input should be a valid number, unable to parse string as a number", None)
    return ("float_type", "Input should be a valid number", None)


def _v2_bool(v: Any) -> tuple[str, str, None]:
    if isinstance(v, (str, int, float)):
        return ("bool_parsing", "Input should be a valid boolean, unable to interpret input", None)
    return ("bool_type", "Input should be a valid boolean", None)


def coerce_v2(kind: str, v: Any) -> Any:
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
        raise Invalid(v1_unused, _v2_int(v))
    if kind == "f":
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                pass
        raise Invalid(v1_unused, _v2_float(v))
    if kind == "s":
        if isinstance(v, str):
            return v
        raise Invalid(v1_unused, ("string_type", "Input should be a valid string", None))
    if kind == "b":
        if isinstance(v, bool):
            return v
        key = v.strip().lower() if isinstance(v, str) else v
        if isinstance(key, (str, int, float)):
            if key in _BOOL_TRUE:
                return True
            if key in _BOOL_FALSE:
                return False
        raise Invalid(v1_unused, _v2_bool(v))
    if kind in ("l", "ls"):
        if not isinstance(v, list):
            raise Invalid(v1_unused, ("list_type", "Input should be a valid list", None))
        return list(v) if kind == "l" else _coerce_items(coerce_v2, v)
    if kind == "d":
        if isinstance(v, dict):
            return v
        raise Invalid(v1_unused, ("dict_type", "Input should be a valid dictionary", None))
    raise AssertionError(kind)


def _constraint_error(f: Field, v: Any) -> Invalid | None:
    if f.literal is not None:
        try:
            ok = v in f.literal and not isinstance(v, str)
        except TypeError:
            ok = False
        if not ok:
            permitted = ", ".join(map(str, f.literal))
            expected = " or ".join(map(str, f.literal))
            return Invalid((f"unexpected value; permitted: {permitted}", "value_error.const",
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
            return Invalid((f"ensure this value is {word} {limit_out}", f"value_error.number.{v1code}",
                             {"limit_value": limit_out}),
                            (v2code, f"Input should be {word} {limit_out}", {attr: limit_out}))
    return None


def validate_request(fields: list[Field], body: Any, dialect: Dialect) -> tuple[dict[str, Any] | None, list[dict] | None]:
    """Validate a JSON body like FastAPI + pydantic would. Returns (values in field order, None) or (None, 422 errors)."""
    v2 = dialect == "forge"
    if not isinstance(body, dict):
        if v2:
            return None, [{"type": "model_attributes_type", "loc": ["body"],
                           "msg": "Input should be a valid dictionary or object to extract fields from",
                           "input": body if not isinstance(body, bytes) else body.decode("utf-8", "replace"),
                           "url": V2_URL + "model_attributes_type"}]
        return None, [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
    out: dict[str, Any] = {}
    errors: list[dict] = []
    coerce = coerce_v2 if v2 else coerce_v1
    for f in fields:
        if f.name not in body:
            if f.required:
                if v2:
                    errors.append({"type": "missing", "loc": ["body", f.name], "msg": "Field required", "input": body,
                                   "url": V2_URL + "missing"})
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
                exc = Invalid(("", "", None), _v2_int(value) if f.kind == "i" else
                               ({"f": _v2_float(value), "b": _v2_bool(value)}.get(f.kind)
                                or ("string_type", "Input should be a valid string", None)))
            else:
                exc = Invalid(("none is not an allowed value", "type_error.none.not_allowed", None), ("", "", None))
        else:
            try:
                out[f.name] = coerce(f.kind, value)
                exc = _constraint_error(f, out[f.name]) if (f.literal or f.ge is not None or f.le is not None
                                                          or f.gt is not None) else None
                if exc is None:
                    continue
                if f.literal is not None and not v2:
                    exc.v1[2]["given"] = value
            except Invalid as caught:
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
            err["url"] = V2_URL + typ
        else:
            msg, typ, ctx = exc.v1
            err = {"loc": loc, "msg": msg, "type": typ}
            if ctx:
                err["ctx"] = ctx
        errors.append(err)
    if errors:
        return None, errors
    return out, None



def validate_query_bool(raw: str, name: str, dialect: Dialect) -> tuple[bool | None, list[dict] | None]:
    """A boolean query parameter: (value, None) or (None, 422 errors)."""
    try:
        return (coerce_v2("b", raw) if dialect == "forge" else coerce_v1("b", raw)), None
    except Invalid:
        if dialect == "forge":
            return None, [{"type": "bool_parsing", "loc": ["query", name],
                           "msg": "Input should be a valid boolean, unable to interpret input", "input": raw,
                           "url": V2_URL + "bool_parsing"}]
        return None, [{"loc": ["query", name], "msg": "value could not be parsed to a boolean",
                       "type": "type_error.bool"}]


def missing_body_errors(dialect: Dialect) -> list[dict]:
    """The 422 errors for a request without a body."""
    if dialect == "forge":
        return [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None, "url": V2_URL + "missing"}]
    return [{"loc": ["body"], "msg": "field required", "type": "value_error.missing"}]


def json_decode_errors(exc: json.JSONDecodeError, dialect: Dialect) -> list[dict]:
    """The 422 errors for a body that is not valid JSON."""
    if dialect == "forge":
        return [{"type": "json_invalid", "loc": ["body", exc.pos], "msg": "JSON decode error", "input": {},
                 "ctx": {"error": exc.msg}}]
    return [{"loc": ["body", exc.pos], "msg": str(exc), "type": "value_error.jsondecode",
             "ctx": {"msg": exc.msg, "doc": exc.doc, "pos": exc.pos, "lineno": exc.lineno, "colno": exc.colno}}]


def not_a_dict_errors() -> list[dict]:
    """POST /options takes a bare dict; every dialect answers a non-dict with this pydantic-v1 error."""
    return [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
