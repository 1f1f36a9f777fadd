"""The demo's `shared.state`: what A1111 reports in /progress while (and after) a job runs."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from PIL import Image

from .images import render_preview


class ProgressState:
    """A1111 `shared.state` (modules/shared_state.py), the part /progress reports."""

    def __init__(self) -> None:
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.job = ""
        self.job_count = 0
        self.job_timestamp = "0"
        self.job_no = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.time_start = time.time()
        self.current_image: str | None = None
        self.current_image_sampling_step = 0
        self.textinfo: str | None = None
        self.preview_source: tuple[list[Image.Image], list[bytes]] | None = None
        """Thumbnails and image keys of the batch being sampled (for live previews)."""

    def dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "interrupted": self.interrupted,
                "stopping_generation": self.stopping_generation, "job": self.job, "job_count": self.job_count,
                "job_timestamp": self.job_timestamp, "job_no": self.job_no, "sampling_step": self.sampling_step,
                "sampling_steps": self.sampling_steps}

    @property
    def stopped(self) -> bool:
        """Interrupted, skipped or stopping: the current sampling loop ends."""
        return self.interrupted or self.skipped or self.stopping_generation

    def begin(self, job: str) -> None:
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.job_no = 0
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self.current_image = None
        self.current_image_sampling_step = 0
        self.skipped = self.interrupted = self.stopping_generation = False
        self.textinfo = None
        self.job = job
        self.preview_source = None

    def nextjob(self, *, more: bool) -> None:
        self.job_no += 1
        if more:  # the last job's step counter is left stale, as /progress shows it after a job
            self.sampling_step = 0
        self.current_image_sampling_step = 0

    def end(self) -> None:
        self.job = ""
        self.job_count = 0
        self.preview_source = None

    def progress(self) -> tuple[float, float]:
        """(progress, eta_relative) as A1111's /progress computes them while a job is active."""
        progress = 0.01
        if self.job_count > 0:
            progress += self.job_no / self.job_count
        if self.sampling_steps > 0 and self.job_count != 0:
            progress += 1 / self.job_count * self.sampling_step / self.sampling_steps
        elapsed = time.time() - self.time_start
        eta_relative = elapsed / progress - elapsed
        return min(progress, 1), eta_relative

    async def refresh_preview(self, every: int, enabled: bool) -> None:
        """Render a new `current_image` if live previews are on and `every` steps have passed."""
        if not enabled or every == -1 or self.preview_source is None:
            return
        if self.sampling_step - self.current_image_sampling_step < every:
            return
        step, steps = self.sampling_step, max(1, self.sampling_steps)
        thumbs, keys = self.preview_source
        fraction = (step + 1) / steps
        self.current_image_sampling_step = step
        preview = await asyncio.to_thread(render_preview, thumbs, keys, fraction)
        if self.preview_source is not None and self.preview_source[0] is thumbs:
            self.current_image = preview
