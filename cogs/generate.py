"""/draw: parse the interaction, call the engine, render the reply."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ABS_MAX_BATCH, ABS_MAX_SIDE, ABS_MAX_STEPS, ABS_MIN_SIDE
from bot.payload import MAX_PROMPT_LENGTH, MAX_SEED, DrawOptions

if TYPE_CHECKING:
    from bot.catalogue import Kind
    from bot.discord_bot import SDBot
    from bot.engine import DrawEngine, Outcome

SUMMARY_PROMPT_CHARS = 300


def _display(text: str, limit: int) -> str:
    """User text made safe to echo: no markdown tricks, no mention syntax, bounded length."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def render_summary(outcome: Outcome) -> str:
    seeds = ", ".join(f"`{s}`" for s in outcome.seeds) or "?"
    sampler = " ".join(p for p in (outcome.sampler, outcome.scheduler) if p and p != "Automatic")
    facts = [
        f"seed{'s' if len(outcome.seeds) > 1 else ''} {seeds}",
        f"{outcome.steps} steps" if outcome.steps else None,
        sampler or None,
        _display(outcome.model, 80) if outcome.model else None,
        f"{outcome.elapsed:.1f} s",
    ]
    lines = [f"**{_display(outcome.prompt, SUMMARY_PROMPT_CHARS)}**", " · ".join(f for f in facts if f)]
    if outcome.notes:
        lines.append("-# " + "; ".join(outcome.notes))
    return "\n".join(lines)[:2000]


class Generate(commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot

    @property
    def engine(self) -> DrawEngine:
        assert self.bot.engine is not None, "engine is created in setup_hook"
        return self.bot.engine

    @app_commands.command(name="draw", description="Generate images from a text prompt")
    @app_commands.describe(
        prompt="What to draw",
        negative_prompt="What to keep out of the image",
        model="Checkpoint to use for this image only",
        sampler="Sampling method",
        scheduler="Schedule type",
        steps="Sampling steps",
        cfg_scale="How strictly to follow the prompt (1-30)",
        seed="Seed; -1 or empty for random",
        width="Width in pixels (multiple of 8)",
        height="Height in pixels (multiple of 8)",
        batch="Number of images",
    )
    async def draw(
        self,
        interaction: discord.Interaction[SDBot],
        prompt: app_commands.Range[str, 1, MAX_PROMPT_LENGTH],
        negative_prompt: app_commands.Range[str, None, MAX_PROMPT_LENGTH] | None = None,
        model: str | None = None,
        sampler: str | None = None,
        scheduler: str | None = None,
        steps: app_commands.Range[int, 1, ABS_MAX_STEPS] | None = None,
        cfg_scale: app_commands.Range[float, 1.0, 30.0] | None = None,
        seed: app_commands.Range[int, -1, MAX_SEED] | None = None,
        width: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        height: app_commands.Range[int, ABS_MIN_SIDE, ABS_MAX_SIDE] | None = None,
        batch: app_commands.Range[int, 1, ABS_MAX_BATCH] | None = None,
    ) -> None:
        opts = DrawOptions(prompt, negative_prompt, model, sampler, scheduler, steps, cfg_scale, seed,
                           width, height, batch)
        built = self.engine.prepare(opts)  # bad options: OptionError -> ephemeral answer, nothing sent to the WebUI
        await interaction.response.defer(thinking=True)  # before any WebUI call: the 3 s deadline always holds
        # Errors from here on (a name the WebUI doesn't know, the WebUI failing) go to the tree's
        # on_error, which turns the "thinking…" message into the reason, with an error id.
        built = await self.engine.finalize(opts, built)
        outcome = await self.engine.generate(built, filesize_limit=interaction.filesize_limit)
        files = [discord.File(io.BytesIO(img.data), filename=img.filename) for img in outcome.images]
        await interaction.edit_original_response(content=render_summary(outcome), attachments=files)

    async def _choices(self, kind: Kind, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=n, value=v) for n, v in await self.engine.catalogue.choices(kind, current)]

    @draw.autocomplete("model")
    async def _model_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("model", current)

    @draw.autocomplete("sampler")
    async def _sampler_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("sampler", current)

    @draw.autocomplete("scheduler")
    async def _scheduler_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("scheduler", current)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Generate(bot))
