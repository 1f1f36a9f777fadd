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

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.demo import DemoConfig, DemoFormServer, DemoWebUI

DemoFactory = Callable[..., Awaitable[DemoWebUI]]


@pytest.fixture
async def demo_webui() -> AsyncIterator[DemoWebUI]:
    demo = DemoWebUI(DemoConfig(step_delay=0.0))
    await demo.start("127.0.0.1", 0)
    try:
        yield demo
    finally:
        await demo.stop()


@pytest.fixture
async def demo_webui_factory() -> AsyncIterator[DemoFactory]:
    started: list[DemoWebUI] = []

    async def factory(config: DemoConfig | None = None, /, **overrides: Any) -> DemoWebUI:
        if config is None:
            config = DemoConfig(**{"step_delay": 0.0, **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        demo = DemoWebUI(config)
        await demo.start("127.0.0.1", 0)
        started.append(demo)
        return demo

    try:
        yield factory
    finally:
        for demo in reversed(started):
            await demo.stop()


FormFactory = Callable[..., Awaitable[DemoFormServer]]


@pytest.fixture
async def demo_form_server() -> AsyncIterator[DemoFormServer]:
    server = DemoFormServer(DemoConfig(step_delay=0.0, kind="form"))
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def demo_form_server_factory() -> AsyncIterator[FormFactory]:
    started: list[DemoFormServer] = []

    async def factory(config: DemoConfig | None = None, /, **overrides: Any) -> DemoFormServer:
        if config is None:
            config = DemoConfig(**{"step_delay": 0.0, "kind": "form", **overrides})
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        server = DemoFormServer(config)
        await server.start("127.0.0.1", 0)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            await server.stop()
