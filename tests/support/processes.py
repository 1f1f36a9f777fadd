"""`sdcord` as a real process, the way an operator runs it: configured from the environment only."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BotProcess", "clean_env", "free_port", "sdcord"]

ROOT = Path(__file__).resolve().parents[2]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "WEBUI_", "SDCORD_", "DEFAULT_",
                                                                      "MAX_", "LOG_LEVEL", "SHUTDOWN_", "RATE_"))}
    env.update({"SDCORD_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


async def sdcord(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BotProcess:
    """One run of `sdcord` against the fake Discord; `output` collects everything it printed."""

    fake: Any
    env: dict[str, str]
    cwd: Path
    proc: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    args: tuple[str, ...] = ()  # ("worker",): `sdcord worker`
    _reader: asyncio.Task[None] | None = None

    @classmethod
    def for_fake(cls, fake: Any, tmp_path: Path, webui_url: str, **settings: str) -> BotProcess:
        env = clean_env(tmp_path, **{"DISCORD_TOKEN": fake.token, "DISCORD_API_BASE": fake.api_base,
                                     "DISCORD_GATEWAY_URL": fake.gateway_url, "DISCORD_GUILD_IDS": str(fake.guild.id),
                                     "WEBUI_URL": webui_url, **settings})
        return cls(fake, env, tmp_path)

    async def start(self, timeout: float = 30.0, *, ready_line: str | None = None) -> None:
        """Start it and wait until its new gateway session is ready (its set-up, restoring jobs, is done);
        with `ready_line`, until it printed that line instead (a worker has no gateway)."""
        before = self.fake.identify_count
        self.output = []
        self.proc = await sdcord(*self.args, env=self.env, cwd=self.cwd)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        if ready_line is not None:
            await self.fake.wait_until(lambda: ready_line in self.text or self.proc.returncode is not None, timeout)
            assert self.proc.returncode is None, self.text
            return
        await self.fake.wait_until(lambda: self.fake.identify_count > before or self.proc.returncode is not None,
                                   timeout)
        assert self.proc.returncode is None, self.text
        await self.fake.wait_until_ready(timeout)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.output)

    async def kill(self) -> None:
        """SIGKILL: what a crash, an OOM killer or a power cut leaves behind."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self._finish(10)

    async def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, as `docker stop` or systemd sends it; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self._finish(timeout)

    async def _finish(self, timeout: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self._finish(10)
