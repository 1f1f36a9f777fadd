"""A server's blocked words: which prompts they refuse. No Discord imports.

Matching is on normalised text (NFKC, case-folded, so full-width letters and `Ｎｕｄｅ` count; `_` and `-` count
as spaces, as in danbooru tags). A word in a script that writes words with spaces (Latin, Cyrillic, ...) must
stand as a whole word or phrase: "ass" refuses "an ass" but not "glass". A word in Chinese, Japanese or
Korean script matches anywhere, since those scripts don't separate words (and Korean particles attach to the
word: 고양이를). Prompt syntax can't hide a word: `(word:1.3)`, `[word]`, `<lora:word:1>` are split on the
same punctuation.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["MAX_BLOCKED", "MAX_WORD_LENGTH", "blocked", "normalise", "parse_words"]

MAX_BLOCKED = 200  # words per server
MAX_WORD_LENGTH = 60

_SEPARATORS = re.compile(r"[_\-]+")
_SPACES = re.compile(r"\s+")
_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")


def normalise(text: str) -> str:
    """What matching compares: NFKC, case-folded, without invisible format characters (a zero-width space or
    a soft hyphen can't split a word), `_`/`-` as spaces, whitespace runs as one space."""
    text = "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf").casefold()
    return _SPACES.sub(" ", _SEPARATORS.sub(" ", text)).strip()


def parse_words(raw: str) -> list[str]:
    """Words or phrases from what a moderator typed: separated by commas (or new lines), normalised, without
    empty ones or repeats, whole (one longer than MAX_WORD_LENGTH is refused by the command, never cut)."""
    out: list[str] = []
    for part in re.split(r"[,\n，、]", raw):
        word = normalise(part)
        if word and word not in out:
            out.append(word)
    return out


@functools.lru_cache(maxsize=256)
def _matchers(words: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One pattern for the whole words (Latin & co.) and one for the CJK words of a list, compiled once per
    list: a check is then two scans of the prompt, whatever the list's length."""
    whole, anywhere = [], []
    for word in sorted({normalise(w) for w in words if normalise(w)}, key=len, reverse=True):
        if _CJK.search(word):
            anywhere.append(re.escape(word).replace(r"\ ", r"\s*"))
        else:
            whole.append(r"\s+".join(re.escape(w) for w in word.split(" ")))
    return (re.compile(rf"(?<!\w)(?:{'|'.join(whole)})(?!\w)") if whole else None,
            re.compile("|".join(anywhere)) if anywhere else None)


def blocked(text: str, words: Iterable[str]) -> bool:
    """Whether `text` holds one of `words` (see the module's rules). A Latin word is looked for with CJK
    characters counted as spaces: Chinese and Japanese prompts put English words right against their own
    ("一个nude女孩")."""
    whole, anywhere = _matchers(tuple(words))
    haystack = normalise(text)
    if anywhere is not None and anywhere.search(haystack):
        return True
    return whole is not None and whole.search(_CJK.sub(" ", haystack)) is not None
