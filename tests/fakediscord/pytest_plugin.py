"""Pytest fixtures for the fake Discord.

Use from ``tests/conftest.py``::

    from tests.fakediscord.pytest_plugin import fake_discord  # noqa: F401

``fake_discord`` is a started :class:`FakeDiscord` with one guild "Test Guild" (owned by ``fake.owner``),
one text channel "general", and the users ``alice`` (plain member) and ``admin`` (Manage Guild + Manage
Messages), exposed as ``fake.guild``, ``fake.channel``, ``fake.alice``, ``fake.admin``, ``fake.owner``.
It is stopped at teardown. Stop your bot *before* the fixture tears down (request ``fake_discord`` first).
"""

from __future__ import annotations

from typing import AsyncIterator

import pytest_asyncio

from .models import Perm
from .server import FakeDiscord


async def make_populated_fake(**kwargs) -> FakeDiscord:
    """A started FakeDiscord populated like the ``fake_discord`` fixture (for custom fixtures)."""
    fake = FakeDiscord(**kwargs)
    fake.owner = fake.add_user("owner")
    fake.guild = fake.add_guild("Test Guild", owner=fake.owner)
    fake.channel = fake.add_channel(fake.guild, "general")
    fake.alice = fake.add_user("alice")
    fake.admin = fake.add_user("admin")
    fake.add_member(fake.guild, fake.alice)
    fake.add_member(fake.guild, fake.admin, permissions=Perm.MANAGE_GUILD | Perm.MANAGE_MESSAGES)
    await fake.start()
    return fake


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = await make_populated_fake()
    try:
        yield fake
    finally:
        await fake.stop()
