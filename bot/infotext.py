"""A1111 infotext: the `parameters` text the WebUI writes into every image.

Writer (`create_infotext`, `quote`) follows A1111 v1.10.1 `processing.create_infotext`;
the parser follows `infotext_utils.parse_generation_parameters` (reference §6-7).
No Discord imports here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["create_infotext", "quote"]


def quote(value: Any) -> str:
    """Quote a parameter value the way A1111 does.

    A value is JSON-encoded (non-ASCII kept) only if its text contains a comma, a newline or a
    colon; everything else, numbers included, is written raw.
    """
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def create_infotext(
    prompt: str,
    negative_prompt: str,
    params: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> str:
    """Build one image's infotext.

    `params` is an ordered mapping (or pairs) of infotext keys to values. ``None`` values are
    left out; a value equal to its own key is written as a bare flag.
    """
    items = params.items() if isinstance(params, Mapping) else params
    line = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in items if v is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()
