"""/describe: prompt suggestions from what the WebUI's interrogators see in an image. No Discord imports.

CLIP gives a sentence ("a painting of a lighthouse on a cliff"), deepdanbooru (when the WebUI has it) a list
of tags. The suggestions are the caption itself, the caption with the strongest tags, the tags alone, and the
caption in a few well-known looks, at most four, each a prompt /draw accepts.
"""

from __future__ import annotations

import re

from .payload import MAX_PROMPT_LENGTH

__all__ = ["MAX_SUGGESTIONS", "suggestions"]

MAX_SUGGESTIONS = 4
CAPTION_TAGS = 8  # tags added to the caption
TAGS_ALONE = 16
LOOKS = ("highly detailed, sharp focus, soft natural light",
         "cinematic lighting, dramatic atmosphere, film still",
         "digital painting, vibrant colors, concept art")
# Words BLIP-style captioners make up ("arafed", "araffe") and leave in A1111's CLIP captions.
_JUNK = re.compile(r"\b(?:arafed|araffe|araffed|arafly|there is|there are)\b\s*", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    text = _SPACES.sub(" ", _JUNK.sub("", text or "")).strip(" ,.")
    return text[:MAX_PROMPT_LENGTH].strip()


def _tags(text: str | None) -> list[str]:
    out: list[str] = []
    for raw in (text or "").split(","):
        tag = _SPACES.sub(" ", raw.replace("_", " ")).strip()
        if tag and not tag.startswith("rating:") and tag not in out:
            out.append(tag)
    return out


def suggestions(caption: str, tags: str | None = None) -> list[str]:
    """Up to four different prompts from a CLIP caption and deepdanbooru tags (either may be empty)."""
    base = _clean(caption)
    tag_list = _tags(tags)
    candidates: list[str] = []
    if base:
        candidates.append(base)
        if tag_list:
            candidates.append(f"{base}, {', '.join(tag_list[:CAPTION_TAGS])}")
    if tag_list:
        candidates.append(", ".join(tag_list[:TAGS_ALONE]))
    if base:
        candidates += [f"{base}, {look}" for look in LOOKS]
    out: list[str] = []
    for text in candidates:
        text = text[:MAX_PROMPT_LENGTH].rstrip(", ")
        if text and text not in out:
            out.append(text)
    return out[:MAX_SUGGESTIONS]
