"""Errors in buttons and modals go through the same central reporting as commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.discord_app.components import SDModal, SDView
from tests.support.harness import bot_settings, running_bot

pytestmark = pytest.mark.timeout(60)


class BrokenModal(SDModal, title="Broken"):
    text: discord.ui.TextInput[Any] = discord.ui.TextInput(label="Say something", custom_id="broken:text")

    def __init__(self) -> None:
        super().__init__(custom_id="broken:modal")

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        raise RuntimeError("modal exploded")


class BrokenView(SDView):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Boom", custom_id="broken:boom")
    async def boom(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        raise RuntimeError("button exploded")

    @discord.ui.button(label="Form", custom_id="broken:form")
    async def form(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        await interaction.response.send_modal(BrokenModal())


def error_id_of(text: str) -> str:
    return text.split("error id `")[1].split("`")[0]


async def test_button_and_modal_errors_reach_the_user_and_the_log(
    fake_discord: Any, demo_webui: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = fake_discord
    async with running_bot(fake, bot_settings(fake, demo_webui.url, tmp_path)) as bot:
        channel = bot.get_channel(fake.channel.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("controls", view=BrokenView())
        message = await fake.wait_for_message(lambda m: m.id == sent.id)

        with caplog.at_level(logging.ERROR):
            ix = await fake.click(fake.alice, message, "broken:boom")
            await ix.wait_ack()
            assert ix.ephemeral and "error id" in ix.original.content
            assert "exploded" not in ix.original.content
            button_id = error_id_of(ix.original.content)

            ix = await fake.click(fake.alice, message, "broken:form")
            await ix.wait_ack()
            assert ix.modal is not None
            ix = await fake.submit_modal(fake.alice, fake.channel, "broken:modal", {"broken:text": "hi"})
            await ix.wait_ack()
            assert ix.ephemeral and "error id" in ix.original.content
            modal_id = error_id_of(ix.original.content)

        logged = {r.getMessage(): r for r in caplog.records}
        for error_id, what in ((button_id, "button exploded"), (modal_id, "modal exploded")):
            record = next(r for m, r in logged.items() if error_id in m)
            assert record.exc_info and what in str(record.exc_info[1])
