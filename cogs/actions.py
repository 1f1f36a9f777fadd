"""🔁 reactions on result messages: parse the event, hand it to the engine's actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.discord_app.actions import REROLL_EMOJI

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot


class Actions(commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        me = self.bot.user
        if me is None or payload.user_id == me.id or self.bot.closing_down:  # never the bot's own reactions
            return
        if str(payload.emoji) != REROLL_EMOJI or payload.message_author_id != me.id:
            return
        await self.bot.actions.reaction(payload)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Actions(bot))
