"""Shared fixtures. Fixture modules are imported here so every test module can use them."""

from tests.fakediscord.pytest_plugin import fake_discord  # noqa: F401
from tests.support.demo_plugin import (  # noqa: F401
    demo_form_server,
    demo_form_server_factory,
    demo_webui,
    demo_webui_factory,
)
from tests.support.postgres import pg, pg_factory  # noqa: F401
