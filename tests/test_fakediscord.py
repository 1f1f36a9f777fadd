"""Self-tests of tests/fakediscord: a real discord.py commands.Bot driven against the fake, offline."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import zlib
from typing import Optional

import aiohttp
import discord
import pytest
import pytest_asyncio
import yarl
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import FakeDiscord, InteractionFailed, InvalidInvocation, Perm
from tests.fakediscord.models import snowflake_time
from tests.fakediscord.pytest_plugin import fake_discord  # noqa: F401  (fixture)


def png(width: int = 2, height: int = 3, payload: bytes = b"") -> bytes:
    """A tiny valid PNG (optionally padded with a tEXt chunk to a given size)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    text = chunk(b"tEXt", b"parameters\x00" + payload) if payload else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + text + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- the bot under test


class ResultView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Re-roll", custom_id="selftest:reroll", style=discord.ButtonStyle.primary)
    async def reroll(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        interaction.client.events.append(("click", interaction.user.id, interaction.message.id))
        await interaction.response.edit_message(content=f"re-rolled by {interaction.user.name}", view=self)


class PromptModal(discord.ui.Modal, title="Edit prompt"):
    prompt = discord.ui.TextInput(label="Prompt", custom_id="prompt_field", max_length=200)
    negative = discord.ui.TextInput(label="Negative", custom_id="negative_field", required=False)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"new prompt: {self.prompt.value} / {self.negative.value or '-'}")


class TempView(discord.ui.View):
    """A non-persistent view (timeout set) sent with an interaction response."""

    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(label="OK", custom_id="selftest:ok")
    async def ok(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message(f"ok from {interaction.user.name}", ephemeral=True)


class SelfTestBot(commands.Bot):
    def __init__(self, fake: FakeDiscord, **kwargs) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), **kwargs)
        self.fake = fake
        self.events: list[tuple] = []
        self.errors: list[BaseException] = []
        self.interactions: dict[str, discord.Interaction] = {}
        self.guild_obj = discord.Object(fake.guild.id)
        self._define_commands()

    async def setup_hook(self) -> None:
        self.add_view(ResultView())
        self.tree.copy_global_to(guild=self.guild_obj)
        await self.tree.sync(guild=self.guild_obj)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.events.append(("reaction", payload.user_id, payload.message_id, str(payload.emoji)))

    async def on_message(self, message: discord.Message) -> None:
        self.events.append(("message", message.author.id, message.id))

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.events.append(("edit", payload.message_id))

    def _define_commands(self) -> None:
        tree = self.tree

        @tree.error
        async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.errors.append(getattr(error, "original", error))

        @tree.command(name="draw", description="Draw an image")
        @app_commands.describe(prompt="What to draw")
        async def draw(
            interaction: discord.Interaction,
            prompt: str,
            steps: app_commands.Range[int, 1, 150] = 20,
            cfg: float = 7.0,
            hires: bool = False,
            init_image: Optional[discord.Attachment] = None,
            model: Optional[str] = None,
        ) -> None:
            self.interactions["draw"] = interaction
            await interaction.response.defer(thinking=True)
            source = await init_image.read() if init_image is not None else b""
            result = png(4, 4, payload=f"{prompt}|{steps}|{cfg}|{hires}|{model}".encode() + source)
            await interaction.edit_original_response(
                content=f"done: {prompt}", attachments=[discord.File(io.BytesIO(result), "result.png")],
                view=ResultView(),
            )

        @draw.autocomplete("model")
        async def model_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            names = [f"{current}-model-{i}" for i in range(40)]
            return [app_commands.Choice(name=n, value=n) for n in names][:25]

        @tree.command(name="reply", description="Type-4 reply")
        async def reply(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message(text)

        @tree.command(name="pic", description="Type-4 reply with a file and a view")
        async def pic(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("here", file=discord.File(io.BytesIO(png()), "p.png"),
                                                    view=TempView())

        @tree.command(name="secret", description="Ephemeral reply")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("only you", ephemeral=True)

        @tree.command(name="follow", description="Defer then follow up twice")
        async def follow(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await interaction.followup.send("first")
            await interaction.followup.send("second", file=discord.File(io.BytesIO(png()), "f.png"))

        @tree.command(name="late", description="Answers after the ack deadline")
        async def late(interaction: discord.Interaction, delay: float) -> None:
            await asyncio.sleep(delay)
            await interaction.response.send_message("too late?")

        @tree.command(name="hold", description="Defers and keeps the interaction for later edits")
        async def hold(interaction: discord.Interaction) -> None:
            self.interactions["hold"] = interaction
            await interaction.response.send_message("working…")

        @tree.command(name="form", description="Opens a modal")
        async def form(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(PromptModal())

        @tree.command(name="big", description="Uploads a file of a given size")
        async def big(interaction: discord.Interaction, size: int) -> None:
            self.interactions["big"] = interaction
            await interaction.response.defer()
            try:
                await interaction.followup.send(file=discord.File(io.BytesIO(b"\0" * size), "big.bin"))
            except discord.HTTPException as exc:
                self.errors.append(exc)
                await interaction.followup.send("too big")

        @tree.command(name="admin", description="Admins only")
        @app_commands.default_permissions(manage_guild=True)
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"perms={interaction.permissions.value}", ephemeral=True)

        sd = app_commands.Group(name="sd", description="SD tools")

        @sd.command(name="models", description="List models")
        async def models(interaction: discord.Interaction, page: int = 1) -> None:
            await interaction.response.send_message(f"page {page}")

        tree.add_command(sd)


@pytest.fixture
def redirect(fake_discord):  # noqa: F811
    """Point discord.py at the fake: the three class attributes, restored afterwards."""
    old = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE)
    discord.http.Route.BASE = fake_discord.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake_discord.gateway_url)
    discord.asset.Asset.BASE = fake_discord.url
    yield fake_discord
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE = old


async def start_bot(fake: FakeDiscord, **kwargs) -> tuple[SelfTestBot, asyncio.Task]:
    bot = SelfTestBot(fake, **kwargs)
    task = asyncio.create_task(bot.start(fake.token))
    await fake.wait_for_commands({"draw", "reply", "form"}, guild_id=fake.guild.id, timeout=10)
    await fake.wait_until_ready(timeout=10)
    return bot, task


async def stop_bot(bot: SelfTestBot, task: asyncio.Task) -> None:
    await bot.close()
    await asyncio.wait_for(task, 5)


@pytest_asyncio.fixture
async def bot(redirect):
    fake = redirect
    bot, task = await start_bot(fake)
    try:
        yield bot
    finally:
        await stop_bot(bot, task)
    assert not fake.server_errors


# ----------------------------------------------------------------------------- tests


async def test_fixture_world(fake_discord):  # noqa: F811
    fake = fake_discord
    assert fake.guild.name == "Test Guild" and fake.channel.name == "general"
    assert fake.alice.id in fake.guild.members and fake.admin.id in fake.guild.members
    admin_perms = fake.guild.permissions_for(fake.admin.id)
    assert admin_perms & Perm.MANAGE_GUILD and admin_perms & Perm.MANAGE_MESSAGES
    assert not fake.guild.permissions_for(fake.alice.id) & Perm.MANAGE_GUILD
    assert fake.api_base.startswith("http://127.0.0.1:") and fake.api_base.endswith("/api/v10")
    assert fake.gateway_url.startswith("ws://127.0.0.1:")
    assert abs(snowflake_time(fake.guild.id).timestamp() - time.time()) < 60

    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bot {fake.token}"}
        async with session.get(fake.api_base + "/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert int(resp.headers["X-RateLimit-Remaining"]) > 0
            assert (await resp.json())["id"] == str(fake.bot_user.id)
        async with session.get(fake.api_base + "/users/@me", headers={"Authorization": "Bot nope"}) as resp:
            assert resp.status == 401
        async with session.get(fake.api_base + f"/channels/{fake.channel.id}/messages/123", headers=auth) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10008
        async with session.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
            hello = await ws.receive_json()
            assert hello["op"] == 10
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}})
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4004


async def test_login_sync_and_guild_state(bot):
    fake = bot.fake
    cmds = {c["name"]: c for c in fake.commands(fake.guild.id)}
    assert {"draw", "reply", "secret", "sd"} <= set(cmds)
    types = {o["name"]: o["type"] for o in cmds["draw"]["options"]}
    assert types == {"prompt": 3, "steps": 4, "cfg": 10, "hires": 5, "init_image": 11, "model": 3}
    assert cmds["admin"]["default_member_permissions"] == str(Perm.MANAGE_GUILD)
    ids = {name: c["id"] for name, c in cmds.items()}
    synced = await bot.tree.sync(guild=bot.guild_obj)  # re-sync keeps ids
    assert {c.name: str(c.id) for c in synced} == ids
    assert bot.application_id == fake.bot_user.id

    guild = bot.get_guild(fake.guild.id)
    assert guild is not None and guild.name == "Test Guild"
    assert guild.get_channel(fake.channel.id).name == "general"
    assert guild.me is not None and guild.me.guild_permissions.mention_everyone
    assert ("GET", "/users/@me", 200) in [(m, p, s) for _, m, p, s in fake.requests]


async def test_slash_defer_edit_with_png_roundtrip(bot):
    fake = bot.fake
    source = png(8, 8, payload=b"source")
    att = fake.make_attachment(source, "init.png")
    ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a cat", "steps": 30, "cfg": 6.5,
                                                               "hires": True}, attachments={"init_image": att})
    latency = await ix.wait_ack(timeout=5)
    assert 0 <= latency < 1 and ix.deferred and not ix.ephemeral
    msg = await ix.wait_original(lambda m: m.attachments, timeout=5)
    assert msg.content == "done: a cat" and not msg.loading
    result = msg.attachments[0]
    assert result.filename == "result.png" and result.content_type == "image/png"
    assert result.data.startswith(b"\x89PNG") and result.data.endswith(b"IEND\xaeB`\x82")
    assert b"a cat|30|6.5|True|None" + source in result.data  # bytes went bot -> fake intact
    assert msg.custom_ids() == ["selftest:reroll"]
    assert msg.interaction_id == ix.id and msg.author_id == fake.bot_user.id
    assert len(msg.edits) == 1 and msg.edits[0][1]["content"] == "done: a cat"
    # the attachment is downloadable from the fake CDN, as the bot/users would
    async with aiohttp.ClientSession() as session, session.get(result.url) as resp:
        assert await resp.read() == result.data
    # bot's own messages are echoed over the gateway (create for the thinking message, update for the edit)
    await fake.wait_until(lambda: ("edit", msg.id) in bot.events, timeout=5)
    assert ("message", fake.bot_user.id, msg.id) in bot.events


async def test_reply_ephemeral_followups_subcommand(bot):
    fake = bot.fake
    ix = await fake.invoke(fake.alice, fake.channel, "reply", {"text": "hello"})
    await ix.wait_ack()
    assert ix.response_type == 4 and ix.original.content == "hello" and not ix.deferred

    ix = await fake.invoke(fake.alice, fake.channel, "pic")  # multipart callback + non-persistent view
    msg = await ix.wait_original()
    assert msg.attachments[0].data == png() and msg.custom_ids() == ["selftest:ok"]
    click = await fake.click(fake.admin, msg, "selftest:ok")
    answer = await click.wait_original()
    assert answer.content == "ok from admin" and answer.ephemeral
    assert answer.interaction_metadata["interacted_message_id"] == str(msg.id)

    ix = await fake.invoke(fake.alice, fake.channel, "secret")
    await ix.wait_ack()
    assert ix.ephemeral and ix.original.ephemeral and ix.original.content == "only you"
    await asyncio.sleep(0.05)
    assert not any(e[0] == "message" and e[2] == ix.original.id for e in bot.events)  # never echoed

    ix = await fake.invoke(fake.alice, fake.channel, "follow")
    await ix.wait_for(lambda i: len(i.followups) == 2, timeout=5)
    first, second = ix.followups
    assert first is ix.original and first.content == "first"  # filled the "thinking" message
    assert second is not ix.original and second.attachments[0].filename == "f.png"
    assert second.interaction_metadata["original_response_message_id"] == str(first.id)

    ix = await fake.invoke(fake.alice, fake.channel, "sd models", {"page": 3})
    msg = await ix.wait_original()
    assert msg.content == "page 3"

    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, fake.channel, "nope")
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, fake.channel, "draw", {"steps": 3})  # prompt missing
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "stepz": 3})
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "steps": 500})  # max_value 150
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "steps": "3"})
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, fake.channel, "admin")  # default_member_permissions hides it
    ix = await fake.invoke(fake.admin, fake.channel, "admin")
    msg = await ix.wait_original()
    assert int(msg.content.split("=")[1]) & Perm.MANAGE_GUILD


async def test_persistent_button_click(bot):
    fake = bot.fake
    channel = bot.get_channel(fake.channel.id)
    sent = await channel.send("result", view=ResultView())
    msg = fake.get_message(sent.id)
    assert msg.components[0]["components"][0]["custom_id"] == "selftest:reroll"
    ix = await fake.click(fake.alice, msg, "selftest:reroll")
    await ix.wait_ack()
    assert ix.response_type == 7 and msg.content == "re-rolled by alice" and ix.original is msg
    assert ix.payload["message"]["components"] and ix.payload["data"]["component_type"] == 2
    assert ("click", fake.alice.id, msg.id) in bot.events
    with pytest.raises(InvalidInvocation):
        await fake.click(fake.alice, msg, "no-such-button")


async def test_modal_open_and_submit(bot):
    fake = bot.fake
    ix = await fake.invoke(fake.alice, fake.channel, "form")
    await ix.wait_ack()
    assert ix.response_type == 9 and ix.modal["custom_id"] and ix.modal["title"] == "Edit prompt"
    modal_id = ix.modal["custom_id"]
    sub = await fake.submit_modal(fake.alice, fake.channel, modal_id, {"prompt_field": "a dog"})
    msg = await sub.wait_original()
    assert msg.content == "new prompt: a dog / -"
    rows = sub.payload["data"]["components"]
    assert rows[0]["type"] == 1 and rows[0]["components"][0] == {"type": 4, "custom_id": "prompt_field",
                                                                  "value": "a dog"}
    with pytest.raises(InvalidInvocation):
        await fake.submit_modal(fake.alice, fake.channel, modal_id, {"negative_field": "x"})  # required missing
    with pytest.raises(InvalidInvocation):
        await fake.submit_modal(fake.alice, fake.channel, modal_id, {"prompt_field": "x", "bogus": "y"})


async def test_reactions_both_ways(bot):
    fake = bot.fake
    sent = await bot.get_channel(fake.channel.id).send("react to me")
    await sent.add_reaction("🔁")
    await fake.wait_until(lambda: ("reaction", fake.bot_user.id, sent.id, "🔁") in bot.events, timeout=5)
    await fake.add_reaction(fake.alice, sent.id, "🔁")
    await fake.wait_until(lambda: ("reaction", fake.alice.id, sent.id, "🔁") in bot.events, timeout=5)
    msg = fake.get_message(sent.id)
    assert msg.reactions == {"🔁": [fake.bot_user.id, fake.alice.id]}
    await sent.remove_reaction("🔁", discord.Object(fake.alice.id))
    assert msg.reactions == {"🔁": [fake.bot_user.id]}
    fetched = await bot.get_channel(fake.channel.id).fetch_message(sent.id)
    assert fetched.reactions[0].count == 1 and fetched.reactions[0].me
    assert [u.id async for u in fetched.reactions[0].users()] == [fake.bot_user.id]


async def test_autocomplete(bot):
    fake = bot.fake
    choices = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "model": "v1"},
                                      focused="model", timeout=5)
    assert len(choices) == 25 and choices[0] == {"name": "v1-model-0", "value": "v1-model-0"}
    ix = list(fake.interactions.values())[-1]
    focused = [o for o in ix.payload["data"]["options"] if o.get("focused")]
    assert focused == [{"name": "model", "type": 3, "value": "v1", "focused": True}]
    assert ix.payload["locale"] == "en-US" and ix.payload["guild_locale"] == "en-US"
    await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "model": "v"}, focused="model",
                            locale="zh-TW", guild_locale="ko")
    assert (fake.last_interaction.locale, fake.last_interaction.guild_locale) == ("zh-TW", "ko")
    with pytest.raises(InvalidInvocation):
        await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x"}, focused="prompt")


async def test_ack_deadline_and_double_ack(bot):
    fake = bot.fake
    fake.ack_deadline = 0.15
    ix = await fake.invoke(fake.alice, fake.channel, "late", {"delay": 0.25})
    with pytest.raises(InteractionFailed):
        await ix.wait_ack(timeout=3)
    assert ix.rejected[0][3:] == (404, 10062) and not ix.callbacks
    await fake.wait_until(lambda: bot.errors, timeout=3)
    assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062

    fake.ack_deadline = 3.0
    ix = await fake.invoke(fake.alice, fake.channel, "reply", {"text": "once"})
    await ix.wait_ack()
    url = f"{fake.api_base}/interactions/{ix.id}/{ix.token}/callback?with_response=1"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"type": 4, "data": {"content": "twice"}}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060
        async with session.post(f"{fake.api_base}/interactions/1/nope/callback", json={"type": 5}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10062


async def test_token_lifetime_vs_channel_edit(bot):
    fake = bot.fake
    fake.token_lifetime = 0.3
    ix = await fake.invoke(fake.alice, fake.channel, "hold")
    msg = await ix.wait_original()
    interaction = bot.interactions["hold"]
    await interaction.edit_original_response(content="50%")  # still valid
    assert msg.content == "50%"
    await asyncio.sleep(0.35)
    with pytest.raises(discord.HTTPException) as exc_info:
        await interaction.edit_original_response(content="100%")
    assert exc_info.value.status == 401 and exc_info.value.code == 50027
    # the non-ephemeral response is a normal bot message: the channel route still edits it
    partial = bot.get_partial_messageable(fake.channel.id).get_partial_message(msg.id)
    await partial.edit(content="done via channel")
    assert msg.content == "done via channel" and [e[1].get("content") for e in msg.edits] == ["50%", "done via channel"]


async def test_upload_limits(bot):
    fake = bot.fake
    fake.attachment_size_limit = 1000
    ix = await fake.invoke(fake.alice, fake.channel, "big", {"size": 1001})
    await ix.wait_for(lambda i: i.followups, timeout=5)
    assert ix.payload["attachment_size_limit"] == 1000
    assert bot.interactions["big"].filesize_limit == 1000
    err = bot.errors[-1]
    assert isinstance(err, discord.HTTPException) and err.status == 413 and err.code == 40005
    assert ix.followups[0].content == "too big"

    fake.channel_attachment_size_limit = 500
    channel = bot.get_channel(fake.channel.id)
    with pytest.raises(discord.HTTPException) as exc_info:
        await channel.send(file=discord.File(io.BytesIO(b"\0" * 501), "x.bin"))
    assert exc_info.value.status == 413 and exc_info.value.code == 40005

    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps({"content": "eleven"}))
    for i in range(11):
        form.add_field(f"files[{i}]", b"x", filename=f"{i}.txt", content_type="application/octet-stream")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.api_base}/channels/{fake.channel.id}/messages", data=form,
                                headers={"Authorization": f"Bot {fake.token}"}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50035

    # edits keep only the attachments listed in the keep-list
    fake.channel_attachment_size_limit = 10 * 1024 * 1024
    sent = await channel.send(files=[discord.File(io.BytesIO(png()), "a.png"), discord.File(io.BytesIO(png()), "b.png")])
    await sent.edit(attachments=[sent.attachments[1], discord.File(io.BytesIO(b"c"), "c.txt")])
    assert [a.filename for a in fake.get_message(sent.id).attachments] == ["b.png", "c.txt"]
    with pytest.raises(discord.NotFound) as nf:
        await channel.fetch_message(12345)
    assert nf.value.code == 10008


async def test_allowed_mentions(bot):
    fake = bot.fake
    role = fake.add_role(fake.guild, "artists", mentionable=True)
    text = f"@everyone <@&{role.id}> <@{fake.alice.id}> hi"
    channel = bot.get_channel(fake.channel.id)

    sent = await channel.send(text)  # no allowed_mentions sent: regular messages parse everything
    msg = fake.get_message(sent.id)
    assert msg.allowed_mentions is None
    assert msg.pings_everyone and msg.pinged_role_ids == [role.id] and msg.pinged_user_ids == [fake.alice.id]

    sent = await channel.send(text, allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True))
    msg = fake.get_message(sent.id)
    assert msg.allowed_mentions == {"parse": ["users"], "replied_user": True}
    assert not msg.pings_everyone and msg.pinged_role_ids == [] and msg.pinged_user_ids == [fake.alice.id]

    sent = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
    msg = fake.get_message(sent.id)
    assert not (msg.pings_everyone or msg.pinged_role_ids or msg.pinged_user_ids)

    sent = await channel.send("@\u200beveryone escaped")
    assert not fake.get_message(sent.id).pings_everyone

    ix = await fake.invoke(fake.alice, fake.channel, "reply", {"text": text})  # interaction: users only
    msg = await ix.wait_original()
    assert msg.allowed_mentions is None
    assert not msg.pings_everyone and msg.pinged_role_ids == [] and msg.pinged_user_ids == [fake.alice.id]


async def test_client_restart_and_resume(redirect):
    fake = redirect
    bot1, task1 = await start_bot(fake)
    sent = await bot1.get_channel(fake.channel.id).send("result", view=ResultView())
    first_session = fake.sessions[-1]

    # op 7 RECONNECT: the client resumes on resume_gateway_url; events sent meanwhile are replayed
    await fake.gateway_reconnect()
    await fake.wait_until(lambda: fake.resume_count == 1 and first_session.connected, timeout=5)
    assert any(c.path == "/gateway/resume" for c in fake.connections)
    ix = await fake.invoke(fake.alice, fake.channel, "reply", {"text": "after resume"})
    await ix.wait_ack()

    # a dropped socket: events dispatched while disconnected are replayed on RESUME
    await fake.gateway_disconnect(4000)
    away = await fake.post_message(fake.alice, fake.channel, "while you were away")
    await fake.wait_until(lambda: fake.resume_count == 2 and first_session.connected, timeout=5)
    await fake.wait_until(lambda: ("message", fake.alice.id, away.id) in bot1.events, timeout=5)

    await stop_bot(bot1, task1)
    # discord.py's Client.close() ends up closing the socket with 4000 (poll_event's close wins over the
    # 1000 it asks for), so the old session stays resumable, just disconnected.
    await fake.wait_until(lambda: not first_session.connected, timeout=5)

    bot2, task2 = await start_bot(fake)  # a "restarted" bot process: new client, new IDENTIFY
    try:
        assert fake.identify_count == 2 and fake.sessions[-1] is not first_session
        ix = await fake.click(fake.alice, sent.id, "selftest:reroll")  # persistent view of the new client
        await ix.wait_ack()
        assert fake.get_message(sent.id).content == "re-rolled by alice"
        assert ("click", fake.alice.id, sent.id) in bot2.events
    finally:
        await stop_bot(bot2, task2)


async def test_rate_limit_injection_and_request_log(bot):
    fake = bot.fake
    fake.inject_error("POST", r"^/channels/\d+/messages$", 429, retry_after=0.05)
    t0 = time.monotonic()
    await bot.get_channel(fake.channel.id).send("eventually")
    posts = [r for r in fake.requests if r[1] == "POST" and r[2].endswith("/messages") and r[0] >= t0]
    assert [r[3] for r in posts] == [429, 200] and posts[1][0] - posts[0][0] >= 0.05
    assert fake.messages(fake.channel)[-1].content == "eventually"


class PickView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.select(custom_id="selftest:sampler", options=[discord.SelectOption(label=n) for n in ("Euler", "DPM++")])
    async def sampler(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        await interaction.response.defer()  # type 6: ack without a visible response
        await interaction.edit_original_response(content=f"sampler={select.values[0]}")


async def test_select_user_messages_and_content_intent(bot):
    fake = bot.fake
    sent = await bot.get_channel(fake.channel.id).send("pick", view=PickView())
    with pytest.raises(InvalidInvocation):
        await fake.click(fake.alice, sent.id, "selftest:sampler", values=["Heun"])
    ix = await fake.click(fake.alice, sent.id, "selftest:sampler", values=["DPM++"])
    await ix.wait_ack()
    assert ix.deferred and ix.payload["data"] == {"custom_id": "selftest:sampler", "component_type": 3,
                                                  "values": ["DPM++"]}
    msg = await ix.wait_original(lambda m: m.content == "sampler=DPM++")
    assert msg.id == sent.id

    # users' messages reach the bot; without the message_content intent their text is blanked unless it
    # mentions the bot
    await fake.post_message(fake.alice, fake.channel, "private words")
    mention = await fake.post_message(fake.alice, fake.channel, f"hi {fake.bot_user.mention}")
    await fake.wait_until(lambda: ("message", fake.alice.id, mention.id) in bot.events, timeout=5)
    received = [m for m in bot.cached_messages if m.author.id == fake.alice.id]
    assert [m.content for m in received] == ["", f"hi {fake.bot_user.mention}"]


# ----------------------------------------------------------------------------- localisation


def api(fake: FakeDiscord, path: str) -> str:
    return f"{fake.api_base}{path}"


def bot_auth(fake: FakeDiscord) -> dict:
    return {"Authorization": f"Bot {fake.token}"}


async def post_command(fake: FakeDiscord, body, *, guild_id: Optional[int] = None, method: str = "POST"):
    base = f"/applications/{fake.application_id}" + (f"/guilds/{guild_id}" if guild_id else "") + "/commands"
    async with aiohttp.ClientSession() as session:
        async with session.request(method, api(fake, base), json=body, headers=bot_auth(fake)) as resp:
            return resp.status, await resp.json()


def slash(name: str = "draw", **extra) -> dict:
    return {"name": name, "description": "Draw an image", "type": 1, **extra}


def option(name: str, **extra) -> dict:
    return {"name": name, "description": f"the {name}", "type": 3, **extra}


async def test_localized_command_registration(fake_discord):  # noqa: F811
    fake = fake_discord
    good = slash(
        name_localizations={"ko": "그리기", "hi": "चित्र", "th": "วาด", "ja": "描く", "es-419": "dibujar"},
        description_localizations={"ko": "이미지를 그립니다", "en-GB": "Draw a picture"},
        options=[option("prompt", required=True, name_localizations={"ko": "프롬프트", "fr": "invite"},
                        description_localizations={"ko": "그릴 것"}),
                 option("sampler", name_localizations={"fr": "échantillonneur"},
                        choices=[{"name": "Euler", "value": "euler", "name_localizations": {"ko": "오일러"}}])],
    )
    status, body = await post_command(fake, good)
    assert status == 201, body
    stored = fake.commands()[0]
    assert stored["name_localizations"]["hi"] == "चित्र"  # Devanagari vowel sign + virama (combining marks)
    assert stored["description_localizations"] == {"ko": "이미지를 그립니다", "en-GB": "Draw a picture"}
    assert stored["options"][0]["name_localizations"] == {"ko": "프롬프트", "fr": "invite"}
    assert stored["options"][1]["choices"][0]["name_localizations"] == {"ko": "오일러"}
    # context menus may use spaces and capitals, in every locale
    status, body = await post_command(fake, {"name": "Show parameters", "type": 3,
                                             "name_localizations": {"ko": "파라미터 보기", "de": "Parameter zeigen"}})
    assert status == 201, body

    async def rejected(cmd: dict) -> dict:
        status, body = await post_command(fake, cmd)
        assert status == 400 and body["code"] == 50035 and body["message"] == "Invalid Form Body", (cmd, body)
        return body["errors"]

    errors = await rejected(slash(name_localizations={"kr": "그리기"}))  # not a Discord locale
    assert errors["name_localizations"]["kr"]["_errors"][0]["code"] == "ENUM_TYPE_COERCE"
    errors = await rejected(slash(name_localizations={"de": "Zeichnen"}))  # has a lowercase form
    assert errors["name_localizations"]["de"]["_errors"][0]["code"] == "APPLICATION_COMMAND_INVALID_NAME"
    for bad in ("zeichne bild", "x" * 33, "", "draw!", "चित्र।"):  # space, too long, empty, punctuation, danda
        await rejected(slash(name_localizations={"de": bad}))
    await rejected({"name": "Show parameters", "type": 3, "name_localizations": {"ko": "x" * 33}})
    errors = await rejected(slash(description_localizations={"fr": ""}))
    assert errors["description_localizations"]["fr"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    await rejected(slash(description_localizations={"fr": "d" * 101}))
    errors = await rejected(slash(options=[option("prompt", name_localizations={"fr": "Invite"})]))
    assert "name_localizations" in errors["options"]["0"]
    await rejected(slash(options=[option("prompt", description_localizations={"ja": "x" * 101})]))
    errors = await rejected(slash(options=[option("s", choices=[
        {"name": "Euler", "value": "euler", "name_localizations": {"ko": "오" * 101}}])]))
    assert errors["options"]["0"]["choices"]["0"]["name_localizations"]["ko"]["_errors"]
    # option names are unique: defaults, each locale, and a localized name against the other defaults
    await rejected(slash(options=[option("prompt"), option("prompt")]))
    errors = await rejected(slash(options=[option("prompt", name_localizations={"fr": "texte"}),
                                           option("negative", name_localizations={"fr": "texte"})]))
    assert errors["options"]["0"]["name_localizations"]["fr"]["_errors"][0]["code"] == \
        "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS"
    await rejected(slash(options=[option("prompt", name_localizations={"fr": "texte"}), option("texte")]))
    status, _ = await post_command(fake, slash(name="ok", options=[option("prompt", name_localizations={"fr": "prompt"}),
                                                                   option("texte", name_localizations={"de": "text"})]))
    assert status == 201  # a localization equal to its own default is ignored; distinct names are fine
    # non-localized rules, and the 8000-character budget (the longest variant of each field counts)
    for bad in (slash(name="Draw"), slash(description=""), slash(options=[option("Prompt")]),
                slash(options=[option("s", choices=[{"name": "n" * 101, "value": "v"}])]),
                slash(options=[option("s", choices=[{"name": "n", "value": "v" * 101}])]),
                slash(options=[{**option("n"), "type": 4, "choices": [{"name": "one", "value": "1"}]}])):
        await rejected(bad)
    big = slash(name="big", options=[option(f"o{i}", description="d" * 100,
                                description_localizations={loc: "x" * 100 for loc in ("ko", "ja")},
                                choices=[{"name": f"c{j}", "value": f"v{j}",
                                          "name_localizations": {"ko": "n" * 100}} for j in range(2)])
                         for i in range(25)])
    assert (await post_command(fake, big))[0] == 201  # 25 * (2 + 100 + 2 * (100 + 2)) < 8000
    big["options"][0]["choices"] = [{"name": f"c{j}", "value": "v" * 100, "name_localizations": {"ko": "n" * 100}}
                                    for j in range(25)]
    big["name"] = "bigger"
    errors = await rejected(big)
    assert errors["_errors"][0]["code"] == "APPLICATION_COMMAND_TOO_LARGE"
    # a bulk overwrite names the failing command's index
    status, body = await post_command(fake, [slash(name="a"), slash(name="b", name_localizations={"xx": "b"})],
                                      method="PUT")
    assert status == 400 and body["code"] == 50035 and "xx" in body["errors"]["1"]["name_localizations"]


class KoreanTranslator(app_commands.Translator):
    words = {"draw": "그리기", "Draw an image": "이미지를 그립니다", "prompt": "프롬프트", "What to draw": "그릴 것",
             "style": "스타일", "Painting": "그림"}

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> Optional[str]:
        return self.words.get(string.message) if locale is discord.Locale.korean else None


async def test_translator_sync_and_invocation_locales(redirect):
    fake = redirect
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    seen: list[discord.Interaction] = []

    @bot.tree.command(name=app_commands.locale_str("draw"), description=app_commands.locale_str("Draw an image"))
    @app_commands.describe(prompt=app_commands.locale_str("What to draw"))
    @app_commands.choices(style=[app_commands.Choice(name=app_commands.locale_str("Painting"), value="paint")])
    async def draw(interaction: discord.Interaction, prompt: str, style: Optional[str] = None) -> None:
        seen.append(interaction)
        await interaction.response.send_message(f"{interaction.locale.value}/{interaction.guild_locale}")

    async def setup_hook() -> None:
        await bot.tree.set_translator(KoreanTranslator())
        bot.tree.copy_global_to(guild=discord.Object(fake.guild.id))
        await bot.tree.sync(guild=discord.Object(fake.guild.id))

    bot.setup_hook = setup_hook
    task = asyncio.create_task(bot.start(fake.token))
    try:
        (cmd,) = await fake.wait_for_commands({"draw"}, guild_id=fake.guild.id)
        assert cmd["name_localizations"] == {"ko": "그리기"}
        assert cmd["options"][0]["name_localizations"] == {"ko": "프롬프트"}
        assert cmd["options"][1]["choices"][0]["name_localizations"] == {"ko": "그림"}
        await fake.wait_until_ready()
        fake.update_guild(fake.guild, preferred_locale="ja")
        await fake.wait_until(lambda: bot.get_guild(fake.guild.id) is not None
                              and bot.get_guild(fake.guild.id).preferred_locale is discord.Locale.japanese)
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "고양이"}, locale="ko")
        msg = await ix.wait_original()
        assert msg.content == "ko/ja" and ix.payload["guild"]["locale"] == "ja" and ix.guild_locale == "ja"
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x"}, locale="pt-BR", guild_locale="de")
        assert (await ix.wait_original()).content == "pt-BR/de"
        assert seen[-1].locale is discord.Locale.brazil_portuguese
        # a server created while the bot is connected reports its preferred locale in GUILD_CREATE and over REST
        korean = fake.add_guild("Korean", preferred_locale="ko")
        await fake.wait_until(lambda: bot.get_guild(korean.id) is not None)
        assert bot.get_guild(korean.id).preferred_locale is discord.Locale.korean
        assert (await bot.fetch_guild(korean.id)).preferred_locale is discord.Locale.korean
        with pytest.raises(InvalidInvocation):
            await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x"}, locale="kr")
        with pytest.raises(InvalidInvocation):
            fake.add_guild("Bad", preferred_locale="english")
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)
    assert not fake.server_errors


# ----------------------------------------------------------------------------- user installs and contexts


def describe(interaction: discord.Interaction) -> str:
    owners = {str(k): str(v) for k, v in interaction._integration_owners.items()}  # what Discord sent
    ctx = interaction.context
    where = "guild" if ctx.guild else ("dm" if ctx.dm_channel else "private")
    return f"{where} {json.dumps(owners, sort_keys=True)} by={interaction.user.id}"


class AgainView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", custom_id="install:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        interaction.client.seen.append(interaction)
        await interaction.response.send_message(f"again {describe(interaction)}")


class AskModal(discord.ui.Modal, title="Ask"):
    question = discord.ui.TextInput(label="Question", custom_id="install:question")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        interaction.client.seen.append(interaction)
        await interaction.response.send_message(f"asked {self.question.value} {describe(interaction)}")


class InstallBot(commands.Bot):
    """Global commands for user installs (and one guild-only, one guild-registered command)."""

    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default())
        self.fake = fake
        self.seen: list[discord.Interaction] = []
        self.errors: list[BaseException] = []
        everywhere = dict(guilds=True, dms=True, private_channels=True)
        tree = self.tree

        @tree.command(name="where", description="Where am I?")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def where(interaction: discord.Interaction) -> None:
            self.seen.append(interaction)
            await interaction.response.send_message(describe(interaction), view=AgainView())

        @tree.command(name="spam", description="Defer, then n follow-ups")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def spam(interaction: discord.Interaction, n: int) -> None:
            await interaction.response.defer()
            for i in range(n):
                try:
                    await interaction.followup.send(f"follow-up {i}")
                except discord.HTTPException as exc:
                    self.errors.append(exc)
            await interaction.edit_original_response(content="edited after the follow-ups")

        @tree.command(name="later", description="A reply, then a follow-up with a button")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            await interaction.followup.send("second", view=AgainView())

        @tree.command(name="post", description="Tries the channel route first")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def post(interaction: discord.Interaction) -> None:
            try:
                await interaction.channel.send("via channel")
                how = "channel"
            except discord.Forbidden as exc:
                self.errors.append(exc)
                how = f"forbidden {exc.code}"
            await interaction.response.send_message(how)

        @tree.command(name="ask", description="Opens a modal")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def ask(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(AskModal())

        @tree.command(name="mine", description="User installs only")
        @app_commands.allowed_installs(guilds=False, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def mine(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(describe(interaction))

        @tree.command(name="serveronly", description="Guild installs only")
        @app_commands.allowed_installs(guilds=True, users=False)
        async def serveronly(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(describe(interaction))

        @tree.command(name="dmonly", description="Only in the bot's DM")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(guilds=False, dms=True, private_channels=False)
        async def dmonly(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(describe(interaction))

        @tree.context_menu(name="Inspect")
        @app_commands.allowed_installs(guilds=True, users=True)
        @app_commands.allowed_contexts(**everywhere)
        async def inspect(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"inspected {message.id} {describe(interaction)}", ephemeral=True)

        @app_commands.command(name="local", description="Registered in the test guild only")
        async def local(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(describe(interaction))

        tree.add_command(local, guild=discord.Object(fake.guild.id))

    async def setup_hook(self) -> None:
        self.add_view(AgainView())
        await self.tree.sync()
        await self.tree.sync(guild=discord.Object(self.fake.guild.id))


@pytest_asyncio.fixture
async def install_bot(redirect):
    fake = redirect
    bot = InstallBot(fake)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_for_commands({"where", "spam", "post", "mine", "Inspect"})
        await fake.wait_for_commands({"local"}, guild_id=fake.guild.id)
        await fake.wait_until_ready()
        yield bot
    finally:
        await bot.close()
        await asyncio.wait_for(task, 5)
    assert not fake.server_errors


def foreign_world(fake: FakeDiscord, **guild_kwargs):
    """A server the bot is not in, with alice and bob as members."""
    bob = fake.add_user("bob")
    guild = fake.add_guild("Elsewhere", bot_member=False, **guild_kwargs)
    channel = fake.add_channel(guild, "chat")
    fake.add_member(guild, fake.alice)
    fake.add_member(guild, bob)
    return guild, channel, bob


async def bot_request(fake: FakeDiscord, method: str, path: str, **kwargs) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, api(fake, path), headers=bot_auth(fake), **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else {}
            return resp.status, body


async def test_user_install_in_a_server_without_the_bot(install_bot):
    bot, fake = install_bot, install_bot.fake
    guild, channel, bob = foreign_world(fake, preferred_locale="de")
    await asyncio.sleep(0.05)
    assert guild not in fake.guilds_of_bot() and bot.get_guild(guild.id) is None
    events = [(e, d) for _, e, d in fake.sessions[-1].events]
    assert not any(d.get("guild_id") == str(guild.id) or d.get("id") == str(guild.id) for e, d in events)

    ix = await fake.invoke(fake.alice, channel, "where", locale="fr")
    msg = await ix.wait_original()
    p = ix.payload
    assert p["context"] == 0 and p["authorizing_integration_owners"] == {"1": str(fake.alice.id)}
    assert ix.install == "user" and ix.context == 0
    assert p["guild_id"] == str(guild.id) and p["guild"] == {"id": str(guild.id), "locale": "de", "features": []}
    assert p["guild_locale"] == "de" and p["locale"] == "fr" and p["member"]["user"]["id"] == str(fake.alice.id)
    assert p["channel"]["id"] == str(channel.id) and p["channel"]["name"] == "chat"
    assert int(p["app_permissions"]) == guild.default_role.permissions | Perm.ATTACH_FILES | Perm.EMBED_LINKS
    assert msg.content == f'guild {{"1": "{fake.alice.id}"}} by={fake.alice.id}' and not msg.ephemeral
    interaction = bot.seen[-1]
    assert interaction.is_user_integration() and not interaction.is_guild_integration()
    assert interaction.guild_id == guild.id and interaction.guild_locale is discord.Locale.german
    # discord.py builds interaction.guild from the partial guild, which has no preferred_locale
    assert interaction.guild.preferred_locale is discord.Locale.american_english
    assert interaction.app_permissions.attach_files and interaction.app_permissions.embed_links
    assert not any(d.get("id") == str(msg.id) for _, e, d in fake.sessions[-1].events)  # no echo from there

    # the guild install does not reach this server; guild-install-only commands are not shown
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, channel, "where", install="guild")
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, channel, "serveronly")
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, channel, "local")  # guild-registered elsewhere
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.owner, channel, "where")  # not a member there

    # the bot has no access to the channel; the interaction routes work
    ix = await fake.invoke(fake.alice, channel, "post")
    assert (await ix.wait_original()).content == "forbidden 50001"
    for method, path, body in [
        ("GET", f"/channels/{channel.id}", None),
        ("GET", f"/channels/{channel.id}/messages", None),
        ("POST", f"/channels/{channel.id}/messages", {"content": "hi"}),
        ("POST", f"/channels/{channel.id}/typing", None),
        ("GET", f"/channels/{channel.id}/messages/{msg.id}", None),
        ("PATCH", f"/channels/{channel.id}/messages/{msg.id}", {"content": "edited"}),
        ("PUT", f"/channels/{channel.id}/messages/{msg.id}/reactions/%F0%9F%94%81/@me", None),
        ("GET", f"/guilds/{guild.id}", None),
    ]:
        status, answer = await bot_request(fake, method, path, json=body)
        assert (status, answer.get("code")) == (403, 50001), (method, path)
    first = fake.interactions[msg.interaction_id]
    await bot.seen[0].edit_original_response(content="edited through the token")
    assert msg.content == "edited through the token" and first.original is msg

    # bob clicks the button on alice's message: same owners (alice authorised the app), bob is the user
    click = await fake.click(bob, msg, "install:again")
    answer = await click.wait_original()
    assert click.payload["authorizing_integration_owners"] == {"1": str(fake.alice.id)}
    assert click.payload["context"] == 0 and click.payload["member"]["user"]["id"] == str(bob.id)
    assert answer.content == f'again guild {{"1": "{fake.alice.id}"}} by={bob.id}'
    assert not bot.seen[-1].is_user_integration()  # discord.py compares the owner with the *clicking* user

    # ... also on a follow-up (a webhook message)
    ix = await fake.invoke(fake.alice, channel, "later")
    second = await ix.wait_followup(lambda m: m.content == "second")
    assert second.source == "webhook" and second is not ix.original
    click = await fake.click(bob, second, "install:again", locale="es-ES")
    assert (await click.wait_original()).content == f'again guild {{"1": "{fake.alice.id}"}} by={bob.id}'
    assert click.payload["locale"] == "es-ES" and click.payload["guild_locale"] == "de"

    # a modal opened there keeps the context too
    ix = await fake.invoke(fake.alice, channel, "ask")
    await ix.wait_ack()
    sub = await fake.submit_modal(fake.alice, channel, ix.modal["custom_id"], {"install:question": "why"})
    answer = await sub.wait_original()
    assert answer.content == f'asked why guild {{"1": "{fake.alice.id}"}} by={fake.alice.id}'
    assert sub.payload["authorizing_integration_owners"] == {"1": str(fake.alice.id)} and sub.payload["context"] == 0

    # message commands on other users' messages (which the bot never received)
    hello = await fake.post_message(bob, channel, "hello")
    ix = await fake.invoke_message_command(fake.alice, "Inspect", hello)
    assert (await ix.wait_original()).content.startswith(f"inspected {hello.id} guild")
    assert not any(d.get("id") == str(hello.id) for _, e, d in fake.sessions[-1].events)

    # when the bot joins later, the guild install reaches the server
    fake.add_bot_to_guild(guild)
    await fake.wait_until(lambda: bot.get_guild(guild.id) is not None)
    assert bot.get_guild(guild.id).preferred_locale is discord.Locale.german
    ix = await fake.invoke(fake.alice, channel, "post")
    assert (await ix.wait_original()).content == "channel"
    assert ix.payload["authorizing_integration_owners"] == {"0": str(guild.id)}


async def test_followup_cap_for_user_installs(install_bot):
    bot, fake = install_bot, install_bot.fake
    guild, channel, _ = foreign_world(fake)
    ix = await fake.invoke(fake.alice, channel, "spam", {"n": 7})
    await ix.wait_original(lambda m: m.content == "edited after the follow-ups", timeout=5)
    assert ix.followup_limited and ix.followup_creates == 5
    assert ix.followups[0] is ix.original  # the first follow-up filled the deferred message (and counts)
    assert [m.content for m in ix.followups[1:]] == [f"follow-up {i}" for i in range(1, 5)]
    assert [(e.status, e.code) for e in bot.errors] == [(400, 40094), (400, 40094)]
    posts = [r.status for r in fake.request_log if r.method == "POST" and r.path.startswith("/webhooks/")]
    assert posts == [200] * 5 + [400, 400]

    bot.errors.clear()  # where the guild install authorised it, there is no cap
    ix = await fake.invoke(fake.alice, fake.channel, "spam", {"n": 7})
    await ix.wait_original(lambda m: m.content == "edited after the follow-ups", timeout=5)
    assert not ix.followup_limited and ix.followup_creates == 7 and not bot.errors
    # Discord's rule is "only USER_INSTALL in authorizing_integration_owners": a user install in a server the
    # bot is in is capped too
    ix = await fake.invoke(fake.alice, fake.channel, "spam", {"n": 6}, install="user")
    await ix.wait_original(lambda m: m.content == "edited after the follow-ups", timeout=5)
    assert ix.followup_limited and [(e.status, e.code) for e in bot.errors] == [(400, 40094)]


async def test_use_external_apps_forces_ephemeral(install_bot):
    fake = install_bot.fake
    guild, channel, bob = foreign_world(fake, everyone_permissions=Perm.EVERYONE_DEFAULT & ~Perm.USE_EXTERNAL_APPS)
    ix = await fake.invoke(fake.alice, channel, "where")
    msg = await ix.wait_original()
    assert ix.forced_ephemeral and msg.ephemeral and ix.ephemeral
    ix = await fake.invoke(fake.alice, channel, "spam", {"n": 2})
    await ix.wait_for(lambda i: len(i.followups) == 2, timeout=5)
    assert all(m.ephemeral for m in ix.messages)
    fake.add_member(guild, bob, permissions=Perm.USE_EXTERNAL_APPS)  # a role that allows external apps
    ix = await fake.invoke(bob, channel, "where")
    assert not (await ix.wait_original()).ephemeral and not ix.forced_ephemeral


async def test_group_dm_bot_dm_and_install_choice(install_bot):
    bot, fake = install_bot, install_bot.fake
    bob = fake.add_user("bob")
    group = fake.group_dm([fake.alice, bob], name="friends")
    ix = await fake.invoke(fake.alice, group, "where")
    msg = await ix.wait_original()
    p = ix.payload
    assert p["context"] == 2 and p["authorizing_integration_owners"] == {"1": str(fake.alice.id)}
    assert "guild_id" not in p and "guild_locale" not in p and "member" not in p
    assert p["user"]["id"] == str(fake.alice.id) and p["channel"]["type"] == 3
    assert {u["id"] for u in p["channel"]["recipients"]} == {str(fake.alice.id), str(bob.id)}
    assert int(p["app_permissions"]) == Perm.ATTACH_FILES | Perm.EMBED_LINKS | Perm.MENTION_EVERYONE
    assert isinstance(bot.seen[-1].channel, discord.GroupChannel) and bot.seen[-1].context.private_channel
    assert msg.content == f'private {{"1": "{fake.alice.id}"}} by={fake.alice.id}'
    click = await fake.click(bob, msg, "install:again")
    assert (await click.wait_original()).content == f'again private {{"1": "{fake.alice.id}"}} by={bob.id}'
    ix = await fake.invoke(fake.alice, group, "post")
    assert (await ix.wait_original()).content == "forbidden 50001"
    said = await fake.post_message(bob, group, "psst")
    assert not any(d.get("id") == str(said.id) for _, e, d in fake.sessions[-1].events)
    for bad in (dict(name="where", install="guild"), dict(name="dmonly"), dict(name="serveronly"),
                dict(name="where", guild_locale="ko")):
        name = bad.pop("name")
        with pytest.raises(InvalidInvocation):
            await fake.invoke(fake.alice, group, name, **bad)
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.owner, group, "where")  # not a recipient

    # the bot's DM: the guild install by default (owner "0"), or the user's
    dm = fake.dm_channel(fake.alice)
    ix = await fake.invoke(fake.alice, dm, "dmonly")
    await ix.wait_original()
    assert ix.payload["context"] == 1 and ix.payload["authorizing_integration_owners"] == {"0": "0"}
    assert int(ix.payload["app_permissions"]) == Perm.APP_PRIVATE_CHANNEL | Perm.USE_EXTERNAL_EMOJIS
    ix = await fake.invoke(fake.alice, dm, "where", install="user")
    assert (await ix.wait_original()).content == f'dm {{"1": "{fake.alice.id}"}} by={fake.alice.id}'
    ix = await fake.invoke(fake.alice, dm, "mine")  # a user-install-only command defaults to the user install
    assert ix.install == "user"
    with pytest.raises(InvalidInvocation):
        await fake.invoke(fake.alice, dm, "where", install="both", guild_locale="ko")

    # a server the bot is in: guild by default, "user" or "both" on request; guild commands only for guild
    ix = await fake.invoke(fake.alice, fake.channel, "where")
    assert ix.payload["authorizing_integration_owners"] == {"0": str(fake.guild.id)}
    ix = await fake.invoke(fake.alice, fake.channel, "post", install="user")
    assert (await ix.wait_original()).content == "channel"  # the bot is there and can still post
    assert ix.payload["authorizing_integration_owners"] == {"1": str(fake.alice.id)}
    ix = await fake.invoke(fake.alice, fake.channel, "where", install="both")
    assert ix.payload["authorizing_integration_owners"] == {"0": str(fake.guild.id), "1": str(fake.alice.id)}
    await ix.wait_original()
    assert bot.seen[-1].is_user_integration() and bot.seen[-1].is_guild_integration()
    ix = await fake.invoke(fake.alice, fake.channel, "local")
    assert ix.payload["data"]["guild_id"] == str(fake.guild.id) and ix.install == "guild"
    for name, install in (("local", "user"), ("serveronly", "user"), ("mine", "guild"), ("where", "nope")):
        with pytest.raises(InvalidInvocation):
            await fake.invoke(fake.alice, fake.channel, name, install=install)
    ix = await fake.invoke_message_command(fake.alice, "Inspect", msg, install="user")
    assert ix.payload["context"] == 2
