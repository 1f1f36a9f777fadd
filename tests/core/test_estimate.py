"""Job durations learned from finished jobs, and the queue estimates built on them."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from bot.core import estimate as est
from bot.core import scheduler as sched
from bot.core.estimate import Estimator, work_of
from bot.core.jobs import DrawRequest, Job, JobProgress, JobState, Origin, UpscaleRequest
from bot.core.scheduler import Scheduler
from bot.errors import Refused, WebUIServerError
from bot.webui.client import Progress

pytestmark = pytest.mark.timeout(30)


def draw(width: int = 512, height: int = 512, steps: int = 20, batch: int = 1, **extra: Any) -> DrawRequest:
    return DrawRequest({"prompt": "p", "width": width, "height": height, "steps": steps, "batch_size": batch,
                        **extra})


def true_seconds(request: DrawRequest, overhead: float = 0.8, per_unit: float = 0.12) -> float:
    return overhead + per_unit * (work_of(request) or 0)


# ---------------------------------------------------------------- the work of a request
def test_work_counts_pixels_steps_images_the_hires_pass_and_img2img_strength() -> None:
    base = work_of(draw())
    assert base == pytest.approx(512 * 512 * 20 / 1e6)
    assert work_of(draw(batch=3)) == pytest.approx(3 * base)
    assert work_of(draw(steps=40)) == pytest.approx(2 * base)
    hires = draw(enable_hr=True, hr_scale=2.0, hr_second_pass_steps=0)
    assert work_of(hires) == pytest.approx(base * (1 + 4))  # the hires pass: 4x the pixels, the same steps
    assert work_of(draw(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=10)) == pytest.approx(
        base + 768 * 768 * 10 / 1e6)
    img2img = DrawRequest({"width": 512, "height": 512, "steps": 20, "denoising_strength": 0.5}, init_image="ab")
    assert work_of(img2img) == pytest.approx(base / 2)  # A1111 samples strength x steps
    upscale = UpscaleRequest("ab", "a cat\nSteps: 20, Sampler: Euler, Size: 512x768, Seed: 1", scale=2.0)
    assert work_of(upscale) == pytest.approx(512 * 768 * 4 / 1e6)
    hires_source = UpscaleRequest("ab", "x\nSteps: 20, Size: 512x512, Hires upscale: 2, Seed: 1", scale=2.0)
    assert work_of(hires_source) == pytest.approx(1024 * 1024 * 4 / 1e6)
    assert work_of(UpscaleRequest("ab", None)) is None  # size unknown: the model assumes a typical one


# ---------------------------------------------------------------- the model
def test_three_jobs_of_different_sizes_predict_a_fourth_within_20_percent() -> None:
    rng = random.Random(7)
    e = Estimator()
    for request in (draw(512, 512, 20), draw(768, 768, 25), draw(1024, 768, 30)):
        e.observe("b1", request, true_seconds(request) * rng.uniform(0.95, 1.05))
    for fourth in (draw(640, 640, 28), draw(512, 512, 10, batch=2), draw(1024, 1024, 40)):
        predicted = e.predict("b1", fourth)
        assert predicted == pytest.approx(true_seconds(fourth), rel=0.2), fourth.payload


def test_one_sample_means_proportional() -> None:
    e = Estimator()
    e.observe("b1", draw(), 3.0)
    assert e.predict("b1", draw()) == pytest.approx(3.0)
    assert e.predict("b1", draw(steps=40)) == pytest.approx(6.0)
    assert e.predict("b1", draw(1024, 1024)) == pytest.approx(12.0)


def test_unknown_is_none() -> None:
    e = Estimator()
    assert e.predict("b1", draw()) is None
    assert e.predict_anywhere("b1", draw()) is None
    e.observe("b1", draw(), 3.0)
    assert e.predict("b2", draw()) is None  # no job finished on b2
    assert e.predict("b1", UpscaleRequest("ab", None)) is None  # no upscale finished anywhere
    assert e.predict_anywhere("b1", UpscaleRequest("ab", None)) is None
    assert e.predict_anywhere("b2", draw()) == pytest.approx(3.0)  # a new backend is taken to be like b1


def test_backends_are_kept_apart() -> None:
    e = Estimator()
    for request in (draw(), draw(768, 768), draw(steps=30)):
        e.observe("fast", request, true_seconds(request, per_unit=0.05))
        e.observe("slow", request, true_seconds(request, per_unit=0.5))
    request = draw(640, 640)
    assert e.predict("fast", request) == pytest.approx(true_seconds(request, per_unit=0.05), rel=0.01)
    assert e.predict("slow", request) == pytest.approx(true_seconds(request, per_unit=0.5), rel=0.01)
    e.observe("up", UpscaleRequest("ab", "x\nSize: 512x512"), 1.5)
    assert e.predict("up", UpscaleRequest("ab", "x\nSize: 512x512", scale=4.0)) == pytest.approx(6.0)
    assert e.predict("up", draw()) is None  # an upscale says nothing of a draw


def test_a_model_load_or_an_odd_job_does_not_wreck_the_fit() -> None:
    e = Estimator()
    e.observe("b1", draw(), 30.0)  # the first job waited for a model load
    e.observe("b1", draw(), 3.0)
    assert e.predict("b1", draw()) == pytest.approx(16.5)  # two samples: no telling which one is odd
    e.observe("b1", draw(), 3.0)
    assert e.predict("b1", draw()) == pytest.approx(3.0)  # three: the median
    e.observe("b1", draw(), 3.0)
    e.observe("b1", draw(), 3600.0)  # one job that hung on the WebUI
    assert e.predict("b1", draw()) == pytest.approx(3.0)
    model = e.model("b1", "draw")
    assert model is not None and model.samples[-1][1] == pytest.approx(3.0 * est.CLIP)  # clipped on the way in


def test_the_fit_follows_a_backend_that_got_slower() -> None:
    e = Estimator()
    for _ in range(est.WINDOW):
        e.observe("b1", draw(), 3.0)
    for _ in range(est.WINDOW // 2 + 1):
        e.observe("b1", draw(), 6.0)
    assert e.predict("b1", draw()) == pytest.approx(6.0)


def test_state_is_bounded() -> None:
    e = Estimator()
    rng = random.Random(1)
    for _ in range(1000):
        request = draw(rng.choice((512, 768)), 512, rng.randint(10, 40))
        e.observe("b1", request, true_seconds(request))
    model = e.model("b1", "draw")
    assert model is not None and len(model.samples) == est.WINDOW
    for i in range(est.MAX_MODELS * 3):
        e.observe(f"backend {i}", draw(), 3.0)
    assert len(e) == est.MAX_MODELS
    assert e.model("backend 0", "draw") is None and e.model(f"backend {est.MAX_MODELS * 3 - 1}", "draw")


def test_nothing_measured_is_not_a_sample() -> None:
    e = Estimator()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        e.observe("b1", draw(), bad)
    assert e.predict("b1", draw()) is None


# ---------------------------------------------------------------- the scheduler's estimates
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Stub:
    """A WebUI client whose jobs wait for the test (`release`), or fail."""

    def __init__(self, name: str) -> None:
        self.display_url = name
        self.gates: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()

    async def progress(self, *, skip_current_image: bool = True) -> Progress:
        return Progress(0.0, 0.0, {"job_count": 0}, None, None)

    async def interrupt(self) -> None:
        pass

    def release(self, job: Job) -> None:
        self.gates.setdefault(job.id, asyncio.Event()).set()

    async def run(self, job: Job) -> str:
        await self.gates.setdefault(job.id, asyncio.Event()).wait()
        if job.id in self.fail:
            raise WebUIServerError("boom", status=500)
        return "ok"


async def runner(job: Job, client: Any) -> str:
    return await client.run(job)


def make(backends: list[Stub], clock: Clock, **kw: Any) -> Scheduler:
    s = Scheduler(backends, runner, rate=1000, per=60.0, max_queued_per_user=kw.pop("cap", 1000),  # type: ignore[arg-type]
                  progress_interval=3600.0, clock=clock, **kw)
    s.start()
    return s


def submit(s: Scheduler, user: int, request: DrawRequest | None = None) -> Job:
    return s.submit(s.admit(user), request or draw(), Origin(user, 1))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def finish(s: Scheduler, backend: Stub, job: Job, clock: Clock, seconds: float) -> None:
    await settle()
    assert job.state is JobState.RUNNING
    clock.now += seconds
    backend.release(job)
    await job.wait_done(5)
    await settle()


async def test_no_estimate_until_a_job_finished_then_one_from_measured_durations() -> None:
    clock, b = Clock(), Stub("b1")
    s = make([b], clock)
    try:
        first = submit(s, 1)
        await settle()
        queued = submit(s, 2)
        assert s.estimate_start(queued) is None  # nothing finished yet: unknown, not 20 s
        await finish(s, b, first, clock, 3.0)
        assert s.durations.predict("b1", draw()) == pytest.approx(3.0)
        behind = submit(s, 3)  # `queued` is running now, 0 s in
        assert s.estimate_start(behind) == pytest.approx(3.0)
        clock.now += 1.0
        assert s.estimate_start(behind) == pytest.approx(2.0)
        assert s.estimate_start(queued) is None  # running, not waiting
    finally:
        await s.stop()


async def test_a_running_job_at_half_of_10_seconds_leaves_about_5() -> None:
    clock, b = Clock(), Stub("b1")
    s = make([b], clock)
    try:
        s.durations.observe("b1", draw(), 10.0)
        running = submit(s, 1)
        await settle()
        queued = submit(s, 2)
        clock.now += 5.0
        running.progress = JobProgress(0.5, 10, 20, None)
        assert s.estimate_start(queued) == pytest.approx(5.0, abs=0.5)
        running.progress = JobProgress(0.5, 10, 20, None)
        clock.now += 5.0  # it is slower than the model says: its own pace weighs in as it gets further
        running.progress = JobProgress(0.9, 18, 20, None)
        left = s.estimate_start(queued)
        assert left is not None and 1.0 < left < 10 * 0.1 / 0.9 + 0.1
    finally:
        await s.stop()


async def test_failed_jobs_teach_nothing() -> None:
    clock, b = Clock(), Stub("b1")
    s = make([b], clock)
    try:
        job = submit(s, 1)
        b.fail.add(job.id)
        await finish(s, b, job, clock, 50.0)
        assert job.state is JobState.FAILED and s.durations.predict("b1", draw()) is None
    finally:
        await s.stop()


async def test_jobs_ahead_are_spread_over_the_backends() -> None:
    clock, one, two = Clock(), Stub("one"), Stub("two")
    s = make([one, two], clock)
    try:
        for name in ("one", "two"):
            s.durations.observe(name, draw(), 4.0)
        a, b = submit(s, 1), submit(s, 2)
        await settle()
        assert a.state is b.state is JobState.RUNNING
        clock.now += 2.0  # both are 2 s into their 4 s
        ahead = [submit(s, 10 + i) for i in range(3)]
        target = submit(s, 99)
        # in 2 s ahead[0] and ahead[1] start, in 6 s ahead[2] and the target, in 10 s the one after them
        assert s.estimate_start(ahead[0]) == s.estimate_start(ahead[1]) == pytest.approx(2.0)
        assert s.estimate_start(ahead[2]) == s.estimate_start(target) == pytest.approx(6.0)
        assert s.estimate_start(submit(s, 5)) == pytest.approx(10.0)
    finally:
        await s.stop()


async def test_a_long_line_is_simulated_up_to_the_cap_then_extrapolated(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, b = Clock(), Stub("b1")
    s = make([b], clock)
    try:
        s.durations.observe("b1", draw(), 2.0)
        submit(s, 0)
        await settle()
        line = [submit(s, 1 + i) for i in range(50)]
        exact = s.estimate_start(line[-1])
        assert exact == pytest.approx(2.0 + 49 * 2.0)
        monkeypatch.setattr(sched, "ESTIMATE_AHEAD", 10)
        assert s.estimate_start(line[-1]) == pytest.approx(exact)
    finally:
        await s.stop()


async def test_retry_in_comes_from_the_model_with_a_fallback() -> None:
    clock, b = Clock(), Stub("b1")
    s = make([b], clock, cap=2)
    try:
        jobs = [submit(s, 1), submit(s, 1)]
        await settle()
        with pytest.raises(Refused) as info:
            s.admit(1)
        assert info.value.retry_in == pytest.approx(sched.FALLBACK_WAIT)  # nothing known yet
        jobs[0].progress = JobProgress(0.25, 5, 20, 9.0)
        with pytest.raises(Refused) as info:
            s.admit(1)
        assert info.value.retry_in == pytest.approx(9.0)  # the WebUI's own ETA
        await finish(s, b, jobs[0], clock, 3.0)
        jobs.append(submit(s, 1))
        clock.now += 1.0
        with pytest.raises(Refused) as info:
            s.admit(1)
        assert info.value.retry_in == pytest.approx(2.0)  # jobs[1] is 1 s into its 3 s
    finally:
        await s.stop()
