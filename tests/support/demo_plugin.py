"""pytest fixtures serving demo WebUIs on loopback (load with `pytest_plugins = ["tests.demo_plugin"]`).

* `demo_webui`: a started `DemoWebUI` (A1111 v1.10.1 defaults, step_delay 0) on 127.0.0.1, stopped
  at teardown. Its base URL is `demo_webui.url`.
* `demo_webui_factory`: an async callable starting more, with a custom config or overrides:
  `await demo_webui_factory(step_delay=0.05, auth=("u", "p"))`, `await demo_webui_factory(DemoConfig(...))`.
  Everything it started is stopped at teardown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.demo import DemoConfig, DemoWebUI

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
