"""The one way tests find their data files: everything lives in `tests/fixtures/`, inside the clone.

`tests/fixtures/webui/` holds wire-exact WebUI API bodies (A1111 v1.10.1 and Forge; see its README).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

__all__ = ["FIXTURES", "fixture", "fixture_bytes", "fixture_png"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_bytes(name: str, folder: str = "webui") -> bytes:
    """A fixture file's bytes; a missing file is an error (never a skip)."""
    return (FIXTURES / folder / name).read_bytes()


def fixture(name: str, folder: str = "webui") -> Any:
    """A JSON fixture, parsed."""
    return json.loads(fixture_bytes(name, folder).decode("utf-8"))


def fixture_png(index: int = 0) -> bytes:
    """Image `index` of the A1111 txt2img response fixture: a real WebUI PNG with its infotext."""
    return base64.b64decode(fixture("a1111-txt2img-response.json")["images"][index])
