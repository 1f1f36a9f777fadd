"""What every demo server shares: serving its aiohttp app on loopback, stopping, `async with`."""

from __future__ import annotations

import logging
from typing import Self

from aiohttp import web

log = logging.getLogger(__name__)


class DemoSite:
    """A demo server's lifecycle. Subclasses build `self.app` and name themselves in `label`."""

    app: web.Application
    label = "demo server"

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL, e.g. http://127.0.0.1:54321."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        log.info("%s listening on %s", self.label, self.url)
        return self.url

    async def before_stop(self) -> None:
        """Hook: end what is running before the site closes."""

    async def stop(self) -> None:
        await self.before_stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
