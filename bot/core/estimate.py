"""How long a job takes, learned from the jobs that finished. No Discord imports.

A job's run time on one backend is modelled as `overhead + per_unit * work`:

* a draw (txt2img, img2img): work = width x height x sampled steps x images, in millions, plus the hires
  pass (hires scale² x width x height x hires steps x images). img2img samples only `denoising_strength`
  x steps (A1111's default, without "img2img_fix_steps"); the hires pass runs its steps in full.
* an upscale: work = output pixels in millions (the input's size from its infotext, x scale²).

Each (backend, kind) keeps its last `WINDOW` successful (work, seconds) samples and fits them with the
Theil-Sen estimator: the slope is the median of the pairwise slopes, the overhead the median of
`seconds - slope * work`. Medians make the fit robust: a job that waited for a model load, or any one odd
job, moves nothing while most samples agree, and the window lets the fit follow a backend whose speed
changed. With one sample, or samples of (almost) one size only, the fit is pure proportionality
(overhead 0, per_unit = the median of seconds / work). A negative slope or overhead is clamped (a
constant, or a line through 0). Only successful jobs count; each sample is clipped to `CLIP` times the
fit's prediction first (an hour-long outlier then weighs like any other high sample).

Unknown (no finished job of that kind on that backend) is None, never a guess. The state is bounded:
`WINDOW` samples per model, at most `MAX_MODELS` models (the least recently updated goes first).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .jobs import DrawRequest, Request, UpscaleRequest

__all__ = ["DurationModel", "Estimator", "Fit", "kind_of", "work_of"]

WINDOW = 16  # samples kept per (backend, kind)
MAX_MODELS = 64  # (backend, kind) models kept
CLIP = 4.0  # a sample is clipped to [prediction / CLIP, prediction * CLIP] once the model has MIN_CLIP samples
MIN_CLIP = 3
SAME_WORK = 0.05  # two samples whose work differs by less than this (relative) say nothing about the slope
DEFAULT_SIDE = 512  # A1111's default width and height, when a payload or an infotext has none
DEFAULT_STEPS = 20

_SIZE = re.compile(r"(?:^|[,\n]\s*)Size:\s*(\d+)x(\d+)")
_HIRES_SCALE = re.compile(r"(?:^|[,\n]\s*)Hires upscale:\s*([\d.]+)")
_HIRES_SIZE = re.compile(r"(?:^|[,\n]\s*)Hires resize:\s*(\d+)x(\d+)")


def kind_of(request: Request) -> str:
    """Which model a request's duration comes from: draws share one (their work accounts for img2img)."""
    if isinstance(request, DrawRequest):
        return "draw"
    return str(request.kind)  # "upscale", "describe": each its own model


def _int(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def _float(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def _draw_work(payload: dict[str, Any], img2img: bool) -> float:
    width, height = _int(payload.get("width"), DEFAULT_SIDE), _int(payload.get("height"), DEFAULT_SIDE)
    steps = _int(payload.get("steps"), DEFAULT_STEPS)
    images = _int(payload.get("batch_size"), 1) * _int(payload.get("n_iter"), 1)
    sampled = steps
    if img2img:
        strength = min(0.999, max(0.0, _float(payload.get("denoising_strength"), 0.75)))
        sampled = max(1, int(steps * strength))
    work = width * height * sampled
    if payload.get("enable_hr") and not img2img:
        hr_w, hr_h = _int(payload.get("hr_resize_x"), 0), _int(payload.get("hr_resize_y"), 0)
        if not (hr_w and hr_h):
            scale = _float(payload.get("hr_scale"), 2.0)
            hr_w, hr_h = int(width * scale), int(height * scale)
        hr_steps = _int(payload.get("hr_second_pass_steps"), 0) or steps
        work += hr_w * hr_h * hr_steps
    return work * images / 1e6


def _infotext_pixels(infotext: str | None) -> int | None:
    """The size of the image an infotext describes (after its hires pass), or None."""
    if not infotext:
        return None
    size = _SIZE.search(infotext)
    if size is None:
        return None
    width, height = int(size[1]), int(size[2])
    if (resize := _HIRES_SIZE.search(infotext)) and int(resize[1]) and int(resize[2]):
        return int(resize[1]) * int(resize[2])
    if scale := _HIRES_SCALE.search(infotext):
        factor = _float(scale[1], 1.0)
        return int(width * factor) * int(height * factor)
    return width * height


def work_of(request: Request) -> float | None:
    """A request's work in the units of its kind's model; None when it can't be told (an upscale of an
    image of unknown size: the model then assumes a typical one)."""
    if isinstance(request, DrawRequest):
        return _draw_work(request.payload, request.init_image is not None)
    if not isinstance(request, UpscaleRequest):
        return None  # /describe: one interrogation, about the same work whatever the image
    pixels = _infotext_pixels(request.infotext)
    return None if pixels is None else pixels * request.scale ** 2 / 1e6


@dataclass(frozen=True, slots=True)
class Fit:
    overhead: float  # seconds
    per_unit: float  # seconds per unit of work
    typical: float  # the median work of the samples (for a request whose work is unknown)

    def predict(self, work: float | None) -> float:
        return self.overhead + self.per_unit * (self.typical if work is None else work)


@dataclass(eq=False)
class DurationModel:
    """One backend's durations for one kind of job: the last WINDOW samples and their fit."""

    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    fit: Fit | None = None

    def observe(self, work: float | None, seconds: float) -> None:
        if not seconds > 0 or math.isinf(seconds):  # nothing measured (or NaN, inf)
            return
        if work is None:
            work = self.fit.typical if self.fit else 1.0
        if work <= 0:
            return
        if self.fit is not None and len(self.samples) >= MIN_CLIP:
            guess = self.fit.predict(work)
            seconds = min(max(seconds, guess / CLIP), guess * CLIP)
        self.samples.append((work, seconds))
        self.fit = theil_sen(self.samples)

    def predict(self, work: float | None) -> float | None:
        return None if self.fit is None else self.fit.predict(work)


def theil_sen(samples: Iterable[tuple[float, float]]) -> Fit | None:
    """The robust line through (work, seconds) samples, clamped to overhead >= 0 and per_unit >= 0."""
    points = [(x, y) for x, y in samples if x > 0]
    if not points:
        return None
    typical = statistics.median(x for x, _ in points)
    slopes = [(y2 - y1) / (x2 - x1)
              for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:]
              if abs(x2 - x1) > SAME_WORK * max(x1, x2)]
    if slopes:
        slope = statistics.median(slopes)
        if slope <= 0:  # bigger jobs are not slower here: a constant
            return Fit(statistics.median(y for _, y in points), 0.0, typical)
        overhead = statistics.median(y - slope * x for x, y in points)
        if overhead >= 0:
            return Fit(overhead, slope, typical)
    # one sample, one size only, or a negative overhead: proportional
    return Fit(0.0, statistics.median(y / x for x, y in points), typical)


class Estimator:
    """Durations per backend (its name, as the scheduler knows it) and kind of job."""

    def __init__(self, *, max_models: int = MAX_MODELS) -> None:
        self.max_models = max_models
        self._models: OrderedDict[tuple[str, str], DurationModel] = OrderedDict()

    def __len__(self) -> int:
        return len(self._models)

    def model(self, backend: str, kind: str) -> DurationModel | None:
        return self._models.get((backend, kind))

    def observe(self, backend: str, request: Request, seconds: float) -> None:
        """A job finished successfully on `backend` after `seconds` of running."""
        key = (backend, kind_of(request))
        model = self._models.get(key)
        if model is None:
            model = self._models[key] = DurationModel()
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        model.observe(work_of(request), seconds)

    def predict(self, backend: str | None, request: Request) -> float | None:
        """Seconds `request` runs on `backend`; None until a job of its kind finished there."""
        model = self._models.get((backend, kind_of(request))) if backend is not None else None
        return None if model is None else model.predict(work_of(request))

    def predict_anywhere(self, backend: str | None, request: Request) -> float | None:
        """`predict`, or, for a backend that has not finished a job of this kind yet, the mean of what the
        backends that have predict (a new backend is assumed to be like the others). None when no backend
        has finished a job of this kind."""
        own = self.predict(backend, request)
        if own is not None:
            return own
        kind, work = kind_of(request), work_of(request)
        guesses = [p for (_, k), m in self._models.items() if k == kind and (p := m.predict(work)) is not None]
        return sum(guesses) / len(guesses) if guesses else None
