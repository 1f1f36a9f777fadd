"""`sdcord doctor`: check the configuration and the WebUI without connecting to Discord."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from bot.core.catalogue import Catalogue
from bot.errors import ConfigError, WebUIError
from bot.webui.backend import Backend, open_backend

from .config import Settings, describe, load_settings

OK, FAIL, WARN = "ok", "FAIL", "warn"


async def check(settings: Settings) -> list[tuple[str, str, str]]:
    """Rows of (check, status, detail) for every WebUI backend."""
    rows: list[tuple[str, str, str]] = []
    many = len(settings.backends) > 1
    for i, backend in enumerate(settings.backends, 1):
        prefix = f"WebUI #{i}" if many else "WebUI"
        try:
            client = open_backend(backend.url, auth=backend.auth, catalogue_timeout=10.0)
        except (ImportError, ValueError) as exc:  # a kind this install can't serve, or a URL it can't use
            rows.append((f"{prefix} reachable", FAIL, f"{backend.url}: {exc}"))
            continue
        try:
            rows += await _check_backend(client, settings, prefix)
        finally:
            await client.close()
    return rows


async def _check_backend(client: Backend, settings: Settings, prefix: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if not isinstance(client, Backend):
        rows.append((f"{prefix} reachable", FAIL, f"{type(client).__name__} is not a backend sdcord can use"))
        return rows
    try:
        version = await client.version_info()
        rows.append((f"{prefix} reachable", OK, f"{client.display_url} ({_version_text(version, client.kind)})"))
    except WebUIError as exc:
        rows.append((f"{prefix} reachable", FAIL, exc.detail or str(exc.message)))
        return rows
    if (version.get("kind") or client.kind) == "form":  # no catalogue routes: nothing more to ask it
        return rows
    found: dict[str, list[dict[str, object]]] = {}
    for label, call in (("models", client.sd_models), ("samplers", client.samplers),
                        ("schedulers", client.schedulers)):
        try:
            found[label] = items = await call()
        except WebUIError as exc:
            rows.append((f"{prefix} {label}", FAIL, exc.detail or str(exc.message)))
            continue
        status = OK if items or label == "schedulers" else FAIL  # no /schedulers on older WebUIs
        rows.append((f"{prefix} {label}", status, f"{len(items)} available" + _sample(items)))
    catalogue = Catalogue(**found)  # type: ignore[arg-type]
    if catalogue.samplers:
        known = catalogue.resolve_sampler(settings.default_sampler)
        rows.append((f"{prefix} DEFAULT_SAMPLER", OK if known else FAIL,
                     settings.default_sampler + ("" if known else " is not offered by this WebUI")))
    if catalogue.schedulers:
        known = catalogue.resolve_scheduler(settings.default_scheduler)
        rows.append((f"{prefix} DEFAULT_SCHEDULER", OK if known else FAIL,
                     settings.default_scheduler + ("" if known else " is not offered by this WebUI")))
    rows.append(await _adetailer_row(client, prefix))
    return rows


async def _adetailer_row(client: Backend, prefix: str) -> tuple[str, str, str]:
    """Whether /draw fix_faces can run here: the WebUI lists the ADetailer extension in /sdapi/v1/scripts.
    Optional, so its absence is a warning, not a problem."""
    try:
        scripts = await client.scripts()
    except WebUIError as exc:
        return (f"{prefix} ADetailer", WARN, f"scripts unknown ({exc.detail or exc.message}); fix_faces may fail")
    if "adetailer" in scripts.get("txt2img", ()):
        return (f"{prefix} ADetailer", OK, "installed: /draw fix_faces works")
    return (f"{prefix} ADetailer", WARN, "not installed: /draw fix_faces is refused (install the ADetailer "
                                          "extension to offer it)")


def _sample(items: list[dict[str, object]]) -> str:
    names = [str(i.get("title") or i.get("label") or i.get("name")) for i in items[:3]]
    return f": {', '.join(names)}{', …' if len(items) > 3 else ''}" if names else ""


def _version_text(info: dict[str, object], kind: str = "webui") -> str:
    """"webui, sdnext 2025-03-02", "webui, a1111 v1.10.1", "webui, forge" (A1111 and Forge tell their
    version only in a generation's info), "form, form"."""
    flavour = " ".join(str(v) for k in ("flavour", "version") if (v := info.get(k))) or "version unknown"
    return f"{info.get('kind') or kind}, {flavour}"


def print_table(rows: list[tuple[str, str, str]], out: TextIO) -> None:
    width = max(len(r[0]) for r in rows)
    for name, status, detail in rows:
        print(f"{name.ljust(width)}  {status:<4}  {detail}", file=out)


def _token_row(token: str | None) -> tuple[str, str, str]:
    """One line for the token: the doctor never connects to Discord, but the bot can't start without it."""
    if token:
        return ("DISCORD_TOKEN", OK, "set (not checked: the doctor doesn't connect to Discord)")
    return ("DISCORD_TOKEN", FAIL, "not set; the bot can't start without it (the doctor doesn't need it)")


async def doctor(out: TextIO = sys.stdout) -> int:
    """Print one line per check; 0 when everything the bot needs is in order, else 1."""
    rows: list[tuple[str, str, str]] = []
    try:
        settings = load_settings(require_token=False)
    except ConfigError as exc:
        rows += [("configuration", FAIL, line) for line in exc.problems]
        rows.append(_token_row((os.environ.get("DISCORD_TOKEN") or "").strip() or None))
        print_table(rows, out)
        print(f"\n{sum(1 for r in rows if r[1] == FAIL)} problem(s) found.", file=out)
        return 1
    for key, value in describe(settings).items():
        rows.append(_token_row(settings.discord_token) if key == "DISCORD_TOKEN" else (key, OK, value))
    rows += await check(settings)
    print_table(rows, out)
    failed = sum(1 for r in rows if r[1] == FAIL)
    print(f"\n{failed} problem(s) found." if failed else "\nAll checks passed.", file=out)
    return 1 if failed else 0
