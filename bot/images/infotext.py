"""A1111 infotext: the `parameters` text the WebUI writes into every image.

* Writer (`create_infotext`, `quote`) follows A1111 v1.10.1 `processing.create_infotext`
  (reference §6).
* Parser (`parse_generation_parameters`) follows v1.10.1 `infotext_utils.parse_generation_parameters`
  (reference §7.1) with the WebUI's default options: `infotext_styles = "Apply if any"`,
  `auto_backcompat = True`, `use_old_hires_fix_width_height = False`, `infotext_skip_pasting = []`.
* `infotext_to_payload` turns a parsed dict into txt2img API fields (reference §7.3).

Styles: sdcord has no styles database, so the parser behaves like a WebUI whose styles database is
empty. No style text is stripped from the prompts and no ``Styles array`` key is produced. The
hires-prompt normalisation that A1111 runs in the same block is kept, because it runs (and changes
the output) even with an empty database: a ``Hires prompt``/``Hires negative prompt`` equal to the
main prompt/negative becomes ``""``.

Where A1111 itself would raise (an attention weight such as ``(x:1.2.3)``, a non-numeric
``First pass size``), this parser does not: the offending piece is ignored (see the helpers).

No Discord imports here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_SAMPLERS",
    "DEFAULT_SCHEDULERS",
    "create_infotext",
    "infotext_to_payload",
    "parse_generation_parameters",
    "quote",
    "resolve_sampler_and_scheduler",
]


# --------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------


def quote(value: Any) -> str:
    """Quote a parameter value the way A1111 does.

    A value is JSON-encoded (non-ASCII kept) only if its text contains a comma, a newline or a
    colon; everything else, numbers included, is written raw.
    """
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def create_infotext(
    prompt: str,
    negative_prompt: str,
    params: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> str:
    """Build one image's infotext.

    `params` is an ordered mapping (or pairs) of infotext keys to values. ``None`` values are
    left out; a value equal to its own key is written as a bare flag.
    """
    items = params.items() if isinstance(params, Mapping) else params
    line = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in items if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()


# --------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------

# The exact expressions of A1111 v1.10.1 (infotext_utils.py); see reference §7.1.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")

_NEGATIVE_MARKER = "Negative prompt:"  # exact case; 16 characters

USE_SAME_SAMPLER = "Use same sampler"
USE_SAME_SCHEDULER = "Use same scheduler"
USE_SAME_CHECKPOINT = "Use same checkpoint"


def _unquote(text: str) -> str:
    if not text or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_generation_parameters(
    text: str,
    *,
    skip_fields: Iterable[str] = (),
    auto_backcompat: bool = True,
) -> dict[str, Any]:
    """Parse an infotext exactly like A1111 v1.10.1 (reference §7.1).

    Every value read from the text is a ``str`` (quoted values JSON-decoded); ``WxH`` values become
    ``"{key}-1"``/``"{key}-2"`` strings. The injected defaults keep A1111's types (``int`` 0/32,
    ``bool`` False, strings). Key order is A1111's: the parameters in text order, then ``Prompt``,
    ``Negative prompt``, then the injected defaults.

    `skip_fields` mirrors the ``infotext_skip_pasting`` option; `auto_backcompat` the option of the
    same name (version-based compatibility keys, §7.1 step 9).
    """
    res: dict[str, Any] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = text.strip().split("\n")
    if len(_RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith(_NEGATIVE_MARKER):
            done_with_prompt = True
            line = line[len(_NEGATIVE_MARKER):].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    for key, value in _RE_PARAM.findall(lastline):
        if not value:
            # A1111 indexes value[0] inside a try/except and drops the key on the IndexError.
            continue
        if value[0] == '"' and value[-1] == '"':
            value = _unquote(value)
        m = _RE_IMAGESIZE.match(value)
        if m is not None:
            res[f"{key}-1"] = m.group(1)
            res[f"{key}-2"] = m.group(2)
        else:
            res[key] = value

    # Styles block ("Apply if any" with an empty styles database): nothing is stripped and no
    # "Styles array" is added, but the hires prompts are normalised against the main prompts.
    if "Hires prompt" in res or "Hires negative prompt" in res:
        version = _parse_version(res.get("Version"))
        if version is None or version > _V180_HR_STYLES:
            hr_prompt = res.get("Hires prompt", prompt)
            hr_negative = res.get("Hires negative prompt", negative_prompt)
            res["Hires prompt"] = "" if hr_prompt == prompt else hr_prompt
            res["Hires negative prompt"] = "" if hr_negative == negative_prompt else hr_negative

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    # Missing CLIP skip means it was set to 1 (the default).
    if "Clip skip" not in res:
        res["Clip skip"] = "1"

    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] += f"<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"

    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    res.setdefault("Hires sampler", USE_SAME_SAMPLER)
    res.setdefault("Hires schedule type", USE_SAME_SCHEDULER)
    res.setdefault("Hires checkpoint", USE_SAME_CHECKPOINT)
    res.setdefault("Hires prompt", "")
    res.setdefault("Hires negative prompt", "")
    res.setdefault("Mask mode", "Inpaint masked")
    res.setdefault("Masked content", "original")
    res.setdefault("Inpaint area", "Whole picture")
    res.setdefault("Masked area padding", 32)

    _restore_old_hires_fix_params(res)

    # Missing RNG means the default was set, which is GPU RNG.
    res.setdefault("RNG", "GPU")
    res.setdefault("Schedule type", "Automatic")
    res.setdefault("Schedule max sigma", 0)
    res.setdefault("Schedule min sigma", 0)
    res.setdefault("Schedule rho", 0)
    res.setdefault("VAE Encoder", "Full")
    res.setdefault("VAE Decoder", "Full")
    res.setdefault("FP8 weight", "Disable")
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False

    if "Emphasis" not in res and (_uses_emphasis(prompt) or _uses_emphasis(negative_prompt)):
        res["Emphasis"] = "Original"

    res.setdefault("Refiner switch by sampling steps", False)

    if auto_backcompat:
        _backcompat(res)

    for key in skip_fields:
        res.pop(key, None)

    return res


def _old_hires_fix_first_pass_dimensions(width: int, height: int) -> tuple[int, int]:
    """A1111 `processing.old_hires_fix_first_pass_dimensions`: first pass ~512² in 64-px steps."""
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def _restore_old_hires_fix_params(res: dict[str, Any]) -> None:
    """Convert pre-1.0 ``First pass size`` infotexts into ``Size-*`` + ``Hires resize-*`` (ints).

    Same arithmetic as A1111's `restore_old_hires_fix_params` with the default option
    ``use_old_hires_fix_width_height = False``. Where A1111 would raise on a non-numeric (or zero
    area) size, the conversion is skipped instead.
    """
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if first_w is None or first_h is None:
        return
    try:
        first_w, first_h = int(first_w), int(first_h)
        width = int(res.get("Size-1", 512))
        height = int(res.get("Size-2", 512))
        if first_w == 0 or first_h == 0:
            first_w, first_h = _old_hires_fix_first_pass_dimensions(width, height)
    except (ValueError, ZeroDivisionError):
        return
    res["Size-1"] = first_w
    res["Size-2"] = first_h
    res["Hires resize-1"] = width
    res["Hires resize-2"] = height


# --- Emphasis detection: A1111 prompt_parser.parse_prompt_attention (v1.10.1) -----------------------

_RE_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def _parse_prompt_attention(text: str) -> list[list[Any]]:
    """Split a prompt into ``[text, weight]`` runs like A1111's `parse_prompt_attention`.

    One deliberate difference: a weight that is not a number (``(x:1.2.3)``) makes A1111 raise;
    here that token is treated as plain text.
    """
    res: list[list[Any]] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []
    round_mult = 1.1
    square_mult = 1 / 1.1

    def multiply_range(start: int, multiplier: float) -> None:
        for p in range(start, len(res)):
            res[p][1] *= multiplier

    for m in _RE_ATTENTION.finditer(text):
        token = m.group(0)
        weight_text = m.group(1)
        weight: float | None = None
        if weight_text is not None:
            try:
                weight = float(weight_text)
            except ValueError:
                weight = None

        if token.startswith("\\"):
            res.append([token[1:], 1.0])
        elif token == "(":
            round_brackets.append(len(res))
        elif token == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), weight)
        elif token == ")" and round_brackets:
            multiply_range(round_brackets.pop(), round_mult)
        elif token == "]" and square_brackets:
            multiply_range(square_brackets.pop(), square_mult)
        else:
            for i, part in enumerate(_RE_BREAK.split(token)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])

    for pos in round_brackets:
        multiply_range(pos, round_mult)
    for pos in square_brackets:
        multiply_range(pos, square_mult)

    if not res:
        res = [["", 1.0]]

    # Merge runs of identical weights.
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def _uses_emphasis(text: str) -> bool:
    """True when some non-BREAK run has a weight other than exactly 1.0 (A1111's Emphasis test)."""
    return any(w != 1.0 and t != "BREAK" for t, w in _parse_prompt_attention(text))


# --- Versions (PEP 440 ordering, as `packaging.version` gives A1111) ------------------------------

_RE_PEP440 = re.compile(
    r"""
    ^\s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*$
    """,
    re.X | re.I,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_NEG_INF = (-1, 0)  # sorts below any (0, n)
_POS_INF = (1, 0)  # sorts above any (0, n)


def _parse_version(text: Any) -> tuple | None:
    """A1111 `infotext_versions.parse_version`: a sortable PEP 440 key, or None if unparsable.

    ``"v1.10.1-5-gabc1234"`` is first cut to ``"v1.10.1-5"`` (= 1.10.1.post5), as A1111 does.
    Forge's ``"f2.0.1v1.10.1-…"`` is not a PEP 440 version and gives None (packaging ≥ 22
    behaviour).
    """
    if not isinstance(text, str):
        return None
    m = re.match(r"([^-]+-[^-]+)-.*", text)
    if m:
        text = m.group(1)
    v = _RE_PEP440.match(text)
    if v is None:
        return None
    release = [int(x) for x in v["release"].split(".")]
    while release and release[-1] == 0:
        release.pop()
    pre = (0, _PRE_RANK[v["pre_l"].lower()], int(v["pre_n"] or 0)) if v["pre_l"] else None
    if v["post_n1"] is not None:
        post = (0, int(v["post_n1"]))
    elif v["post_l"]:
        post = (0, int(v["post_n2"] or 0))
    else:
        post = None
    dev = (0, int(v["dev_n"] or 0)) if v["dev_l"] else None
    if pre is None and post is None and dev is not None:
        pre_key: tuple = (-1, 0, 0)  # 1.0.dev0 sorts before 1.0a0
    elif pre is None:
        pre_key = (1, 0, 0)
    else:
        pre_key = pre
    if v["local"]:
        local_key: tuple = tuple(
            (1, int(p), "") if p.isdigit() else (0, 0, p.lower()) for p in re.split(r"[-_.]", v["local"])
        )
    else:
        local_key = ((-1, 0, ""),)
    return (
        int(v["epoch"] or 0),
        tuple(release),
        pre_key,
        post if post is not None else _NEG_INF,
        dev if dev is not None else _POS_INF,
        local_key,
    )


_V160 = _parse_version("1.6.0")
_V170_TSNR = _parse_version("v1.7.0-225")
_V180 = _parse_version("1.8.0")
_V180_HR_STYLES = _parse_version("1.8.0-139")


def _backcompat(d: dict[str, Any]) -> None:
    """A1111 `infotext_versions.backcompat` (reference §7.1 step 9)."""
    ver = _parse_version(d.get("Version"))
    if ver is None:
        return
    if ver < _V160 and "[" in d.get("Prompt", ""):
        d["Old prompt editing timelines"] = True
    if ver < _V160 and d.get("Sampler", "") in ("DDIM", "PLMS"):
        d["Pad conds v0"] = True
    if ver < _V170_TSNR:
        d["Downcast alphas_cumprod"] = True
    if ver < _V180 and d.get("Refiner"):
        d["Refiner switch by sampling steps"] = True


# --------------------------------------------------------------------------------------------------
# Sampler / scheduler resolution (A1111 v1.10.1 sd_samplers.get_sampler_and_scheduler)
# --------------------------------------------------------------------------------------------------

#: v1.10.1 samplers in server order, with each sampler's default scheduler *name* (or None).
DEFAULT_SAMPLERS: tuple[tuple[str, str | None], ...] = (
    ("DPM++ 2M", "karras"),
    ("DPM++ SDE", "karras"),
    ("DPM++ 2M SDE", "exponential"),
    ("DPM++ 2M SDE Heun", "exponential"),
    ("DPM++ 2S a", "karras"),
    ("DPM++ 3M SDE", "exponential"),
    ("Euler a", None),
    ("Euler", None),
    ("LMS", None),
    ("Heun", None),
    ("DPM2", "karras"),
    ("DPM2 a", "karras"),
    ("DPM fast", None),
    ("DPM adaptive", None),
    ("Restart", "karras"),
    ("DDIM", None),
    ("DDIM CFG++", None),
    ("PLMS", None),
    ("UniPC", None),
    ("LCM", None),
)

#: v1.10.1 schedulers in server order: (name, label, aliases).
DEFAULT_SCHEDULERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("automatic", "Automatic", ()),
    ("uniform", "Uniform", ()),
    ("karras", "Karras", ()),
    ("exponential", "Exponential", ()),
    ("polyexponential", "Polyexponential", ()),
    ("sgm_uniform", "SGM Uniform", ("SGMUniform",)),
    ("kl_optimal", "KL Optimal", ()),
    ("align_your_steps", "Align Your Steps", ()),
    ("simple", "Simple", ()),
    ("normal", "Normal", ()),
    ("ddim", "DDIM", ()),
    ("beta", "Beta", ()),
)


def _sampler_table(samplers: Iterable[Any] | None) -> list[tuple[str, str | None]]:
    if samplers is None:
        return list(DEFAULT_SAMPLERS)
    table: list[tuple[str, str | None]] = []
    for item in samplers:
        if isinstance(item, str):
            table.append((item, None))
        elif isinstance(item, Mapping):
            options = item.get("options") or {}
            table.append((str(item["name"]), options.get("scheduler")))
        else:
            name, default = item
            table.append((str(name), default))
    return table


def _scheduler_table(schedulers: Iterable[Any] | None) -> list[tuple[str, str, tuple[str, ...]]]:
    if schedulers is None:
        return list(DEFAULT_SCHEDULERS)
    table: list[tuple[str, str, tuple[str, ...]]] = []
    for item in schedulers:
        if isinstance(item, Mapping):
            table.append((str(item["name"]), str(item["label"]), tuple(item.get("aliases") or ())))
        else:
            name, label, *rest = item
            table.append((str(name), str(label), tuple(rest[0]) if rest else ()))
    return table


def resolve_sampler_and_scheduler(
    sampler: str | None,
    scheduler: str | None,
    *,
    samplers: Iterable[Any] | None = None,
    schedulers: Iterable[Any] | None = None,
    convert_automatic: bool = True,
) -> tuple[str, str]:
    """Split/resolve a sampler and schedule type like A1111 v1.10.1 `get_sampler_and_scheduler`.

    * A trailing ``" " + scheduler label/name/alias`` is cut off the sampler name and becomes the
      scheduler: ``"DPM++ 2M Karras"`` → ``("DPM++ 2M", …"Karras")``.
    * An unknown scheduler becomes the first one (``Automatic``); a missing sampler the first one
      (``DPM++ 2M``).
    * With `convert_automatic` (what infotext pasting uses), a scheduler equal to the sampler's own
      default becomes ``Automatic`` (which the server maps back to that same default), so
      ``"DPM++ 2M Karras"`` → ``("DPM++ 2M", "Automatic")``.

    Deliberate difference: a sampler name the table does not know is **kept as written** instead of
    becoming ``DPM++ 2M``, so samplers of Forge or extensions survive; the server applies its own
    fallback. `samplers`/`schedulers` accept the JSON lists of ``/sdapi/v1/samplers`` and
    ``/sdapi/v1/schedulers`` (default: the v1.10.1 tables above).
    """
    sampler_rows = _sampler_table(samplers)
    scheduler_rows = _scheduler_table(schedulers)
    if not scheduler_rows:
        raise ValueError("no schedulers")
    by_key: dict[str, tuple[str, str, tuple[str, ...]]] = {row[0]: row for row in scheduler_rows}
    by_key.update({row[1]: row for row in scheduler_rows})

    found = by_key.get(scheduler, scheduler_rows[0]) if scheduler is not None else scheduler_rows[0]
    name = sampler or (sampler_rows[0][0] if sampler_rows else "")

    for row in scheduler_rows:
        for option in (row[1], row[0], *row[2]):
            if name.endswith(" " + option):
                found = row
                name = name[: -(len(option) + 1)]
                break

    defaults = dict(sampler_rows)
    if convert_automatic and name in defaults and defaults[name] == found[0]:
        found = scheduler_rows[0]
    return name, found[1]


# --------------------------------------------------------------------------------------------------
# Parsed infotext → txt2img payload (reference §7.3)
# --------------------------------------------------------------------------------------------------


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _to_str(value: Any) -> str | None:
    return None if value is None else str(value)


# (parsed key, API field, converter) in the order of A1111's txt2img paste fields.
_SIMPLE_FIELDS_HEAD = (
    ("Prompt", "prompt", _to_str),
    ("Negative prompt", "negative_prompt", _to_str),
    ("Steps", "steps", _to_int),
)
_SIMPLE_FIELDS_TAIL = (
    ("CFG scale", "cfg_scale", _to_float),
    ("Seed", "seed", _to_int),
    ("Variation seed", "subseed", _to_int),
    ("Variation seed strength", "subseed_strength", _to_float),
    # The writer stores "Seed resize from: {w}x{h}". A1111's API labels are swapped
    # ("-1" → seed_resize_from_h); its UI components are not. We map like the UI (-1 is the width)
    # so a rerun reproduces the image.
    ("Seed resize from-1", "seed_resize_from_w", _to_int),
    ("Seed resize from-2", "seed_resize_from_h", _to_int),
    ("Size-1", "width", _to_int),
    ("Size-2", "height", _to_int),
    ("Batch size", "batch_size", _to_int),
)
_HIRES_FIELDS = (
    ("Hires upscale", "hr_scale", _to_float),
    ("Hires upscaler", "hr_upscaler", _to_str),
    ("Hires steps", "hr_second_pass_steps", _to_int),
    ("Hires resize-1", "hr_resize_x", _to_int),
    ("Hires resize-2", "hr_resize_y", _to_int),
)


def infotext_to_payload(
    parsed: Mapping[str, Any],
    *,
    samplers: Iterable[Any] | None = None,
    schedulers: Iterable[Any] | None = None,
    convert_automatic: bool = True,
) -> dict[str, Any]:
    """Map a `parse_generation_parameters` result to txt2img request fields (reference §7.3).

    Values get the API types (``int``/``float``/``str``/``bool``); a value that cannot be converted
    (``Steps: abc``) is left out rather than raising. Keys that are absent stay absent, so the
    server defaults apply. The injected ``Use same …`` sentinels are never sent: ``hr_sampler_name``,
    ``hr_scheduler`` and ``hr_checkpoint_name`` only appear when they differ from the main pass.

    * ``enable_hr`` follows A1111 exactly: ``"Denoising strength" in d and ("Hires upscale" in d or
      "Hires upscaler" in d or "Hires resize-1" in d)``. Because the parser always injects
      ``Hires resize-1``, any infotext with a denoising strength (img2img too) enables hires.
    * ``Sampler`` + ``Schedule type`` → ``sampler_name``/``scheduler`` via
      `resolve_sampler_and_scheduler` (same keyword arguments).
    * ``Clip skip`` > 1 → ``override_settings.CLIP_stop_at_last_layers``. Other settings-backed keys
      (ENSD, RNG, Model hash, …) are not mapped.
    """
    out: dict[str, Any] = {}

    def put(field: str, value: Any) -> None:
        if value is not None:
            out[field] = value

    def convert(key: str, conv: Any) -> Any:
        return conv(parsed[key]) if key in parsed and parsed[key] is not None else None

    for key, field, conv in _SIMPLE_FIELDS_HEAD:
        put(field, convert(key, conv))

    resolve_kw = {"samplers": samplers, "schedulers": schedulers, "convert_automatic": convert_automatic}
    raw_sampler = _to_str(parsed.get("Sampler"))
    raw_scheduler = _to_str(parsed.get("Schedule type"))
    sampler, scheduler = resolve_sampler_and_scheduler(raw_sampler, raw_scheduler, **resolve_kw)
    if sampler:
        out["sampler_name"] = sampler
    out["scheduler"] = scheduler

    for key, field, conv in _SIMPLE_FIELDS_TAIL:
        put(field, convert(key, conv))

    styles = parsed.get("Styles array")
    if isinstance(styles, list):
        out["styles"] = [str(s) for s in styles]

    put("denoising_strength", convert("Denoising strength", _to_float))
    out["enable_hr"] = "Denoising strength" in parsed and (
        "Hires upscale" in parsed or "Hires upscaler" in parsed or "Hires resize-1" in parsed
    )
    for key, field, conv in _HIRES_FIELDS:
        put(field, convert(key, conv))

    checkpoint = _to_str(parsed.get("Hires checkpoint"))
    if checkpoint and checkpoint != USE_SAME_CHECKPOINT:
        out["hr_checkpoint_name"] = checkpoint

    # A1111 get_hr_sampler_and_scheduler; a value equal to the main pass (raw or resolved) is "same".
    hr_sampler = _to_str(parsed.get("Hires sampler")) or USE_SAME_SAMPLER
    hr_scheduler = _to_str(parsed.get("Hires schedule type")) or USE_SAME_SCHEDULER
    if hr_sampler != USE_SAME_SAMPLER or hr_scheduler != USE_SAME_SCHEDULER:
        hs, hsch = resolve_sampler_and_scheduler(
            raw_sampler if hr_sampler == USE_SAME_SAMPLER else hr_sampler,
            raw_scheduler if hr_scheduler == USE_SAME_SCHEDULER else hr_scheduler,
            **resolve_kw,
        )
        if hs not in (raw_sampler, sampler):
            out["hr_sampler_name"] = hs
        if hsch not in (raw_scheduler, scheduler):
            out["hr_scheduler"] = hsch

    put("hr_prompt", convert("Hires prompt", _to_str))
    put("hr_negative_prompt", convert("Hires negative prompt", _to_str))

    refiner = _to_str(parsed.get("Refiner"))
    if refiner:
        out["refiner_checkpoint"] = refiner
    put("refiner_switch_at", convert("Refiner switch at", _to_float))

    clip_skip = convert("Clip skip", _to_int)
    if clip_skip is not None and clip_skip > 1:
        out["override_settings"] = {"CLIP_stop_at_last_layers": clip_skip}

    return out
