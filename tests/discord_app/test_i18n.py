"""The catalogues: every message in every language with the same placeholders, every key the code uses
known, every command string translated within Discord's rules, user text made safe to echo."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.discord_app.catalog import DEFAULT, Catalogs, catalogs, placeholders
from bot.discord_app.i18n import CommandTranslator, command_key
from bot.discord_app.render import clean, escape
from bot.text import Opt, T

ROOT = Path(__file__).resolve().parents[2]
BOOKS = catalogs()
OTHERS = [lang for lang in BOOKS.languages if lang != DEFAULT]


def _fields(text: str | tuple[str, ...]) -> set[str]:
    forms = (text,) if isinstance(text, str) else text
    return set().union(*(placeholders(f) for f in forms))


def test_the_languages_are_there() -> None:
    assert {"en", "ko", "zh-CN"} <= set(BOOKS.languages)


@pytest.mark.parametrize("lang", OTHERS)
def test_every_message_is_in_every_language_with_the_same_placeholders(lang: str) -> None:
    english, other = BOOKS.messages(DEFAULT), BOOKS.messages(lang)
    missing = sorted(set(english) - set(other))
    assert not missing, f"{lang} lacks {missing}"
    differ = {k: (_fields(english[k]), _fields(other[k])) for k in english if _fields(english[k]) != _fields(other[k])}
    assert not differ, f"{lang}: placeholders differ: {differ}"
    for key, text in other.items():  # every translation formats with the English values' names
        for form in (text,) if isinstance(text, str) else text:
            assert "{" not in form.format_map({f: 1 for f in placeholders(form)}).replace("{{", ""), key


def _source_keys() -> set[str]:
    """Message keys written literally in the code: T("key"), say(lang, "key"), books.get(lang, "key")."""
    pattern = re.compile(r'''(?:\bT\(|say\([^,()]+,\s*|\.get\(lang,\s*)"([a-z_]+\.[a-z_.]+)"''')
    keys: set[str] = set()
    for path in [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("cogs").rglob("*.py")]:
        if "demo" in path.parts:
            continue
        keys |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return keys


def test_every_key_the_code_uses_has_an_english_text() -> None:
    keys = _source_keys()
    assert len(keys) > 100  # the scan sees the code
    families = {f"button.{a}" for a in ("reroll", "vary", "upscale", "edit", "info", "delete", "retry", "cancel")}
    families |= {f"nsfw.{m}" for m in ("off", "safe", "refuse")} | {f"help.nsfw.{m}" for m in ("off", "safe", "refuse")}
    families |= {"progress.pausing_waiting", "progress.pausing_running", "failure.timeout_job",
                 "failure.timeout_answer", "status.idle", "permission.manage_guild", "permission.manage_messages",
                 "failure.auth_missing"}
    missing = sorted(k for k in keys | families if not BOOKS.has(DEFAULT, k))
    assert not missing


def test_rendering_picks_plural_forms_options_and_nested_messages() -> None:
    assert BOOKS.get("en", "status.queue", count=1) == "**Queue**: 1 job waiting"  # not "1 jobs"
    assert BOOKS.get("en", "status.queue", count=2) == "**Queue**: 2 jobs waiting"
    text = T("problem.range", option=Opt("steps"), low="1", high="50", value="99")
    assert BOOKS.render("en", text) == "`steps` must be between 1 and 50 (got 99)."
    korean = BOOKS.render("ko", text)
    assert BOOKS.lookup("ko", "option.steps") in korean and "99" in korean and "steps" not in korean
    nested = T("refuse.rate", count=5, period=T("period.minutes", count=1))
    assert BOOKS.render("en", nested) == "You've reached the limit: 5 jobs per person in 1 minute."
    assert "{" not in BOOKS.render("zh-CN", nested)


def test_locale_choice_falls_back_from_user_to_server_to_english() -> None:
    assert BOOKS.pick(discord.Locale.korean, discord.Locale.american_english) == "ko"
    assert BOOKS.pick(discord.Locale.chinese, None) == "zh-CN"
    assert BOOKS.pick(discord.Locale.french, discord.Locale.korean) == "ko"  # no French: the server's language
    assert BOOKS.pick(discord.Locale.taiwan_chinese, None) == "en"  # another script: not zh-CN
    assert BOOKS.pick(discord.Locale.british_english, discord.Locale.korean) == "en"
    assert BOOKS.pick(None, None) == "en"


def test_a_new_language_is_a_new_file(tmp_path: Path) -> None:
    for lang in ("en", "ko"):
        (tmp_path / f"{lang}.po").write_bytes((ROOT / "bot/discord_app/locales" / f"{lang}.po").read_bytes())
    (tmp_path / "ja.po").write_text('msgid ""\nmsgstr ""\n"Language: ja\\n"\n"Content-Type: text/plain; '
                                    'charset=UTF-8\\n"\n\nmsgid "button.retry"\nmsgstr "再試行"\n', encoding="utf-8")
    books = Catalogs(tmp_path)
    assert books.pick(discord.Locale.japanese) == "ja"
    assert books.get("ja", "button.retry") == "再試行"
    assert books.get("ja", "button.delete") == "Delete"  # missing in that language: English


# ---------------------------------------------------------------------------------------- command strings
NAME_CHARS = set("-_'")


def _valid_name(name: str) -> bool:
    """Discord's rule for command and option names: ^[-_'\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$, lowercase."""
    def ok(ch: str) -> bool:
        cat = unicodedata.category(ch)
        deva_thai = "DEVANAGARI" in unicodedata.name(ch, "") or "THAI" in unicodedata.name(ch, "")
        return ch in NAME_CHARS or cat[0] in "LN" or (deva_thai and cat in ("Mn", "Mc"))
    return 1 <= len(name) <= 32 and all(ok(c) for c in name) and name == name.lower()


class _Collect(app_commands.Translator):
    def __init__(self) -> None:
        self.strings: list[tuple[str | None, Any, str]] = []

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        if locale is discord.Locale.korean:
            self.strings.append((command_key(context), context.location, string.message))
        return None


async def _tree_payloads(translator: app_commands.Translator) -> list[dict[str, Any]]:
    from bot.discord_app.actions import Actions
    from bot.discord_app.bot import INITIAL_EXTENSIONS

    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    bot.engine = None  # type: ignore[attr-defined]  # the cogs only keep a reference at load time
    bot.actions = Actions(bot)  # type: ignore[attr-defined, arg-type]
    for ext in INITIAL_EXTENSIONS:
        await bot.load_extension(ext)
    await bot.tree.set_translator(translator)
    return [await c.get_translated_payload(bot.tree, translator) for c in bot.tree.get_commands()]


async def test_every_command_string_is_described_and_translated_within_discords_rules() -> None:
    collect = _Collect()
    await _tree_payloads(collect)
    where = app_commands.TranslationContextLocation
    assert len(collect.strings) > 100
    for key, location, english in collect.strings:
        assert key, (location, english)
        if location.name.endswith("description"):
            assert english not in ("…", "...", "-") and 1 <= len(english) <= 100, key  # no placeholder text
        for lang in OTHERS:
            text = BOOKS.lookup(lang, key)
            assert text, f"{lang} lacks {key} ({english!r})"
            if location in (where.command_name, where.group_name, where.parameter_name) and not key.startswith("menu."):
                assert _valid_name(text), f"{lang} {key}: {text!r} breaks Discord's name rules"
            else:
                assert 1 <= len(text) <= (32 if key.startswith("menu.") else 100), (lang, key, text)


async def test_the_payload_discord_gets_has_unique_localized_option_names() -> None:
    payloads = await _tree_payloads(CommandTranslator())

    def walk(options: list[dict[str, Any]], path: str) -> None:
        for lang in ("ko", "zh-CN"):
            names = [(o.get("name_localizations") or {}).get(lang, o["name"]) for o in options]
            assert len(names) == len(set(names)), f"{path} {lang}: {names}"
        for o in options:
            walk(o.get("options") or [], f"{path} {o['name']}")

    draw = next(p for p in payloads if p["name"] == "draw")
    assert draw["name_localizations"]["ko"] and draw["description_localizations"]["zh-CN"]
    for payload in payloads:
        walk(payload.get("options") or [], payload["name"])


# ---------------------------------------------------------------------------------------- echoed text
def test_echoed_text_has_no_bidi_overrides_or_control_characters() -> None:
    spoof = "a cat\u202e gnp.exe\u2066 \u200bhidden\x07 👨\u200d👩\u200d👧 <@&123> @everyone"
    assert not any(ch in clean(spoof) for ch in "\u202e\u2066\u200b\x07")
    safe = escape(spoof)
    assert not any(ch in safe for ch in "\u202e\u2066\x07")
    assert "👨\u200d👩\u200d👧" in safe  # emoji sequences keep their joiners
    assert "@everyone" not in safe.replace("@\u200beveryone", "")  # mention syntax neutralised
