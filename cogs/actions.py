"""🔁 reactions on result messages: parse the event, hand it to the engine's actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.actions import REROLL_EMOJI, rerun_from_reaction

if TYPE_CHECKING:
    from bot.discord_bot import SDBot


class Actions(commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        me = self.bot.user
        if me is None or payload.user_id == me.id:  # the bot's own reactions never trigger anything
            return
        if str(payload.emoji) != REROLL_EMOJI or payload.message_author_id != me.id:
            return
        await rerun_from_reaction(self.bot, payload)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Actions(bot))
