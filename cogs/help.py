"""/help: what each command does, the buttons, the 🔁 reaction, and the limits in force for this user here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_app.actions import place_of
from bot.discord_app.bot import EngineCogMixin
from bot.discord_app.catalog import lang_of
from bot.discord_app.render import help_text

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot


class Help(EngineCogMixin, commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description="How to use sdcord: commands, buttons and your limits here")
    async def help(self, interaction: discord.Interaction[SDBot]) -> None:
        limits = await self.engine.preparer.limits_for(place_of(interaction))
        await interaction.response.send_message(help_text(lang_of(interaction), limits), ephemeral=True)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Help(bot))
