"""The PostgreSQL server the tests start for themselves (tests/support/postgres.py): what issue 11's shared
queue needs of it — SKIP LOCKED, LISTEN/NOTIFY, advisory locks, several servers at once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


async def test_version_and_socket(pg: Any) -> None:
    c = await asyncpg.connect(pg.dsn)
    assert int(await c.fetchval("show server_version_num")) >= 180000
    await c.close()
    c = await asyncpg.connect(pg.socket_dsn)
    assert await c.fetchval("select 1") == 1
    await c.close()


async def test_skip_locked_hands_each_row_to_one_taker(pg: Any) -> None:
    a, b = await asyncpg.connect(pg.dsn), await asyncpg.connect(pg.dsn)
    await a.execute("create table q(id int primary key); insert into q select generate_series(1, 10)")
    async with a.transaction():
        ra = await a.fetch("select id from q order by id limit 3 for update skip locked")
        async with b.transaction():
            rb = await b.fetch("select id from q order by id limit 3 for update skip locked")
    assert [r[0] for r in ra] == [1, 2, 3] and [r[0] for r in rb] == [4, 5, 6]
    await a.close()
    await b.close()


async def test_listen_notify_and_advisory_locks(pg: Any) -> None:
    a, b = await asyncpg.connect(pg.dsn), await asyncpg.connect(pg.dsn)
    got = asyncio.get_running_loop().create_future()
    await b.add_listener("ch", lambda *args: got.set_result(args[-1]))
    await a.execute("notify ch, 'hi'")
    assert await asyncio.wait_for(got, 5) == "hi"
    assert await a.fetchval("select pg_try_advisory_lock(1)") is True
    assert await b.fetchval("select pg_try_advisory_lock(1)") is False
    await a.close()
    await b.close()


async def test_several_servers_at_once(pg_factory: Any) -> None:
    s1, s2 = pg_factory(), pg_factory()
    assert s1.port != s2.port
    for s in (s1, s2):
        c = await asyncpg.connect(s.dsn)
        assert await c.fetchval("select 1") == 1
        await c.close()
