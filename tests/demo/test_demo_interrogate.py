"""/sdapi/v1/interrogate on the demo WebUI: A1111 v1.10.1's body, errors and queue behaviour, and captions that
follow the picture."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from PIL import Image

from bot.demo import DemoWebUI, render_image
from tests.demo.wire import b64png, post, request

NOT_FOUND = b'{"error":"HTTPException","detail":"Model not found","body":"","errors":""}'
INVALID = b'{"error":"HTTPException","detail":"Invalid encoded image","body":"","errors":""}'


async def caption(demo: DemoWebUI, image: Image.Image | str, model: str | None = None) -> str:
    payload: dict[str, Any] = {"image": image if isinstance(image, str) else b64png(image)}
    if model is not None:
        payload["model"] = model
    status, answer = await post(demo, "interrogate", payload)
    assert status == 200, answer
    assert list(answer) == ["caption"]
    return answer["caption"]


async def test_clip_gives_a_sentence_and_deepdanbooru_gives_sorted_tags(demo_webui: DemoWebUI) -> None:
    night = render_image(b"a", 96, 64)  # the demo's own pictures: skies over hills
    other = render_image(b"e", 64, 96)
    clip = await caption(demo_webui, night)  # "clip" is the default model
    assert clip.startswith("a wide painting of a ") and " sky over " in clip
    assert len(clip.split(", ")) == 5  # the BLIP sentence, then artist, flavor, medium, movement
    assert await caption(demo_webui, night, "clip") == clip  # deterministic
    assert await caption(demo_webui, "data:image/png;base64," + b64png(night)) == clip  # data URLs too
    other_clip = await caption(demo_webui, other)
    assert other_clip != clip and other_clip.startswith("a tall ")

    tags = (await caption(demo_webui, night, "deepdanbooru")).split(", ")
    assert tags == sorted(tags) and {"no humans", "scenery", "sky"} <= set(tags)
    assert all("_" not in t for t in tags)  # deepbooru_use_spaces
    assert tags != (await caption(demo_webui, other, "deepdanbooru")).split(", ")
    grey = Image.new("RGB", (50, 50), (128, 128, 128))
    grey_tags = await caption(demo_webui, grey, "deepdanbooru")
    assert {"greyscale", "monochrome"} <= set(grey_tags.split(", "))

    assert [route for route, _ in demo_webui.received] == ["interrogate"] * 7  # recorded like generations
    assert demo_webui.received[-1][1] == {"image": b64png(grey), "model": "deepdanbooru"}
    assert demo_webui.responses[-1].route == "interrogate"
    assert demo_webui.responses[-1].info == {"caption": grey_tags}


async def test_the_interrogate_options_shape_the_captions(demo_webui: DemoWebUI) -> None:
    night = render_image(b"b", 96, 64)  # a night sky: "star (sky)" has brackets to escape
    tags = (await caption(demo_webui, night, "deepdanbooru")).split(", ")
    assert "star \\(sky\\)" in tags
    status, _ = await post(demo_webui, "options", {"deepbooru_sort_alpha": False, "deepbooru_use_spaces": False,
                                                   "deepbooru_escape": False, "deepbooru_filter_tags": "no humans",
                                                   "interrogate_return_ranks": True,
                                                   "interrogate_clip_skip_categories": ["artists", "movements"]})
    assert status == 200
    ranked = (await caption(demo_webui, night, "deepdanbooru")).split(", ")
    assert "(star_(sky):" in " ".join(ranked) and not any(t.startswith("(no_humans:") for t in ranked)
    scores = [float(t.rsplit(":", 1)[1].rstrip(")")) for t in ranked]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5  # by score, over the threshold
    await post(demo_webui, "options", {"interrogate_deepbooru_score_threshold": 0.9})
    assert len((await caption(demo_webui, night, "deepdanbooru")).split(", ")) < len(ranked)
    clip = (await caption(demo_webui, night)).split(", ")
    assert len(clip) == 3 and all(part.startswith("(") and part.endswith(")") for part in clip[1:])


async def test_errors_are_a1111s(demo_webui: DemoWebUI, demo_webui_factory: Any) -> None:
    image = b64png(render_image(b"c", 64, 64))
    assert await request(demo_webui, "POST", "interrogate", {}) == (500, INVALID)  # image defaults to ""
    assert await request(demo_webui, "POST", "interrogate", {"image": "not base64!"}) == (500, INVALID)
    assert await request(demo_webui, "POST", "interrogate", {"image": image, "model": "blip"}) == (404, NOT_FOUND)
    assert await request(demo_webui, "POST", "interrogate", {"image": "x", "model": "blip"}) == (500, INVALID)
    status, raw = await request(demo_webui, "POST", "interrogate", {"image": None})
    assert status == 422 and json.loads(raw)["detail"] == [
        {"loc": ["body", "image"], "msg": "none is not an allowed value", "type": "type_error.none.not_allowed"}]
    no_booru = await demo_webui_factory(deepdanbooru=False)
    assert await request(no_booru, "POST", "interrogate", {"image": image, "model": "deepdanbooru"}) == \
        (404, NOT_FOUND)
    assert (await request(no_booru, "POST", "interrogate", {"image": image}))[0] == 200
    forge = await demo_webui_factory(dialect="forge")
    assert await request(forge, "POST", "interrogate", {"image": image, "model": "x"}) == \
        (404, b'{"detail":"Model not found"}')
    auth = await demo_webui_factory(auth=("u", "p"))
    assert (await request(auth, "POST", "interrogate", {"image": image}))[0] == 401


async def test_interrogation_holds_the_queue(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.01, interrogate_delay=0.25)
    image = b64png(render_image(b"d", 64, 64))
    clip = asyncio.create_task(post(demo, "interrogate", {"image": image}))
    while demo.in_flight == 0:
        await asyncio.sleep(0.005)
    generation = asyncio.create_task(post(demo, "txt2img", {"prompt": "x", "steps": 3, "width": 64, "height": 64}))
    state = json.loads((await request(demo, "GET", "progress"))[1])["state"]
    assert state["job"] == "interrogate" and state["job_count"] == -1  # the CLIP interrogator's state.begin
    assert (await clip)[0] == 200 and (await generation)[0] == 200
    assert demo.max_in_flight == 1 and demo.max_asked_at_once == 2 and demo.jobs_served == 2

    booru = asyncio.create_task(post(demo, "interrogate", {"image": image, "model": "deepdanbooru"}))
    while demo.in_flight == 0:
        await asyncio.sleep(0.005)
    state = json.loads((await request(demo, "GET", "progress"))[1])["state"]
    assert state["job"] == "" and state["job_count"] == 0  # DeepDanbooru never touches the state
    assert (await booru)[0] == 200
