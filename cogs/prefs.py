"""/prefer: a user's own defaults and named presets for /draw."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ABS_MAX_SIDE, ABS_MIN_SIDE
from bot.core.payload import MAX_PROMPT_LENGTH
from bot.core.policy import MAX_PRESETS, clean_prefs
from bot.discord_app.bot import EngineCogMixin
from bot.discord_app.catalog import lang_of
from bot.discord_app.render import escape, say
from bot.errors import OptionError
from bot.text import Opt, T

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot

PRESET_NAME = app_commands.Range[str, 1, 32]


def describe_values(lang: str, values: dict[str, Any]) -> str:
    return ", ".join(f"{say(lang, Opt(k))} {escape(str(v), 80)}" for k, v in values.items()) or \
        say(lang, "prefer.nothing")


OPTION_TEXT = dict(negative_prompt="What /draw keeps out of your images unless you say otherwise",
                   width="Width in pixels, 64-2048", height="Height in pixels, 64-2048",
                   sampler="Sampling method, such as DPM++ 2M", steps="Sampling steps, 1-150",
                   model="Checkpoint to use")


class Preferences(EngineCogMixin, commands.GroupCog, group_name="prefer",
                  group_description="Your own defaults and presets"):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot
        super().__init__()


    async def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        return clean_prefs(await self.engine.preparer.validate_values(clean_prefs(values)))

    @app_commands.command(name="show", description="Show your defaults and presets")
    async def show(self, interaction: discord.Interaction[SDBot]) -> None:
        lang = lang_of(interaction)
        prefs = await self.engine.prefs.user_prefs(interaction.user.id)
        lines = [say(lang, "prefer.defaults", values=describe_values(lang, prefs.get("defaults", {})))]
        for name, values in sorted(prefs.get("presets", {}).items()):
            lines.append(f"**{escape(name, 32)}**: {describe_values(lang, values)}")
        if len(lines) == 1:
            lines.append(say(lang, "prefer.no_presets"))
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True)

    @app_commands.command(name="defaults", description="What /draw uses for you when an option isn't given")
    @app_commands.describe(clear="Forget your defaults", **OPTION_TEXT)
    async def defaults(
        self, interaction: discord.Interaction[SDBot],
        negative_prompt: app_commands.Range[str, None, MAX_PROMPT_LENGTH] | None = None,
        width: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        height: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        sampler: str | None = None, steps: app_commands.Range[int, 1, 150] | None = None,
        model: str | None = None, clear: bool = False,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # names are checked with the WebUI
        prefs = dict(await self.engine.prefs.user_prefs(interaction.user.id))
        given = {"negative_prompt": negative_prompt, "width": width, "height": height, "sampler": sampler,
                 "steps": steps, "model": model}
        prefs["defaults"] = {} if clear else await self._checked({**prefs.get("defaults", {}), **clean_prefs(given)})
        await self.engine.prefs.set_user_prefs(interaction.user.id, prefs)
        lang = lang_of(interaction)
        await interaction.followup.send(say(lang, "prefer.defaults_saved", values=describe_values(lang, prefs["defaults"])),
                                        ephemeral=True)

    @app_commands.command(name="save", description="Save a named preset for /draw preset:")
    @app_commands.describe(name="The preset's name, 1-32 characters", **OPTION_TEXT)
    async def save(
        self, interaction: discord.Interaction[SDBot], name: PRESET_NAME,
        negative_prompt: app_commands.Range[str, None, MAX_PROMPT_LENGTH] | None = None,
        width: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        height: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        sampler: str | None = None, steps: app_commands.Range[int, 1, 150] | None = None, model: str | None = None,
    ) -> None:
        values = clean_prefs({"negative_prompt": negative_prompt, "width": width, "height": height,
                              "sampler": sampler, "steps": steps, "model": model})
        if not values:
            raise OptionError([T("problem.empty_preset")])
        prefs = dict(await self.engine.prefs.user_prefs(interaction.user.id))
        presets = dict(prefs.get("presets", {}))
        name = name.strip()
        if name not in presets and len(presets) >= MAX_PRESETS:
            raise OptionError([T("problem.too_many_presets", count=MAX_PRESETS)])
        await interaction.response.defer(ephemeral=True, thinking=True)
        presets[name] = await self._checked(values)
        prefs["presets"] = presets
        await self.engine.prefs.set_user_prefs(interaction.user.id, prefs)
        lang = lang_of(interaction)
        await interaction.followup.send(say(lang, "prefer.saved", name=escape(name, 32),
                                            values=describe_values(lang, presets[name])), ephemeral=True)

    @app_commands.command(name="delete", description="Delete one of your presets")
    @app_commands.describe(name="The preset to delete")
    async def delete(self, interaction: discord.Interaction[SDBot], name: PRESET_NAME) -> None:
        prefs = dict(await self.engine.prefs.user_prefs(interaction.user.id))
        presets = dict(prefs.get("presets", {}))
        if presets.pop(name, None) is None:
            raise OptionError([T("problem.no_preset", option=Opt("name"), name=name[:32])])
        prefs["presets"] = presets
        await self.engine.prefs.set_user_prefs(interaction.user.id, prefs)
        await interaction.response.send_message(say(lang_of(interaction), "prefer.deleted", name=escape(name, 32)),
                                                ephemeral=True)

    @delete.autocomplete("name")
    async def _preset_ac(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        prefs = await self.engine.prefs.user_prefs(interaction.user.id)
        names = [n for n in sorted(prefs.get("presets", {})) if current.casefold() in n.casefold()]
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]


    @defaults.autocomplete("sampler")
    @save.autocomplete("sampler")
    async def _sampler_ac(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("sampler", current)

    @defaults.autocomplete("model")
    @save.autocomplete("model")
    async def _model_ac(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("model", current)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Preferences(bot))
