"""The demo WebUI's settings: its options, checkpoints and the loaded ("settings") model."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from .adetailer import OPTIONS as ADETAILER_OPTIONS
from .data import DemoConfig, default_options
from .responses import ErrorBodies
from .sdnext import OPTIONS as SDNEXT_OPTIONS


class Checkpoint:
    """One /sd-models entry and every alias A1111 accepts for it."""

    def __init__(self, entry: dict[str, Any]):
        self.entry = entry
        title = entry["title"]
        self.name = re.sub(r" \[[0-9a-f]{8,10}\]$", "", title)
        filename = entry.get("filename") or self.name
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        self.name_for_extra = base.rsplit(".", 1)[0] if "." in base else base
        self.legacy_hash = hashlib.sha256(("legacy:" + filename).encode()).hexdigest()[:8]

    @property
    def shorthash(self) -> str | None:
        return self.entry.get("hash")

    @property
    def sha256(self) -> str | None:
        return self.entry.get("sha256")

    @property
    def title(self) -> str:
        return self.entry["title"]

    def ids(self) -> set[str]:
        ids = {self.legacy_hash, self.entry.get("model_name") or "", self.title, self.name, self.name_for_extra,
               f"{self.name} [{self.legacy_hash}]"}
        if self.shorthash:
            ids |= {self.shorthash, self.sha256 or "", f"{self.name} [{self.shorthash}]",
                    f"{self.name_for_extra} [{self.shorthash}]"}
        ids.discard("")
        return ids

    def ensure_hashed(self) -> None:
        """A never-loaded checkpoint gets its sha256 on first load, and its title gains " [hash]"."""
        if not self.shorthash:
            digest = hashlib.sha256(("sha256:" + (self.entry.get("filename") or self.name)).encode()).hexdigest()
            self.entry["sha256"] = digest
            self.entry["hash"] = digest[:10]
            self.entry["title"] = f"{self.name} [{digest[:10]}]"


class WebUISettings:
    """`shared.opts` plus the checkpoint list and the model loaded from the settings."""

    def __init__(self, config: DemoConfig):
        self.checkpoints = [Checkpoint(copy.deepcopy(m)) for m in config.models]
        self.styles = {s["name"]: s for s in config.styles}
        self.options = default_options()
        if config.dialect == "sdnext":
            self.options.update(SDNEXT_OPTIONS)
        if "adetailer" in config.extensions:
            self.options.update(ADETAILER_OPTIONS)
        self.options["show_progress_every_n_steps"] = config.preview_every
        self.model: Checkpoint | None = None
        chosen = self.find_checkpoint(config.checkpoint) if config.checkpoint else None
        if chosen is None and self.checkpoints:
            chosen = next((c for c in self.checkpoints if c.shorthash), self.checkpoints[0])
        if chosen is not None:
            self.load(chosen)

    def find_checkpoint(self, alias: str) -> Checkpoint | None:
        for ckpt in self.checkpoints:
            if alias in ckpt.ids():
                return ckpt
        return None

    def load(self, ckpt: Checkpoint) -> None:
        """Make `ckpt` the settings model (hashing it if it never was)."""
        ckpt.ensure_hashed()
        self.model = ckpt
        self.options["sd_model_checkpoint"] = ckpt.title
        self.options["sd_checkpoint_hash"] = ckpt.sha256

    def update(self, values: dict[str, Any], errors: ErrorBodies) -> None:
        """POST /options: apply key by key; an unknown key or model raises (the keys before it stay set)."""
        for key, value in values.items():
            if key == "sd_model_checkpoint":
                ckpt = self.find_checkpoint(value) if isinstance(value, str) else None
                if ckpt is None:
                    raise errors.exception("RuntimeError", f"model {value!r} not found")
                self.load(ckpt)
            elif key not in self.options:
                raise errors.exception("KeyError", repr(key))
            else:
                self.options[key] = value

    def preview_cadence(self, default: int) -> tuple[int, bool]:
        """(show_progress_every_n_steps, live_previews_enable) for /progress."""
        every = int(self.options.get("show_progress_every_n_steps", default) or 0)
        return every, bool(self.options.get("live_previews_enable", True))
