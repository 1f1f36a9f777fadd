"""The fair scheduler and backend pool under load, side by side with baselines, in one run.

1. Throughput: N tiny txt2img jobs (64x64, 20 steps, demo step delay 10 ms, so ~0.2 s of "GPU" time
   each) from 8 users, submitted at once, through the real DrawEngine + Scheduler on 1, 2 and 4 demo
   WebUIs (rate limits and per-user caps set out of the way). Jobs/s and the scaling factor against
   1 backend (target >= 0.9x linear), next to a minimal FIFO pool (an asyncio.Queue, one worker per
   backend calling the same DrawEngine.generate), which shows what the pool alone could do in this
   process. Every demo must have had at most one generation in flight (max_in_flight == 1).
2. Fairness: one backend; a heavy user has 21 jobs in (1 running, 20 waiting); halfway into the running
   job a light user submits 1 job. Its wait (submit -> start, submit -> done) under sdcord's fair order,
   and under the FIFO runner serving the same jobs, at the same moments, on the same kind of demo.
3. Acknowledgement latency: 200 /draw commands from 200 distinct members, dispatched at once by the
   project's fake Discord to the real bot (discord.py, cogs, engine) in this process; `ix.wait_ack()`
   (dispatch -> the bot's first callback) for each; p50/p99/max. Target: p99 well under 1 s (Discord
   drops an interaction not acknowledged within 3 s). Every job is then waited for (or failed cleanly
   by the bot's shutdown). The fake listens with a 1024-long queue like Discord's edge; SYNs dropped by a
   full listen queue (each costs a 1 s retry) are counted from /proc/net/netstat and printed.

Everything (demos, fake Discord, bot) runs in this one process on one event loop, as sdcord would with
the GIL switch interval it sets (1 ms). Run: python bench/scheduler.py [--jobs-per-backend N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings  # noqa: E402
from bot.demo import DemoConfig, DemoWebUI  # noqa: E402
from bot.core.engine import DrawEngine, favour_event_loop_latency  # noqa: E402
from bot.core.payload import BuiltPayload, DrawOptions  # noqa: E402
from bot.core.scheduler import JobState  # noqa: E402
from bot.webui.client import WebUIClient  # noqa: E402
from tests.fakediscord import FakeDiscord  # noqa: E402
from tests.harness import bot_settings, running_bot  # noqa: E402

STEP_DELAY = 0.01  # seconds per sampling step in the demo: the fixed "GPU" time of a job
STEPS = 20
SIDE = 64
USERS = 8
BACKENDS = (1, 2, 4)
HEAVY_JOBS = 21  # 1 running + 20 waiting when the light user arrives
ACK_COMMANDS = 200
LIMIT = 10 * 1024 * 1024
OPEN = {"rate_limit": (1_000_000, 1.0), "max_queued_per_user": 1_000_000}  # limits out of the way

_JOB = f"{SIDE}x{SIDE}, {STEPS} steps x {STEP_DELAY * 1000:g} ms: ~{STEPS * STEP_DELAY * 1000:.0f} ms"
HEADER = f"""\
sdcord scheduler bench: throughput over a backend pool, fairness, acknowledgement latency.
Method: the demo WebUIs, the engine, the fake Discord and the bot all run in this one process, on one
event loop (GIL switch interval 1 ms, as sdcord sets it). A job is {_JOB}
of fixed "GPU" time and little CPU. Baselines: the same DrawEngine.generate calls through a minimal
FIFO (asyncio.Queue, one worker per backend); linear = k x the 1-backend rate."""

OPTIONS = DrawOptions("a lighthouse on a cliff at dusk", steps=STEPS, width=SIDE, height=SIDE)


# ---------------------------------------------------------------------------------------- helpers

@contextlib.asynccontextmanager
async def demos(count: int, step_delay: float = STEP_DELAY) -> AsyncIterator[list[DemoWebUI]]:
    started: list[DemoWebUI] = []
    try:
        for _ in range(count):
            demo = DemoWebUI(DemoConfig(step_delay=step_delay))
            await demo.start("127.0.0.1", 0)
            started.append(demo)
        yield started
    finally:
        for demo in started:
            await demo.stop()


@contextlib.asynccontextmanager
async def engine_on(backends: list[DemoWebUI], *,
                    start: bool = True) -> AsyncIterator[tuple[DrawEngine, BuiltPayload]]:
    """A DrawEngine over `backends` (scheduler started unless `start` is false) and a checked payload."""
    with tempfile.TemporaryDirectory() as tmp:
        clients = [WebUIClient(d.url or "", name=f"demo{i}") for i, d in enumerate(backends)]
        engine = DrawEngine(Settings(data_dir=Path(tmp), **OPEN), clients)  # type: ignore[arg-type]
        try:
            if start:
                await engine.start()
            built = await engine.finalize(engine.prepare(OPTIONS))
            yield engine, built
        finally:
            await engine.close()


@dataclass(eq=False)
class FifoJob:
    user_id: int
    built: BuiltPayload
    created: float
    started: float | None = None
    finished: float | None = None
    backend: str | None = None
    error: BaseException | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_done(self) -> None:
        await self.done.wait()


class FifoPool:
    """The baseline: arrival order, one worker per backend, the same DrawEngine.generate per job."""

    def __init__(self, engine: DrawEngine) -> None:
        self.engine = engine
        self.queue: asyncio.Queue[FifoJob] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.workers = [asyncio.get_running_loop().create_task(self._worker(c)) for c in self.engine.clients]

    def submit(self, user_id: int, built: BuiltPayload) -> FifoJob:
        job = FifoJob(user_id, built, time.monotonic())
        self.queue.put_nowait(job)
        return job

    async def _worker(self, client: WebUIClient) -> None:
        while True:
            job = await self.queue.get()
            job.started, job.backend = time.monotonic(), client.name
            try:
                await self.engine.generate(job.built, filesize_limit=LIMIT, client=client)
            except Exception as exc:  # noqa: BLE001
                job.error = exc
            job.finished = time.monotonic()
            job.done.set()

    async def close(self) -> None:
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)


class SchedulerPool:
    """sdcord's way, with the same submit/close face as FifoPool."""

    def __init__(self, engine: DrawEngine) -> None:
        self.engine = engine
        self.scheduler = engine.scheduler

    def start(self) -> None:  # the engine already started the workers
        pass

    def submit(self, user_id: int, built: BuiltPayload) -> Any:
        return self.scheduler.submit(self.scheduler.admit(user_id), built, filesize_limit=LIMIT)

    async def close(self) -> None:
        await self.scheduler.close()


def make_pool(kind: str, engine: DrawEngine) -> FifoPool | SchedulerPool:
    pool = FifoPool(engine) if kind == "fifo" else SchedulerPool(engine)
    pool.start()
    return pool


def failed(job: Any) -> bool:
    state = getattr(job, "state", JobState.DONE)  # FifoJob has no state, only an error
    return state is not JobState.DONE or getattr(job, "error", None) is not None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms"


# ------------------------------------------------------------------------------------- 1. throughput

@dataclass
class Run:
    jobs: int
    wall: float
    mean_job: float
    busy: float  # share of backend-time spent running jobs
    per_backend: list[int]
    max_in_flight: list[int]
    failures: int

    @property
    def rate(self) -> float:
        return self.jobs / self.wall


async def throughput(kind: str, backends: int, jobs_per_backend: int) -> Run:
    async with demos(backends) as ds, engine_on(ds, start=kind == "sdcord") as (engine, built):
        pool = make_pool(kind, engine)
        try:
            warm = [pool.submit(10_000 + i, built) for i in range(backends)]  # connections, caches
            await asyncio.gather(*(j.wait_done() for j in warm))
            served_before = [d.jobs_served for d in ds]
            n = backends * jobs_per_backend
            t0 = time.monotonic()
            jobs = [pool.submit(1 + i % USERS, built) for i in range(n)]
            await asyncio.gather(*(j.wait_done() for j in jobs))
            wall = time.monotonic() - t0
        finally:
            await pool.close()
        durations = [j.finished - j.started for j in jobs if j.started and j.finished]
        return Run(n, wall, statistics.mean(durations), sum(durations) / (backends * wall),
                   [d.jobs_served - b for d, b in zip(ds, served_before, strict=True)],
                   [d.max_in_flight for d in ds], sum(failed(j) for j in jobs))


async def bench_throughput(jobs_per_backend: int) -> None:
    print(f"\n1. Throughput: {jobs_per_backend} jobs per backend from {USERS} users, {SIDE}x{SIDE}, "
          f"{STEPS} steps x {STEP_DELAY * 1000:g} ms")
    print(f"   {'backends':>8}  {'sdcord jobs/s':>13}  {'scaling':>7}  {'of linear':>9}  {'job time':>9}  "
          f"{'busy':>5}  {'jobs per backend':<17} {'FIFO pool jobs/s':>16}  {'scaling':>7}")
    ours: dict[int, Run] = {}
    fifo: dict[int, Run] = {}
    for k in BACKENDS:
        ours[k] = await throughput("sdcord", k, jobs_per_backend)
        fifo[k] = await throughput("fifo", k, jobs_per_backend)
        s, f = ours[k].rate / ours[1].rate, fifo[k].rate / fifo[1].rate
        spread = "/".join(map(str, ours[k].per_backend))
        print(f"   {k:>8}  {ours[k].rate:>13.2f}  {s:>6.2f}x  {s / k:>8.0%}  {ms(ours[k].mean_job):>9}  "
              f"{ours[k].busy:>5.0%}  {spread:<17} {fifo[k].rate:>16.2f}  {f:>6.2f}x")
        if ours[k].failures or fifo[k].failures:
            print(f"   !! failed jobs: sdcord {ours[k].failures}, FIFO {fifo[k].failures}")
    worst = min(ours[k].rate / ours[1].rate / k for k in BACKENDS)
    print(f"   target >= 0.9x linear: {'met' if worst >= 0.9 else 'NOT met'} (worst {worst:.2f}x linear)")
    in_flight = [m for k in BACKENDS for m in (*ours[k].max_in_flight, *fifo[k].max_in_flight)]
    one = all(m == 1 for m in in_flight)
    print(f"   at most one generation in flight per demo (max_in_flight == 1 on all {len(in_flight)} demos): "
          f"{'yes' if one else 'NO: ' + str(in_flight)}")


# --------------------------------------------------------------------------------------- 2. fairness

async def fairness(demo: DemoWebUI, kind: str) -> tuple[float, float, int]:
    """(light's submit -> start, submit -> done, heavy jobs started before it) with `kind` ordering."""
    async with engine_on([demo], start=kind == "sdcord") as (engine, built):
        pool = make_pool(kind, engine)
        try:
            await pool.submit(10_000, built).wait_done()  # warm-up
            heavy = [pool.submit(1, built) for _ in range(HEAVY_JOBS)]
            while heavy[0].started is None:
                await asyncio.sleep(0.001)
            await asyncio.sleep(STEP_DELAY * STEPS / 2)  # halfway into the heavy user's running job
            light = pool.submit(2, built)
            await light.wait_done()
            assert not failed(light), "the light user's job failed"
            assert light.started is not None and light.finished is not None
            ahead = sum(1 for j in heavy if j.started is not None and j.started < light.started)
            return light.started - light.created, light.finished - light.created, ahead
        finally:
            await pool.close()  # the heavy user's leftovers end (sdcord: failed as "shutting down")


async def bench_fairness() -> None:
    print(f"\n2. Fairness: 1 backend, heavy user {HEAVY_JOBS} jobs (1 running + {HEAVY_JOBS - 1} waiting), "
          f"then a light user submits 1 job")
    print(f"   {'order':<22}{'light: submit->start':>21}{'submit->done':>14}   heavy jobs started before it")
    async with demos(1) as (demo,):
        for label, kind in (("sdcord (fair)", "sdcord"), ("FIFO baseline", "fifo")):
            start, done, ahead = await fairness(demo, kind)
            while demo.in_flight:  # the heavy user's last job runs to its end on the demo (as on A1111)
                await asyncio.sleep(0.01)
            print(f"   {label:<22}{ms(start):>21}{ms(done):>14}   {ahead}")
        print(f"   demo max_in_flight {demo.max_in_flight}")


# ---------------------------------------------------------------------------------- 3. ack latency

def listen_overflows() -> int | None:
    """The kernel's count of SYNs dropped because a listen queue was full (Linux), else None."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            table = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return None


@dataclass
class AckRun:
    latencies: list[float]
    lost: list[BaseException]
    dispatched: float
    syn_drops: int | None
    delivered: int
    drain: float
    states: Counter[str]
    in_flight: int
    rejected: int
    fake_errors: int


async def ack_run() -> AckRun:
    """One burst of ACK_COMMANDS /draw against a fresh fake Discord, bot and fast demo."""
    fake = FakeDiscord()
    fake.owner = fake.add_user("owner")
    fake.guild = fake.add_guild("Bench Guild", owner=fake.owner)
    fake.channel = fake.add_channel(fake.guild, "general")
    users = [fake.add_user(f"user{i:03d}") for i in range(ACK_COMMANDS + 1)]
    for user in users:
        fake.add_member(fake.guild, user)
    await fake.start()
    opts = {"prompt": "a lighthouse", "width": SIDE, "height": SIDE, "steps": 4}

    def ended(ix: Any) -> bool:
        m = ix.original
        return m is not None and (bool(m.attachments) or "❌" in m.content)

    try:
        async with demos(1, step_delay=0.0) as (demo,):
            with tempfile.TemporaryDirectory() as tmp:
                async with running_bot(fake, bot_settings(fake, demo.url or "", Path(tmp))) as bot:
                    await fake.wait_for_commands({"draw"}, guild_id=fake.guild.id)
                    # discord.py fires on_ready 2 s after GUILD_CREATE; closing before that logs an error
                    await asyncio.wait_for(bot.wait_until_ready(), 10)
                    warm = await fake.invoke(users[-1], fake.channel, "draw", opts)  # not measured
                    await warm.wait_for(ended, 20)

                    drops_before = listen_overflows()
                    t0 = time.monotonic()
                    invokes = (fake.invoke(u, fake.channel, "draw", opts) for u in users[:-1])
                    ixs = await asyncio.gather(*invokes)
                    dispatched = time.monotonic() - t0
                    acks = (ix.wait_ack(timeout=10) for ix in ixs)
                    results = await asyncio.gather(*acks, return_exceptions=True)
                    drops_after = listen_overflows()
                    t1 = time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        await fake.wait_until(lambda: all(ended(ix) for ix in ixs), timeout=90)
                    drain = time.monotonic() - t1
                    assert bot.engine is not None
                    states = Counter(str(j.state) for j in bot.engine.scheduler.jobs.values())
                # the bot is closed here: a job still unfinished would have been failed cleanly
            in_flight = demo.max_in_flight
    finally:
        await fake.stop()
    return AckRun(
        latencies=[r for r in results if isinstance(r, float)],
        lost=[r for r in results if not isinstance(r, float)],
        dispatched=dispatched,
        syn_drops=None if drops_before is None or drops_after is None else drops_after - drops_before,
        delivered=sum(1 for ix in ixs if ix.original is not None and ix.original.attachments),
        drain=drain, states=states, in_flight=in_flight,
        rejected=sum(len(ix.rejected) for ix in ixs), fake_errors=len(fake.server_errors),
    )


async def bench_ack() -> None:
    print(f"\n3. Acknowledgement latency: {ACK_COMMANDS} /draw commands from {ACK_COMMANDS} members, "
          f"dispatched at once by the fake Discord to the real bot")
    print(f"   {'':<12}{'min':>8}{'p50':>8}{'p99':>9}{'max':>9}{'acked':>9}{'SYNs dropped':>14}"
          f"   then the {ACK_COMMANDS} jobs (+1 warm-up)")
    r = await ack_run()
    lat = r.latencies or [float("nan")]
    p99 = pct(lat, 0.99)
    drops = "?" if r.syn_drops is None else str(r.syn_drops)
    print(f"   {'sdcord':<12}{ms(min(lat)):>8}{ms(pct(lat, 0.5)):>8}{ms(p99):>9}{ms(max(lat)):>9}"
          f"{f'{len(r.latencies)}/{ACK_COMMANDS}':>9}{drops:>14}   {r.delivered} delivered in "
          f"{r.drain:.1f} s, states {dict(r.states)}, demo max_in_flight {r.in_flight}")
    if r.lost:
        print(f"   !! {len(r.lost)} not acknowledged: {type(r.lost[0]).__name__}: {r.lost[0]}")
    if r.rejected or r.fake_errors:
        print(f"   !! rejected callbacks {r.rejected}, fake server errors {r.fake_errors}")
    verdict = p99 < 1.0 and not r.lost
    print(f"   target: p99 well under 1 s (Discord's limit is 3 s): {'met' if verdict else 'NOT met'}")


# -------------------------------------------------------------------------------------------- main

async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs-per-backend", type=int, default=20,
                        help="throughput jobs per backend (default 20)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                        format="   [log] %(levelname)s %(name)s: %(message)s")
    voice = "voice will NOT be supported"  # discord.py's warning about optional voice packages
    logging.getLogger("discord.client").addFilter(lambda r: voice not in r.getMessage())
    favour_event_loop_latency()  # what `sdcord` sets at start

    print(HEADER)
    t0 = time.monotonic()
    await bench_throughput(args.jobs_per_backend)
    await bench_fairness()
    await bench_ack()
    print(f"\n(total {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
