"""Every word sdcord says, in the reader's language: gettext catalogues read with Babel.

`locales/<code>.po` holds one language (`en`, `ko`, `zh-CN`; a new language is a new file). Message ids
are keys (`queue.position`); the text uses `{name}` placeholders and, where a number decides the form,
gettext plurals chosen by the language's own rule (`Plural-Forms`: English has two forms, Korean and
Chinese one). Babel reads the `.po` files directly (no compile step) and they open in any translation
tool (Poedit, Weblate, Crowdin).

* `Catalogs.pick(*candidates)`: the first of (user locale, server locale) that has a catalogue, else
  English. `zh-TW` does not fall back to `zh-CN` (another script): it goes on to the next candidate.
* `Catalogs.render(lang, text)`: a `bot.text.Text` (or a plain string) in that language; values that
  are `Text` render in the same language, `Opt` option names as the client shows them (`option.<name>`).
No Discord imports (the CLI renders errors in English with it); `i18n` adds discord.py's translator.
"""

from __future__ import annotations

import gettext
import io
import logging
import string
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.text import Opt, Text

__all__ = ["DEFAULT", "LOCALES_DIR", "Catalogs", "catalogs", "english", "lang_of", "placeholders"]

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).with_name("locales")
DEFAULT = "en"
_MISSING = object()


def placeholders(text: str) -> set[str]:
    """The `{name}` fields of a message (format specs ignored), for checking catalogues agree."""
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text) if field}


class _Values(dict):  # type: ignore[type-arg]
    """format_map values that leave an unknown placeholder visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Catalogs:
    """The languages in a folder of `.po` files; English is required (the fallback)."""

    def __init__(self, folder: Path = LOCALES_DIR) -> None:
        self._tr: dict[str, gettext.GNUTranslations] = {}
        self._messages: dict[str, dict[str, str | tuple[str, ...]]] = {}
        for path in sorted(folder.glob("*.po")):
            code = path.stem
            with path.open("rb") as f:
                catalog = read_po(f, abort_invalid=True)
            buf = io.BytesIO()
            write_mo(buf, catalog)
            buf.seek(0)
            self._tr[code] = gettext.GNUTranslations(buf)
            self._messages[code] = {
                str(m.id if isinstance(m.id, str) else m.id[0]): m.string for m in catalog if m.id and m.string
                and (m.string if isinstance(m.string, str) else all(m.string))
            }
        if DEFAULT not in self._tr:
            raise RuntimeError(f"no {DEFAULT}.po in {folder}")

    @property
    def languages(self) -> list[str]:
        return list(self._tr)

    def messages(self, lang: str) -> dict[str, str | tuple[str, ...]]:
        """Key -> text (a tuple of forms for plural messages); for checks and tests."""
        return self._messages[lang]

    def pick(self, *candidates: Any) -> str:
        """The first candidate locale (a `discord.Locale`, a code or None) with a catalogue, else English."""
        for candidate in candidates:
            code = getattr(candidate, "value", candidate)
            if not code:
                continue
            code = str(code)
            if code in self._tr:
                return code
            base = code.split("-")[0]
            if base in self._tr:
                return base
        return DEFAULT

    def has(self, lang: str, key: str) -> bool:
        return key in self._messages.get(lang, {})

    def lookup(self, lang: str, key: str, count: int | None = None) -> str | None:
        """The raw text of `key` in `lang` (the plural form for `count`), or None if that language lacks it."""
        if not self.has(lang, key):
            return None
        tr = self._tr[lang]
        if isinstance(self._messages[lang][key], tuple):
            return tr.ngettext(key, key, 1 if count is None else count)
        return tr.gettext(key)

    def get(self, lang: str, key: str, /, **values: Any) -> str:
        """`key` in `lang` (English if that language lacks it), filled in with `values`."""
        return self.render(lang, Text(key, values))

    def render(self, lang: str, text: Text | str | Opt) -> str:
        if isinstance(text, Opt):
            return self.lookup(lang, f"option.{text}") or str(text)
        if not isinstance(text, Text):
            return str(text)
        count = text.args.get("count")
        count = count if isinstance(count, int) else None
        template = self.lookup(lang, text.key, count)
        if template is None:
            template = self.lookup(DEFAULT, text.key, count)
            if template is None:
                log.warning("Message %r is in no catalogue", text.key)
                return text.key
        values = _Values({k: self._value(lang, v) for k, v in text.args.items()})
        try:
            return template.format_map(values)
        except (ValueError, IndexError, AttributeError) as exc:  # a malformed translation never breaks a reply
            log.warning("Message %r in %s does not format: %s", text.key, lang, exc)
            return template

    def _value(self, lang: str, value: Any) -> Any:
        if isinstance(value, (Text, Opt)):
            return self.render(lang, value)
        if isinstance(value, (list, tuple)):  # a list of names: each in the reader's language, comma-joined
            return ", ".join(f"`{self._value(lang, v)}`" for v in value)
        return value

    def join(self, lang: str, items: Iterable[Text | str]) -> str:
        return "\n".join(self.render(lang, item) for item in items)


@lru_cache(maxsize=1)
def catalogs() -> Catalogs:
    """The bot's catalogues, read once."""
    return Catalogs()



def english(text: Text | str) -> str:
    """A message in English: for the log and the command line."""
    return catalogs().render(DEFAULT, text)


def lang_of(interaction: Any) -> str:
    """The language to answer an interaction in: the user's client, else the server's preferred one, else English."""
    return catalogs().pick(getattr(interaction, "locale", None), getattr(interaction, "guild_locale", None))
