"""discord.py's translator for command names and descriptions, from the catalogues (`catalog`).

Keys are derived from where a string is, so the cogs declare commands with their English text only:
Discord shows every language we have a catalogue for; English is the default text itself.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from .catalog import DEFAULT, Catalogs, catalogs

__all__ = ["CommandTranslator", "command_key"]


def command_key(context: app_commands.TranslationContextTypes) -> str | None:
    """The catalogue key of a command string, from where it is (so the cogs need no keys):

    command.<name>[.<sub>]            name of a command, group or subcommand
    command.<name>[.<sub>].description
    command.<name>[.<sub>].<option>   an option's description
    option.<option>                   an option's name (shared by every command that has it)
    choice.<name>                     a choice's name
    menu.<slug>                       a context menu's name ("Show parameters" -> menu.show_parameters)
    """
    where = app_commands.TranslationContextLocation
    data: Any = context.data
    location = context.location
    if location in (where.command_name, where.group_name):
        if isinstance(data, app_commands.ContextMenu):
            return "menu." + data.name.lower().replace(" ", "_")
        return "command." + data.qualified_name.replace(" ", ".")
    if location in (where.command_description, where.group_description):
        return "command." + data.qualified_name.replace(" ", ".") + ".description"
    if location is where.parameter_name:
        return f"option.{data.display_name}"
    if location is where.parameter_description:
        return "command." + data.command.qualified_name.replace(" ", ".") + f".{data.display_name}"
    if location is where.choice_name:
        return f"choice.{data.name}"
    return None


class CommandTranslator(app_commands.Translator):
    """Names and descriptions of commands in every language with a catalogue (English is the default text)."""

    def __init__(self, books: Catalogs | None = None) -> None:
        self.books = books or catalogs()

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        lang = self.books.pick(locale)
        if lang == DEFAULT:  # English is the default text itself
            return None
        key = string.extras.get("key") or command_key(context)
        return self.books.lookup(lang, key) if key else None
