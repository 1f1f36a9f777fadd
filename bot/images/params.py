"""Read an image's generation parameters back: show them, and rebuild a /draw request from them.

Used by ``/pnginfo``, the "Show parameters" context menu, a result's Info button, and "rerun
from a PNG" when the job store does not know the job. No Discord imports here.

* `describe` turns an infotext (A1111, Forge, SD.Next, or anything written in that format) into a
  `ParamsView`: prompt, negative prompt, the parameters line as readable name/value pairs, the
  WebUI flavour that wrote it, and a copyable ``/draw …`` command.
* `draw_fields` turns it into /draw option values (a dict; the engine makes its `DrawOptions` from it)
  for a rerun. The A1111 parser
  (`bot.infotext.parse_generation_parameters`) and its §7.3 mapping (`infotext_to_payload`) do the
  reading; this module corrects the places where pasting into the WebUI would not reproduce the
  image (see `options_from_infotext`).
* `format_draw_command` renders any /draw option values as that ``/draw`` line (also for jobs the store
  knows).

Values are never range-checked here: ``Steps: 500`` gives ``steps=500`` and the payload builder
refuses it with its own message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .infotext import (
    _RE_PARAM,  # the parser's own expression, so "is there a params line" agrees with it exactly
    DEFAULT_SCHEDULERS,
    _parse_version,
    infotext_to_payload,
    parse_generation_parameters,
    resolve_sampler_and_scheduler,
)

__all__ = [
    "A1111",
    "FORGE",
    "SDNEXT",
    "UNKNOWN",
    "DISCORD_MESSAGE_LIMIT",
    "ParamsView",
    "describe",
    "format_draw_command",
    "draw_fields",
]

A1111 = "A1111"
FORGE = "Forge"
SDNEXT = "SD.Next"
UNKNOWN = "unknown"

DISCORD_MESSAGE_LIMIT = 2000  # characters; counted here in UTF-16 units, the stricter measure
MAX_VALUE_IN_COMMAND = 100  # any option but the prompts (Discord's longest choice value is 100)

#: Keys that make a params line "generation parameters" rather than a prompt that happens to
#: look like ``red: 1, green: 2, blue: 3`` (which the A1111 parser also takes as a params line).
_GENERATION_KEYS = ("Steps", "Sampler", "CFG scale", "Seed", "Size")

#: Keys only Forge writes (reference §6).
_FORGE_KEYS = ("Distilled CFG Scale", "Diffusion in Low Bits", "Module 1")

#: Samplers whose plain name meant the *uniform* (model's own) sigma schedule up to A1111 1.8, but
#: whose default scheduler since 1.9 is Karras/Exponential. An old ``Sampler: DPM++ 2M`` without
#: ``Schedule type`` must be rerun with ``Uniform``: ``Automatic`` would now mean Karras.
_UNIFORM_BEFORE_1_9 = frozenset(
    {"DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "DPM2",
     "DPM2 a"}
)
_V1_9 = _parse_version("1.9.0")

_KNOWN_SCHEDULERS = frozenset(n for name, label, _ in DEFAULT_SCHEDULERS for n in (name, label))

_RE_FORGE_VERSION = re.compile(r"^f\d+\.\d+")  # f2.0.1v1.10.1-previous-669-gdfdcbab6
_RE_A1111_VERSION = re.compile(r"^v?\d+\.\d+")  # v1.10.1, v1.10.1-5-gabc1234, 1.10.1
_RE_GIT_HASH = re.compile(r"^[0-9a-f]{7,40}$", re.I)  # SD.Next writes its commit
_RE_SHORT_HASH = re.compile(r"^[0-9a-f]{10}$")  # A1111 ≥ 1.0 shorthash; older 8-digit hashes differ
_RE_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ParamsView:
    """What an image says about how it was made, ready to show.

    * `prompt`, `negative_prompt`: as the A1111 parser reads them (newlines kept).
    * `fields`: every ``key: value`` of the params line in text order, values unquoted; WxH values
      (``Size``, ``Hires resize``, SD.Next's ``Batch``/``Index``) stay ``"512x768"``. The parser's
      injected defaults are not listed. Bare flags (a key written without a value) appear with
      ``""``. A key written twice is listed once, at its first place, with its last value (as the
      parser keeps it). Empty values are left out, as the parser drops them.
    * `flavour`: ``"A1111"``, ``"Forge"``, ``"SD.Next"`` or ``"unknown"``.
    * `draw_command`: a one-line ``/draw prompt:… …`` of at most 2000 characters, or ``""`` when
      the prompt is empty (``/draw`` needs one). `truncated` says the prompt(s) or a name were cut
      to fit, so the command no longer reproduces the image.
    * `has_parameters`: False for a text without generation parameters (a bare prompt);
      `draw_fields` refuses such a text, and `draw_command` then holds only the prompts.
    """

    prompt: str
    negative_prompt: str
    fields: list[tuple[str, str]]
    flavour: str
    draw_command: str
    truncated: bool = False
    has_parameters: bool = False


# --------------------------------------------------------------------------------------------------
# Reading the params line
# --------------------------------------------------------------------------------------------------


def _params_line(text: str) -> str | None:
    """The params line exactly as the A1111 parser picks it: the last line, if it has ≥ 3 pairs."""
    last = text.strip().split("\n")[-1]
    return last if len(_RE_PARAM.findall(last)) >= 3 else None


def _unquote(value: str) -> str:
    if len(value) >= 1 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def _flags(gap: str) -> list[str]:
    """Bare flags between two pairs (``…, NGMS all steps, …``): the writer's ``k`` for ``k == v``."""
    return [piece.strip() for piece in gap.split(",") if piece.strip()]


def _fields(line: str) -> list[tuple[str, str]]:
    values: dict[str, str] = {}
    pos = 0
    for m in _RE_PARAM.finditer(line):
        for flag in _flags(line[pos:m.start()]):
            values.setdefault(flag, "")
        pos = m.end()
        key, raw = m.group(1), m.group(2)
        if not raw:  # the parser drops empty values
            continue
        values[key] = _unquote(raw)  # a repeated key keeps its first place, takes the last value
    for flag in _flags(line[pos:]):
        values.setdefault(flag, "")
    return list(values.items())


def _flavour(fields: list[tuple[str, str]]) -> str:
    raw = dict(fields)
    if raw.get("App", "").strip().casefold() == "sd.next":
        return SDNEXT
    version = raw.get("Version", "").strip()
    if _RE_FORGE_VERSION.match(version):
        return FORGE
    if _RE_A1111_VERSION.match(version):
        return A1111
    if _RE_GIT_HASH.match(version) or "Operations" in raw:
        return SDNEXT
    if any(key in raw for key in _FORGE_KEYS):
        return FORGE
    if version or "Sampler" not in raw:
        return UNKNOWN
    # No Version (old A1111, or the option turned off): A1111 writes Steps, Sampler, …, Seed, …,
    # Size; SD.Next puts Seed or Size before Sampler.
    order = [key for key, _ in fields]
    sampler_at = order.index("Sampler")
    if any(key in raw and order.index(key) < sampler_at for key in ("Seed", "Size")):
        return SDNEXT
    return A1111


def _has_generation_parameters(fields: list[tuple[str, str]]) -> bool:
    keys = {key for key, value in fields if value}
    return any(key in keys for key in _GENERATION_KEYS)


def _parse(text: str, flavour: str) -> dict:
    # SD.Next's Version is a commit hash, and some hashes are PEP 440 versions: "1c23456" reads as
    # 1rc23456 < 1.6.0, and A1111's backcompat would add keys meant for its old releases.
    return parse_generation_parameters(text, auto_backcompat=flavour != SDNEXT)


# --------------------------------------------------------------------------------------------------
# Parsed → /draw option values
# --------------------------------------------------------------------------------------------------


# SD.Next's `schedulers_sigma` values with an A1111 schedule type of the same name.
_SDNEXT_SIGMA_LABELS = {"karras": "Karras", "exponential": "Exponential", "betas": "Beta"}


def _sampler_and_scheduler(raw: Mapping[str, str], flavour: str) -> tuple[str | None, str | None]:
    sampler = raw.get("Sampler", "").strip() or None
    scheduler = raw.get("Schedule type", "").strip() or None
    if flavour == SDNEXT:
        # SD.Next has no scheduler field and its own sampler list: the name is used as written
        # (its original backend still has combined names such as "DPM++ 2M Karras"). Its sigma schedule is
        # the `schedulers_sigma` option, written as "Sampler sigma" when it isn't `default`.
        sigma = raw.get("Sampler sigma", "").strip().casefold()
        return sampler, scheduler or _SDNEXT_SIGMA_LABELS.get(sigma)
    if sampler is None and scheduler is None:
        return None, None
    name, label = resolve_sampler_and_scheduler(sampler, scheduler, convert_automatic=False)
    if sampler is None:
        return None, label if scheduler in _KNOWN_SCHEDULERS else scheduler
    if name != sampler:  # a combined old name, "DPM++ 2M Karras": the suffix is the scheduler
        return name, label
    if scheduler is not None:
        # A label A1111 1.10 doesn't know (Forge's "Align Your Steps GITS", an alias) would become
        # "Automatic" in resolve_sampler_and_scheduler; keep it as written instead.
        return name, label if scheduler in _KNOWN_SCHEDULERS else scheduler
    # No Schedule type at all: written before A1111 1.9 (1.10 always writes it), by a tool in the
    # A1111 format, or with the sampler's own schedule.
    version = _parse_version(raw.get("Version"))
    if name in _UNIFORM_BEFORE_1_9 and (version is None or version < _V1_9):
        return name, "Uniform"
    return name, "Automatic"


def _options(parsed: Mapping, raw: Mapping[str, str], flavour: str, *, new_seed: bool) -> dict[str, Any]:
    payload = infotext_to_payload(parsed, convert_automatic=False)
    sampler, scheduler = _sampler_and_scheduler(raw, flavour)
    model = (raw.get("Model") or "").strip() or None
    if model is None and _RE_SHORT_HASH.match(raw.get("Model hash") or ""):
        model = raw["Model hash"]  # the WebUI's list knows the 10-character sha256 prefix
    return {
        **_extras(raw),
        "prompt": payload.get("prompt", ""),
        "negative_prompt": payload.get("negative_prompt", ""),
        "model": model,
        "sampler": sampler,
        "scheduler": scheduler,
        "steps": payload.get("steps"),
        "cfg_scale": payload.get("cfg_scale"),
        "seed": None if new_seed else payload.get("seed"),
        "width": payload.get("width"),
        "height": payload.get("height"),
        "batch": 1,
    }


def _extras(raw: Mapping[str, str]) -> dict[str, Any]:
    """The /draw options beyond the basic ones, only when the text has them: Clip skip (1-12 are /draw's; other
    values are kept for the payload builder to refuse), Tiling, and ADetailer (its face pass: fix_faces)."""
    out: dict[str, Any] = {}
    clip = (raw.get("Clip skip") or "").strip()
    if clip.isdigit():
        out["clip_skip"] = int(clip)
    if (raw.get("Tiling") or "").strip().casefold() == "true":
        out["tiling"] = True
    if (raw.get("ADetailer model") or "").strip():
        out["fix_faces"] = True
    return out


def draw_fields(infotext: str, *, new_seed: bool = False) -> dict[str, Any]:
    """The /draw option values that rerun the image described by `infotext`.

    * prompt, negative prompt (``""`` when the image had none, so ``DEFAULT_NEGATIVE_PROMPT`` is
      not added), steps, CFG scale (float), seed (None with `new_seed`), width/height, sampler,
      scheduler, model and batch 1. Absent or unparseable values are None (= the /draw default);
      values /draw would refuse are kept, for the payload builder to refuse with its own message.
    * width/height are the first-pass ``Size`` (hires fix is not a /draw option); pre-1.0
      ``First pass size`` infotexts are converted as A1111 does.
    * model is the ``Model`` name (else a 10-digit ``Model hash``; the 8-digit hashes of old
      releases are computed differently and are ignored), resolved against the WebUI's list later
      by the payload builder.
    * sampler/scheduler: an old combined name (``DPM++ 2M Karras``) is split. Unlike A1111's
      paste, the scheduler is explicit and faithful: ``Karras`` rather than ``Automatic`` for that
      split, ``Automatic`` when an A1111-style text has no ``Schedule type`` (not sdcord's default
      scheduler), ``Uniform`` for an old plain ``DPM++ 2M``-family name, and a label the A1111
      table doesn't know is kept as written. SD.Next texts keep their sampler name as written and
      no scheduler.

    Raises ``ValueError`` when the text has no generation parameters: a bare prompt rerun with
    sdcord's defaults would not be "this image again".
    """
    text = infotext or ""
    line = _params_line(text)
    fields = _fields(line) if line is not None else []
    if not _has_generation_parameters(fields):
        raise ValueError(
            "This image has no generation parameters (no 'Steps: …, Sampler: …' line), only a prompt."
        )
    flavour = _flavour(fields)
    return _options(_parse(text, flavour), dict(fields), flavour, new_seed=new_seed)


# --------------------------------------------------------------------------------------------------
# The /draw command line
# --------------------------------------------------------------------------------------------------


def _units(text: str) -> int:
    """Length in UTF-16 code units (what a JavaScript client counts; ≥ the code point count)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _cut(text: str, units: int) -> str:
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            return text[:i].rstrip()
    return text


def _one_line(value: object) -> str:
    return _RE_SPACE.sub(" ", str(value)).strip()


def _number(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


class _Attributes:
    """`.get` over an object's attributes."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def get(self, name: str) -> Any:
        return getattr(self.obj, name, None)


def format_draw_command(options: Any, *, limit: int = DISCORD_MESSAGE_LIMIT) -> tuple[str, bool]:
    """``/draw prompt:… negative_prompt:… steps:… …`` for `options` (a mapping of /draw option values, or
    any object with them as attributes), and whether anything was cut.

    Options that are None (or an empty negative prompt) are left out; batch only when it isn't 1.
    Whitespace runs, newlines included, become one space (the command is one line). The result is
    at most `limit` UTF-16 units: every other option's value is cut to 100 characters, then
    the longer of prompt and negative prompt is shortened first. An empty prompt gives ``""``.
    """
    values: Mapping[str, Any] = options if isinstance(options, Mapping) else _Attributes(options)
    prompt = _one_line(values.get("prompt") or "")
    if not prompt:
        return "", False
    negative = _one_line(values.get("negative_prompt") or "")
    truncated = False
    rest: list[str] = []

    def add(name: str, value: object) -> None:
        nonlocal truncated
        if value is None:
            return
        text = _one_line(value)
        if _units(text) > MAX_VALUE_IN_COMMAND:
            text, truncated = _cut(text, MAX_VALUE_IN_COMMAND), True
        if text:
            rest.append(f" {name}:{text}")

    add("steps", values.get("steps"))
    add("cfg_scale", None if values.get("cfg_scale") is None else _number(values.get("cfg_scale")))
    add("seed", values.get("seed"))
    add("width", values.get("width"))
    add("height", values.get("height"))
    add("sampler", values.get("sampler"))
    add("scheduler", values.get("scheduler"))
    add("model", values.get("model"))
    if values.get("batch") is not None and values.get("batch") != 1:
        add("batch", values.get("batch"))
    add("clip_skip", values.get("clip_skip"))
    for flag in ("tiling", "fix_faces"):  # booleans: only when on
        if values.get(flag):
            add(flag, "True")
    tail = "".join(rest)

    head, neg_label = "/draw prompt:", " negative_prompt:"
    budget = limit - _units(head) - _units(tail) - (_units(neg_label) if negative else 0)
    p_len, n_len = _units(prompt), _units(negative)
    if p_len + n_len > budget:
        truncated = True
        short = min(p_len, n_len)
        if short <= budget // 2:  # the shorter one fits whole; the longer gets the rest
            p_cap, n_cap = (budget - n_len, n_len) if p_len > n_len else (p_len, budget - p_len)
        else:
            n_cap = budget // 2
            p_cap = budget - n_cap
        prompt, negative = _cut(prompt, max(p_cap, 1)), _cut(negative, max(n_cap, 0))
    command = head + prompt + (neg_label + negative if negative else "") + tail
    return command, truncated


# --------------------------------------------------------------------------------------------------
# describe
# --------------------------------------------------------------------------------------------------


def describe(infotext: str) -> ParamsView:
    """Everything `infotext` says, ready to show (see `ParamsView`). Never raises on text."""
    text = infotext or ""
    line = _params_line(text)
    fields = _fields(line) if line is not None else []
    has_parameters = _has_generation_parameters(fields)
    flavour = _flavour(fields) if has_parameters else UNKNOWN
    parsed = _parse(text, flavour)
    prompt = parsed["Prompt"]
    hypernet = parsed.get("Hypernet")
    if hypernet is not None:  # the parser appends <hypernet:…> to the prompt; show the text's prompt
        tag = f"<hypernet:{hypernet}:{parsed.get('Hypernet strength', '1.0')}>"
        prompt = prompt[: -len(tag)] if prompt.endswith(tag) else prompt
    if has_parameters:
        opts = _options(parsed, dict(fields), flavour, new_seed=False)
    else:
        opts = {"prompt": parsed["Prompt"], "negative_prompt": parsed["Negative prompt"] or None}
    command, truncated = format_draw_command(opts)
    return ParamsView(
        prompt=prompt,
        negative_prompt=parsed["Negative prompt"],
        fields=fields,
        flavour=flavour,
        draw_command=command,
        truncated=truncated,
        has_parameters=has_parameters,
    )
