"""What commands, buttons, reactions and context menus do, wired to the engine. Discord side.

Every job starts one way, `Actions._start`: admit (rate limits; a refusal costs nothing and answers
privately), prepare the request (defer, download, check names with the WebUI; on failure the user
gets their slot back), submit (stored before the user is told), then follow its message. Every
action that generates goes through it and is attributed to whoever clicked or reacted. A rerun's
request comes from the job store, or, when the store doesn't know the message (store lost, or an
image posted by someone else), from the image's own `parameters` chunk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.core.generate import MAX_INPUT_PIXELS, parameters_or_none
from bot.core.jobs import DEFAULT_UPLOAD_LIMIT, InteractionRef, Origin
from bot.core.payload import BuiltPayload, DrawOptions, options_from_infotext, payload_infotext
from bot.core.prepare import DescribeInput, Place, UpscaleInput
from bot.errors import OptionError, Refused
from bot.images import png
from bot.images.params import describe
from bot.text import Opt, T

from .catalog import catalogs, lang_of
from .components import SDModal
from .errors import refusal_text
from .render import escape, say

if TYPE_CHECKING:
    from .bot import SDBot

__all__ = ["REROLL_EMOJI", "Actions", "EditModal", "check_declared", "is_nsfw", "load_checked", "params_message"]

log = logging.getLogger(__name__)

REROLL_EMOJI = "🔁"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_READ = 50 * 1024 * 1024  # largest image read back from a message (Discord's boosted limit is 100 MiB)
VARIATION_STRENGTH = 0.15  # Vary (Subtle): the same picture, a little different (like ABYU's V buttons)
STRONG_VARIATION = 0.35  # Vary (Strong): the same composition, clearly different details
ZOOM_ACTIONS = {"zoom15": 1.5, "zoom2": 2.0}

Prepare = Callable[[], Awaitable[BuiltPayload | UpscaleInput]]


def is_nsfw(channel: Any) -> bool:
    """Whether a channel (or a thread's parent) is marked NSFW; unknown channels count as not."""
    try:
        return bool(channel.is_nsfw())
    except AttributeError:
        return False


def bot_is_in_server(interaction: discord.Interaction[Any]) -> bool:
    """Whether the interaction comes from a server the bot is a member of (its settings apply there)."""
    return interaction.guild_id is not None and interaction.client.get_guild(interaction.guild_id) is not None


def can_post_here(interaction: discord.Interaction[Any]) -> bool:
    """Whether the bot can post in the interaction's channel itself: in its servers and its own DMs, not in
    a group DM or a server where only the user installed the app."""
    if interaction.guild_id is not None:
        return bot_is_in_server(interaction)
    return not interaction.context.private_channel


def origin_of(interaction: discord.Interaction[Any], *, parent_id: str | None = None) -> Origin:
    """Where an interaction's job comes from and how to answer it (its token, for the job message), and in
    which language."""
    ref = InteractionRef(interaction.application_id, interaction.token, interaction.expires_at.timestamp(),
                         interaction.id)
    return Origin(
        user_id=interaction.user.id, channel_id=interaction.channel_id or 0, guild_id=interaction.guild_id,
        interaction=ref, parent_id=parent_id, filesize_limit=interaction.filesize_limit,
        credit=interaction.type is not discord.InteractionType.application_command,
        locale=lang_of(interaction), interaction_only=not can_post_here(interaction),
    )


def place_of(interaction: discord.Interaction[Any]) -> Place:
    """Where a job would run; `private` where no server's settings apply (DMs, group DMs, user installs)."""
    return Place(interaction.user.id, interaction.guild_id, interaction.channel_id, is_nsfw(interaction.channel),
                 private=not bot_is_in_server(interaction))


def _images_only(attachments: list[discord.Attachment]) -> list[discord.Attachment]:
    return [a for a in attachments if not a.filename.removeprefix("SPOILER_").startswith("preview")]


def _attachment_loader(attachments: list[discord.Attachment]) -> Callable[[], Awaitable[list[bytes]]]:
    async def load() -> list[bytes]:
        out = []
        for att in attachments[:10]:
            if att.size <= MAX_READ and (att.content_type or "image/png").split(";")[0] in IMAGE_TYPES:
                out.append(await att.read())
        return out

    return load


# ---------------------------------------------------------------------- user images (img2img, /upscale)
def check_declared(attachment: discord.Attachment, option: str, max_bytes: int) -> None:
    """Before downloading: the attachment's declared size and type. Raises OptionError."""
    mib = 1024 * 1024
    if attachment.size > max_bytes:
        raise OptionError([T("problem.file_too_big", option=Opt(option), size=f"{attachment.size / mib:.1f}",
                             limit=f"{max_bytes / mib:g}")])
    declared = (attachment.content_type or "").split(";")[0].strip().lower()
    if declared and declared not in IMAGE_TYPES:
        raise OptionError([T("problem.not_image_type", option=Opt(option), type=escape(declared, 40))])


async def load_checked(attachment: discord.Attachment, option: str) -> tuple[bytes, tuple[int, int]]:
    """Download the interaction's own attachment and make sure it is a real, whole, sanely sized image
    (pixel count checked from the header before decoding). Raises OptionError."""
    data = await attachment.read()
    try:
        _, width, height = await asyncio.to_thread(png.check_upload, data, max_pixels=MAX_INPUT_PIXELS)
    except png.UnsupportedImageError:
        raise OptionError([T("problem.not_image", option=Opt(option))]) from None
    except png.ImageTooLargeError:
        raise OptionError([T("problem.image_pixels", option=Opt(option),
                             limit=f"{MAX_INPUT_PIXELS / 1e6:g}")]) from None
    except png.ImageDataError:
        raise OptionError([T("problem.damaged", option=Opt(option))]) from None
    return data, (width, height)


# ---------------------------------------------------------------------- parameters
def params_message(lang: str, infotexts: list[str]) -> tuple[str, discord.Embed]:
    """A readable embed of an image's WebUI parameters, and message text with a copyable /draw line.
    The labels are in `lang`; the parameters stay as the WebUI wrote them (they are what PNG Info shows)."""
    first = describe(infotexts[0])
    embed = discord.Embed(title=say(lang, "params.title"),
                          description=escape(first.prompt, 4000) or say(lang, "params.no_prompt"),
                          colour=discord.Colour.blurple())
    if first.negative_prompt:
        embed.add_field(name=say(lang, "params.negative"), value=escape(first.negative_prompt, 1000), inline=False)
    shown = " · ".join(f"{k}: {v}" if v else k for k, v in first.fields)
    if shown:
        embed.add_field(name=say(lang, "params.parameters"), value=escape(shown, 1024), inline=False)
    if len(infotexts) > 1:
        seeds = [dict(describe(t).fields).get("Seed") for t in infotexts]
        embed.add_field(name=say(lang, "params.seeds"), value=", ".join(f"`{escape(s, 30)}`" for s in seeds if s)[:1024],
                        inline=False)
    embed.set_footer(text=say(lang, "params.made_with", flavour=first.flavour) if first.flavour != "unknown"
                     else say(lang, "params.infotext"))
    command = first.draw_command.replace("`", "ˋ")
    key = "params.copy_shortened" if first.truncated else "params.copy"
    content = f"{say(lang, key)}\n```\n{command[:1900]}\n```" if command else ""
    return content, embed


async def _infotexts_of(attachments: list[discord.Attachment]) -> list[str]:
    texts = []
    for data in await _attachment_loader(attachments)():
        if text := await asyncio.to_thread(parameters_or_none, data):
            texts.append(text)
    return texts


async def _send_params(interaction: discord.Interaction[Any], texts: list[str]) -> None:
    lang = lang_of(interaction)
    if not texts:
        await interaction.followup.send(say(lang, "params.none"), ephemeral=True)
        return
    content, embed = params_message(lang, texts)
    await interaction.followup.send(content, embed=embed, ephemeral=True)


class Actions:
    def __init__(self, bot: SDBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self._response_ids: dict[int, int] = {}  # interaction id -> its deferred response message

    async def defer(self, interaction: discord.Interaction[Any], **options: Any) -> None:
        """Acknowledge within Discord's 3 s; remember the response message's id (Discord returns it), so a job
        is stored together with its message and can be brought up to date after any restart."""
        response = await interaction.response.defer(**options)
        if response is not None and response.message_id is not None:
            self._response_ids[interaction.id] = response.message_id
            while len(self._response_ids) > 1000:  # deferred, then refused before a job started
                self._response_ids.pop(next(iter(self._response_ids)))

    # ------------------------------------------------------------------ the one way a job starts
    async def _start(self, origin: Origin, prepare: Prepare) -> None:
        """Admit (a refusal costs nothing), let `prepare` finish the request (defer, download, check names
        with the WebUI; on failure the user keeps their slot), store and queue it, follow its message."""
        ticket = await self.engine.admit(origin.user_id, origin.guild_id)
        try:
            request = await prepare()
            self.engine.check_route(request)  # a request no backend can run is refused now, not queued
        except BaseException:
            self.engine.release(ticket)
            raise
        finally:
            message_id = self._response_ids.pop(origin.interaction.id, None) if origin.interaction else None
        job = await self.engine.submit(ticket, request, origin, message_id=message_id)
        self.bot.deliveries.follow(job)

    async def draw(self, interaction: discord.Interaction[SDBot], opts: DrawOptions, *,
                   init_image: discord.Attachment | None = None, preset: str | None = None) -> None:
        """/draw: bad options or a channel the server doesn't allow get a private answer before anything
        else; over a limit too; then the interaction is deferred before any download or WebUI call."""
        preparer = self.engine.preparer
        if init_image is not None:  # declared size and type, before downloading anything
            check_declared(init_image, "init_image", self.engine.settings.max_input_image_bytes)
            opts = dataclasses.replace(opts, init_image=b"")
        place = place_of(interaction)
        built = await preparer.prepare_for(opts, place, preset=preset)
        self.engine.check_route(built)  # with what is known now: no backend can run it, a private answer now

        async def prepare() -> BuiltPayload:
            await self.defer(interaction, thinking=True)  # before any download or WebUI call: 3 s holds
            request = built
            if init_image is not None:  # only the interaction's own attachment; no URLs fetched
                data, size = await load_checked(init_image, "init_image")
                request = await preparer.prepare_for(dataclasses.replace(opts, init_image=data, init_size=size),
                                                     place, preset=preset)
            return await preparer.finalize(request)  # may ask the WebUI for its lists (cold cache)

        await self._start(origin_of(interaction), prepare)

    async def rerun(self, interaction: discord.Interaction[SDBot], options: DrawOptions, *,
                    parent: str | None) -> None:
        """Run `options` for whoever asked (the interaction is already deferred)."""
        await self._run_options(origin_of(interaction, parent_id=parent), place_of(interaction), options)

    async def _run_options(self, origin: Origin, place: Place, options: DrawOptions) -> None:
        """A rerun's options, checked in their place (the server's rules, the user's defaults), then started."""
        built = await self.engine.preparer.prepare_for(options, place)

        async def prepare() -> BuiltPayload:
            return await self.engine.preparer.finalize(built)

        await self._start(origin, prepare)

    async def _rerun_message(self, interaction: discord.Interaction[SDBot], message: discord.Message,
                             job_id: str | None, *, index: int = 0, variation: float | None = None) -> None:
        """Run a message's job (or its images' parameters) again for whoever asked, in a new message."""
        await self.defer(interaction, thinking=True)  # a new message becomes the rerun's job message
        options, parent = await self.engine.preparer.rerun_options(
            job_id=job_id, message_id=message.id, index=index, variation=variation,
            images=_attachment_loader(_images_only(message.attachments)))
        await self.rerun(interaction, options, parent=parent)

    async def upscale(self, interaction: discord.Interaction[SDBot], image: discord.Attachment, scale: float,
                      upscaler: str | None) -> None:
        """/upscale: extra-single-image through the same queue and limits; the result keeps the infotext."""
        check_declared(image, "image", self.engine.settings.max_input_image_bytes)
        await self.engine.preparer.check_place(place_of(interaction))

        async def prepare() -> UpscaleInput:
            await self.defer(interaction, thinking=True)
            data, size = await load_checked(image, "image")
            return await self.engine.preparer.upscale(data, size, scale=scale, upscaler=upscaler)

        await self._start(origin_of(interaction), prepare)

    async def describe(self, interaction: discord.Interaction[SDBot], image: discord.Attachment) -> None:
        """/describe: the WebUI's interrogators through the same queue and limits; up to four prompts, each
        with a button that draws it for whoever clicks."""
        check_declared(image, "image", self.engine.settings.max_input_image_bytes)
        await self.engine.preparer.check_place(place_of(interaction))

        async def prepare() -> DescribeInput:
            await self.defer(interaction, thinking=True)
            data, _ = await load_checked(image, "image")
            return DescribeInput(data)

        await self._start(origin_of(interaction), prepare)

    # ------------------------------------------------------------------ buttons
    async def on_result_button(self, interaction: discord.Interaction[SDBot], action: str, job_id: str,
                               index: int = 0) -> None:
        if action in ZOOM_ACTIONS:
            await self._zoom_button(interaction, job_id, index, ZOOM_ACTIONS[action])
            return
        handlers = {"reroll": self._reroll_button, "vary": self._vary_button, "strong": self._strong_button,
                    "upscale": self._upscale_button, "edit": self._edit_button, "info": self._info_button,
                    "delete": self._delete_button, "retry": self._retry_button, "prompt": self._prompt_button}
        await handlers[action](interaction, job_id, index)

    async def cancel(self, interaction: discord.Interaction[SDBot], job_id: str) -> None:
        """Cancel: the requester, or anyone with Manage Messages; also for a job from before a restart, and
        (a shared queue) for a job another process holds."""
        lang = lang_of(interaction)
        job = self.engine.job(job_id)
        user_id: int | None = None
        if job is not None and not job.is_final:
            user_id = job.user_id
        elif job is None and self.engine.shared:
            record = await self.engine.find_job(job_id=job_id)
            if record is not None and record.status in ("queued", "running"):
                user_id = record.user_id
        if user_id is None:
            await interaction.response.send_message(say(lang, "cancel.ended"), ephemeral=True)
            return
        if interaction.user.id != user_id and not interaction.permissions.manage_messages:
            await interaction.response.send_message(say(lang, "cancel.not_yours"), ephemeral=True)
            return
        await interaction.response.defer()  # the job's message shows "Cancelled" once it is
        if job is not None:
            await self.engine.cancel(job, by=interaction.user.id)
        elif not await self.engine.cancel_id(job_id, by=interaction.user.id):
            await interaction.followup.send(say(lang, "cancel.ended"), ephemeral=True)

    async def _reroll_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        await self._rerun_message(interaction, interaction.message, job_id)

    async def _retry_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        """A failed job's Retry: the same request again, same seed, for whoever clicks."""
        assert interaction.message is not None
        record = await self.engine.find_job(job_id=job_id, message_id=interaction.message.id)
        if record is not None and record.kind == "describe":
            await self.engine.preparer.check_place(place_of(interaction))

            async def again() -> DescribeInput:
                await self.defer(interaction, thinking=True)
                return await self.engine.preparer.describe_again(record)

            await self._start(origin_of(interaction, parent_id=record.id), again)
            return
        if record is not None and record.kind == "upscale":
            await self.engine.preparer.check_place(place_of(interaction))

            async def prepare() -> UpscaleInput:
                await self.defer(interaction, thinking=True)
                return await self.engine.preparer.upscale_again(record)

            await self._start(origin_of(interaction, parent_id=record.id), prepare)
            return
        await self.defer(interaction, thinking=True)
        options, parent = await self.engine.preparer.rerun_options(
            job_id=job_id, message_id=interaction.message.id, new_seed=False,
            images=_attachment_loader(_images_only(interaction.message.attachments)))
        await self.rerun(interaction, options, parent=parent)

    async def _vary_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        await self._rerun_message(interaction, interaction.message, job_id, index=index, variation=VARIATION_STRENGTH)

    async def _prompt_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        """A /describe suggestion: draw it with the defaults, for whoever clicks (the server's rules apply)."""
        record = await self.engine.find_job(job_id=job_id)
        found = list((record.outcome or {}).get("suggestions") or []) if record is not None else []
        if index >= len(found):
            raise OptionError([T("problem.nothing_to_rerun")])
        await self.defer(interaction, thinking=True)
        await self.rerun(interaction, DrawOptions(str(found[index])), parent=job_id)

    async def _strong_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        await self._rerun_message(interaction, interaction.message, job_id, index=index, variation=STRONG_VARIATION)

    async def _zoom_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int,
                           factor: float) -> None:
        """Zoom out: image `index` centred on a canvas `factor` times larger (within the place's MAX_PIXELS),
        the new border painted by img2img inpainting with the job's prompt and that image's seed."""
        assert interaction.message is not None
        images = _images_only(interaction.message.attachments)
        if index >= len(images):
            raise OptionError([T("problem.no_image_n", number=index + 1)])
        check_declared(images[index], "image", self.engine.settings.max_input_image_bytes)
        place = place_of(interaction)
        preparer = self.engine.preparer
        await self.defer(interaction, thinking=True)
        options, parent = await preparer.rerun_options(job_id=job_id, message_id=interaction.message.id,
                                                       index=index, new_seed=False, same_seed=True,
                                                       images=_attachment_loader(images))

        async def prepare() -> BuiltPayload:  # admitted first: the download and the canvas cost something
            data, _ = await load_checked(images[index], "image")
            zoomed = await preparer.zoom_out(options, data, factor, place)
            return await preparer.finalize(await preparer.prepare_for(zoomed, place))

        await self._start(origin_of(interaction, parent_id=parent), prepare)

    async def _upscale_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        images = _images_only(interaction.message.attachments)
        if index >= len(images):
            raise OptionError([T("problem.no_image_n", number=index + 1)])
        await self.engine.preparer.check_place(place_of(interaction))
        record = await self.engine.find_job(job_id=job_id, message_id=interaction.message.id)
        source = record.id if record else None

        async def prepare() -> UpscaleInput:
            await self.defer(interaction, thinking=True)
            data, size = await load_checked(images[index], "image")
            request = await self.engine.preparer.upscale(data, size, scale=2.0, upscaler=None)
            return dataclasses.replace(request, source_job=source, index=index)

        await self._start(origin_of(interaction, parent_id=source), prepare)

    async def _info_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        record = await self.engine.find_job(job_id=job_id, message_id=interaction.message.id)
        texts = [t for t in (record.infotexts if record else []) if t]
        if not texts:
            texts = await _infotexts_of(interaction.message.attachments)
        await _send_params(interaction, texts)

    async def _delete_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        record = await self.engine.find_job(job_id=job_id, message_id=interaction.message.id)
        is_requester = record is not None and record.user_id == interaction.user.id
        lang = lang_of(interaction)
        if not (is_requester or interaction.permissions.manage_messages):
            await interaction.response.send_message(say(lang, "delete.not_yours"), ephemeral=True)
            return
        await interaction.response.defer()  # the message the button is on is the interaction's to delete
        try:  # through the interaction: works also where the bot is not in the server
            await interaction.delete_original_response()
        except discord.NotFound:
            pass

    async def _edit_button(self, interaction: discord.Interaction[SDBot], job_id: str, index: int) -> None:
        assert interaction.message is not None
        # A modal must be the first answer, so no defer here: the store is local, the image small.
        record = await self.engine.find_job(job_id=job_id, message_id=interaction.message.id)
        texts = [t for t in (record.infotexts if record else []) if t]
        if not texts and record is not None and record.kind in ("txt2img", "img2img"):
            texts = [payload_infotext(record.payload)]  # a job with no image (it failed): its request
        if not texts:
            texts = await _infotexts_of(_images_only(interaction.message.attachments)[:1])
        if not texts:
            raise OptionError([T("problem.nothing_to_edit")])
        await interaction.response.send_modal(EditModal(record.id if record else job_id,
                                                        texts[min(index, len(texts) - 1)], lang_of(interaction)))

    # ------------------------------------------------------------------ reactions
    async def reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """🔁 on one of the bot's result messages: rerun it with a new seed for the reacting user, in the
        server's preferred language (a reaction carries no user locale)."""
        channel = self.bot.get_partial_messageable(payload.channel_id, guild_id=payload.guild_id)
        guild = self.bot.get_guild(payload.guild_id) if payload.guild_id else None
        lang = catalogs().pick(guild.preferred_locale if guild else None)

        async def images() -> list[bytes]:
            message = await channel.fetch_message(payload.message_id)
            return await _attachment_loader(message.attachments)()

        try:
            options, parent = await self.engine.preparer.rerun_options(job_id=None, message_id=payload.message_id,
                                                                       images=images)
            origin = Origin(user_id=payload.user_id, channel_id=payload.channel_id, guild_id=payload.guild_id,
                            reply_to=payload.message_id, parent_id=parent, credit=True, locale=lang,
                            filesize_limit=guild.filesize_limit if guild else DEFAULT_UPLOAD_LIMIT)
            place = Place(payload.user_id, payload.guild_id, payload.channel_id,
                          is_nsfw(self.bot.get_channel(payload.channel_id)), private=guild is None)
            await self._run_options(origin, place, options)
        except (OptionError, Refused) as exc:
            # No interaction to answer privately: a short notice to the reacting user that cleans itself up.
            books = catalogs()
            text = refusal_text(lang, exc) if isinstance(exc, Refused) else books.join(lang, exc.problems)
            await channel.send(f"<@{payload.user_id}> {text}"[:2000], delete_after=20,
                               allowed_mentions=discord.AllowedMentions(users=[discord.Object(payload.user_id)]))
        except discord.HTTPException as exc:
            log.warning("Reroll by reaction on %s failed: %s", payload.message_id, exc)

    # ------------------------------------------------------------------ /pnginfo and context menus
    async def pnginfo(self, interaction: discord.Interaction[Any], image: discord.Attachment) -> None:
        """/pnginfo: the parameters of any PNG (or JPEG/WebP) with WebUI infotext; clear answers otherwise."""
        name = escape(image.filename, 80)
        lang = lang_of(interaction)
        if image.size > MAX_READ:
            await interaction.response.send_message(
                say(lang, "pnginfo.too_big", option=say(lang, Opt("image")), size=f"{image.size / 1048576:.1f}",
                    limit=MAX_READ // 1048576), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await image.read()
        try:
            text = await asyncio.to_thread(png.read_parameters, data)
        except png.UnsupportedImageError:
            await interaction.followup.send(say(lang, "pnginfo.not_image", name=name), ephemeral=True)
            return
        except png.ImageDataError:
            await interaction.followup.send(say(lang, "pnginfo.damaged", name=name), ephemeral=True)
            return
        if not text:
            kind = (png.image_format(data) or "image").upper()
            await interaction.followup.send(say(lang, "pnginfo.no_parameters", name=name, kind=kind), ephemeral=True)
            return
        await _send_params(interaction, [text])

    async def show_parameters(self, interaction: discord.Interaction[SDBot], message: discord.Message) -> None:
        """Message context menu "Show parameters"."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        record = await self.engine.find_job(message_id=message.id)
        texts = [t for t in (record.infotexts if record else []) if t] or await _infotexts_of(message.attachments)
        await _send_params(interaction, texts)

    async def reroll_message(self, interaction: discord.Interaction[SDBot], message: discord.Message) -> None:
        """Message context menu "Reroll": any message whose images carry WebUI parameters."""
        await self._rerun_message(interaction, message, None)


class EditModal(SDModal, title="Edit"):
    """The request as infotext, to change and run again; its labels in the clicker's language."""

    def __init__(self, job_id: str, infotext: str, lang: str) -> None:
        super().__init__(custom_id=f"sdcord:editmodal:{job_id}", title=say(lang, "edit.title")[:45])
        self.job_id = job_id
        view = describe(infotext)
        paragraph = discord.TextStyle.paragraph
        self.prompt: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=say(lang, "edit.prompt")[:45], style=paragraph, max_length=1500, custom_id="edit:prompt",
            default=view.prompt[:1500])
        self.negative: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=say(lang, "edit.negative")[:45], style=paragraph, max_length=1500, required=False,
            custom_id="edit:negative", default=view.negative_prompt[:1500])
        self.parameters: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=say(lang, "edit.parameters")[:45], style=paragraph, max_length=2000, custom_id="edit:parameters",
            placeholder="Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: -1, Size: 512x512",
            default=infotext.strip().split("\n")[-1][:2000] if view.has_parameters else "")
        for item in (self.prompt, self.negative, self.parameters):
            self.add_item(item)

    async def on_submit(self, interaction: discord.Interaction[SDBot]) -> None:  # type: ignore[override]
        negative = f"\nNegative prompt: {self.negative.value.strip()}" if self.negative.value.strip() else ""
        text = f"{self.prompt.value.strip()}{negative}\n{self.parameters.value.strip()}"
        try:
            options = options_from_infotext(text, new_seed=False)
        except ValueError:
            raise OptionError([T("problem.edit_parameters")]) from None
        await interaction.client.actions.defer(interaction, thinking=True)
        await interaction.client.actions.rerun(interaction, options, parent=self.job_id)
