"""Which backend may run which job: by what each backend is (its kind's fields, `Backend.missing`) and
what it has (its own catalogue: models, samplers, schedulers, styles, LoRAs, upscalers).

* `missing(backend, request)`: what this backend lacks for this request ([] = it can run it). A list a
  backend doesn't report (an old WebUI without /schedulers, a form server) doesn't count against it;
  the bot's own default sampler and scheduler only count when they were asked for.
* `check(request)`: at submit time, a request no backend can run is refused at once, naming what is
  missing where the closest backend lacks the least.
* `prefers(backend, job)`: the backend already has the job's checkpoint loaded (A1111 reports it in
  /sdapi/v1/options; a switch costs seconds to a minute).

No Discord imports here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.errors import OptionError
from bot.text import Opt, T

from .catalogue import Catalogue, CatalogueCache, _norm
from .payload import ADETAILER, PROMPT_LORA

__all__ = ["Router"]


def _request_parts(request: Any) -> tuple[str, dict[str, Any], frozenset[str]]:
    kind = str(getattr(request, "kind", "txt2img"))
    payload = dict(getattr(request, "payload", None) or {})
    return kind, payload, frozenset(getattr(request, "asked", ()) or ())


class Router:
    def __init__(self, clients: Sequence[Any], catalogue: CatalogueCache) -> None:
        self.clients = list(clients)
        self.catalogue = catalogue
        self._by_name = {c.display_url: c for c in self.clients}

    # ------------------------------------------------------------------ one backend
    def missing(self, name: str, request: Any) -> list[str]:
        """The options of `request` backend `name` can't honour, as /draw option names."""
        client = self._by_name.get(name)
        if client is None:
            return []
        kind, payload, asked = _request_parts(request)
        out = list(client.missing(kind, payload, asked))
        cat = self.catalogue.by_backend.get(name)
        if cat is not None:
            out += [m for m in self._inventory_gaps(cat, kind, payload, asked, request) if m not in out]
        return out

    @staticmethod
    def _inventory_gaps(cat: Catalogue, kind: str, payload: dict[str, Any], asked: frozenset[str],
                        request: Any) -> list[str]:
        gaps = []
        if kind == "upscale":
            upscaler = getattr(request, "upscaler", None)
            if upscaler and cat.upscalers and cat.resolve_upscaler(upscaler) is None:
                gaps.append("upscaler")
            return gaps
        if payload.get("alwayson_scripts") and cat.has_script(
                "img2img" if kind == "img2img" else "txt2img", ADETAILER) is False:
            gaps.append("fix_faces")
        model = (payload.get("override_settings") or {}).get("sd_model_checkpoint")
        if model and cat.models and cat.resolve_model(model) is None:
            gaps.append("model")
        sampler = payload.get("sampler_name")
        if sampler and "sampler" in asked and cat.samplers and cat.resolve_sampler(sampler) is None:
            gaps.append("sampler")
        scheduler = payload.get("scheduler")
        if scheduler and "scheduler" in asked and cat.schedulers and cat.resolve_scheduler(scheduler) is None:
            gaps.append("scheduler")
        if cat.styles and any(cat.resolve_style(str(s)) is None for s in payload.get("styles") or ()):
            gaps.append("style")
        if cat.loras:
            prompts = f"{payload.get('prompt', '')} {payload.get('negative_prompt', '')}"
            if any(cat.resolve_lora(m[1].strip()) is None for m in PROMPT_LORA.finditer(prompts) if m[1].strip()):
                gaps.append("lora")
        return gaps

    def fits(self, name: str, job: Any) -> bool:
        return not self.missing(name, job.request)

    def prefers(self, name: str, job: Any) -> bool:
        """Whether backend `name` already has the job's checkpoint loaded (a job without one: any does)."""
        _, payload, _ = _request_parts(job.request)
        model = (payload.get("override_settings") or {}).get("sd_model_checkpoint")
        if not model:
            return True
        loaded = self.catalogue.loaded.get(name)
        if not loaded:
            return False
        cat = self.catalogue.by_backend.get(name)
        resolved = cat.resolve_model(model) if cat is not None else None
        return _norm(loaded) in {_norm(model), _norm(resolved or "")}

    def loaded(self, name: str, job: Any) -> None:
        """After `job` ran on `name`: its checkpoint is what the backend has loaded, unless it restores the
        previous one afterwards (sdcord asks it to), so nothing changes then."""
        _, payload, _ = _request_parts(job.request)
        if payload.get("override_settings_restore_afterwards") is False:
            model = (payload.get("override_settings") or {}).get("sd_model_checkpoint")
            if model:
                self.catalogue.loaded[name] = model

    # ------------------------------------------------------------------ the pool
    def check(self, request: Any) -> None:
        """Refuse (OptionError) a request that no backend of the pool can run, naming what is missing."""
        best: list[str] | None = None
        for client in self.clients:
            gaps = self.missing(client.display_url, request)
            if not gaps:
                return
            if best is None or len(gaps) < len(best):
                best = gaps
        if best:
            others = [g for g in best if g != "fix_faces"]
            problems = [T("problem.no_backend", options=[Opt(g) for g in others])] if others else []
            if "fix_faces" in best:  # say what it takes: the extension, not a setting the user can change
                problems.append(T("problem.no_adetailer", option=Opt("fix_faces")))
            raise OptionError(problems)
