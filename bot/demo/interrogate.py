"""`/sdapi/v1/interrogate` captions: deterministic stand-ins for A1111's two interrogators (run in a thread).

A1111 v1.10.1 answers `{"caption": ...}` from one of two models:

* "clip" (`modules/interrogate.py`): a BLIP sentence, then ", <best match>" for every CLIP category file
  (artists, flavors, mediums, movements; each `topn` 1, in file-name order, minus the option
  `interrogate_clip_skip_categories`; `interrogate_return_ranks` writes ", (<match>:<score>)" instead).
* "deepdanbooru" (`modules/deepbooru.py`): the tags scoring at least `interrogate_deepbooru_score_threshold`,
  `rating:*` left out, sorted alphabetically (`deepbooru_sort_alpha`) or by score, `_` written as spaces
  (`deepbooru_use_spaces`), brackets escaped (`deepbooru_escape`), `deepbooru_filter_tags` removed,
  `(<tag>:<score>)` with `interrogate_return_ranks`; joined by ", ".

Here both read what the picture looks like (the colours of its upper and lower half, its brightness,
saturation and orientation) and a digest of its pixels picks among plausible words, so the same image
always gets the same caption and different images get different ones.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageStat

__all__ = ["Looks", "clip_caption", "colour_name", "deepbooru_tags", "looks"]

_ARTISTS = ["Albert Bierstadt", "Ivan Shishkin", "Thomas Cole", "Caspar David Friedrich", "J. M. W. Turner",
            "Frederic Edwin Church", "Claude Monet", "Hiroshi Yoshida", "Kawase Hasui", "Arkhip Kuindzhi",
            "Asher Brown Durand", "John Constable", "Eyvind Earle", "Makoto Shinkai"]
_MOVEMENTS = ["romanticism", "luminism", "impressionism", "tonalism", "hudson river school", "naturalism",
              "shin hanga", "plein air"]
_PAINTING_MEDIUMS = ["a matte painting", "an oil painting", "a watercolor painting", "a digital painting",
                     "a detailed painting", "a gouache painting"]
_PHOTO_MEDIUMS = ["a photograph", "a stock photo", "a colorized photo", "a tilt shift photo"]
_FLAVORS = {
    "dark": ["moody lighting", "dramatic lighting", "starry night", "cinematic lighting", "dark and moody"],
    "muted": ["muted colors", "foggy", "soft light", "hazy", "pastel colors"],
    "bright": ["vibrant colors", "trending on artstation", "golden hour", "beautiful sky", "colorful"],
}
_GROUNDS = ["landscape", "hills", "mountains", "field", "valley"]
_WARM = {"red", "orange", "pink", "yellow"}


@dataclass(frozen=True, slots=True)
class Looks:
    """What an interrogator "sees": colour names, tone and shape of the picture, and a digest of its pixels."""

    top: str
    bottom: str
    brightness: float
    saturation: float
    contrast: float
    orientation: str  # "wide", "tall" or "square"
    digest: bytes

    def pick(self, salt: str, choices: Sequence[str]) -> str:
        return choices[self.number(salt) % len(choices)]

    def number(self, salt: str) -> int:
        return int.from_bytes(hashlib.sha256(self.digest + salt.encode()).digest()[:4], "big")

    def fraction(self, salt: str) -> float:
        return self.number(salt) / 2**32

    @property
    def night(self) -> bool:
        return self.brightness < 0.3

    @property
    def ground(self) -> str:
        return self.pick("ground", _GROUNDS)


def colour_name(rgb: Sequence[float]) -> str:
    """A plain English name for an RGB colour: "dark blue", "orange", "grey", ..."""
    h, s, v = colorsys.rgb_to_hsv(*(max(0.0, min(255.0, c)) / 255 for c in rgb[:3]))
    if v < 0.12:
        return "black"
    if s < 0.15:
        return "white" if v > 0.85 else ("grey" if v > 0.35 else "dark grey")
    degrees = h * 360
    for limit, name in ((15, "red"), (40, "orange"), (68, "yellow"), (165, "green"), (195, "teal"),
                        (255, "blue"), (290, "purple"), (340, "pink"), (360, "red")):
        if degrees < limit:
            break
    return f"dark {name}" if v < 0.4 else name


def looks(image: Image.Image) -> Looks:
    """Measure `image` (any mode or size) on a small RGB copy."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    small = rgb.resize((24, 24), Image.Resampling.BOX)
    top = ImageStat.Stat(small.crop((0, 0, 24, 12))).mean
    bottom = ImageStat.Stat(small.crop((0, 12, 24, 24))).mean
    grey = ImageStat.Stat(small.convert("L"))
    saturation = ImageStat.Stat(small.convert("HSV").getchannel("S")).mean[0] / 255
    ratio = width / max(1, height)
    orientation = "wide" if ratio > 1.15 else ("tall" if ratio < 1 / 1.15 else "square")
    digest = hashlib.sha256(f"{width}x{height}".encode() + rgb.resize((16, 16), Image.Resampling.BOX).tobytes())
    return Looks(colour_name(top), colour_name(bottom), grey.mean[0] / 255, saturation, grey.stddev[0] / 255,
                 orientation, digest.digest())


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _blip(lk: Looks, painted: bool) -> str:
    """The BLIP sentence: what is in the picture."""
    kind = "painting" if painted else "photo"
    shape = {"wide": "wide ", "tall": "tall ", "square": ""}[lk.orientation]
    bare_top = lk.top.removeprefix("dark ")
    when = " at night" if lk.night else (" at sunset" if bare_top in _WARM else "")
    ground = lk.ground
    over = f"{lk.bottom} {ground}" if ground.endswith("s") else f"{_article(lk.bottom)} {lk.bottom} {ground}"
    return f"a {shape}{kind} of a {lk.top} sky over {over}{when}"


def clip_caption(image: Image.Image, opts: dict[str, Any]) -> str:
    """The "clip" model's caption: BLIP sentence + the best artist, flavor, medium and movement."""
    lk = looks(image)
    painted = lk.saturation >= 0.2 or lk.contrast >= 0.12
    tone = "dark" if lk.night else ("muted" if lk.saturation < 0.25 else "bright")
    categories = {
        "artists": lk.pick("artist", _ARTISTS),
        "flavors": lk.pick("flavor", _FLAVORS[tone]),
        "mediums": lk.pick("medium", _PAINTING_MEDIUMS if painted else _PHOTO_MEDIUMS),
        "movements": lk.pick("movement", _MOVEMENTS),
    }
    skip = set(opts.get("interrogate_clip_skip_categories") or [])
    ranks = bool(opts.get("interrogate_return_ranks"))
    caption = _blip(lk, painted)
    for name, match in categories.items():
        if name in skip:
            continue
        if ranks:
            caption += f", ({match}:{0.18 + 0.14 * lk.fraction('score ' + name):.3f})"
        else:
            caption += f", {match}"
    return caption


def _tag_scores(lk: Looks) -> dict[str, float]:
    """DeepDanbooru-style raw tags (underscores, `rating:*` included) and their scores."""
    jitter = lk.fraction
    top = lk.top.removeprefix("dark ")
    scores: dict[str, float] = {
        "rating:safe": 0.97, "no_humans": 0.96, "scenery": 0.93, "sky": 0.9, "outdoors": 0.86,
        "cloud": 0.35 + 0.35 * jitter("cloud"), "tree": 0.3 + 0.35 * jitter("tree"),
        "gradient_sky": 0.4 + 0.2 * jitter("gradient"), "landscape": 0.62 + 0.1 * jitter("landscape"),
    }
    if top not in ("black", "white"):
        scores[f"{top.replace(' ', '_')}_sky"] = 0.7 + 0.15 * jitter("sky colour")
    if lk.night:
        scores.update({"night": 0.84, "night_sky": 0.78, "star_(sky)": 0.45 + 0.3 * jitter("stars"),
                       "moon": 0.35 + 0.3 * jitter("moon")})
    elif top in _WARM:
        scores.update({"sunset": 0.72, "evening": 0.5 + 0.15 * jitter("evening")})
    else:
        scores["day"] = 0.55 + 0.2 * jitter("day")
    ground = lk.ground
    scores[{"landscape": "hill", "hills": "hill", "mountains": "mountain", "field": "field",
            "valley": "mountain"}[ground]] = 0.6 + 0.2 * jitter("ground")
    if ground == "field":
        scores["grass"] = 0.52 + 0.2 * jitter("grass")
    if lk.orientation == "wide":
        scores["horizon"] = 0.6 + 0.2 * jitter("horizon")
    if lk.saturation < 0.08:
        scores.update({"monochrome": 0.9, "greyscale": 0.88})
    elif lk.saturation > 0.3:
        bottom = lk.bottom.removeprefix("dark ")
        if bottom not in ("black", "white", "grey"):
            scores[f"{bottom}_theme"] = 0.5 + 0.15 * jitter("theme")
    return scores


_SPECIAL = re.compile(r"([\\()])")


def deepbooru_tags(image: Image.Image, opts: dict[str, Any]) -> str:
    """The "deepdanbooru" model's caption: comma-separated tags, formatted by the deepbooru options."""
    scores = _tag_scores(looks(image))
    threshold = float(opts.get("interrogate_deepbooru_score_threshold", 0.5))
    kept = {tag: p for tag, p in scores.items() if p >= threshold and not tag.startswith("rating:")}
    if opts.get("deepbooru_sort_alpha", True):
        tags = sorted(kept)
    else:
        tags = [tag for tag, _ in sorted(kept.items(), key=lambda item: -item[1])]
    filtered = {x.strip().replace(" ", "_") for x in str(opts.get("deepbooru_filter_tags") or "").split(",")}
    out = []
    for tag in tags:
        if tag in filtered:
            continue
        text = tag.replace("_", " ") if opts.get("deepbooru_use_spaces", True) else tag
        if opts.get("deepbooru_escape", True):
            text = _SPECIAL.sub(r"\\\1", text)
        if opts.get("interrogate_return_ranks"):
            text = f"({text}:{kept[tag]:.3f})"
        out.append(text)
    return ", ".join(out)
