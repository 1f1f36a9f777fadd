"""Wire-level checks of the demo WebUI against the reference fixtures (A1111 v1.10.1 unless noted)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import struct
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.demo import DemoConfig, DemoWebUI, create_app, demo_of, render_image
from tests.support.fixtures import fixture, fixture_bytes

API = "/sdapi/v1/"
FOX = {"prompt": "a watercolor painting of a red fox in an autumn forest", "negative_prompt": "blurry, lowres",
       "seed": 1234567890, "sampler_name": "Euler a", "steps": 20, "cfg_scale": 7, "width": 64, "height": 64,
       "batch_size": 2}


async def call(demo: DemoWebUI, method: str, route: str, *, body: Any = None, raw: bytes | None = None,
               headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
               params: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    """One request; returns (status, raw body, headers). Bodies are not decompressed."""
    path = route if route.startswith("/") else API + route
    hdrs = {"Accept-Encoding": "identity", **(headers or {})}
    if auth is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, demo.url + path, data=data, headers=hdrs, params=params) as resp:
            return resp.status, await resp.read(), resp.headers


async def generate(demo: DemoWebUI, payload: dict[str, Any], route: str = "txt2img") -> dict[str, Any]:
    status, raw, _ = await call(demo, "POST", route, body=payload)
    assert status == 200, raw[:500]
    return json.loads(raw)


def png_text_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        if ctype in (b"tEXt", b"iTXt", b"zTXt"):
            out.append((ctype, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def image_of(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


# ----------------------------------------------------------------------------- txt2img body shape


async def test_txt2img_matches_the_fixture_except_images_and_random_values(demo_webui: DemoWebUI) -> None:
    status, raw, headers = await call(demo_webui, "POST", "txt2img", body=FOX)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert "X-Process-Time" in headers
    assert raw.startswith(b'{"images":["iVBORw0KGgo')
    body = json.loads(raw)
    expected = fixture("a1111-txt2img-response.json")
    assert list(body) == ["images", "parameters", "info"]
    assert isinstance(body["info"], str)
    # parameters: all 55 fields, server order, defaults filled, cfg 7 -> 7.0
    assert list(body["parameters"]) == list(expected["parameters"])
    assert body["parameters"] == expected["parameters"]
    # compact outer JSON; info uses Python's default separators
    assert raw.split(b',"info":')[0] == _dumps_compact({"images": body["images"], "parameters": body["parameters"]})[:-1]
    info, expected_info = json.loads(body["info"]), json.loads(expected["info"])
    assert list(info) == list(expected_info)
    for key in ("subseed", "all_subseeds", "job_timestamp"):  # random / time dependent
        info.pop(key), expected_info.pop(key)
    assert info == expected_info
    assert body["info"].startswith('{"prompt": "a watercolor')
    for k, b64 in enumerate(body["images"]):
        data = base64.b64decode(b64)
        chunks = png_text_chunks(data)
        assert chunks == [(b"tEXt", b"parameters\x00" + json.loads(body["info"])["infotexts"][k].encode("latin-1"))]
        assert image_of(b64).size == (64, 64)


def _dumps_compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


async def test_non_latin1_prompt_gives_itxt_and_ascii_escaped_info(demo_webui: DemoWebUI) -> None:
    status, raw, _ = await call(demo_webui, "POST", "txt2img", body={"prompt": "狐 🦊 fox", "steps": 2, "width": 64,
                                                                       "height": 64, "seed": 5})
    assert status == 200
    assert "狐 🦊 fox".encode() in raw  # outer JSON keeps non-ASCII (FastAPI ensure_ascii=False)
    body = json.loads(raw)
    assert "\\u72d0" in body["info"]  # json.dumps default ensure_ascii inside the info string
    chunks = png_text_chunks(base64.b64decode(body["images"][0]))
    assert [c[0] for c in chunks] == [b"iTXt"]
    assert image_of(body["images"][0]).text["parameters"] == json.loads(body["info"])["infotexts"][0]


async def test_api_defaults_seeds_and_variation_seeds(demo_webui: DemoWebUI) -> None:
    body = await generate(demo_webui, {"prompt": "x", "width": 64, "height": 64, "batch_size": 2, "n_iter": 2,
                                       "steps": 3})
    info = json.loads(body["info"])
    assert len(body["images"]) == 4
    assert info["steps"] == 3 and info["sampler_name"] == "Euler"  # API default sampler via sampler_index
    seed = info["seed"]
    assert 0 <= seed < 4294967294
    assert info["all_seeds"] == [seed, seed + 1, seed + 2, seed + 3]
    assert info["all_subseeds"] == [info["subseed"] + k for k in range(4)]
    assert "Schedule type: Automatic" in info["infotexts"][0]

    body = await generate(demo_webui, {"prompt": "x", "width": 64, "height": 64, "batch_size": 2, "seed": 10,
                                       "subseed": 77, "subseed_strength": 0.5, "steps": 2})
    info = json.loads(body["info"])
    assert info["all_seeds"] == [10, 10] and info["all_subseeds"] == [77, 78]
    assert "Variation seed: 78, Variation seed strength: 0.5" in info["infotexts"][1]
    assert body["images"][0] != body["images"][1]

    body = await generate(demo_webui, {"width": 64, "height": 64, "steps": 2})
    assert json.loads(body["info"])["steps"] == 2
    body = await generate(demo_webui, {"width": 64, "height": 64})
    assert json.loads(body["info"])["steps"] == 50


@pytest.mark.parametrize(("sampler", "scheduler", "used", "schedule"), [
    ("Euler a", None, "Euler a", "Automatic"),
    ("DPM++ 2M", None, "DPM++ 2M", "Karras"),
    ("DPM++ 2M", "Karras", "DPM++ 2M", "Karras"),
    ("DPM++ 2M", "exponential", "DPM++ 2M", "Exponential"),
    ("DPM++ 2M Karras", None, "DPM++ 2M", "Karras"),
    ("DPM++ 2M SDE Karras", None, "DPM++ 2M SDE", "Karras"),
    ("DPM++ 2M SDE", None, "DPM++ 2M SDE", "Exponential"),
    ("Euler a", "bogus", "Euler a", "Automatic"),
    ("No Such Sampler", None, "DPM++ 2M", "Karras"),
    ("k_euler", None, "DPM++ 2M", "Karras"),
])
async def test_v1_10_sampler_and_scheduler_resolution(demo_webui: DemoWebUI, sampler: str, scheduler: str | None,
                                                      used: str, schedule: str) -> None:
    body = await generate(demo_webui, {"prompt": "p", "sampler_name": sampler, "scheduler": scheduler, "steps": 1,
                                       "width": 64, "height": 64, "seed": 1})
    info = json.loads(body["info"])
    assert info["sampler_name"] == used
    assert f"Sampler: {used}, Schedule type: {schedule}, CFG scale" in info["infotexts"][0]
    assert body["parameters"]["sampler_name"] == sampler  # echoed as sent


async def test_v1_9_strict_samplers_give_404(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(strict_samplers=True, version="v1.9.4")
    status, raw, _ = await call(demo, "POST", "txt2img", body={"sampler_name": "DPM++ 2M Karras", "steps": 1})
    assert status == 404
    assert raw == fixture_bytes("a1111-error-sampler-not-found.json")
    assert demo.jobs_served == 0


async def test_determinism_same_request_same_pixels(demo_webui: DemoWebUI) -> None:
    payload = {"prompt": "a lighthouse", "seed": 42, "width": 96, "height": 64, "steps": 2}
    first = await generate(demo_webui, payload)
    second = await generate(demo_webui, payload)
    other = await generate(demo_webui, {**payload, "seed": 43})
    assert first["images"] == second["images"]
    assert first["images"][0] != other["images"][0]
    assert image_of(first["images"][0]).size == (96, 64)
    a = render_image(b"k", 64, 64).tobytes()
    assert a == render_image(b"k", 64, 64).tobytes() != render_image(b"j", 64, 64).tobytes()


async def test_realistic_png_size_for_1024_square() -> None:
    data = await asyncio.to_thread(lambda: _png_size(render_image(b"size-check", 1024, 1024)))
    assert 1_000_000 < data < 3_000_000


def _png_size(image: Image.Image) -> int:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return len(buf.getvalue())


async def test_lenient_pydantic_v1_coercion_and_unknown_keys(demo_webui: DemoWebUI) -> None:
    body = await generate(demo_webui, {"steps": "3", "cfg_scale": "6.5", "width": 64.9, "height": "64", "seed": 5.7,
                                       "restore_faces": "no", "prompt": 123, "styles": None, "sampler": "typo",
                                       "tiling": None})
    params = body["parameters"]
    assert params["steps"] == 3 and params["width"] == 64 and params["seed"] == 5 and params["cfg_scale"] == 6.5
    assert params["restore_faces"] is False and params["prompt"] == "123" and params["styles"] is None
    assert "sampler" not in params
    assert json.loads(body["info"])["all_seeds"] == [5]


async def test_422_bodies_match_the_fixtures(demo_webui: DemoWebUI, demo_webui_factory: Any) -> None:
    bad = {"styles": "not-a-list", "steps": "twenty", "cfg_scale": "high", "restore_faces": "maybe"}
    status, raw, _ = await call(demo_webui, "POST", "txt2img", body=bad)
    assert (status, raw) == (422, fixture_bytes("a1111-error-422-validation.json"))
    status, raw, _ = await call(demo_webui, "POST", "txt2img", raw=b'{"prompt": "a cat",}',
                                headers={"Content-Type": "application/json"})
    assert (status, raw) == (422, fixture_bytes("a1111-error-422-invalid-json.json"))
    status, raw, _ = await call(demo_webui, "POST", "txt2img")
    assert (status, raw) == (422, fixture_bytes("a1111-error-422-missing-body.json"))

    forge = await demo_webui_factory(dialect="forge")
    status, raw, _ = await call(forge, "POST", "txt2img", body=bad)
    assert (status, raw) == (422, fixture_bytes("forge-error-422-validation.json"))
    status, raw, _ = await call(forge, "POST", "txt2img", body={"steps": 20.5})
    assert (status, raw) == (422, fixture_bytes("forge-error-422-fractional-int.json"))
    status, raw, _ = await call(forge, "POST", "txt2img", body={"prompt": 123})
    assert status == 422 and json.loads(raw)["detail"][0]["type"] == "string_type"


async def test_unknown_script_is_the_string_detail_422(demo_webui: DemoWebUI, demo_webui_factory: Any) -> None:
    status, raw, _ = await call(demo_webui, "POST", "txt2img", body={"script_name": "nope"})
    assert status == 422
    assert raw == b'{"error":"HTTPException","detail":"Script \'nope\' not found","body":"","errors":""}'
    status, raw, _ = await call(demo_webui, "POST", "txt2img", body={"alwayson_scripts": {"ControlNet": {"args": []}}})
    assert status == 422 and json.loads(raw)["detail"] == "Script 'ControlNet' not found"
    status, _, _ = await call(demo_webui, "POST", "txt2img", body={"script_name": "X/Y/Z plot", "steps": 1,
                                                                   "width": 64, "height": 64})
    assert status == 200
    forge = await demo_webui_factory(dialect="forge")
    status, raw, _ = await call(forge, "POST", "txt2img", body={"script_name": "nope"})
    assert (status, raw) == (422, b'{"detail":"Script \'nope\' not found"}')


# ----------------------------------------------------------------------------- routes, auth, small bodies


async def test_routing_errors_and_small_bodies(demo_webui: DemoWebUI) -> None:
    assert (await call(demo_webui, "GET", "nope"))[:2] == (404, fixture_bytes("a1111-error-404-unknown-route.json"))
    assert (await call(demo_webui, "GET", "/"))[:2] == (404, b'{"detail":"Not Found"}')
    status, raw, headers = await call(demo_webui, "GET", "txt2img")
    assert (status, raw) == (405, fixture_bytes("a1111-error-405-wrong-method.json"))
    assert (await call(demo_webui, "POST", "interrupt"))[:2] == (200, fixture_bytes("a1111-interrupt-response.json"))
    assert (await call(demo_webui, "POST", "skip"))[:2] == (200, fixture_bytes("a1111-skip-response.json"))
    status, raw, _ = await call(demo_webui, "POST", "options", body={"CLIP_stop_at_last_layers": 1})
    assert (status, raw) == (200, fixture_bytes("a1111-options-post-response.json"))
    status, raw, _ = await call(demo_webui, "POST", "options", body={"sd_model_checkpoint": "nonexistent.safetensors"})
    assert (status, raw) == (500, fixture_bytes("a1111-error-500-options-bad-model.json"))
    assert (await call(demo_webui, "GET", "samplers"))[1] == fixture_bytes("a1111-samplers-v1.10.1.json")
    assert (await call(demo_webui, "GET", "schedulers"))[1] == fixture_bytes("a1111-schedulers-v1.10.1.json")
    models = json.loads((await call(demo_webui, "GET", "sd-models"))[1])
    expected_keys = list(fixture("a1111-sd-models-v1.10.1.json")[0])
    assert all(list(m) == expected_keys for m in models) and len(models) == 3
    assert any(m["hash"] is None and "[" not in m["title"] for m in models)
    upscalers = json.loads((await call(demo_webui, "GET", "upscalers"))[1])
    assert [u["name"] for u in upscalers][:3] == ["None", "Lanczos", "Nearest"] and len(upscalers) >= 5
    for route in ("latent-upscale-modes", "prompt-styles", "loras", "sd-vae", "embeddings", "options"):
        status, raw, _ = await call(demo_webui, "GET", route)
        assert status == 200, route
    options = json.loads((await call(demo_webui, "GET", "options"))[1])
    assert options["sd_model_checkpoint"] == "v1-5-pruned-emaonly.safetensors [6ce0161689]"


async def test_auth_bodies_and_the_unprotected_loras_route(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(auth=("alice", "s3cret"))
    status, raw, headers = await call(demo, "GET", "sd-models")
    assert (status, raw) == (401, fixture_bytes("a1111-error-401-no-credentials.json"))
    assert "WWW-Authenticate" not in headers
    status, raw, _ = await call(demo, "POST", "txt2img", body={"steps": 1}, auth=("alice", "nope"))
    assert (status, raw) == (401, fixture_bytes("a1111-error-401-wrong-password.json"))
    status, raw, _ = await call(demo, "GET", "progress", headers={"Authorization": "Basic !!!"})
    assert status == 401 and json.loads(raw)["detail"] == "Invalid authentication credentials"
    assert (await call(demo, "GET", "loras"))[0] == 200
    assert (await call(demo, "GET", "sd-models", auth=("alice", "s3cret")))[0] == 200
    assert (await call(demo, "GET", "nope"))[0] == 404  # routing happens before auth

    forge = await demo_webui_factory(auth=("alice", "s3cret"), dialect="forge")
    status, raw, headers = await call(forge, "GET", "sd-models")
    assert (status, raw) == (401, fixture_bytes("forge-error-401-no-credentials.json"))
    assert headers["WWW-Authenticate"] == "Basic"


async def test_gzip_and_process_time(demo_webui: DemoWebUI) -> None:
    status, raw, headers = await call(demo_webui, "GET", "samplers", headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw) == fixture_bytes("a1111-samplers-v1.10.1.json")
    status, raw, headers = await call(demo_webui, "GET", "progress", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers and len(raw) < 1000  # below minimum_size
    float(headers["X-Process-Time"])


async def test_error_injection_in_each_dialect(demo_webui_factory: Any) -> None:
    a1111 = await demo_webui_factory()
    a1111.inject_error("txt2img", 500)
    status, raw, _ = await call(a1111, "POST", "txt2img", body={"steps": 1})
    assert status == 500 and json.loads(raw).keys() == json.loads(fixture_bytes("a1111-error-500-oom.json")).keys()
    assert json.loads(raw)["error"] == "OutOfMemoryError"
    forge = await demo_webui_factory(dialect="forge")
    forge.inject_error("/sdapi/v1/txt2img", 500)
    status, raw, _ = await call(forge, "POST", "txt2img", body={"steps": 1})
    assert (status, raw) == (500, fixture_bytes("forge-error-500-oom.json"))
    sdnext = await demo_webui_factory(dialect="sdnext")
    sdnext.inject_error("txt2img", 500, times=2)
    body = json.loads((await call(sdnext, "POST", "txt2img", body={"steps": 1}))[1])
    assert body["code"] == 500 and body["error"] == "OutOfMemoryError" and "errors" in body
    assert (await call(sdnext, "POST", "txt2img", body={"steps": 1}))[0] == 500
    assert (await call(sdnext, "POST", "txt2img", body={"steps": 1, "width": 64, "height": 64}))[0] == 200
    assert (await call(sdnext, "GET", "schedulers"))[0] == 404
    a1111.inject_error("sd-models", 503, {"custom": True})
    assert (await call(a1111, "GET", "sd-models"))[:2] == (503, b'{"custom":true}')


# ----------------------------------------------------------------------------- hires, models, img2img


async def test_hires_sizes_infotext_and_job_count(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.01)
    payload = {"prompt": "portrait of an astronaut, (detailed:1.2)", "negative_prompt": "lowres", "seed": 42,
               "sampler_name": "DPM++ 2M", "steps": 4, "cfg_scale": 6.5, "width": 64, "height": 96,
               "enable_hr": True, "hr_scale": 2, "hr_upscaler": "R-ESRGAN 4x+", "hr_second_pass_steps": 3,
               "denoising_strength": 0.4, "override_settings": {"CLIP_stop_at_last_layers": 2}}
    task = asyncio.create_task(generate(demo, payload))
    counts = set()
    while not task.done():
        counts.add(demo.state.job_count)
        await asyncio.sleep(0.005)
    body = task.result()
    assert 2 in counts  # n_iter 1 x 2 with hires
    info = json.loads(body["info"])
    assert image_of(body["images"][0]).size == (128, 192)
    assert (info["width"], info["height"]) == (64, 96)
    assert info["infotexts"][0].splitlines()[-1] == (
        "Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 42, Size: 64x96, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.4, Clip skip: 2, "
        "Hires upscale: 2.0, Hires steps: 3, Hires upscaler: R-ESRGAN 4x+, Version: v1.10.1")
    assert info["extra_generation_params"] == {
        "Denoising strength": 0.4, "Hires prompt": None, "Hires negative prompt": None, "Hires schedule type": None,
        "Hires upscale": 2.0, "Hires steps": 3, "Hires upscaler": "R-ESRGAN 4x+", "Schedule type": "Karras"}
    assert info["clip_skip"] == 2 and demo.state.job_no == 2 and demo.state.job_count == 0

    status, raw, _ = await call(demo, "POST", "txt2img", body={**payload, "denoising_strength": None})
    assert status == 500
    assert json.loads(raw)["error"] == "TypeError"
    assert list(json.loads(raw)) == ["error", "detail", "body", "errors"]
    status, raw, _ = await call(demo, "POST", "txt2img", body={**payload, "hr_sampler_name": "Use same sampler"})
    assert status == 500 and json.loads(raw)["errors"] == "bad sampler name: Use same sampler"
    status, raw, _ = await call(demo, "POST", "txt2img", body={**payload, "override_settings": {"bogus_key": 1}})
    assert (status, json.loads(raw)["error"], json.loads(raw)["errors"]) == (500, "KeyError", "'bogus_key'")


@pytest.mark.parametrize("alias", ["sd_xl_base_1.0.safetensors [31e35c80fc]", "sd_xl_base_1.0.safetensors",
                                   "sd_xl_base_1.0", "31e35c80fc"])
async def test_override_checkpoint_by_alias_for_one_request(demo_webui: DemoWebUI, alias: str) -> None:
    base = {"steps": 1, "width": 64, "height": 64, "seed": 3}
    info = json.loads((await generate(demo_webui, {**base, "override_settings": {"sd_model_checkpoint": alias}}))["info"])
    assert (info["sd_model_name"], info["sd_model_hash"]) == ("sd_xl_base_1.0", "31e35c80fc")
    assert "Model hash: 31e35c80fc, Model: sd_xl_base_1.0" in info["infotexts"][0]
    info = json.loads((await generate(demo_webui, base))["info"])
    assert info["sd_model_name"] == "v1-5-pruned-emaonly"  # not sticky


async def test_unknown_checkpoint_is_ignored_and_unhashed_title_changes_on_load(demo_webui: DemoWebUI) -> None:
    base = {"steps": 1, "width": 64, "height": 64}
    info = json.loads((await generate(demo_webui, {**base, "override_settings": {"sd_model_checkpoint": "nope"}}))["info"])
    assert info["sd_model_hash"] == "6ce0161689"
    info = json.loads((await generate(demo_webui, {**base, "override_settings":
                                                   {"sd_model_checkpoint": "SDXL/juggernautXL_v9.safetensors"}}))["info"])
    assert info["sd_model_name"] == "juggernautXL_v9" and len(info["sd_model_hash"]) == 10
    titles = [m["title"] for m in json.loads((await call(demo_webui, "GET", "sd-models"))[1])]
    assert f"SDXL/juggernautXL_v9.safetensors [{info['sd_model_hash']}]" in titles


async def test_img2img(demo_webui: DemoWebUI) -> None:
    status, raw, _ = await call(demo_webui, "POST", "img2img", body={"prompt": "x"})
    assert (status, raw) == (404, b'{"error":"HTTPException","detail":"Init image not found","body":"","errors":""}')
    status, raw, _ = await call(demo_webui, "POST", "img2img", body={"init_images": ["not base64!"], "steps": 1})
    assert status == 500 and json.loads(raw)["detail"] == "Invalid encoded image"
    init = base64.b64encode(_png_bytes(Image.new("RGB", (40, 30), (200, 20, 20)))).decode()
    body = await generate(demo_webui, {"prompt": "a red barn", "init_images": ["data:image/png;base64," + init],
                                       "width": 80, "height": 64, "steps": 20, "denoising_strength": 0.5, "seed": 9},
                          "img2img")
    info = json.loads(body["info"])
    assert image_of(body["images"][0]).size == (80, 64)
    assert "Denoising strength: 0.5" in info["infotexts"][0] and info["denoising_strength"] == 0.5
    assert body["parameters"]["init_images"] is None and len(body["parameters"]) == 57
    assert demo_webui.state.sampling_steps == 11  # int(0.5 * 20) + 1, left stale after the job


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def test_extras_and_png_info(demo_webui: DemoWebUI) -> None:
    body = await generate(demo_webui, {**FOX, "batch_size": 1})
    status, raw, _ = await call(demo_webui, "POST", "extra-single-image",
                                body={"image": body["images"][0], "upscaler_1": "R-ESRGAN 4x+", "upscaling_resize": 2})
    assert status == 200
    extra = json.loads(raw)
    assert list(extra) == ["html_info", "image"]
    assert extra["html_info"] == "<p>Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 4x+</p>"
    upscaled = image_of(extra["image"])
    assert upscaled.size == (128, 128)
    assert upscaled.text["parameters"] == json.loads(body["info"])["infotexts"][0]
    assert upscaled.text["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 4x+"
    assert demo_webui.responses[-1].route == "extra-single-image"
    assert [r for r, _ in demo_webui.received] == ["txt2img", "extra-single-image"]
    status, raw, _ = await call(demo_webui, "POST", "extra-single-image", body={"image": body["images"][0],
                                                                                "upscaler_1": "Nope"})
    assert status == 500 and json.loads(raw)["errors"] == "could not find upscaler named Nope"
    status, raw, _ = await call(demo_webui, "POST", "extra-single-image", body={"image": "", "resize_mode": 5})
    assert status == 422 and json.loads(raw)["detail"][0]["type"] == "value_error.const"

    request = fixture("a1111-png-info-request.json")
    status, raw, _ = await call(demo_webui, "POST", "png-info", body=request)
    assert (status, raw) == (200, fixture_bytes("a1111-png-info-response.json"))
    status, raw, _ = await call(demo_webui, "POST", "png-info", body={})
    assert status == 422 and json.loads(raw)["detail"][0]["loc"] == ["body", "image"]


# ----------------------------------------------------------------------------- queue, progress, interrupt


async def test_fifo_one_job_at_a_time_and_progress_answers_meanwhile(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.01)
    finished: list[int] = []

    async def job(n: int) -> None:
        await generate(demo, {"prompt": f"job {n}", "steps": 5, "width": 64, "height": 64})
        finished.append(n)

    tasks = []
    for n in range(3):
        tasks.append(asyncio.create_task(job(n)))
        while len(demo.received) <= n:  # arrival order 0, 1, 2
            await asyncio.sleep(0.001)
    seen_running = False
    while not all(t.done() for t in tasks):
        status, raw, _ = await call(demo, "GET", "progress", params={"skip_current_image": "true"})
        body = json.loads(raw)
        assert status == 200 and body["current_image"] is None
        seen_running |= body["state"]["job_count"] >= 1 and body["progress"] > 0
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert finished == [0, 1, 2]
    assert demo.max_in_flight == 1 and demo.jobs_served == 3
    assert seen_running
    assert [r[1]["prompt"] for r in demo.received] == ["job 0", "job 1", "job 2"]


async def test_progress_sequence_preview_and_stale_idle(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.02, load_delay=0.1)
    task = asyncio.create_task(generate(demo, {"prompt": "x", "steps": 10, "width": 64, "height": 64,
                                               "batch_size": 2}))
    job_counts, preview = [], None
    while not task.done():
        status, raw, _ = await call(demo, "GET", "progress", params={"skip_current_image": "false"})
        body = json.loads(raw)
        assert list(body) == ["progress", "eta_relative", "state", "current_image", "textinfo"]
        assert list(body["state"]) == list(fixture("a1111-progress-idle.json")["state"])
        job_counts.append(body["state"]["job_count"])
        if body["current_image"]:
            preview = body["current_image"]
            st = body["state"]
            assert body["progress"] == pytest.approx(min(1, 0.01 + st["sampling_step"] / st["sampling_steps"]))
            assert body["state"]["job"] == "scripts_txt2img"
        await asyncio.sleep(0.01)
    await task
    assert -1 in job_counts and 1 in job_counts
    assert job_counts.index(-1) < job_counts.index(1)
    assert preview is not None and image_of(preview).size == (128, 64)  # grid of the batch
    body = json.loads((await call(demo, "GET", "progress"))[1])
    assert body["progress"] == 0.0 and body["eta_relative"] == 0.0 and body["current_image"] is None
    assert body["state"]["job_count"] == 0 and body["state"]["job"] == ""
    assert body["state"]["job_no"] == 1 and body["state"]["sampling_step"] == 9  # stale, as A1111 leaves them


async def test_interrupt_returns_partial_images_with_200(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.02)
    task = asyncio.create_task(generate(demo, {"prompt": "x", "steps": 30, "width": 64, "height": 64, "n_iter": 3,
                                               "enable_hr": True, "denoising_strength": 0.5}))
    while demo.state.sampling_step < 3:
        await asyncio.sleep(0.005)
    assert (await call(demo, "POST", "interrupt"))[:2] == (200, b"{}")
    body = await task
    info = json.loads(body["info"])
    assert len(body["images"]) == 1 and len(info["all_seeds"]) == 3
    assert image_of(body["images"][0]).size == (64, 64)  # the hires pass was skipped
    state = json.loads((await call(demo, "GET", "progress"))[1])["state"]
    assert state["interrupted"] is True and state["job_count"] == 0


async def test_client_disconnect_does_not_cancel_the_job(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(step_delay=0.01)
    with pytest.raises(asyncio.TimeoutError):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.05)) as session:
            await session.post(demo.url + API + "txt2img", json={"steps": 10, "width": 64, "height": 64})
    for _ in range(200):
        if demo.jobs_served:
            break
        await asyncio.sleep(0.01)
    assert demo.jobs_served == 1


async def test_histories_are_capped(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(history=2)
    for n in range(3):
        await generate(demo, {"prompt": f"p{n}", "steps": 1, "width": 64, "height": 64})
    assert [body["prompt"] for route, body in demo.received] == ["p1", "p2"]
    assert [r.info["prompt"] for r in demo.responses] == ["p1", "p2"]
    assert demo.responses[-1].route == "txt2img" and demo.responses[-1].images[0].startswith(b"\x89PNG")


async def test_create_app_and_demo_of() -> None:
    app = create_app(DemoConfig())
    demo = demo_of(app)
    assert isinstance(demo, DemoWebUI) and demo.app is app


async def test_sdnext_dialect_request_model_samplers_sigma_and_infotext(demo_webui_factory: Any) -> None:
    """SD.Next (pydantic 1.10): its plain-str fields refuse null, unknown keys are dropped, samplers are its own
    (exact names, 404 otherwise), the sigma schedule is the `schedulers_sigma` option, its own infotext."""
    sdnext = await demo_webui_factory(dialect="sdnext")
    small = {"prompt": "x", "steps": 2, "width": 64, "height": 64, "seed": 3}
    status, raw, _ = await call(sdnext, "POST", "txt2img", body={**small, "sampler_name": None,
                                                                "hr_sampler_name": None, "styles": None})
    assert status == 422 and json.loads(raw) == {"detail": [
        {"loc": ["body", "sampler_name"], "msg": "none is not an allowed value", "type": "type_error.none.not_allowed"},
        {"loc": ["body", "hr_sampler_name"], "msg": "none is not an allowed value",
         "type": "type_error.none.not_allowed"}]}  # styles is Optional there
    status, raw, _ = await call(sdnext, "POST", "txt2img", body={**small, "sampler_name": "DPM++ 2M Karras"})
    assert (status, json.loads(raw)) == (404, {"error": "HTTPException", "code": 404, "detail": "Sampler not found",
                                               "body": "", "errors": "404: Sampler not found"})
    status, raw, _ = await call(sdnext, "POST", "txt2img", body={
        **small, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "override_settings": {"schedulers_sigma": "karras"}})
    assert status == 200
    result = json.loads(raw)
    info = json.loads(result["info"])
    assert "scheduler" not in result["parameters"] and result["parameters"]["cfg_scale"] == 6.0  # SD.Next's default
    text = info["infotexts"][0]
    assert text.startswith("x\nNegative prompt: \nSteps: 2, Size: 64x64, Sampler: DPM++ 2M, Seed: 3, "), text
    assert "App: SD.Next, Version: 431bcc3" in text and text.endswith("Operations: txt2img, Sampler sigma: karras")
    assert "Schedule type" not in text and "version" not in info and info["sampler_name"] == "DPM++ 2M"
    assert (await call(sdnext, "GET", "options"))[1].count(b'"schedulers_sigma":"default"') == 1  # restored
    samplers = json.loads((await call(sdnext, "GET", "samplers"))[1])
    assert samplers[:2] == [{"name": "Default", "aliases": [], "options": {}},
                            {"name": "UniPC", "aliases": [], "options": {}}]
    assert samplers[-1]["name"] == "Same as primary"
    # hires resizes only with hr_resize_mode > 0, with SD.Next's own upscaler names
    hires = {**small, "enable_hr": True, "hr_scale": 2, "denoising_strength": 0.5}
    status, raw, _ = await call(sdnext, "POST", "txt2img", body={**hires, "hr_upscaler": "Latent"})
    assert status == 200 and "Operations: txt2img; hires" in json.loads(json.loads(raw)["info"])["infotexts"][0]
    status, raw, _ = await call(sdnext, "POST", "txt2img", body={**hires, "hr_upscaler": "Latent", "hr_resize_mode": 1})
    assert status == 500 and json.loads(raw)["error"] == "UnboundLocalError"
    status, raw, _ = await call(sdnext, "POST", "txt2img",
                                body={**hires, "hr_upscaler": "Latent Bilinear", "hr_resize_mode": 1})
    assert status == 200
    text = json.loads(json.loads(raw)["info"])["infotexts"][0]
    assert "Operations: txt2img; upscale; hires" in text and "Hires size: 128x128" in text
