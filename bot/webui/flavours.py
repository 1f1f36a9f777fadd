"""What each WebUI flavour takes: the engine's one A1111-shaped payload, adapted to the server at send time.

The engine builds every request in A1111 v1.10's payload language (one code path); `WebUIClient` knows its
server's flavour (`a1111`, `forge`, `sdnext`) after its first contact and passes the payload through
`adapt_payload` before it goes out. Pure functions, no I/O.

A1111 and Forge take the payload as it is. SD.Next (vladmandic/automatic, pydantic 1.10, diffusers backend)
differs where it matters to sdcord (facts from its `modules/`, commit 431bcc36):

* `sampler_name` and `hr_sampler_name` are plain `str` fields (`api/models.py` `ReqTxt2Img`, defaults
  "UniPC" and "Same as primary"), so JSON `null` is a 422 ("none is not an allowed value"): `None` values
  are left out and SD.Next's own defaults apply ("Same as primary" is A1111's null).
* There is no `scheduler`/`hr_scheduler` field (`processing_class.py`; pydantic drops unknown keys). The
  sigma schedule is the option `schedulers_sigma` (`sd_samplers_diffusers.py` `DiffusionSampler`), read when
  the sampler is built, so it goes through `override_settings`. Only Karras, Exponential and Beta have an
  equivalent there (`karras`, `exponential`, `betas`; `default` is the sampler's own, A1111's Automatic),
  and only for samplers whose diffusers config has the matching `use_*_sigmas` flag (or `sigma_schedule`).
  When the sampler can't take the asked schedule, `default` is sent, so nothing is claimed that wasn't
  used; `unsupported` tells the router beforehand when the user asked for it.
* The hires pass only upscales with `hr_resize_mode` > 0 (`processing_diffusers.py` `process_hires`; 0 is
  "None") and its latent upscalers are called "Latent Bilinear" etc. (`upscaler_simple.py`): A1111's
  "Latent" would fail there.
* Its infotext has no `Schedule type`; it writes `Sampler sigma: <value>` when the option isn't `default`
  (`processing_info.py`), which `reported_scheduler` reads back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "A1111", "FLAVOURS", "FORGE", "SDNEXT", "SDNEXT_LATENT_UPSCALERS", "SDNEXT_SIGMAS", "adapt_payload",
    "adapt_samplers", "may_be_sdnext_samplers", "reported_scheduler", "schedulers_for", "sdnext_sigma", "unsupported",
]

A1111, FORGE, SDNEXT = "a1111", "forge", "sdnext"
FLAVOURS = (A1111, FORGE, SDNEXT)

# A1111 schedule type (label and name, case-insensitive) -> SD.Next's `schedulers_sigma` value.
SDNEXT_SIGMAS: dict[str, str] = {"automatic": "default", "karras": "karras", "exponential": "exponential",
                                 "beta": "betas"}
_SDNEXT_LABELS = {"default": "Automatic", "karras": "Karras", "exponential": "Exponential", "betas": "Beta"}
_A1111_NAMES = {"Automatic": "automatic", "Karras": "karras", "Exponential": "exponential", "Beta": "beta"}

_K, _E, _B = "karras", "exponential", "betas"
_KEB = frozenset((_K, _E, _B))
_KE = frozenset((_K, _E))
# Which of those each SD.Next sampler applies: its entry in `sd_samplers_diffusers.config` has
# `use_karras_sigmas`/`use_exponential_sigmas`/`use_beta_sigmas`, or a `sigma_schedule` its scheduler class
# takes (EDM, Cosine: karras/exponential; the FlowMatch DPM solvers: karras/exponential/betas/lambdas).
SDNEXT_SAMPLER_SIGMAS: dict[str, frozenset[str]] = {
    "UniPC": _KEB, "Euler": _KEB, "Euler SGM": _KEB, "Euler EDM": _KE, "Euler FlowMatch": _KEB,
    "DPM++": _KEB, "DPM++ 2M": _KEB, "DPM++ 3M": _KEB, "DPM++ 1S": _KEB, "DPM++ SDE": _KEB,
    "DPM++ 2M SDE": _KEB, "DPM++ Cosine": _KE, "DPM SDE": _KEB,
    "DPM++ Inverse": _KEB, "DPM++ 2M Inverse": _KEB, "DPM++ 3M Inverse": _KEB,
    "DPM2 FlowMatch": _KEB, "DPM2a FlowMatch": _KEB, "DPM2++ 2M FlowMatch": _KEB, "DPM2++ 2S FlowMatch": _KEB,
    "DPM2++ SDE FlowMatch": _KEB, "DPM2++ 2M SDE FlowMatch": _KEB, "DPM2++ 3M SDE FlowMatch": _KEB,
    "Heun": _KEB, "DEIS": _KEB, "SA Solver": _KEB, "LMSD": _KEB, "KDPM2": _KEB, "KDPM2 a": _KEB,
}
# A1111's latent upscale modes (`shared.latent_upscale_modes`) -> SD.Next's latent upscalers.
SDNEXT_LATENT_UPSCALERS: dict[str, str] = {
    "Latent": "Latent Bilinear", "Latent (antialiased)": "Latent Bilinear antialias",
    "Latent (bicubic)": "Latent Bicubic", "Latent (bicubic antialiased)": "Latent Bicubic antialias",
    "Latent (nearest)": "Latent Nearest", "Latent (nearest-exact)": "Latent Nearest exact",
}
_SDNEXT_HIRES_FIXED = 1  # SD.Next resize mode "Fixed" (shared.resize_modes: None, Fixed, Crop, Fill, ...)
_SDNEXT_HR_ONLY_SAMPLER = "Same as primary"  # in SD.Next's /samplers, but only meaningful for the hires pass


def sdnext_sigma(sampler: str | None, scheduler: str | None) -> str | None:
    """The `schedulers_sigma` value that makes SD.Next sample `sampler` with A1111 schedule `scheduler`;
    None when it can't (no equivalent, or this sampler ignores it). Automatic is always `default`."""
    sigma = SDNEXT_SIGMAS.get((scheduler or "automatic").strip().casefold())
    if sigma is None:
        return None
    if sigma == "default" or sigma in SDNEXT_SAMPLER_SIGMAS.get((sampler or "").strip(), frozenset()):
        return sigma
    return None


def _is_generation(payload: Mapping[str, Any]) -> bool:
    return "prompt" in payload or "sampler_name" in payload


def adapt_payload(flavour: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The request body for a server of this flavour (a new dict; `payload` is not changed). Unknown
    flavours get it unchanged, like A1111 and Forge."""
    if flavour != SDNEXT or not _is_generation(payload):
        return payload
    out = {k: v for k, v in payload.items() if v is not None and k not in ("scheduler", "hr_scheduler")}
    if "scheduler" in payload:
        sigma = sdnext_sigma(payload.get("sampler_name"), payload.get("scheduler")) or "default"
        out["override_settings"] = {**(payload.get("override_settings") or {}), "schedulers_sigma": sigma}
        out.setdefault("override_settings_restore_afterwards", True)
    overrides = dict(out.get("override_settings") or {})
    if "CLIP_stop_at_last_layers" in overrides:
        # SD.Next reads clip skip from its own request field (`processing_class.clip_skip`); the A1111 option
        # is an unused compatibility setting there.
        out["clip_skip"] = overrides.pop("CLIP_stop_at_last_layers")
        out["override_settings"] = overrides
    if out.get("enable_hr"):
        out.setdefault("hr_resize_mode", _SDNEXT_HIRES_FIXED)
        upscaler = out.get("hr_upscaler")
        if isinstance(upscaler, str) and upscaler in SDNEXT_LATENT_UPSCALERS:
            out["hr_upscaler"] = SDNEXT_LATENT_UPSCALERS[upscaler]
    return out


def unsupported(flavour: str | None, request_kind: str, payload: Mapping[str, Any],
                asked: Collection[str]) -> list[str]:
    """The asked-for /draw options a server of this flavour can't apply ([] = it can run the request)."""
    if flavour != SDNEXT or request_kind not in ("txt2img", "img2img") or "scheduler" not in asked:
        return []
    scheduler = payload.get("scheduler")
    if scheduler and sdnext_sigma(payload.get("sampler_name"), scheduler) is None:
        return ["scheduler"]
    return []


def schedulers_for(flavour: str | None) -> list[dict[str, Any]]:
    """The schedule types sdcord can apply on a server without /schedulers, shaped like A1111's list
    ([] when that server has none: A1111 1.9.0 and older)."""
    if flavour != SDNEXT:
        return []
    return [{"name": _A1111_NAMES[label], "label": label, "aliases": None} for label in _SDNEXT_LABELS.values()]


def adapt_samplers(flavour: str | None, samplers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A server's /samplers as choices for /draw (SD.Next lists "Same as primary", a hires-only value)."""
    if flavour != SDNEXT:
        return samplers
    return [s for s in samplers if s.get("name") != _SDNEXT_HR_ONLY_SAMPLER]


def may_be_sdnext_samplers(samplers: list[dict[str, Any]]) -> bool:
    """Whether a /samplers answer could be SD.Next's (it lists the hires-only "Same as primary")."""
    return any(s.get("name") == _SDNEXT_HR_ONLY_SAMPLER for s in samplers)


def _sdnext_label(sigma: Any) -> str:
    text = str(sigma).strip()
    return _SDNEXT_LABELS.get(text.casefold(), text)


def reported_scheduler(params: Mapping[str, Any], payload: Mapping[str, Any], flavour: str | None = None) -> str | None:
    """The schedule type an image was made with: what its WebUI wrote (`params`, the parsed infotext of the
    image), else what the request asked for. SD.Next writes no `Schedule type` (the parser's injected
    "Automatic" says nothing there) but `Sampler sigma` when it is not `default`; a custom timestep list
    (`Sampler timesteps`) replaces the sigma schedule altogether (`sd_samplers_diffusers.py`)."""
    sdnext = flavour == SDNEXT or str(params.get("App") or "").strip().casefold() == "sd.next"
    if not sdnext:
        return params.get("Schedule type") or payload.get("scheduler")
    if params.get("Sampler timesteps"):
        return None
    if params.get("Sampler sigma"):
        return _sdnext_label(params["Sampler sigma"])
    if params.get("Steps") is not None:  # an SD.Next infotext without Sampler sigma: `default` was used
        return "Automatic"
    sent = adapt_payload(SDNEXT, dict(payload))
    sigma = (sent.get("override_settings") or {}).get("schedulers_sigma")
    return _sdnext_label(sigma) if sigma else None
