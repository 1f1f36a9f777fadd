"""/pnginfo and the message context menus "Show parameters" and "Reroll": parse, call the actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot


class Info(commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot
        self.menus = [
            app_commands.ContextMenu(name="Show parameters", callback=bot.actions.show_parameters),
            app_commands.ContextMenu(name="Reroll", callback=bot.actions.reroll_message),
        ]

    async def cog_load(self) -> None:
        for menu in self.menus:
            self.bot.tree.add_command(menu)

    async def cog_unload(self) -> None:
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    @app_commands.command(name="pnginfo", description="Show the generation parameters stored in an image")
    @app_commands.describe(image="A PNG (or JPEG/WebP) made by a Stable Diffusion WebUI: A1111, Forge, SD.Next")
    async def pnginfo(self, interaction: discord.Interaction[SDBot], image: discord.Attachment) -> None:
        await self.bot.actions.pnginfo(interaction, image)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Info(bot))
