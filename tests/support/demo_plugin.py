"""pytest fixtures serving demo WebUIs on loopback (load with `pytest_plugins = ["tests.demo_plugin"]`).

* `demo_webui`: a started `DemoWebUI` (A1111 v1.10.1 defaults, step_delay 0) on 127.0.0.1, stopped
  at teardown. Its base URL is `demo_webui.url`.
* `demo_webui_factory`: an async callable starting more, with a custom config or overrides:
  `await demo_webui_factory(step_delay=0.05, auth=("u", "p"))`, `await demo_webui_factory(DemoConfig(...))`.
  Everything it started is stopped at teardown.
* `demo_form_server`: a started `DemoFormServer` (the form-encoded API server kind, step_delay 0) on
  127.0.0.1; `demo_form_server.backend_url` is its `form+http://…` WEBUI_URL entry.
* `demo_form_server_factory`: the same with a config or overrides, like `demo_webui_factory`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.demo import DemoConfig, DemoFormServer, DemoWebUI

DemoFactory = Callable[..., Awaitable[DemoWebUI]]
WEBUI_DEFAULTS: dict[str, Any] = {"step_delay": 0.0}  # A1111 v1.10.1 defaults, no delay per step
FORM_DEFAULTS: dict[str, Any] = {"step_delay": 0.0, "kind": "form"}


@contextlib.asynccontextmanager
async def _started(cls: Any, defaults: dict[str, Any]) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A factory starting demo servers of `cls` on loopback (a config, or overrides of `defaults`); every one
    it started is stopped at the end, newest first."""
    started: list[Any] = []

    async def factory(config: DemoConfig | None = None, /, **overrides: Any) -> Any:
        if config is None:
            config = DemoConfig(**{**defaults, **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        server = cls(config)
        await server.start("127.0.0.1", 0)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            await server.stop()


@pytest.fixture
async def demo_webui() -> AsyncIterator[DemoWebUI]:
    async with _started(DemoWebUI, WEBUI_DEFAULTS) as factory:
        yield await factory()


@pytest.fixture
async def demo_webui_factory() -> AsyncIterator[DemoFactory]:
    async with _started(DemoWebUI, WEBUI_DEFAULTS) as factory:
        yield factory


FormFactory = Callable[..., Awaitable[DemoFormServer]]


@pytest.fixture
async def demo_form_server() -> AsyncIterator[DemoFormServer]:
    async with _started(DemoFormServer, FORM_DEFAULTS) as factory:
        yield await factory()


@pytest.fixture
async def demo_form_server_factory() -> AsyncIterator[FormFactory]:
    async with _started(DemoFormServer, FORM_DEFAULTS) as factory:
        yield factory
