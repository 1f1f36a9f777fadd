"""Scale-out, end to end with real processes: `sdcord` gateways and `sdcord worker`s sharing one queue in a
real PostgreSQL server (started by the tests), each worker with its own demo WebUI, all against the fake
Discord. What users see: every job delivered once, fairly, never two at a time on a WebUI, nothing lost
when a worker or a gateway is killed, a user's queue cap held across gateway shards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.harness import results, said
from tests.support.postgres import fresh_database
from tests.support.processes import BotProcess

pytestmark = pytest.mark.timeout(240)

STEP = 0.05  # demo seconds per step: 20 steps = 1 s a job


@pytest.fixture
async def database(pg: Any) -> AsyncIterator[str]:
    """A new, empty database on the tests' PostgreSQL server; its URL."""
    async with fresh_database(pg) as dsn:
        yield dsn


def gateway(fake: Any, tmp_path: Path, database: str, name: str, **env: str) -> BotProcess:
    (tmp_path / name).mkdir(exist_ok=True)
    bot = BotProcess.for_fake(fake, tmp_path / name, "", DATABASE_URL=database, **env)
    del bot.env["WEBUI_URL"]  # a gateway alone: it runs no backend
    return bot


def worker(fake: Any, tmp_path: Path, database: str, name: str, webui_url: str, **env: str) -> BotProcess:
    (tmp_path / name).mkdir(exist_ok=True)
    bot = BotProcess.for_fake(fake, tmp_path / name, webui_url, DATABASE_URL=database, **env)
    bot.args = ("worker",)
    return bot


async def start_worker(bot: BotProcess) -> None:
    await bot.start(ready_line="Worker running")


async def stop_all(*bots: BotProcess) -> None:
    await asyncio.gather(*(b.stop_quietly() for b in bots))
    for bot in bots:  # shown by pytest when the test failed
        print(f"----- {bot.cwd.name}\n{bot.text[-6000:]}")


async def draw(fake: Any, user: Any, channel: Any, prompt: str, **options: Any) -> Any:
    ix = await fake.invoke(user, channel, "draw", {"prompt": prompt, **options})
    await ix.wait_ack(timeout=15)
    return ix


def users(fake: Any, n: int) -> list[Any]:
    out = [fake.alice]
    for i in range(n - 1):
        user = fake.add_user(f"user{i}")
        fake.add_member(fake.guild, user)
        out.append(user)
    return out


async def rows(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def prompts(demo: Any) -> list[str]:
    return [body["prompt"] for route, body in demo.received if route == "txt2img"]


def result_posts(fake: Any, prompt: str) -> list[Any]:
    """The bot's messages that carry result images for `prompt` (the job message edited, or a post)."""
    return [m for m in fake.messages() if not m.deleted and m.author_id == fake.bot_user.id and results(m)
            and prompt in m.content]


async def test_a_gateway_and_two_workers_share_the_queue_fairly(fake_discord: Any, demo_webui_factory: Any,
                                                                 tmp_path: Path, database: str) -> None:
    fake = fake_discord
    one, two = await demo_webui_factory(step_delay=STEP), await demo_webui_factory(step_delay=STEP)
    gw = gateway(fake, tmp_path, database, "gateway")
    workers = [worker(fake, tmp_path, database, "w1", one.url), worker(fake, tmp_path, database, "w2", two.url)]
    try:
        await gw.start()
        people = users(fake, 3)
        # Every job is queued before any worker runs: then the order they start in is the queue's alone.
        ixs = {}
        for k in range(3):
            for n, user in enumerate(people):
                ixs[f"u{n}-{k}"] = await draw(fake, user, fake.channel, f"u{n}-{k}", seed=k)
        await ixs["u2-2"].wait_for(lambda i: said(i.original, "position 9 of 9"), timeout=20)
        await asyncio.gather(*(start_worker(w) for w in workers))
        for prompt, ix in ixs.items():
            await ix.wait_for(lambda i: bool(results(i.original)), timeout=60)
            assert len(result_posts(fake, prompt)) == 1  # delivered once
        assert one.max_asked_at_once == 1 and two.max_asked_at_once == 1  # never two requests on one WebUI
        assert len(prompts(one)) >= 3 and len(prompts(two)) >= 3  # both GPUs worked
        assert sorted(prompts(one) + prompts(two)) == sorted(ixs)  # each job ran once
        started = await rows(database, "SELECT payload->>'prompt' AS p, round FROM jobs ORDER BY started_at")
        # Fair: each user's first job before anyone's second, every second before any third.
        assert [sorted(r["p"][:2] for r in started[i:i + 3]) for i in (0, 3, 6)] == [["u0", "u1", "u2"]] * 3
        assert [r["round"] for r in started] == sorted(r["round"] for r in started)
        done = await rows(database, "SELECT status, delivered_at, attempts FROM jobs")
        assert {(r["status"], r["delivered_at"] is not None, r["attempts"]) for r in done} == {("done", True, 1)}
        names = {a.filename for ix in ixs.values() for a in results(ix.original)}
        assert len(names) == 9 and {n.split("-")[0] for n in names} == {f"{i:05d}" for i in range(1, 10)}
    finally:
        await stop_all(gw, *workers)
    assert "Traceback" not in gw.text + "".join(w.text for w in workers)


async def test_a_killed_worker_loses_its_job_to_another_within_20_s(fake_discord: Any, demo_webui_factory: Any,
                                                                    tmp_path: Path, database: str) -> None:
    fake = fake_discord
    slow, other = await demo_webui_factory(step_delay=0.5), await demo_webui_factory(step_delay=STEP)
    gw = gateway(fake, tmp_path, database, "gateway")
    doomed = worker(fake, tmp_path, database, "w1", slow.url)
    rescuer = worker(fake, tmp_path, database, "w2", other.url)
    try:
        await gw.start()
        await start_worker(doomed)
        ix = await draw(fake, fake.alice, fake.channel, "a lighthouse", seed=5)
        await ix.wait_for(lambda i: said(i.original, "%"), timeout=30)  # running on the doomed worker
        assert prompts(slow) == ["a lighthouse"]
        await start_worker(rescuer)
        await doomed.kill()
        killed = time.monotonic()
        await ix.wait_for(lambda i: "a lighthouse" in prompts(other), timeout=40)
        taken_after = time.monotonic() - killed
        await ix.wait_for(lambda i: bool(results(i.original)), timeout=40)
        assert taken_after <= 22.5, taken_after  # the lease ends at 15 s; the rescuer looks every 5 s, then claims
        assert len(result_posts(fake, "a lighthouse")) == 1  # posted once, by the rescuer
        assert said(ix.original, "running again")  # the user was told why it started over
        [row] = await rows(database, "SELECT status, attempts, backend FROM jobs")
        assert (row["status"], row["attempts"], row["backend"]) == ("done", 2, other.url)
    finally:
        await stop_all(gw, doomed, rescuer)


async def test_a_killed_gateway_loses_nothing_and_cancel_works_from_a_new_one(
        fake_discord: Any, demo_webui_factory: Any, tmp_path: Path, database: str) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.3)  # 6 s a job: job 4 still waits, 2 ahead, when a new gateway is up
    gw = gateway(fake, tmp_path, database, "gateway", LEASE_TTL="3")
    wk = worker(fake, tmp_path, database, "w1", demo.url, LEASE_TTL="3")
    try:
        await gw.start()
        await start_worker(wk)
        people = users(fake, 5)
        ixs = [await draw(fake, u, fake.channel, f"job {n}", seed=n) for n, u in enumerate(people)]
        await ixs[0].wait_for(lambda i: said(i.original, "%"), timeout=30)
        await gw.kill()  # four jobs were waiting in the gateway's care
        await ixs[1].wait_for(lambda i: bool(results(i.original)), timeout=60)  # the worker goes on
        await gw.start()  # a new gateway: buttons work for jobs it never saw
        status = await fake.invoke(people[4], fake.channel, "status")
        await status.wait_for(lambda i: i.original is not None and "Your jobs" in i.original.content, timeout=15)
        assert status.ephemeral
        assert "🟢 up" in status.original.content  # the worker's backend, seen from a gateway without one
        assert "job 4" in status.original.content and "queued, position" in status.original.content
        assert "job 3" not in status.original.content  # only the caller's own jobs
        waiting = ixs[4].original
        job_id = next(c["custom_id"] for row in waiting.components for c in row["components"]
                      if c["custom_id"].startswith("sdcord:cancel:")).split(":")[2]
        click = await fake.click(people[4], waiting, f"sdcord:cancel:{job_id}")
        await click.wait_ack(timeout=15)
        await ixs[4].wait_for(lambda i: said(i.original, "Cancelled"), timeout=30)
        for n in (0, 1, 2, 3):
            await ixs[n].wait_for(lambda i: bool(results(i.original)), timeout=60)
            assert len(result_posts(fake, f"job {n}")) == 1
        assert "job 4" not in prompts(demo)
        statuses = {r["p"]: (r["status"], r["delivered_at"] is not None)
                    for r in await rows(database, "SELECT payload->>'prompt' AS p, status, delivered_at FROM jobs")}
        assert statuses == {"job 0": ("done", True), "job 1": ("done", True), "job 2": ("done", True),
                            "job 3": ("done", True), "job 4": ("cancelled", True)}
    finally:
        await stop_all(gw, wk)


async def test_two_gateway_shards_hold_one_queue_cap_per_user(fake_discord: Any, tmp_path: Path,
                                                              database: str) -> None:
    fake = fake_discord
    guilds = {0: None, 1: None}
    guilds[(fake.guild.id >> 22) % 2] = fake.guild
    while None in guilds.values():  # a second server on the other shard
        g = fake.add_guild(f"server {len(fake.guilds)}")
        guilds.setdefault((g.id >> 22) % 2, g)
        if guilds[(g.id >> 22) % 2] is None:
            guilds[(g.id >> 22) % 2] = g
    channels = {}
    for shard, g in guilds.items():
        channels[shard] = fake.channel if g is fake.guild else fake.add_channel(g, "art")
        fake.add_member(g, fake.alice)
    ids = ",".join(str(g.id) for g in guilds.values())
    shards = [gateway(fake, tmp_path, database, f"gateway{n}", SHARD_COUNT="2", SHARD_IDS=str(n),
                      DISCORD_GUILD_IDS=ids, MAX_QUEUED_PER_USER="3", RATE_LIMIT="20/60") for n in (0, 1)]
    try:
        for bot in shards:
            await bot.start()
        await fake.wait_for_commands({"draw"}, guild_id=guilds[1].id, timeout=30)
        # Alice asks for two pictures in each server at once: one shard each, one cap between them.
        ixs = await asyncio.gather(*(fake.invoke(fake.alice, channels[s], "draw", {"prompt": f"s{s} #{k}"})
                                     for k in range(2) for s in (0, 1)))
        for ix in ixs:
            await ix.wait_ack(timeout=15)
        refused = [ix for ix in ixs if not ix.deferred]
        assert len(refused) == 1 and refused[0].ephemeral
        assert "You already have 3 jobs waiting or running" in refused[0].original.content
        for ix in ixs:
            if ix.deferred:
                await ix.wait_for(lambda i: said(i.original, "Queued"), timeout=15)
        queued = await rows(database, "SELECT guild_id, count(*) AS n FROM jobs WHERE status = 'queued' "
                                      "GROUP BY guild_id")
        assert sum(r["n"] for r in queued) == 3 and len(queued) == 2  # through both gateways
        sessions = {tuple(s.shard) for s in fake.sessions if s.shard}
        assert sessions == {(0, 2), (1, 2)}  # two clusters, one shard each
    finally:
        await stop_all(*shards)


async def test_postgres_down_means_a_clear_refusal_and_recovery_by_itself(
        fake_discord: Any, demo_webui_factory: Any, tmp_path: Path, pg_factory: Any) -> None:
    fake = fake_discord
    server = pg_factory()
    demo = await demo_webui_factory(step_delay=0.1)
    gw = gateway(fake, tmp_path, server.dsn, "gateway")
    wk = worker(fake, tmp_path, server.dsn, "w1", demo.url)
    try:
        await gw.start()
        await start_worker(wk)
        before = await draw(fake, fake.alice, fake.channel, "before the outage")
        await before.wait_for(lambda i: said(i.original, "%"), timeout=30)
        await asyncio.to_thread(server.pause)  # the database goes away while that job runs
        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "during the outage"})
        await ix.wait_ack(timeout=5)  # still answered within Discord's 3 s
        assert ix.ephemeral and "temporarily unavailable" in ix.original.content
        await asyncio.sleep(2)
        await asyncio.to_thread(server.resume)
        after = None
        for _ in range(30):  # the gateway reconnects by itself
            after = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "after the outage"})
            await after.wait_ack(timeout=5)
            if after.deferred:
                break
            await asyncio.sleep(1)
        assert after is not None and after.deferred
        for job in (before, after):
            await job.wait_for(lambda i: bool(results(i.original)), timeout=60)
        assert "during the outage" not in prompts(demo)
        statuses = {r["p"]: (r["status"], r["delivered_at"] is not None) for r in await rows(
            server.dsn, "SELECT payload->>'prompt' AS p, status, delivered_at FROM jobs")}
        assert statuses == {"before the outage": ("done", True), "after the outage": ("done", True)}
    finally:
        await stop_all(gw, wk)


async def test_with_no_worker_jobs_say_so_and_fail_after_the_wait_limit(fake_discord: Any, tmp_path: Path,
                                                                         database: str) -> None:
    fake = fake_discord
    gw = gateway(fake, tmp_path, database, "gateway", LEASE_TTL="3", BACKEND_WAIT_LIMIT="4")
    try:
        await gw.start()
        ix = await draw(fake, fake.alice, fake.channel, "nobody to draw it")
        await ix.wait_for(lambda i: said(i.original, "waiting for an image server"), timeout=15)
        await ix.wait_for(lambda i: said(i.original, "No image server has been reachable for 4 seconds"), timeout=20)
        [row] = await rows(database, "SELECT status, delivered_at FROM jobs")
        assert row["status"] == "failed" and row["delivered_at"] is not None
    finally:
        await stop_all(gw)


async def test_inputs_travel_to_workers_on_other_machines_and_the_daily_limit_holds(
        fake_discord: Any, demo_webui_factory: Any, tmp_path: Path, database: str) -> None:
    """A gateway and a worker with separate data dirs (as on two machines): /describe's upload and Zoom out's
    canvas and mask, kept by the gateway, reach the worker through the database; DAILY_LIMIT is counted in
    the database."""
    import base64
    import io

    from PIL import Image

    from tests.support.harness import button

    fake = fake_discord
    demo = await demo_webui_factory(step_delay=0.0)
    gw = gateway(fake, tmp_path, database, "gateway", DAILY_LIMIT="3")
    w1 = worker(fake, tmp_path, database, "w1", demo.url, DAILY_LIMIT="3")
    try:
        await gw.start()
        await start_worker(w1)
        buf = io.BytesIO()
        Image.new("RGB", (192, 128), (230, 200, 20)).save(buf, format="PNG")
        ix = await fake.invoke(fake.alice, fake.channel, "describe",
                               {"image": fake.make_attachment(buf.getvalue(), "yellow.png", "image/png")})
        await ix.wait_for(lambda i: i.original is not None and "sdcord:prompt:" in str(i.original.components),
                          timeout=60)
        sent = [body for route, body in demo.received if route == "interrogate"][0]
        assert Image.open(io.BytesIO(base64.b64decode(sent["image"]))).size == (192, 128)

        first = await draw(fake, fake.alice, fake.channel, "a yellow field", seed=3, width=256, height=256)
        await first.wait_for(lambda i: bool(results(i.original)), timeout=60)
        zoom = await fake.click(fake.alice, first.original, button(first.original, "zoom2"))
        await zoom.wait_for(lambda i: bool(results(i.original)), timeout=60)
        route, body = demo.received[-1]
        assert route == "img2img" and (body["width"], body["height"]) == (512, 512) and body["mask"]
        kept_by_gateway = {p.name for p in (tmp_path / "gateway" / "data" / "inputs").iterdir()}
        read_by_worker = {p.name for p in (tmp_path / "w1" / "data" / "inputs").iterdir()}
        assert len(kept_by_gateway) == 3 and read_by_worker == kept_by_gateway  # upload, canvas, mask

        refused = await draw(fake, fake.alice, fake.channel, "a fourth job today")
        await refused.wait_for(lambda i: i.original is not None and bool(i.original.content), timeout=20)
        text = refused.original.content
        assert refused.ephemeral and "3 jobs for today" in text and "<t:" in text
    finally:
        await stop_all(gw, w1)
