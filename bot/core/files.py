"""Files beside the job store in SDCORD_DATA_DIR. No Discord imports.

    inputs/<sha256>           img2img and upscale inputs, by content (a queued job reads its input when it
                              runs, and Reroll of an img2img job reuses it)
    results/<job id>/<file>   a finished job's images until they are delivered (a restart in between
                              delivers them instead of running the job again)
    image-counter             the running number in file names (`00042-SEED.png`)

Every method here is blocking: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

__all__ = ["DataFiles"]

INPUTS_DIR = "inputs"
RESULTS_DIR = "results"
COUNTER_FILE = "image-counter"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"^[\w.-]{1,100}$")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class DataFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._counter: int | None = None

    # ------------------------------------------------------------------ inputs
    def save_input(self, data: bytes) -> str:
        """Keep an input image by content; returns its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / INPUTS_DIR / digest
        if not path.exists():
            _write_atomic(path, data)
        return digest

    def load_input(self, digest: str) -> bytes | None:
        if not _DIGEST.match(digest or ""):
            return None
        path = self.root / INPUTS_DIR / digest
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ results
    def _result_dir(self, job_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{8}", job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / RESULTS_DIR / job_id

    def save_results(self, job_id: str, images: list[tuple[str, bytes]]) -> None:
        """Keep a finished job's images (file name, bytes) until they are delivered."""
        folder = self._result_dir(job_id)
        for name, data in images:
            if not _SAFE_NAME.match(name):
                raise ValueError(f"unsafe file name: {name!r}")
            _write_atomic(folder / name, data)

    def result_path(self, job_id: str, name: str) -> Path | None:
        """Where a kept result image is (None for an unsafe name)."""
        return self._result_dir(job_id) / name if _SAFE_NAME.match(name) else None

    def has_results(self, job_id: str, names: list[str]) -> bool:
        """Whether every one of a job's result images is kept."""
        return bool(names) and all(_SAFE_NAME.match(n) and (self._result_dir(job_id) / n).is_file() for n in names)

    def drop_results(self, job_id: str) -> None:
        shutil.rmtree(self._result_dir(job_id), ignore_errors=True)

    def result_jobs(self) -> list[str]:
        """Job ids that have result files on disk."""
        try:
            return [p.name for p in (self.root / RESULTS_DIR).iterdir() if p.is_dir()]
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------------ the image counter
    def take_numbers(self, n: int) -> int:
        """Reserve n image numbers; returns the first."""
        path = self.root / COUNTER_FILE
        if self._counter is None:
            try:
                self._counter = int(path.read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                self._counter = 0
        first = self._counter + 1
        self._counter += n
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(self._counter))
        os.replace(tmp, path)
        return first
