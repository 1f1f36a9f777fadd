"""/history: the caller's recent jobs, newest first, with result links, paging and Rerun buttons. Parse,
call the engine, render (`bot.discord_app.history`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_app.bot import EngineCogMixin
from bot.discord_app.catalog import lang_of
from bot.discord_app.history import history_reply

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot


class History(EngineCogMixin, commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot

    @app_commands.command(name="history",
                          description="Your recent jobs, with links to the results and Rerun buttons")
    async def history(self, interaction: discord.Interaction[SDBot]) -> None:
        content, view = await history_reply(self.engine, interaction.user.id, 1, lang_of(interaction))
        await interaction.response.send_message(content, view=view, ephemeral=True)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(History(bot))
