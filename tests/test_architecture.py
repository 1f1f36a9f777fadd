"""The layers are folders, and the folders keep their rules.

* Only the Discord side (`bot/discord_app/`) and `cogs/` import discord; `core/`, `webui/`, `images/`,
  `demo/` and the top-level modules never do, not even inside a function.
* Each layer imports only the layers below it: images is a leaf, webui uses only images (plus the shared
  `bot.config`/`bot.errors`), core uses them, the Discord side uses core, cogs use the Discord side.
* No import cycles between modules, lazy (function-level) imports included; imports under
  `if TYPE_CHECKING:` are annotations only and don't count.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHARED = {"bot", "bot.config", "bot.errors", "bot.text"}
# layer -> the bot packages it may import from (besides itself and SHARED)
ALLOWED = {
    "bot.images": set(),
    "bot.webui": {"bot.images"},  # the form client writes its images' infotext
    "bot.demo": {"bot.images"},
    "bot.core": {"bot.images", "bot.webui"},
    "bot.discord_app": {"bot.core", "bot.images", "bot.webui", "bot.demo"},
    "cogs": {"bot.discord_app", "bot.core", "bot.images"},
    # the command line and `sdcord doctor`
    "bot.__main__": {"bot.discord_app", "bot.demo", "bot.doctor"},
    "bot.doctor": {"bot.core", "bot.webui"},
}
DISCORD_ALLOWED = ("bot.discord_app", "cogs")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    found = {}
    for top in ("bot", "cogs"):
        for path in (ROOT / top).rglob("*.py"):
            found[module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every module `path` imports at run time (top level or lazily), resolved to absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            for alias in node.names:  # `from bot.images import png` imports the submodule
                if f"{target}.{alias.name}" in modules:
                    out.add(f"{target}.{alias.name}")
    return out


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def test_the_layers_are_folders() -> None:
    for folder in ("core", "webui", "images", "discord_app", "demo"):
        assert (ROOT / "bot" / folder / "__init__.py").is_file(), folder
    assert sorted(p.name for p in (ROOT / "bot").glob("*.py")) == [
        "__init__.py", "__main__.py", "config.py", "doctor.py", "errors.py", "text.py"]


def test_only_the_discord_side_and_cogs_import_discord() -> None:
    offenders = sorted(
        name for name, imported in graph().items()
        if not name.startswith(DISCORD_ALLOWED) and any(m == "discord" or m.startswith("discord.") for m in imported))
    assert offenders == []


def test_the_architecture_test_sees_lazy_imports() -> None:
    """The checker itself: a function-level import counts, a TYPE_CHECKING one doesn't."""
    imported = graph()["bot.discord_app.run"]
    assert "discord" in imported
    assert "bot.discord_app.bot" in imported


def test_each_layer_imports_only_the_layers_below() -> None:
    problems = []
    for name, imported in graph().items():
        layer = layer_of(name)
        if layer is None:
            assert name in SHARED, f"{name} belongs to no layer"
            continue
        for target in imported:
            if not (target == "bot" or target.startswith(("bot.", "cogs"))) or target in SHARED:
                continue
            target_layer = layer_of(target)
            if target_layer != layer and target_layer not in ALLOWED[layer]:
                problems.append(f"{name} -> {target}")
    assert problems == []


def test_no_import_cycles_lazy_ones_included() -> None:
    g = {name: {t for t in imported if t in all_modules()} for name, imported in graph().items()}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package importing its own submodule (re-exports) is not a cycle worth failing
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert cycles == []


def test_cogs_do_not_talk_to_the_webui_directly() -> None:
    for path in (ROOT / "cogs").glob("*.py"):
        source = path.read_text()
        assert not {"aiohttp", "bot.webui", "bot.webui.client"} & imports_of(path, module_name(path), all_modules())
        assert "WebUIClient" not in source and ".txt2img(" not in source, path.name
