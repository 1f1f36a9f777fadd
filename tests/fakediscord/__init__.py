"""sdcord's own fake Discord (REST v10 + JSON gateway + CDN on 127.0.0.1) for end-to-end tests.

It drives the real, unmodified discord.py client. See README.md in this directory for the API.
"""

from .models import (
    LOCALES,
    APIError,
    FakeAttachment,
    FakeChannel,
    FakeDiscordError,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Intents,
    InteractionFailed,
    InvalidInvocation,
    Perm,
)
from .server import FakeDiscord, RequestRecord

__all__ = [
    "LOCALES",
    "APIError",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeDiscordError",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Intents",
    "InteractionFailed",
    "InvalidInvocation",
    "Perm",
    "RequestRecord",
]
