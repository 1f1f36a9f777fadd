"""Shared fixtures. Fixture modules are imported here so every test module can use them."""

from tests.fakediscord.pytest_plugin import fake_discord  # noqa: F401
from tests.support.demo_plugin import demo_webui, demo_webui_factory  # noqa: F401
