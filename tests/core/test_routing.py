"""The router: a job goes only where it can run; one that fits no backend is refused, naming what is missing;
an idle backend with the job's checkpoint loaded is preferred without overtaking anyone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.core.catalogue import Catalogue, CatalogueCache, union
from bot.core.jobs import DrawRequest, Job, Origin, UpscaleRequest
from bot.core.routing import Router
from bot.core.scheduler import Scheduler
from bot.discord_app.catalog import english
from bot.errors import OptionError

SD15 = {"title": "v1-5.safetensors [aaaa]", "model_name": "v1-5", "hash": "aaaa"}
SDXL = {"title": "sdxl.safetensors [bbbb]", "model_name": "sdxl", "hash": "bbbb"}


class FakeBackend:
    """Only what the router and the scheduler ask of a backend."""

    def __init__(self, name: str, *, kind: str = "webui", refuses: tuple[str, ...] = ()) -> None:
        self.display_url = name
        self.name = name
        self.kind = kind
        self.refuses = refuses
        self.ran: list[str] = []

    def missing(self, request_kind: str, payload: dict[str, Any], asked: Any) -> list[str]:
        return [r for r in self.refuses if r in asked or (r == "upscale" and request_kind == "upscale")]

    async def progress(self, **_: Any) -> Any:
        return type("P", (), {"idle": True, "job_count": 0, "progress": 0.0})()

    async def interrupt(self) -> None:
        pass


def catalogue_of(clients: list[FakeBackend], lists: dict[str, Catalogue], loaded: dict[str, str] | None = None):
    cache = CatalogueCache(clients)
    cache.by_backend.update(lists)
    cache.loaded.update(loaded or {})
    cache.current = union(lists.values())
    return cache


def request(model: str | None = None, *, asked: tuple[str, ...] = (), **payload: Any) -> DrawRequest:
    body: dict[str, Any] = {"prompt": "a cat", "sampler_name": "Euler", "scheduler": "Karras", **payload}
    if model:
        body["override_settings"] = {"sd_model_checkpoint": model}
        body["override_settings_restore_afterwards"] = True
        asked = (*asked, "model")
    return DrawRequest(body, asked=asked)


def job(req: Any, n: int = 0, user: int = 1) -> Job:
    return Job(f"{n:08x}", Origin(user, 1), req, n, 0, time.monotonic())


def test_a_job_fits_only_backends_that_have_its_model_lora_and_fields() -> None:
    a, b = FakeBackend("a"), FakeBackend("b")
    form = FakeBackend("f", kind="form", refuses=("negative_prompt", "model", "upscale"))
    cache = catalogue_of([a, b, form], {
        "a": Catalogue(models=[SD15], loras=[{"name": "add_detail"}]),
        "b": Catalogue(models=[SDXL], loras=[{"name": "pixel-art"}], upscalers=[{"name": "R-ESRGAN 4x+"}]),
    })
    router = Router([a, b, form], cache)
    assert router.missing("a", request("sdxl")) == ["model"]
    assert router.missing("b", request("sdxl")) == []
    assert router.missing("f", request()) == []  # lists it doesn't report don't count against it
    assert router.missing("f", request("sdxl")) == ["model"]
    assert router.missing("b", request(prompt="x <lora:add_detail:0.8>")) == ["lora"]
    assert router.missing("f", request(negative_prompt="ugly", asked=("negative_prompt",))) == ["negative_prompt"]
    assert router.missing("f", UpscaleRequest("d" * 64, None)) == ["upscale"]
    assert router.missing("a", UpscaleRequest("d" * 64, None, upscaler="R-ESRGAN 4x+")) == []  # a lists none
    router.check(request("sdxl", prompt="x"))  # b can
    with pytest.raises(OptionError) as info:
        router.check(request("sdxl", prompt="x <lora:add_detail:1>"))  # the model on b, the LoRA on a
    assert english(info.value.problems[0]).startswith("None of the image servers can do this: `")


def test_the_bots_default_sampler_does_not_count_only_an_asked_one_does() -> None:
    a = FakeBackend("a")
    cache = catalogue_of([a], {"a": Catalogue(models=[SD15], samplers=[{"name": "DPM++ 2M"}])})
    router = Router([a], cache)
    assert router.missing("a", request(sampler_name="Euler")) == []
    assert router.missing("a", request(sampler_name="Euler", asked=("sampler",))) == ["sampler"]


def test_union_keeps_each_item_once() -> None:
    merged = union([Catalogue(models=[SD15], samplers=[{"name": "Euler"}]),
                    Catalogue(models=[SDXL, SD15], samplers=[{"name": "euler"}, {"name": "DDIM"}])])
    assert [m["title"] for m in merged.models] == [SD15["title"], SDXL["title"]]
    assert [s["name"] for s in merged.samplers] == ["Euler", "DDIM"]


async def run_pool(backends: list[FakeBackend], router: Router, jobs: list[Job]) -> dict[str, list[str]]:
    done = asyncio.Event()

    async def runner(j: Job, client: Any) -> Any:
        client.ran.append(j.id)
        await asyncio.sleep(0.01)
        if sum(len(b.ran) for b in backends) == len(jobs):
            done.set()
        return None

    scheduler = Scheduler(backends, runner, router=router, rate=100, max_queued_per_user=100)
    for j in jobs:
        scheduler.jobs[j.id] = j
        scheduler.queue.register(j)
        scheduler.queue.push(j)
    scheduler.start()
    try:
        scheduler._notify()
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await scheduler.stop()
    return {b.name: b.ran for b in backends}


async def test_jobs_for_a_model_only_one_backend_has_never_go_elsewhere() -> None:
    a, b = FakeBackend("a"), FakeBackend("b")
    cache = catalogue_of([a, b], {"a": Catalogue(models=[SD15]), "b": Catalogue(models=[SDXL])})
    jobs = [job(request("sdxl" if n % 3 == 0 else "v1-5"), n, user=n % 4) for n in range(12)]
    ran = await run_pool([a, b], Router([a, b], cache), jobs)
    sdxl = {j.id for j in jobs if "sdxl" in str(j.request.payload)}
    assert set(ran["b"]) == sdxl and not sdxl & set(ran["a"])


async def test_an_idle_backend_with_the_checkpoint_loaded_is_preferred() -> None:
    a, b = FakeBackend("a"), FakeBackend("b")
    both = Catalogue(models=[SD15, SDXL])
    cache = catalogue_of([a, b], {"a": both, "b": both}, loaded={"a": SD15["title"], "b": SDXL["title"]})
    jobs = [job(request("sdxl"), 0), job(request("v1-5"), 1, user=2)]
    ran = await run_pool([a, b], Router([a, b], cache), jobs)
    assert ran == {"a": [jobs[1].id], "b": [jobs[0].id]}


async def test_affinity_reorders_only_within_a_fairness_round() -> None:
    a = FakeBackend("a")
    cache = catalogue_of([a], {"a": Catalogue(models=[SD15, SDXL])}, loaded={"a": SD15["title"]})
    same_round = [job(request("sdxl"), 0, user=1), job(request("v1-5"), 1, user=2)]  # both round 0
    ran = await run_pool([a], Router([a], cache), same_round)
    assert ran["a"] == [same_round[1].id, same_round[0].id]  # no switch first; nobody waits a round longer
    b = FakeBackend("a")
    cache = catalogue_of([b], {"a": Catalogue(models=[SD15, SDXL])}, loaded={"a": SD15["title"]})
    later = [job(request("sdxl"), 0, user=1), with_round(job(request("v1-5"), 1, user=1), 1)]
    ran = await run_pool([b], Router([b], cache), later)
    assert ran["a"] == [later[0].id, later[1].id]  # the user's next round never overtakes


def with_round(j: Job, round_: int) -> Job:
    j.round = round_
    return j


class CatalogClient:
    """A backend's catalogue routes; `down` ones fail like an unreachable WebUI."""

    def __init__(self, name: str, models: list[dict[str, Any]], *, down: bool = False) -> None:
        self.display_url, self.models, self.down, self.asked = name, models, down, 0

    async def sd_models(self) -> list[dict[str, Any]]:
        self.asked += 1
        if self.down:
            from bot.errors import WebUIConnectionError
            from bot.text import T

            raise WebUIConnectionError(T("failure.unreachable"), backend=self.display_url, reached=False)
        return self.models

    async def _empty(self) -> list[dict[str, Any]]:
        return []

    samplers = schedulers = upscalers = prompt_styles = loras = _empty

    async def options(self) -> dict[str, Any]:
        return {"sd_model_checkpoint": self.models[0]["title"] if self.models else None}


async def test_a_down_backend_does_not_make_every_command_wait_and_is_asked_again_when_back() -> None:
    up, down = CatalogClient("up", [SD15]), CatalogClient("down", [SDXL], down=True)
    cache = CatalogueCache([up, down], ttl=60)
    first = await cache.get()
    assert [m["title"] for m in first.models] == [SD15["title"]] and cache.loaded == {"up": SD15["title"]}
    for _ in range(5):
        await cache.get()  # fresh: neither the one that answered nor the one that just failed is asked again
    assert (up.asked, down.asked) == (1, 1)
    down.down = False
    cache.refresh_backend("down")  # the scheduler's health check saw it come back
    await asyncio.gather(*cache._backend_tasks.values())
    assert {m["title"] for m in (await cache.get()).models} == {SD15["title"], SDXL["title"]}
    assert cache.loaded["down"] == SDXL["title"]
