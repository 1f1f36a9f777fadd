"""The fair queue, the rate limits and the backend pool, with stub backends and a controllable clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.core.jobs import DrawRequest, Job, JobState, Origin
from bot.core.limits import RateLimiter
from bot.core.scheduler import Scheduler
from bot.discord_app.catalog import english
from bot.errors import Refused, WebUIConnectionError, WebUIServerError, WebUITimeoutError
from bot.webui.client import Progress

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StubBackend:
    """Stands in for a WebUIClient: each job waits on a gate the test opens."""

    def __init__(self, name: str) -> None:
        self.display_url = name
        self.interrupts = 0
        self.healthy = True
        self.fail_next: BaseException | None = None
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.busy_polls = 0  # /progress answers "busy" this many more times while nothing runs
        self.idle_polls_seen = 0

    async def progress(self, *, skip_current_image: bool = True) -> Progress:
        if not self.healthy:
            raise WebUIConnectionError("down", reached=False)
        if self.in_flight == 0 and self.busy_polls <= 0:
            self.idle_polls_seen += 1
            return Progress(0.0, 0.0, {"job_count": 0, "sampling_step": 0, "sampling_steps": 0}, None, None)
        self.busy_polls -= 1
        return Progress(0.5, 1.0, {"job_count": 1, "sampling_step": 9, "sampling_steps": 20}, None, None)

    async def interrupt(self) -> None:
        self.interrupts += 1
        for gate in self.gates.values():
            gate.set()

    async def run(self, job: Job) -> str:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.started.append(job.request.title)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gates.setdefault(job.request.title, asyncio.Event()).wait()
        finally:
            self.in_flight -= 1
        return f"image of {job.request.title}"


async def runner(job: Job, client: Any) -> str:
    return await client.run(job)


def make(backends: list[StubBackend], **kw: Any) -> Scheduler:
    kw = {"rate": 100, "per": 60.0, "max_queued_per_user": 100, "progress_interval": 0.01,
          "health_backoff": (0.01, 0.05), **kw}
    scheduler = Scheduler(backends, runner, **kw)  # type: ignore[arg-type]
    scheduler.start()
    return scheduler


def submit(s: Scheduler, user: int, name: str) -> Job:
    return s.submit(s.admit(user), DrawRequest({"prompt": name}), Origin(user, 1))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


# ---------------------------------------------------------------- the token bucket
def test_bucket_allows_the_rate_then_says_when_to_retry() -> None:
    clock = Clock()
    limiter = RateLimiter(5, 60, clock=clock)
    assert [limiter.take(1) for _ in range(5)] == [0.0] * 5
    assert limiter.take(1) == pytest.approx(12.0)  # one token every 60/5 s
    assert limiter.take(2) == 0.0  # per user
    clock.now += 6
    assert limiter.retry_after(1) == pytest.approx(6.0)
    clock.now += 6
    assert limiter.take(1) == 0.0 and limiter.take(1) == pytest.approx(12.0)
    limiter.refund(1)
    assert limiter.take(1) == 0.0
    clock.now += 3600
    assert [limiter.take(1) for _ in range(6)][-1] > 0  # never more than the bucket holds


# ---------------------------------------------------------------- admission
async def test_admission_refuses_over_the_rate_and_over_the_queue_cap() -> None:
    clock = Clock()
    backend = StubBackend("b1")
    s = make([backend], rate=5, per=60.0, max_queued_per_user=3, clock=clock)
    try:
        jobs = [submit(s, 1, f"a{i}") for i in range(3)]
        with pytest.raises(Refused) as info:
            s.admit(1)
        assert info.value.limit == "queue" and "3 jobs waiting or running" in english(info.value.message)
        assert info.value.retry_in >= 1
        for job in jobs:
            backend.gates.setdefault(job.request.title, asyncio.Event()).set()
        await asyncio.gather(*(j.wait_done(5) for j in jobs))
        s.release(s.admit(1), refund=False)  # 4th token used
        s.release(s.admit(1))  # 5th token refunded
        s.release(s.admit(1), refund=False)
        with pytest.raises(Refused) as info:
            s.admit(1)
        assert info.value.limit == "rate" and "5 jobs per person in 1 minute" in english(info.value.message)
        assert info.value.retry_in == pytest.approx(12.0)
    finally:
        await s.stop()


# ---------------------------------------------------------------- fairness
async def test_round_robin_across_users_arrival_order_within_a_user() -> None:
    backend = StubBackend("b1")
    s = make([backend])
    try:
        first = submit(s, 1, "a1")
        await settle()  # a1 is running
        a = [submit(s, 1, f"a{i}") for i in (2, 3, 4)]
        b = [submit(s, 2, f"b{i}") for i in (1, 2)]
        c = submit(s, 3, "c1")
        assert [s.position(j) for j in (b[0], c, a[0], b[1], a[1], a[2])] == [1, 2, 3, 4, 5, 6]
        for job in [first, b[0], c, a[0], b[1], a[1], a[2]]:
            await settle()
            backend.gates.setdefault(job.request.title, asyncio.Event()).set()
            await job.wait_done(5)
        assert backend.started == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]
        assert backend.max_in_flight == 1
    finally:
        await s.stop()


async def test_a_latecomer_does_not_wait_behind_a_burst() -> None:
    backend = StubBackend("b1")
    s = make([backend])
    try:
        burst = [submit(s, 1, f"h{i}") for i in range(10)]
        await settle()
        light = submit(s, 2, "light")
        assert s.position(light) == 1  # next, after the running h0
        for job in burst[:1]:
            backend.gates.setdefault(job.request.title, asyncio.Event()).set()
        backend.gates.setdefault("light", asyncio.Event()).set()
        await light.wait_done(5)
        assert backend.started[:2] == ["h0", "light"]
    finally:
        for gate in backend.gates.values():
            gate.set()
        await s.stop()


async def test_cancelled_jobs_do_not_push_the_users_next_job_back() -> None:
    backend = StubBackend("b1")
    s = make([backend])
    try:
        first = submit(s, 1, "u1-0")
        await settle()
        burst = [submit(s, 1, f"u1-{i}") for i in range(1, 20)]
        for job in burst:
            assert await s.cancel(job)
        others = [submit(s, 2, f"u2-{i}") for i in range(5)]
        again = submit(s, 1, "u1-again")
        # user 1's second job competes with user 2's second (arrival order breaks the tie),
        # instead of waiting behind the 19 rounds of its cancelled burst
        assert [j.request.title for j in list(s.queue)] == ["u2-0", "u2-1", "u1-again", "u2-2", "u2-3", "u2-4"]
        for job in [first, *others, again]:
            backend.gates.setdefault(job.request.title, asyncio.Event()).set()
        await asyncio.gather(*(j.wait_done(5) for j in [first, *others, again]))
    finally:
        await s.stop()


# ---------------------------------------------------------------- the pool
async def test_unreachable_backend_hands_its_job_to_another_and_is_retried() -> None:
    b1, b2 = StubBackend("b1"), StubBackend("b2")
    b1.fail_next = WebUIConnectionError("refused", reached=False)
    b1.healthy = False
    s = make([b1, b2])
    try:
        job = submit(s, 1, "x")
        await settle()
        b2.gates.setdefault("x", asyncio.Event()).set()
        await job.wait_done(5)
        assert job.state is JobState.DONE and job.backend == "b2" and job.result == "image of x"
        assert [b.up for b in s.backend_status()] == [False, True]
        b1.healthy = True
        for _ in range(100):
            await asyncio.sleep(0.01)
            if s.backend_status()[0].up:
                break
        assert s.backend_status()[0].up
    finally:
        await s.stop()


async def test_a_job_the_webui_may_have_started_is_never_run_twice() -> None:
    b1, b2 = StubBackend("b1"), StubBackend("b2")
    b1.fail_next = WebUIConnectionError("broke off", reached=True)
    b1.healthy = False
    s = make([b1, b2])
    try:
        job = submit(s, 1, "x")
        await job.wait_done(5)
        assert job.state is JobState.FAILED and "broke off" in english(job.error.message)
        assert b2.started == []
        other = submit(s, 1, "y")  # later jobs go to the healthy backend
        await settle()
        b2.gates.setdefault("y", asyncio.Event()).set()
        await other.wait_done(5)
        assert other.backend == "b2"
    finally:
        await s.stop()


async def test_when_every_backend_is_down_jobs_wait_then_fail_clearly() -> None:
    b1 = StubBackend("b1")
    b1.fail_next = WebUIConnectionError("refused", reached=False)
    b1.healthy = False
    s = make([b1], wait_limit=0.5)
    try:
        job = submit(s, 1, "x")
        await settle()
        await asyncio.sleep(0.05)
        assert job.state is JobState.QUEUED and job.waiting_for_backend
        await job.wait_done(5)
        assert job.state is JobState.FAILED and "No image server has been reachable" in english(job.error.message)
    finally:
        await s.stop()


async def test_server_errors_fail_the_job_but_keep_the_backend() -> None:
    b1 = StubBackend("b1")
    b1.fail_next = WebUIServerError("out of memory", out_of_memory=True)
    s = make([b1])
    try:
        job = submit(s, 1, "x")
        await job.wait_done(5)
        assert job.state is JobState.FAILED and s.backend_status()[0].up
    finally:
        await s.stop()


# ---------------------------------------------------------------- cancel
async def test_cancel_a_queued_and_a_running_job() -> None:
    backend = StubBackend("b1")
    s = make([backend])
    try:
        running = submit(s, 1, "r")
        queued = submit(s, 2, "q")
        await settle()
        assert running.state is JobState.RUNNING
        assert await s.cancel(queued, by=2)
        assert queued.state is JobState.CANCELLED and list(s.queue) == [] and backend.interrupts == 0
        assert await s.cancel(running, by=9)
        await running.wait_done(5)
        assert running.state is JobState.CANCELLED and running.result is None  # partial result discarded
        assert backend.interrupts == 1 and running.cancelled_by == 9
        assert not await s.cancel(running)
        assert backend.started == ["r"]
    finally:
        await s.stop()


async def test_progress_is_read_from_the_running_backend() -> None:
    backend = StubBackend("b1")
    s = make([backend])
    try:
        job = submit(s, 1, "x")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if job.progress:
                break
        assert job.progress is not None
        assert (job.progress.fraction, job.progress.step, job.progress.steps) == (0.5, 10, 20)
        backend.gates["x"].set()
        await job.wait_done(5)
    finally:
        await s.stop()


async def test_stop_keeps_unfinished_jobs_for_the_next_start() -> None:
    """A shutdown ends no job: the waiting one stays queued, the running one is interrupted on its
    WebUI and stays unfinished (the store runs it again at the next start)."""
    backend = StubBackend("b1")
    s = make([backend])
    running = submit(s, 1, "r")
    queued = submit(s, 1, "q")
    await settle()
    assert running.state is JobState.RUNNING
    await s.stop()
    assert running.state is JobState.RUNNING and running.pausing and not running.is_final
    assert queued.state is JobState.QUEUED and queued.pausing and s.position(queued) == 1
    assert backend.interrupts == 1 and backend.started == ["r"]
    with pytest.raises(Refused) as info:
        s.admit(2)
    assert info.value.limit == "shutdown"


async def test_a_timeout_interrupts_the_webui_and_sends_nothing_until_it_is_idle() -> None:
    """WEBUI_TIMEOUT: the WebUI keeps rendering a request its client gave up on, so it is interrupted
    and gets nothing more until /progress says it is idle: never two generations in flight."""
    backend = StubBackend("b1")
    backend.busy_polls = 3  # /progress reports the abandoned job three more times
    s = make([backend], drain_interval=0.01)
    try:
        backend.fail_next = WebUITimeoutError("did not finish within 1 s")
        first = submit(s, 1, "slow")
        await first.wait_done(5)
        assert first.state is JobState.FAILED and "did not finish" in english(first.error.message)
        assert backend.interrupts == 1
        second = submit(s, 2, "next")
        await settle()
        assert second.state is JobState.QUEUED and s.backend_status()[0].draining  # still busy: nothing sent
        for _ in range(200):
            await asyncio.sleep(0.01)
            if second.state is JobState.RUNNING:
                break
        assert second.state is JobState.RUNNING and backend.idle_polls_seen >= 1
        assert backend.started == ["next"]
        backend.gates.setdefault("next", asyncio.Event()).set()
        await second.wait_done(5)
        assert backend.max_in_flight == 1
    finally:
        await s.stop()
