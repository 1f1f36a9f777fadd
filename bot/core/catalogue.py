"""What each backend offers (models, samplers, schedulers, styles, LoRAs, upscalers, its loaded
checkpoint), cached for about a minute; the union of them checks names and feeds autocomplete, and the
router (`routing.py`) uses each backend's own lists to send a job only where it can run.

Autocomplete must answer within Discord's 3 s and never fail, so it reads the cache; a stale
cache is refreshed in the background, one fetch at a time. No Discord imports here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from bot.errors import WebUIError

__all__ = ["Catalogue", "CatalogueCache", "Kind", "union"]

log = logging.getLogger(__name__)
Kind = Literal["model", "sampler", "scheduler", "style", "lora", "upscaler"]
MAX_CHOICES = 25  # Discord's cap for autocomplete answers
MAX_CHOICE_LEN = 100  # Discord's cap for a choice name and value


def _norm(text: str) -> str:
    return text.strip().casefold()


@dataclass(frozen=True, slots=True)
class Catalogue:
    models: list[dict[str, Any]] = field(default_factory=list)
    samplers: list[dict[str, Any]] = field(default_factory=list)
    schedulers: list[dict[str, Any]] = field(default_factory=list)
    fetched_at: float = 0.0
    upscalers: list[dict[str, Any]] = field(default_factory=list)
    styles: list[dict[str, Any]] = field(default_factory=list)
    loras: list[dict[str, Any]] = field(default_factory=list)
    scripts: dict[str, list[str]] = field(default_factory=dict)  # mode -> script names, lower case ({}: unknown)

    def has_script(self, mode: str, name: str) -> bool | None:
        """Whether the WebUI lists script `name` (an extension such as ADetailer) for `mode`; None: not known."""
        if not self.scripts:
            return None
        return name.casefold() in self.scripts.get(mode, ())

    # -- resolution: user text -> the exact name the WebUI expects, or None -------------------
    def resolve_model(self, text: str) -> str | None:
        """Match a title, a file name with or without extension, a model_name or a hash."""
        want = _norm(text)
        for m in self.models:
            title = m.get("title") or ""
            bare_title = title.split(" [", 1)[0]
            path = PurePath(bare_title.replace("\\", "/"))
            aliases = {title, bare_title, path.name, path.stem, str(path.with_suffix("")),
                       m.get("model_name") or "", m.get("hash") or "", (m.get("sha256") or "")[:10]}
            if want in {_norm(a) for a in aliases if a}:
                return title
        return None

    def resolve_sampler(self, text: str) -> str | None:
        want = _norm(text)
        for s in self.samplers:
            if want == _norm(s["name"]) or want in {_norm(a) for a in s.get("aliases") or ()}:
                return str(s["name"])
        return None

    def resolve_scheduler(self, text: str) -> str | None:
        want = _norm(text)
        for s in self.schedulers:
            names = {s.get("label") or "", s.get("name") or "", *(s.get("aliases") or ())}
            if want in {_norm(n) for n in names if n}:
                return str(s.get("label") or s["name"])
        return None

    def default_upscaler(self) -> str:
        """A good general upscaler this WebUI has (for 2x upscales): R-ESRGAN 4x+ when present."""
        names = [str(u.get("name")) for u in self.upscalers if u.get("name")]
        for preferred in ("R-ESRGAN 4x+", "ESRGAN_4x", "R-ESRGAN 4x+ Anime6B", "SwinIR 4x", "LDSR"):
            if preferred in names:
                return preferred
        real = [n for n in names if n not in ("None", "Lanczos", "Nearest")]
        return real[0] if real else "Lanczos"

    def resolve_style(self, text: str) -> str | None:
        want = _norm(text)
        return next((str(s["name"]) for s in self.styles if _norm(str(s.get("name", ""))) == want), None)

    def resolve_lora(self, text: str) -> str | None:
        """The name to put in `<lora:NAME:w>`: the alias when the WebUI lists one (A1111's own choice)."""
        want = _norm(text)
        for lora in self.loras:
            names = {str(lora.get("name") or ""), str(lora.get("alias") or "")}
            if want in {_norm(n) for n in names if n}:
                return str(lora.get("alias") or lora["name"])
        return None

    def resolve_upscaler(self, text: str) -> str | None:
        want = _norm(text)
        return next((str(u["name"]) for u in self.upscalers if _norm(str(u.get("name", ""))) == want), None)

    def _lists(self) -> dict[str, list[dict[str, Any]]]:
        return {"model": self.models, "sampler": self.samplers, "scheduler": self.schedulers,
                "style": self.styles, "lora": self.loras, "upscaler": self.upscalers}

    def resolver(self, kind: Kind) -> Callable[[str], str | None]:
        return {"model": self.resolve_model, "sampler": self.resolve_sampler, "scheduler": self.resolve_scheduler,
                "style": self.resolve_style, "lora": self.resolve_lora, "upscaler": self.resolve_upscaler}[kind]

    def has(self, kind: Kind) -> bool:
        return bool(self._lists()[kind])

    # -- autocomplete ------------------------------------------------------------------------
    def entries(self, kind: Kind) -> Iterable[tuple[str, str]]:
        """(display name, value) pairs; values stay within Discord's 100 characters."""
        if kind == "model":
            for m in self.models:
                title = str(m.get("title") or "")
                value = title if len(title) <= MAX_CHOICE_LEN else str(m.get("model_name") or title)
                yield title, value
        elif kind == "sampler":
            for s in self.samplers:
                yield str(s["name"]), str(s["name"])
        elif kind == "scheduler":
            for s in self.schedulers:
                label = str(s.get("label") or s["name"])
                yield label, label
        elif kind == "lora":
            for lora in self.loras:
                name = str(lora.get("alias") or lora.get("name") or "")
                yield name, name
        else:  # style, upscaler
            for item in self._lists()[kind]:
                yield str(item.get("name")), str(item.get("name"))

    def choices(self, kind: Kind, current: str) -> list[tuple[str, str]]:
        """Substring matches (case-insensitive), prefix matches first, at most 25."""
        want = _norm(current)
        hits = [(n, v) for n, v in self.entries(kind) if want in _norm(n)]
        hits.sort(key=lambda nv: not _norm(nv[0]).startswith(want))
        return [(n[:MAX_CHOICE_LEN], v[:MAX_CHOICE_LEN]) for n, v in hits[:MAX_CHOICES]]


_UNION_KEYS = {"models": "title", "samplers": "name", "schedulers": "name", "upscalers": "name",
               "styles": "name", "loras": "name"}


def union(catalogues: Iterable[Catalogue]) -> Catalogue:
    """Everything any backend offers, each item once (first backend's entry wins): for name checks and
    autocomplete. Whether one backend has it is the router's question."""
    merged: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in _UNION_KEYS}
    stamps = []
    catalogues_list = list(catalogues)
    for cat in catalogues_list:
        stamps.append(cat.fetched_at)
        for attr, key in _UNION_KEYS.items():
            for item in getattr(cat, attr):
                merged[attr].setdefault(_norm(str(item.get(key) or item.get("name") or "")), item)
    scripts: dict[str, list[str]] = {}
    for cat in catalogues_list:
        for mode, names in cat.scripts.items():
            scripts.setdefault(mode, [])
            scripts[mode] += [n for n in names if n not in scripts[mode]]
    return Catalogue(fetched_at=min(stamps) if stamps else 0.0, scripts=scripts,
                     **{attr: list(items.values()) for attr, items in merged.items()})


async def _scripts_of(client: Any) -> dict[str, list[str]]:
    """A backend's scripts, or {} (unknown: an extension it may have is not held against it)."""
    fetch = getattr(client, "scripts", None)
    if fetch is None:
        return {}
    try:
        return await fetch()
    except WebUIError:
        return {}


class CatalogueCache:
    """Each backend's catalogue (models, samplers, schedulers, styles, LoRAs, upscalers and its loaded
    checkpoint), cached for `ttl` seconds and refreshed one fetch at a time per backend; a backend that
    comes back is asked again at once (`refresh_backend`). `current` is the union of what is known."""

    def __init__(self, clients: list[Any], *, ttl: float = 60.0) -> None:
        self.clients = clients
        self.ttl = ttl
        self.by_backend: dict[str, Catalogue] = {}  # display_url -> that backend's catalogue
        self.loaded: dict[str, str | None] = {}  # display_url -> the checkpoint it has loaded (options)
        self.current: Catalogue | None = None
        self._refresh: asyncio.Task[Catalogue] | None = None
        self._backend_tasks: dict[str, asyncio.Task[Catalogue | None]] = {}
        self._failed_at: dict[str, float] = {}  # a backend that didn't answer is asked again after `ttl`

    def _stale(self, client: Any, now: float) -> bool:
        name = client.display_url
        if now - self._failed_at.get(name, -self.ttl) < self.ttl:
            return False  # it failed lately: don't make every command wait for it again (it is healed apart)
        cat = self.by_backend.get(name)
        return cat is None or now - cat.fetched_at >= self.ttl

    @property
    def fresh(self) -> bool:
        now = time.monotonic()
        return self.current is not None and not any(self._stale(c, now) for c in self.clients)

    async def _fetch_one(self, client: Any) -> Catalogue:
        models, samplers, schedulers, upscalers, styles, loras, scripts = await asyncio.gather(
            client.sd_models(), client.samplers(), client.schedulers(), client.upscalers(),
            client.prompt_styles(), client.loras(), _scripts_of(client)
        )
        catalogue = Catalogue(models, samplers, schedulers, time.monotonic(), upscalers, styles, loras, scripts)
        try:
            options = await client.options()
        except WebUIError:
            options = {}
        self.by_backend[client.display_url] = catalogue
        self.loaded[client.display_url] = options.get("sd_model_checkpoint") if isinstance(options, dict) else None
        self.current = union(self.by_backend[c.display_url] for c in self.clients if c.display_url in self.by_backend)
        return catalogue

    async def _fetch(self) -> Catalogue:
        """Ask every backend whose catalogue is stale, together; raises the first error only when no backend
        answered and nothing is known."""
        now = time.monotonic()
        stale = [c for c in self.clients if self._stale(c, now)] or list(self.clients)
        results = await asyncio.gather(*(self._fetch_one(c) for c in stale), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for client, result in zip(stale, results, strict=True):
            if isinstance(result, BaseException):
                self._failed_at[client.display_url] = time.monotonic()
            else:
                self._failed_at.pop(client.display_url, None)
            if isinstance(result, WebUIError):
                log.info("Catalogue of %s: %s", client.display_url, result)
            elif isinstance(result, BaseException):
                log.error("Catalogue of %s failed", client.display_url, exc_info=result)
        if self.current is None:
            if errors:
                raise errors[0]
            self.current = Catalogue(fetched_at=time.monotonic())
        return self.current

    def refresh_backend(self, name: str) -> None:
        """Ask one backend again now (it came back up, or it may have switched checkpoints)."""
        client = next((c for c in self.clients if c.display_url == name), None)
        task = self._backend_tasks.get(name)
        if client is None or (task is not None and not task.done()):
            return

        async def one() -> Catalogue | None:
            try:
                found = await self._fetch_one(client)
                self._failed_at.pop(name, None)
                return found
            except WebUIError as exc:
                log.info("Catalogue of %s: %s", name, exc)
                return None

        self._backend_tasks[name] = asyncio.get_running_loop().create_task(one())

    def refresh(self) -> asyncio.Task[Catalogue]:
        """Start a refresh unless one is running; returns the task."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._fetch())
            self._refresh.add_done_callback(self._log_failure)
        return self._refresh

    @staticmethod
    def _log_failure(task: asyncio.Task[Catalogue]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("Catalogue refresh failed: %s", exc)

    async def get(self) -> Catalogue:
        """A fresh catalogue; raises WebUIError when the WebUI can't be asked and nothing is cached."""
        if self.fresh:
            assert self.current is not None
            return self.current
        try:
            return await asyncio.shield(self.refresh())
        except WebUIError:
            if self.current is not None:
                return self.current
            raise

    async def choices(self, kind: Kind, current: str, *, wait: float = 1.5) -> list[tuple[str, str]]:
        """Autocomplete choices; never raises, never waits longer than `wait` seconds."""
        if not self.fresh:
            task = self.refresh()
            if self.current is None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), wait)
                except (TimeoutError, WebUIError):
                    return []
                except Exception:  # noqa: BLE001 - autocomplete must never error
                    log.exception("Catalogue fetch for autocomplete failed")
                    return []
        return self.current.choices(kind, current) if self.current else []

    async def close(self) -> None:
        tasks = [t for t in (self._refresh, *self._backend_tasks.values()) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
