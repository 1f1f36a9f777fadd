"""WebUIClient against a real demo WebUI on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import socket
from typing import Any

import orjson
import pytest
from PIL import Image

from bot.demo import DemoWebUI
from bot.discord_app.catalog import english
from bot.text import T
from bot.webui.client import (
    ExtraResult,
    GenerationResult,
    Progress,
    WebUIAuthError,
    WebUIClient,
    WebUIConnectionError,
    WebUIError,
    WebUIResponseError,
    WebUIServerError,
    WebUITimeoutError,
    WebUIValidationError,
    decode_generation_response,
)

SMALL = {"prompt": "a red fox", "negative_prompt": "blurry", "steps": 3, "width": 64, "height": 64,
         "sampler_name": "Euler a", "cfg_scale": 7, "seed": 1000}


def with_credentials(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def parameters_chunk(data: bytes) -> str:
    return Image.open(io.BytesIO(data)).text["parameters"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_txt2img_result(demo_webui: DemoWebUI) -> None:
    async with WebUIClient(demo_webui.url) as client:
        result = await client.txt2img({**SMALL, "batch_size": 2, "n_iter": 2})
    assert isinstance(result, GenerationResult)
    assert len(result.images) == 4 and all(isinstance(i, bytes) for i in result.images)
    assert all(i.startswith(b"\x89PNG") for i in result.images)
    assert [parameters_chunk(i) for i in result.images] == result.infotexts
    assert result.seeds == [1000, 1001, 1002, 1003]
    assert result.info["sampler_name"] == "Euler a" and result.info["all_seeds"] == result.seeds
    assert result.parameters["n_iter"] == 2 and result.parameters["cfg_scale"] == 7.0
    assert result.index_of_first_image == 0 and result.elapsed > 0
    assert "Seed: 1003" in result.infotexts[3]
    assert client.last_version == "v1.10.1"
    assert demo_webui.received == [("txt2img", {**SMALL, "batch_size": 2, "n_iter": 2})]
    assert demo_webui.responses[-1].images == result.images
    assert demo_webui.responses[-1].infotexts == result.infotexts


async def test_grid_first_when_saving(demo_webui: DemoWebUI) -> None:
    async with WebUIClient(demo_webui.url) as client:
        result = await client.txt2img({**SMALL, "batch_size": 2, "save_images": True})
    assert result.index_of_first_image == 1 and len(result.images) == 3 and len(result.infotexts) == 3
    assert Image.open(io.BytesIO(result.images[0])).size == (128, 64)
    assert [parameters_chunk(i) for i in result.images] == result.infotexts


async def test_img2img_extras_png_info(demo_webui: DemoWebUI) -> None:
    async with WebUIClient(demo_webui.url) as client:
        first = await client.txt2img(SMALL)
        init = base64.b64encode(first.images[0]).decode()
        edited = await client.img2img({**SMALL, "init_images": [init], "denoising_strength": 0.3})
        assert "Denoising strength: 0.3" in edited.infotexts[0]
        extra = await client.extra_single_image(first.images[0], upscaler_1="Lanczos", upscaling_resize=1.5)
        assert isinstance(extra, ExtraResult) and Image.open(io.BytesIO(extra.image)).size == (96, 96)
        assert "Lanczos" in extra.html_info
        info = await client.png_info(first.images[0])
    assert info["info"] == first.infotexts[0]
    assert info["parameters"]["Seed"] == "1000" and info["parameters"]["Prompt"] == "a red fox"


async def test_catalogue_calls(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory()
    async with WebUIClient(demo.url + "/") as client:
        models = await client.sd_models()
        assert [m["model_name"] for m in models][0] == "v1-5-pruned-emaonly"
        assert len(await client.samplers()) == 20
        assert [s["label"] for s in await client.schedulers()][:3] == ["Automatic", "Uniform", "Karras"]
        assert "R-ESRGAN 4x+" in [u["name"] for u in await client.upscalers()]
        assert len(await client.prompt_styles()) >= 2
        assert [lora["alias"] for lora in await client.loras()] == ["add_detail", "pixel-art-xl"]
        assert (await client.options())["sd_model_checkpoint"] == models[0]["title"]
        assert await client.sd_vae() and await client.latent_upscale_modes()
        version = await client.version_info()
        assert (version["flavour"], version["schedulers"], version["api"], version["models"]) == ("a1111", True, True, 3)

    sdnext = await demo_webui_factory(dialect="sdnext")
    async with WebUIClient(sdnext.url) as client:
        # no /schedulers there: the schedule types sdcord can apply through SD.Next's sigma option
        assert [s["label"] for s in await client.schedulers()] == ["Automatic", "Karras", "Exponential", "Beta"]
        assert client.flavour == "sdnext"
        assert "Same as primary" not in [s["name"] for s in await client.samplers()]  # hires-only
        version = await client.version_info()
        assert (version["kind"], version["flavour"], version["version"], version["hash"]) == (
            "webui", "sdnext", "2025-03-02", "431bcc36")

    forge = await demo_webui_factory(dialect="forge")
    async with WebUIClient(forge.url) as client:
        assert await client.sd_vae() == []  # Forge removed /sd-vae
        assert (await client.version_info())["flavour"] == "forge"
        assert (await client.txt2img(SMALL)).info["version"].startswith("f2.0.1v1.10.1")


# ----------------------------------------------------------------------------- errors


async def test_refused_connection() -> None:
    port = free_port()
    async with WebUIClient(f"http://127.0.0.1:{port}", connect_timeout=2) as client:
        with pytest.raises(WebUIConnectionError) as caught:
            await client.txt2img(SMALL)
        with pytest.raises(WebUIConnectionError):
            await client.sd_models()
        with pytest.raises(WebUIConnectionError):
            await client.version_info()
    assert caught.value.message == T("failure.unreachable")  # plain words for the user; where and why in the detail
    assert f"can't reach http://127.0.0.1:{port}" in caught.value.detail and "--api" in caught.value.detail
    assert caught.value.backend == f"http://127.0.0.1:{port}" and caught.value.status is None


async def test_auth_errors_and_url_credentials(demo_webui_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    demo = await demo_webui_factory(auth=("alice", "s3cr3t"))
    async with WebUIClient(demo.url) as client:
        with pytest.raises(WebUIAuthError) as missing:
            await client.txt2img(SMALL)
        assert await client.loras()  # not behind --api-auth
    assert missing.value.status == 401 and missing.value.detail == "Not authenticated"
    assert missing.value.message == T("failure.auth_missing")

    async with WebUIClient(demo.url, auth=("alice", "wrong-pw")) as client:
        with pytest.raises(WebUIAuthError) as wrong:
            await client.sd_models()
    assert wrong.value.detail == "Incorrect username or password" and wrong.value.message == T("failure.auth")
    assert "wrong-pw" not in repr(wrong.value) + str(wrong.value) + wrong.value.backend

    url = with_credentials(demo.url, "alice", "s3cr3t")
    async with WebUIClient(url) as client:
        assert "s3cr3t" not in client.display_url and "alice" not in client.display_url
        assert client.display_url == demo.url
        result = await client.txt2img(SMALL)
        assert len(result.images) == 1
    async with WebUIClient(with_credentials(demo.url, "bob", "x"), auth=("alice", "s3cr3t")) as client:
        assert await client.sd_models()  # explicit auth wins
    assert "s3cr3t" not in caplog.text and "iVBORw0KGgo" not in caplog.text


async def test_forge_401_with_www_authenticate(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(auth=("a", "b"), dialect="forge")
    async with WebUIClient(demo.url) as client:
        with pytest.raises(WebUIAuthError) as caught:
            await client.progress()
    assert caught.value.detail == "Not authenticated"


async def test_422_list_forms_and_string_form(demo_webui_factory: Any) -> None:
    bad = {**SMALL, "steps": "twenty", "styles": "not-a-list"}
    a1111 = await demo_webui_factory()
    async with WebUIClient(a1111.url) as client:
        with pytest.raises(WebUIValidationError) as caught:
            await client.txt2img(bad)
        assert caught.value.fields == [("styles", "value is not a valid list"), ("steps", "value is not a valid integer")]
        assert caught.value.status == 422
        # the user sees which fields, never pydantic's words (they stay in the detail, for the log)
        assert english(caught.value.message) == "The image server rejected the request (fields: styles, steps)."
        with pytest.raises(WebUIValidationError) as caught:
            await client.txt2img({**SMALL, "script_name": "nope"})
        assert caught.value.fields == [] and caught.value.detail == "Script 'nope' not found"
        assert caught.value.message == T("failure.rejected")
    forge = await demo_webui_factory(dialect="forge")
    async with WebUIClient(forge.url) as client:
        with pytest.raises(WebUIValidationError) as caught:
            await client.txt2img({**SMALL, "steps": 20.5})
    assert caught.value.fields == [("steps", "Input should be a valid integer, got a number with a fractional part")]


@pytest.mark.parametrize("dialect", ["a1111", "forge", "sdnext"])
async def test_500_shapes_and_out_of_memory(demo_webui_factory: Any, dialect: str) -> None:
    demo = await demo_webui_factory(dialect=dialect)
    demo.inject_error("txt2img", 500)
    async with WebUIClient(demo.url) as client:
        with pytest.raises(WebUIServerError) as caught:
            await client.txt2img(SMALL)
        err = caught.value
        assert err.out_of_memory and err.error_type == "OutOfMemoryError" and err.status == 500
        assert err.detail.startswith("CUDA out of memory")
        assert "out of GPU memory" in english(err.message)
        # hires without denoising_strength: A1111/Forge fail after pass 1 (TypeError); SD.Next has a default
        # strength and fails on the missing hr_upscaler instead (`p.hr_upscaler.lower()` in process_hires)
        expected = "AttributeError" if dialect == "sdnext" else "TypeError"
        with pytest.raises(WebUIServerError) as caught:
            await client.txt2img({**SMALL, "enable_hr": True})
        assert not caught.value.out_of_memory and caught.value.error_type == expected
        assert english(caught.value.message) == f"The image server failed ({expected})."
    assert len(demo.received) == 2  # never retried


async def test_never_retries_a_generation_after_a_failure(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory()
    demo.inject_error("txt2img", 502, b"<html>Bad Gateway</html>")
    demo.inject_error("img2img", 503)
    async with WebUIClient(demo.url) as client:
        with pytest.raises(WebUIServerError) as caught:
            await client.txt2img(SMALL)
        assert caught.value.status == 502 and caught.value.detail == "<html>Bad Gateway</html>"
        with pytest.raises(WebUIServerError):
            await client.img2img({**SMALL, "init_images": ["x"]})
    assert [r[0] for r in demo.received] == ["txt2img", "img2img"]
    assert demo.responses == []
    assert demo.jobs_served == 0


async def test_other_statuses(demo_webui: DemoWebUI) -> None:
    async with WebUIClient(demo_webui.url + "/wrong/prefix") as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.sd_models()
        with pytest.raises(WebUIResponseError):
            await client.version_info()
    assert caught.value.status == 404 and "--api" in english(caught.value.message)
    async with WebUIClient(demo_webui.url) as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.img2img(SMALL)  # no init_images
        assert caught.value.status == 404 and caught.value.detail == "Init image not found"
        demo_webui.inject_error("sd-models", 200, "not a list", times=2)
        with pytest.raises(WebUIResponseError):
            await client.sd_models()
        with pytest.raises(WebUIResponseError) as caught:
            await client.version_info()
        assert "like a Stable Diffusion WebUI" in english(caught.value.message)


async def test_timeout_and_interrupt(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.05)
    async with WebUIClient(demo.url, generation_timeout=0.3) as client:
        with pytest.raises(WebUITimeoutError) as caught:
            await client.txt2img({**SMALL, "steps": 200})
        assert "0.3 s" in english(caught.value.message)
        progress = await client.progress()
        assert not progress.idle  # the server keeps running the job
        await client.interrupt()
        for _ in range(100):
            if (await client.progress()).idle:
                break
            await asyncio.sleep(0.02)
        assert (await client.progress()).idle
    assert len(demo.received) == 1


async def test_progress_preview_and_idle(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.02)
    async with WebUIClient(demo.url) as client:
        idle = await client.progress()
        assert isinstance(idle, Progress) and idle.idle and idle.job_count == 0 and idle.current_image is None
        job = asyncio.create_task(client.txt2img({**SMALL, "steps": 15}))
        preview = None
        while not job.done():
            progress = await client.progress(skip_current_image=False)
            if progress.current_image is not None:
                preview = progress
                break
            await asyncio.sleep(0.01)
        assert preview is not None and not preview.idle
        assert preview.current_image.startswith(b"\x89PNG") and preview.sampling_steps == 15
        assert 0 < preview.progress <= 1 and preview.state["job"] == "scripts_txt2img"
        skipped = await client.progress()
        assert skipped.current_image is None
        await job
        after = await client.progress()
        assert after.idle and after.progress == 0.0 and after.sampling_step == 14


async def test_interrupt_returns_partial_result(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.02)
    async with WebUIClient(demo.url) as client:
        job = asyncio.create_task(client.txt2img({**SMALL, "steps": 40, "n_iter": 3}))
        while demo.state.sampling_step < 2:
            await asyncio.sleep(0.005)
        await client.interrupt()
        result = await job
        assert len(result.images) == 1 and len(result.seeds) == 3
        await client.skip()  # harmless when idle


async def test_generation_concurrency_is_serialised_by_the_server(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.005)
    async with WebUIClient(demo.url) as client:
        results = await asyncio.gather(*(client.txt2img({**SMALL, "seed": s}) for s in range(3)))
    assert [r.seeds for r in results] == [[0], [1], [2]]
    assert demo.max_in_flight == 1


# ----------------------------------------------------------------------------- decoding


def test_decode_tolerates_strings_and_empty_info() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 20).decode()
    raw = orjson.dumps({"images": [png, "some extension text", 5, "data:image/png;base64," + png],
                        "parameters": {}, "info": ""})
    result = decode_generation_response(raw, 1.5)
    assert len(result.images) == 2 and result.info == {} and result.seeds == [] and result.elapsed == 1.5
    result = decode_generation_response(orjson.dumps({"images": [], "parameters": {}, "info": "{not json"}), 0)
    assert result.info == {} and result.images == []
    with pytest.raises(WebUIResponseError):
        decode_generation_response(b"<html>", 0)
    with pytest.raises(WebUIResponseError):
        decode_generation_response(b'{"images": "x"}', 0)


async def test_fast_and_general_decoding_agree(demo_webui: DemoWebUI) -> None:
    async with WebUIClient(demo_webui.url) as client:
        raw = (await client._request("POST", "sdapi/v1/txt2img", payload={**SMALL, "batch_size": 3},
                                     timeout=client._generation_t))[1]
    fast = decode_generation_response(raw, 1.0)
    general = decode_generation_response(json.dumps(json.loads(raw), indent=1).encode(), 1.0)
    assert fast == general and len(fast.images) == 3
    data = json.loads(raw)
    data["images"].insert(1, 'text with "quotes"')
    data["images"].append("")
    tricky = decode_generation_response(json.dumps(data, separators=(",", ":")).encode(), 1.0)
    assert tricky == fast
    empty = decode_generation_response(b'{"images":[],"parameters":{},"info":""}', 0.0)
    assert empty.images == [] and empty.info == {}


def test_base_url_forms() -> None:
    client = WebUIClient("127.0.0.1:7860")
    assert client.display_url == "http://127.0.0.1:7860"
    client = WebUIClient("https://u:p%40ss@sd.example:8443/webui/?x=1")
    assert client.display_url == "https://sd.example:8443/webui"
    assert client._auth_pair == ("u", "p@ss")
    assert WebUIClient("http://h:7860/sdapi/v1").display_url == "http://h:7860"
    assert WebUIClient("http://h/sd/sdapi/v1/").display_url == "http://h/sd"
    with pytest.raises(ValueError):
        WebUIClient("ftp://host")
    err = WebUIError("msg", backend="b", status=1, detail="d")
    assert str(err) == "msg: d" and err.detail == "d"  # str() is for the log: the message key and the detail


async def test_decode_timing_is_reasonable_for_a_big_batch(demo_webui: DemoWebUI) -> None:
    async with WebUIClient(demo_webui.url) as client:
        result = await client.txt2img({**SMALL, "width": 512, "height": 512, "batch_size": 2})
    assert [Image.open(io.BytesIO(i)).size for i in result.images] == [(512, 512)] * 2
    assert json.loads(json.dumps(result.info))["width"] == 512
