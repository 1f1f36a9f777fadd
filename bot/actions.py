"""Actions on result messages (buttons, 🔁 reactions), wired to the engine. Discord side.

Every action that generates goes through the same admission (rate limits), fair queue and
delivery as /draw, and is attributed to whoever clicked or reacted. The request comes from the job
store, or, when the store doesn't know the message (store lost, or an image posted by someone else),
from the image's own `parameters` chunk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from . import png
from .delivery import JobMessage, escape
from .discord_bot import SDModal
from .engine import MAX_INPUT_PIXELS, UpscaleRequest, parameters_or_none
from .params import describe, options_from_infotext
from .payload import DrawOptions, OptionError
from .scheduler import Refused

if TYPE_CHECKING:
    from .discord_bot import SDBot

__all__ = ["on_result_button", "rerun_from_reaction", "start_job", "params_message", "show_parameters",
           "reroll_message", "pnginfo", "REROLL_EMOJI"]

log = logging.getLogger(__name__)

REROLL_EMOJI = "🔁"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_READ = 50 * 1024 * 1024  # largest image read back from a message (Discord's boosted limit is 100 MiB)


def _attachment_loader(attachments: list[discord.Attachment]) -> Callable[[], Awaitable[list[bytes]]]:
    async def load() -> list[bytes]:
        out = []
        for att in attachments[:10]:
            if att.size <= MAX_READ and (att.content_type or "image/png").split(";")[0] in IMAGE_TYPES:
                out.append(await att.read())
        return out

    return load


async def start_job(
    bot: SDBot, options: DrawOptions, *, user_id: int, channel_id: int, guild_id: int | None,
    interaction: discord.Interaction[Any] | None = None, reply_to: int | None = None,
    parent_id: str | None = None, filesize_limit: int = DEFAULT_UPLOAD_LIMIT,
) -> None:
    """Validate (in the server's and user's context), admit, queue and deliver one generation."""
    engine = bot.engine
    assert engine is not None
    built = await engine.prepare_for(options, user_id=user_id, guild_id=guild_id, channel_id=channel_id,
                                     channel_nsfw=is_nsfw(bot.get_channel(channel_id)))
    await queue_request(bot, built, user_id=user_id, channel_id=channel_id, guild_id=guild_id,
                        interaction=interaction, reply_to=reply_to, parent_id=parent_id,
                        filesize_limit=filesize_limit, finalize=lambda: engine.finalize(built))


def is_nsfw(channel: Any) -> bool:
    """Whether a channel (or a thread's parent) is marked NSFW; unknown channels count as not."""
    try:
        return bool(channel.is_nsfw())
    except AttributeError:
        return False


async def queue_request(
    bot: SDBot, request: Any, *, user_id: int, channel_id: int, guild_id: int | None,
    interaction: discord.Interaction[Any] | None = None, reply_to: int | None = None,
    parent_id: str | None = None, filesize_limit: int = DEFAULT_UPLOAD_LIMIT,
    finalize: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """The one way a job starts: admit it (rate limits; a refusal costs nothing), let `finalize` finish
    the request (defer, download, check names with the WebUI; on failure the user keeps their token),
    queue it fairly and deliver it."""
    engine = bot.engine
    assert engine is not None
    ticket = engine.scheduler.admit(user_id)
    try:
        if finalize is not None:
            request = await finalize()
    except BaseException:
        engine.scheduler.release(ticket)
        raise
    job = engine.scheduler.submit(ticket, request, channel_id=channel_id, guild_id=guild_id,
                                  filesize_limit=filesize_limit, parent_id=parent_id)
    await JobMessage(bot, job, interaction=interaction, channel_id=channel_id, reply_to=reply_to).run()


# ---------------------------------------------------------------------- buttons
async def on_result_button(interaction: discord.Interaction[SDBot], action: str, job_id: str, index: int = 0) -> None:
    handlers = {"reroll": _reroll_button, "vary": _vary_button, "upscale": _upscale_button, "edit": _edit_button,
                "info": _info_button, "delete": _delete_button}
    await handlers[action](interaction, job_id, index)


async def _reroll_button(interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
    assert interaction.message is not None
    await _rerun(interaction, interaction.message, job_id)


async def _rerun(interaction: discord.Interaction[SDBot], message: discord.Message, job_id: str | None, *,
                 index: int = 0, variation: float | None = None) -> None:
    """Run a message's job (or its images' parameters) again for whoever asked, in a new message."""
    bot = interaction.client
    assert bot.engine is not None
    await interaction.response.defer(thinking=True)  # a new message becomes the rerun's job message
    options, parent = await bot.engine.rerun_options(
        job_id=job_id, message_id=message.id, index=index, variation=variation,
        images=_attachment_loader(_images_only(message.attachments)))
    await start_job(bot, options, user_id=interaction.user.id, channel_id=interaction.channel_id or 0,
                    guild_id=interaction.guild_id, interaction=interaction, parent_id=parent,
                    filesize_limit=interaction.filesize_limit)


async def _info_button(interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
    bot = interaction.client
    assert bot.engine is not None and interaction.message is not None
    await interaction.response.defer(ephemeral=True, thinking=True)
    record = await bot.engine.find_job(job_id=job_id, message_id=interaction.message.id)
    texts = [t for t in (record.infotexts if record else []) if t]
    if not texts:
        texts = await _infotexts_of(interaction.message.attachments)
    await _send_params(interaction, texts)


async def _infotexts_of(attachments: list[discord.Attachment]) -> list[str]:
    texts = []
    for data in await _attachment_loader(attachments)():
        if text := await asyncio.to_thread(parameters_or_none, data):
            texts.append(text)
    return texts


async def _send_params(interaction: discord.Interaction[Any], texts: list[str]) -> None:
    if not texts:
        await interaction.followup.send("These images carry no WebUI generation parameters.", ephemeral=True)
        return
    content, embed = params_message(texts)
    await interaction.followup.send(content, embed=embed, ephemeral=True)


def params_message(infotexts: list[str], *, title: str = "Generation parameters") -> tuple[str, discord.Embed]:
    """A readable embed of an image's WebUI parameters, and message text with a copyable /draw line."""
    first = describe(infotexts[0])
    embed = discord.Embed(title=title, description=escape(first.prompt, 4000) or "*(no prompt)*",
                          colour=discord.Colour.blurple())
    if first.negative_prompt:
        embed.add_field(name="Negative prompt", value=escape(first.negative_prompt, 1000), inline=False)
    shown = " · ".join(f"{k}: {v}" if v else k for k, v in first.fields)
    if shown:
        embed.add_field(name="Parameters", value=discord.utils.escape_markdown(shown)[:1024], inline=False)
    if len(infotexts) > 1:
        seeds = [dict(describe(t).fields).get("Seed") for t in infotexts]
        embed.add_field(name="Seeds", value=", ".join(f"`{s}`" for s in seeds if s)[:1024], inline=False)
    embed.set_footer(text=f"Made with {first.flavour}" if first.flavour != "unknown" else "WebUI infotext")
    command = first.draw_command.replace("`", "ˋ")
    note = " (shortened to fit)" if first.truncated else ""
    content = f"Copy to run it again{note}:\n```\n{command[:1900]}\n```" if command else ""
    return content, embed


async def _delete_button(interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
    bot = interaction.client
    assert bot.engine is not None and interaction.message is not None
    record = await bot.engine.find_job(job_id=job_id, message_id=interaction.message.id)
    is_requester = record is not None and record.user_id == interaction.user.id
    if not (is_requester or interaction.permissions.manage_messages):
        await interaction.response.send_message(
            "Only the person who made this image, or someone with Manage Messages, can delete it.", ephemeral=True)
        return
    await interaction.response.send_message("Deleted.", ephemeral=True)
    try:
        await interaction.message.delete()
    except discord.NotFound:
        pass


# ---------------------------------------------------------------------- reactions
async def rerun_from_reaction(bot: SDBot, payload: discord.RawReactionActionEvent) -> None:
    """🔁 on one of the bot's result messages: rerun it with a new seed for the reacting user."""
    assert bot.engine is not None
    channel = bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
    guild = bot.get_guild(payload.guild_id) if payload.guild_id else None
    limit = guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT

    async def images() -> list[bytes]:
        message = await channel.fetch_message(payload.message_id)
        return await _attachment_loader(message.attachments)()

    try:
        options, parent = await bot.engine.rerun_options(job_id=None, message_id=payload.message_id, images=images)
        await start_job(bot, options, user_id=payload.user_id, channel_id=payload.channel_id,
                        guild_id=payload.guild_id, reply_to=payload.message_id, parent_id=parent,
                        filesize_limit=limit)
    except (OptionError, Refused) as exc:
        # No interaction to answer privately: a short notice to the reacting user that cleans itself up.
        text = exc.message if isinstance(exc, Refused) else str(exc)
        await channel.send(f"<@{payload.user_id}> {text}", delete_after=20,
                           allowed_mentions=discord.AllowedMentions(users=[discord.Object(payload.user_id)]))
    except discord.HTTPException as exc:
        log.warning("Reroll by reaction on %s failed: %s", payload.message_id, exc)


# ---------------------------------------------------------------------- /pnginfo and context menus
async def pnginfo(interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
    """/pnginfo: the parameters of any PNG (or JPEG/WebP) with WebUI infotext; clear answers otherwise."""
    name = escape(image.filename, 80)
    if image.size > MAX_READ:
        await interaction.response.send_message(
            f"`image` is {image.size / 1048576:.1f} MiB; /pnginfo reads images up to {MAX_READ // 1048576} MiB.",
            ephemeral=True)
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    data = await image.read()
    try:
        text = await asyncio.to_thread(png.read_parameters, data)
    except png.UnsupportedImageError:
        await interaction.followup.send(f"`{name}` isn't a PNG, JPEG or WebP image.", ephemeral=True)
        return
    except png.ImageDataError:
        await interaction.followup.send(f"`{name}` is damaged; it can't be read.", ephemeral=True)
        return
    if not text:
        kind = (png.image_format(data) or "image").upper()
        await interaction.followup.send(
            f"`{name}` is a {kind} without WebUI generation parameters (images re-saved by Discord, phones or "
            "editors usually lose them).", ephemeral=True)
        return
    await _send_params(interaction, [text])


async def show_parameters(interaction: discord.Interaction[SDBot], message: discord.Message) -> None:
    """Message context menu "Show parameters"."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    engine = interaction.client.engine
    record = await engine.find_job(message_id=message.id) if engine else None
    texts = [t for t in (record.infotexts if record else []) if t] or await _infotexts_of(message.attachments)
    await _send_params(interaction, texts)


async def reroll_message(interaction: discord.Interaction[SDBot], message: discord.Message) -> None:
    """Message context menu "Reroll": any message whose images carry WebUI parameters."""
    await _rerun(interaction, message, None)


# ---------------------------------------------------------------------- variations, upscale, edit
VARIATION_STRENGTH = 0.15  # small: the same picture, a little different (like ABYU's V buttons)


def _images_only(attachments: list[discord.Attachment]) -> list[discord.Attachment]:
    return [a for a in attachments if not a.filename.removeprefix("SPOILER_").startswith("preview")]


async def _vary_button(interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
    assert interaction.message is not None
    await _rerun(interaction, interaction.message, job_id, index=index, variation=VARIATION_STRENGTH)


async def _upscale_button(interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
    bot = interaction.client
    engine = bot.engine
    assert engine is not None and interaction.message is not None
    images = _images_only(interaction.message.attachments)
    if index >= len(images):
        raise OptionError([f"This message has no image {index + 1} to upscale."])
    await engine.check_place(guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                             channel_nsfw=is_nsfw(interaction.channel))
    record = await engine.find_job(job_id=job_id, message_id=interaction.message.id)

    async def prepare() -> UpscaleRequest:
        await interaction.response.defer(thinking=True)
        request = await _upscale_request(bot, images[index], "image", 2.0, None)
        return dataclasses.replace(request, source_job=record.id if record else None, index=index)

    await queue_request(bot, None, user_id=interaction.user.id, channel_id=interaction.channel_id or 0,
                        guild_id=interaction.guild_id, interaction=interaction, parent_id=record.id if record else None,
                        filesize_limit=interaction.filesize_limit, finalize=prepare)


class EditModal(SDModal, title="Edit and run again"):
    prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Prompt", style=discord.TextStyle.paragraph, max_length=1500, custom_id="edit:prompt")
    negative: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Negative prompt", style=discord.TextStyle.paragraph, max_length=1500, required=False,
        custom_id="edit:negative")
    parameters: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Parameters", style=discord.TextStyle.paragraph, max_length=2000, custom_id="edit:parameters",
        placeholder="Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: -1, Size: 512x512")

    def __init__(self, job_id: str, infotext: str) -> None:
        super().__init__(custom_id=f"sdcord:editmodal:{job_id}")
        self.job_id = job_id
        view = describe(infotext)
        self.prompt.default = view.prompt[:1500]
        self.negative.default = view.negative_prompt[:1500]
        self.parameters.default = infotext.strip().split("\n")[-1][:2000] if view.has_parameters else ""

    async def on_submit(self, interaction: discord.Interaction[SDBot]) -> None:  # type: ignore[override]
        negative = f"\nNegative prompt: {self.negative.value.strip()}" if self.negative.value.strip() else ""
        text = f"{self.prompt.value.strip()}{negative}\n{self.parameters.value.strip()}"
        try:
            options = options_from_infotext(text, new_seed=False)
        except ValueError:
            raise OptionError(["`Parameters` must be a line like `Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, "
                               "Seed: -1, Size: 512x512` (at least three of them)."]) from None
        await interaction.response.defer(thinking=True)
        await start_job(interaction.client, options, user_id=interaction.user.id,
                        channel_id=interaction.channel_id or 0, guild_id=interaction.guild_id,
                        interaction=interaction, parent_id=self.job_id, filesize_limit=interaction.filesize_limit)


async def _edit_button(interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
    bot = interaction.client
    assert bot.engine is not None and interaction.message is not None
    # A modal must be the first answer, so no defer here: the store is local, the image small.
    record = await bot.engine.find_job(job_id=job_id, message_id=interaction.message.id)
    texts = [t for t in (record.infotexts if record else []) if t]
    if not texts:
        texts = await _infotexts_of(_images_only(interaction.message.attachments)[:1])
    if not texts:
        raise OptionError(["This message has no image with WebUI generation parameters to edit."])
    await interaction.response.send_modal(EditModal(record.id if record else job_id, texts[min(index, len(texts) - 1)]))


# ---------------------------------------------------------------------- user images (img2img, /upscale)
def check_declared(attachment: discord.Attachment, option: str, max_bytes: int) -> None:
    """Before downloading: the attachment's declared size and type. Raises OptionError."""
    mib = 1024 * 1024
    if attachment.size > max_bytes:
        raise OptionError([f"`{option}` is {attachment.size / mib:.1f} MB; the limit is {max_bytes / mib:g} MB."])
    declared = (attachment.content_type or "").split(";")[0].strip().lower()
    if declared and declared not in IMAGE_TYPES:
        raise OptionError([f"`{option}` must be a PNG, JPEG or WebP image (this file is {escape(declared, 40)})."])


async def load_checked(attachment: discord.Attachment, option: str) -> tuple[bytes, tuple[int, int]]:
    """Download the interaction's own attachment and make sure it is a real, whole, sanely sized image
    (pixel count checked from the header before decoding). Raises OptionError."""
    data = await attachment.read()
    try:
        _, width, height = await asyncio.to_thread(png.check_upload, data, max_pixels=MAX_INPUT_PIXELS)
    except png.UnsupportedImageError:
        raise OptionError([f"`{option}` isn't a PNG, JPEG or WebP image."]) from None
    except png.ImageTooLargeError as exc:
        raise OptionError([f"`{option}` is too large to process ({exc}); at most "
                           f"{MAX_INPUT_PIXELS / 1e6:g} million pixels."]) from None
    except png.ImageDataError:
        raise OptionError([f"`{option}` is damaged or incomplete; it can't be read."]) from None
    return data, (width, height)


async def _upscale_request(bot: SDBot, image: discord.Attachment, option: str, scale: float,
                           upscaler: str | None) -> UpscaleRequest:
    """An upscale of a user's or a result's image: checked like any upload, the result bounded by
    MAX_UPSCALE_PIXELS, the upscaler resolved against the WebUI's list (default: its best general one)."""
    engine = bot.engine
    assert engine is not None
    data, (width, height) = await load_checked(image, option)
    out_w, out_h = int(width * scale), int(height * scale)
    if out_w * out_h > engine.settings.max_upscale_pixels:
        raise OptionError([f"`scale` {scale:g}x of {width}x{height} makes {out_w}x{out_h} = {out_w * out_h:,} "
                           f"pixels; the limit is {engine.settings.max_upscale_pixels:,}."])
    catalogue = await engine.catalogue.get()
    name = catalogue.default_upscaler()
    if upscaler:
        found = catalogue.resolve_upscaler(upscaler) if catalogue.upscalers else upscaler
        if found is None:
            raise OptionError([f"`upscaler`: the WebUI has no upscaler called {upscaler[:80]!r}; "
                               "pick one from the list."])
        name = found
    infotext = await asyncio.to_thread(parameters_or_none, data)
    return UpscaleRequest(data, infotext, float(scale), name)


async def upscale_command(interaction: discord.Interaction[SDBot], image: discord.Attachment, scale: float,
                          upscaler: str | None) -> None:
    """/upscale: extra-single-image through the same queue and limits; the result keeps the infotext."""
    bot = interaction.client
    assert bot.engine is not None
    check_declared(image, "image", bot.engine.settings.max_input_image_bytes)
    await bot.engine.check_place(guild_id=interaction.guild_id, channel_id=interaction.channel_id,
                                 channel_nsfw=is_nsfw(interaction.channel))

    async def prepare() -> UpscaleRequest:
        await interaction.response.defer(thinking=True)
        return await _upscale_request(bot, image, "image", scale, upscaler)

    await queue_request(bot, None, user_id=interaction.user.id, channel_id=interaction.channel_id or 0,
                        guild_id=interaction.guild_id, interaction=interaction,
                        filesize_limit=interaction.filesize_limit, finalize=prepare)
