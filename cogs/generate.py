"""/draw and /status: parse the interaction, call the engine, render the reply."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.config import ABS_MAX_BATCH, ABS_MAX_SIDE, ABS_MAX_STEPS, ABS_MIN_SIDE
from bot.core.payload import ASPECT_RATIOS, MAX_CLIP_SKIP, MAX_PROMPT_LENGTH, MAX_SEED, DrawOptions
from bot.discord_app.bot import EngineCogMixin
from bot.discord_app.catalog import lang_of
from bot.discord_app.render import STATUS_JOBS, status_text

if TYPE_CHECKING:
    from bot.discord_app.bot import SDBot


class Generate(EngineCogMixin, commands.Cog):
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot


    @app_commands.command(name="draw", description="Generate images from a text prompt")
    @app_commands.describe(
        prompt="What to draw (up to 1500 characters; <lora:name:weight> works too)",
        ar="Aspect ratio: the size is picked for the model (width/height, if given, win)",
        negative_prompt="What to keep out of the image",
        model="Checkpoint for this image only (default: the WebUI's current one)",
        sampler="Sampling method, such as DPM++ 2M or Euler a",
        scheduler="Schedule type, such as Karras (default: Automatic)",
        steps="Sampling steps, 1-150 (more: slower, finer; the server may allow fewer)",
        cfg_scale="How strictly to follow the prompt, 1-30 (default 7)",
        seed="Seed, 0-4294967295; -1 or empty for a random one",
        width="Width in pixels, 64-2048, rounded to a multiple of 8",
        height="Height in pixels, 64-2048, rounded to a multiple of 8",
        batch="Number of images, 1-10 (the server may allow fewer)",
        style="A style saved in the WebUI, added to the prompt",
        lora="A LoRA to add to the prompt",
        lora_weight="LoRA weight, -1 to 2 (default 1)",
        hires="Hires fix: upscale by this factor, 1-2, and refine",
        spoiler="Post the images as spoilers",
        init_image="Start from this image (img2img): PNG, JPEG or WebP",
        preset="One of your presets (made with /prefer save)",
        strength="img2img: how much to change the image, 0-1 (default 0.6)",
        clip_skip="Stop this many layers before CLIP's last, 1-12 (2 suits many anime models)",
        tiling="Make a seamless tile (the edges match when repeated)",
        fix_faces="Repaint faces in detail (the WebUI's ADetailer extension)",
    )
    @app_commands.choices(ar=[app_commands.Choice(name=r, value=r) for r in ASPECT_RATIOS])
    async def draw(
        self,
        interaction: discord.Interaction[SDBot],
        prompt: app_commands.Range[str, 1, MAX_PROMPT_LENGTH],
        ar: str | None = None,
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
        style: str | None = None,
        lora: str | None = None,
        lora_weight: app_commands.Range[float, -1.0, 2.0] | None = None,
        hires: app_commands.Range[float, 1.0, 2.0] | None = None,
        spoiler: bool = False,
        init_image: discord.Attachment | None = None,
        strength: app_commands.Range[float, 0.0, 1.0] | None = None,
        preset: str | None = None,
        clip_skip: app_commands.Range[int, 1, MAX_CLIP_SKIP] | None = None,
        tiling: bool = False,
        fix_faces: bool = False,
    ) -> None:
        opts = DrawOptions(prompt, negative_prompt, model, sampler, scheduler, steps, cfg_scale, seed,
                           width, height, batch, style=style, lora=lora, lora_weight=lora_weight, hires=hires,
                           spoiler=spoiler, strength=strength, aspect=ar, clip_skip=clip_skip, tiling=tiling,
                           fix_faces=fix_faces)
        await self.bot.actions.draw(interaction, opts, init_image=init_image, preset=preset)

    @app_commands.command(name="upscale", description="Upscale an image with the WebUI's upscalers")
    @app_commands.describe(image="The image to upscale: PNG, JPEG or WebP (its parameters are kept)",
                           scale="Factor, 1-4 (default 2)", upscaler="Upscaler to use (default: the WebUI's best one)")
    async def upscale(self, interaction: discord.Interaction[SDBot], image: discord.Attachment,
                      scale: app_commands.Range[float, 1.0, 4.0] = 2.0, upscaler: str | None = None) -> None:
        await self.bot.actions.upscale(interaction, image, scale, upscaler)

    @upscale.autocomplete("upscaler")
    async def _upscaler_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("upscaler", current)

    @app_commands.command(name="describe", description="Prompts that describe an image, to draw with one click")
    @app_commands.describe(image="The image to describe: PNG, JPEG or WebP")
    async def describe(self, interaction: discord.Interaction[SDBot], image: discord.Attachment) -> None:
        await self.bot.actions.describe(interaction, image)

    @app_commands.command(name="status", description="WebUI backends, the queue, and your jobs")
    async def status(self, interaction: discord.Interaction[SDBot]) -> None:
        view = await self.engine.status(interaction.user.id, STATUS_JOBS)
        await interaction.response.send_message(status_text(lang_of(interaction), view), ephemeral=True)

    @draw.autocomplete("model")
    async def _model_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("model", current)

    @draw.autocomplete("sampler")
    async def _sampler_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("sampler", current)

    @draw.autocomplete("scheduler")
    async def _scheduler_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("scheduler", current)

    @draw.autocomplete("style")
    async def _style_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("style", current)

    @draw.autocomplete("preset")
    async def _preset_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        prefs = await self.engine.prefs.user_prefs(interaction.user.id)
        names = [n for n in sorted(prefs.get("presets", {})) if current.casefold() in n.casefold()]
        return [app_commands.Choice(name=n, value=n) for n in names[:25]]

    @draw.autocomplete("lora")
    async def _lora_autocomplete(self, interaction: discord.Interaction[SDBot], current: str):  # noqa: ANN202
        return await self._choices("lora", current)


async def setup(bot: SDBot) -> None:
    await bot.add_cog(Generate(bot))
