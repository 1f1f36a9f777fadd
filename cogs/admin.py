"""/settings: a server's defaults, caps, allowed channels and NSFW policy (Manage Server only)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ABS_MAX_SIDE, ABS_MIN_SIDE, MAX_DAILY_LIMIT
from bot.core.payload import out_of_range
from bot.core.policy import ServerPolicy
from bot.discord_app.bot import EngineCogMixin
from bot.discord_app.catalog import catalogs, lang_of
from bot.discord_app.render import escape, say
from bot.errors import OptionError
from bot.text import Opt, T

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot


def describe_policy(lang: str, policy: ServerPolicy, settings: Any) -> str:
    eff = policy.effective(settings)
    d = policy.defaults
    values = ", ".join(f"{say(lang, Opt(k))} {escape(str(v), 80)}" for k, v in d.items())
    lines = [
        say(lang, "settings.defaults", values=values or say(lang, "settings.defaults_none")),
        say(lang, "settings.negative_prefix", text=escape(policy.negative_prefix, 200) or say(lang, "settings.none")),
        say(lang, "settings.caps", steps=eff.max_steps, pixels=eff.max_pixels, batch=eff.max_batch),
        say(lang, "settings.channels", channels=", ".join(f"<#{c}>" for c in policy.channels)
            or say(lang, "settings.everywhere")),
        say(lang, "settings.nsfw", mode=catalogs().lookup(lang, f"choice.{policy.nsfw_mode}") or policy.nsfw_mode,
            meaning=say(lang, f"nsfw.{policy.nsfw_mode}")),
    ]
    if policy.nsfw_mode == "safe":
        lines.append(say(lang, "settings.safety_negative", text=escape(policy.safety_negative, 300)))
    daily = policy.daily(settings)
    lines.append(say(lang, "settings.daily", count=daily) if daily else say(lang, "settings.daily_none"))
    lines.append(say(lang, "settings.blocklist", count=len(policy.blocklist)))  # the words: /settings blocklist show
    return "\n".join(lines)


@app_commands.guild_only()
@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)  # a server's settings: only where the server added the bot
@app_commands.default_permissions(manage_guild=True)
class ServerSettings(EngineCogMixin, commands.GroupCog, group_name="settings",
                     group_description="sdcord settings for this server"):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot
        super().__init__()


    async def interaction_check(self, interaction: discord.Interaction[SDBot]) -> bool:  # type: ignore[override]
        """Checked again at run time: default permissions can be changed by the server."""
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def _policy(self, guild_id: int) -> ServerPolicy:
        return await self.engine.prefs.server_policy(guild_id) or ServerPolicy()

    async def _save(self, interaction: discord.Interaction[SDBot], policy: ServerPolicy, change: str) -> None:
        assert interaction.guild_id is not None
        await self.engine.prefs.set_server_policy(interaction.guild_id, policy, by=interaction.user.id, change=change)
        lang = lang_of(interaction)
        # `change` (English, for the log) is not echoed: the settings as they are now say it in the reader's language
        text = say(lang, "settings.saved") + "\n" + describe_policy(lang, policy, self.engine.settings)
        if interaction.response.is_done():
            await interaction.followup.send(text[:2000], ephemeral=True)
        else:
            await interaction.response.send_message(text[:2000], ephemeral=True)

    @app_commands.command(name="show", description="Show this server's sdcord settings")
    async def show(self, interaction: discord.Interaction[SDBot]) -> None:
        assert interaction.guild_id is not None
        policy = await self._policy(interaction.guild_id)
        await interaction.response.send_message(describe_policy(lang_of(interaction), policy, self.engine.settings)[:2000],
                                                ephemeral=True)

    @app_commands.command(name="defaults", description="Set what /draw uses when an option isn't given")
    @app_commands.describe(model="Default checkpoint for /draw here", sampler="Default sampling method",
                           scheduler="Default schedule type", steps="Default sampling steps, 1-150",
                           width="Default width in pixels, 64-2048", height="Default height in pixels, 64-2048",
                           negative_prefix="Added in front of every negative prompt (up to 500 characters)",
                           clear="Forget all defaults")
    async def defaults(
        self, interaction: discord.Interaction[SDBot], model: str | None = None, sampler: str | None = None,
        scheduler: str | None = None, steps: app_commands.Range[int, 1, 150] | None = None,
        width: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        height: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        negative_prefix: app_commands.Range[str, None, 500] | None = None, clear: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)  # names are checked with the WebUI
        policy = await self._policy(interaction.guild_id)
        given = {k: v for k, v in {"model": model, "sampler": sampler, "scheduler": scheduler, "steps": steps,
                                   "width": width, "height": height}.items() if v is not None}
        defaults = {} if clear else {**policy.defaults, **given}
        checked = await self.engine.preparer.validate_values(defaults, policy.effective(self.engine.settings))
        new = dataclasses.replace(policy, defaults=checked,
                                  negative_prefix=policy.negative_prefix if negative_prefix is None else negative_prefix)
        changed = {**{k: checked[k] for k in given}, "negative_prefix": negative_prefix}
        change = "defaults cleared" if clear else ", ".join(
            f"{k}={v}" for k, v in changed.items() if v is not None) or "nothing"
        await self._save(interaction, new, change)

    @app_commands.command(name="caps", description="Tighten the limits for this server (never above the bot's)")
    @app_commands.describe(max_steps="Most sampling steps per image (at most the bot's own cap)",
                           max_pixels="Most pixels per image, width × height (at least 4096)",
                           max_batch="Most images per /draw (at most the bot's own cap)",
                           daily_limit="Most jobs per person per day (UTC), every way of starting one; 0: the bot's")
    async def caps(self, interaction: discord.Interaction[SDBot], max_steps: int | None = None,
                   max_pixels: int | None = None, max_batch: int | None = None,
                   daily_limit: int | None = None) -> None:
        assert interaction.guild_id is not None
        g = self.engine.settings
        problems = [out_of_range(name, value, low, high)
                    for name, value, low, high in (("max_steps", max_steps, 1, g.max_steps),
                                                   ("max_pixels", max_pixels, ABS_MIN_SIDE ** 2, g.max_pixels),
                                                   ("max_batch", max_batch, 1, g.max_batch),
                                                   ("daily_limit", daily_limit, 0, g.daily_limit or MAX_DAILY_LIMIT))
                    if value is not None and not low <= value <= high]
        if problems:
            raise OptionError(problems)
        policy = await self._policy(interaction.guild_id)
        changes = {k: v for k, v in {"max_steps": max_steps, "max_pixels": max_pixels,
                                     "max_batch": max_batch}.items() if v is not None}
        if daily_limit is not None:
            changes["daily_limit"] = daily_limit or None
        await self._save(interaction, dataclasses.replace(policy, **changes),
                         ", ".join(f"{k}={v}" for k, v in changes.items()) or "nothing")

    @app_commands.command(name="channels", description="Choose the channels where /draw is allowed")
    @app_commands.describe(action="add or remove a channel, or clear the list (then: everywhere)",
                           channel="The channel to add or remove")
    async def channels(self, interaction: discord.Interaction[SDBot], action: Literal["add", "remove", "clear"],
                       channel: discord.TextChannel | None = None) -> None:
        assert interaction.guild_id is not None
        policy = await self._policy(interaction.guild_id)
        if action != "clear" and channel is None:
            raise OptionError([T("problem.which_channel", option=Opt("channel"))])
        current = list(policy.channels)
        if action == "add" and channel is not None and channel.id not in current:
            current.append(channel.id)
        elif action == "remove" and channel is not None and channel.id in current:
            current.remove(channel.id)
        elif action == "clear":
            current = []
        change = f"channels {action} {f'#{channel.name}' if channel else ''}".strip()
        await self._save(interaction, dataclasses.replace(policy, channels=tuple(current)), change)

    @app_commands.command(name="nsfw", description="What happens in channels not marked NSFW")
    @app_commands.describe(mode="off: nothing; safe: safety negative prompt + spoilers; refuse: no images there",
                           safety_negative="The negative prompt added in safe mode")
    async def nsfw(self, interaction: discord.Interaction[SDBot], mode: Literal["off", "safe", "refuse"],
                   safety_negative: app_commands.Range[str, 1, 500] | None = None) -> None:
        assert interaction.guild_id is not None
        policy = await self._policy(interaction.guild_id)
        new = dataclasses.replace(policy, nsfw_mode=mode,
                                  safety_negative=safety_negative or policy.safety_negative)
        await self._save(interaction, new, f"nsfw={mode}" + (", safety negative changed" if safety_negative else ""))

    blocklist = app_commands.Group(name="blocklist", description="Words refused in prompts here")

    @blocklist.command(name="add", description="Refuse prompts with these words or phrases")
    @app_commands.describe(
        words="Words or phrases, separated by commas (whole words; Chinese, Japanese, Korean anywhere)")
    async def blocklist_add(self, interaction: discord.Interaction[SDBot],
                            words: app_commands.Range[str, 1, 1000]) -> None:
        assert interaction.guild_id is not None
        policy, added = (await self._policy(interaction.guild_id)).block(words)
        await self._save(interaction, policy, f"blocklist: {added} added")

    @blocklist.command(name="remove", description="Allow these words or phrases again")
    @app_commands.describe(words="Words or phrases, separated by commas")
    async def blocklist_remove(self, interaction: discord.Interaction[SDBot],
                               words: app_commands.Range[str, 1, 1000]) -> None:
        assert interaction.guild_id is not None
        policy, removed = (await self._policy(interaction.guild_id)).unblock(words)
        await self._save(interaction, policy, f"blocklist: {removed} removed")

    @blocklist.command(name="show", description="The words refused in prompts here (only you see them)")
    async def blocklist_show(self, interaction: discord.Interaction[SDBot]) -> None:
        assert interaction.guild_id is not None
        policy = await self._policy(interaction.guild_id)
        lang = lang_of(interaction)
        if not policy.blocklist:
            text = say(lang, "settings.blocklist_empty")
        else:  # behind spoilers: moderators needn't read them at a glance
            words = ", ".join(f"||{escape(w, 60)}||" for w in policy.blocklist)
            text = say(lang, "settings.blocklist_words", count=len(policy.blocklist), words=words)
        await interaction.response.send_message(text[:2000], ephemeral=True)

    @app_commands.command(name="reset", description="Forget every sdcord setting of this server")
    async def reset(self, interaction: discord.Interaction[SDBot]) -> None:
        await self._save(interaction, ServerPolicy(), "reset")


    @defaults.autocomplete("model")
    async def _model_ac(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("model", current)

    @defaults.autocomplete("sampler")
    async def _sampler_ac(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("sampler", current)

    @defaults.autocomplete("scheduler")
    async def _scheduler_ac(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("scheduler", current)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(ServerSettings(bot))
