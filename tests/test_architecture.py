"""The engine in bot/ stays free of Discord: only the Discord wiring may import discord."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISCORD_WIRING = {"discord_bot.py", "delivery.py", "views.py", "actions.py", "__main__.py"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_modules_never_import_discord() -> None:
    engine = [p for p in (ROOT / "bot").glob("*.py") if p.name not in DISCORD_WIRING]
    assert len(engine) >= 8
    offenders = [p.name for p in engine if "discord" in imported_modules(p)]
    assert offenders == []


def test_cogs_do_not_talk_to_the_webui_directly() -> None:
    for path in (ROOT / "cogs").glob("*.py"):
        source = path.read_text()
        assert "aiohttp" not in imported_modules(path), path.name
        assert "WebUIClient" not in source and ".txt2img(" not in source, path.name
