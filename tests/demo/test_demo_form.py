"""Wire-level checks of the demo form API server (`DemoFormServer`, `sdcord demo-webui --kind form`)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket
import urllib.parse
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.__main__ import _parser
from bot.demo import DemoConfig, DemoFormServer, serve
from bot.images import png

FORM = {"prompt": "a red fox", "seed": "7", "num_outputs": "2", "width": "64", "height": "48",
        "num_inference_steps": "4", "guidance_scale": "7.5"}
FORM_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


async def call(server: DemoFormServer, method: str, path: str, *, form: dict[str, str] | None = None,
               raw: bytes | None = None, headers: dict[str, str] | None = None,
               redirects: bool = False) -> tuple[int, bytes, Any]:
    hdrs = dict(headers or {})
    data = raw
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        hdrs.setdefault("Content-Type", FORM_TYPE)
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{server.url}{path}", data=data, headers=hdrs, allow_redirects=redirects) as resp:
        return resp.status, await resp.read(), resp.headers


async def generate(server: DemoFormServer, form: dict[str, str], route: str = "/txt2img") -> dict[str, Any]:
    status, raw, _ = await call(server, "POST", route, form=form)
    assert status == 200, raw[:300]
    return json.loads(raw)


def a_png_b64(size: tuple[int, int] = (40, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def relative(url: str) -> str:
    return urllib.parse.urlsplit(url).path


async def test_txt2img_answer_and_images(demo_form_server: DemoFormServer) -> None:
    body = await generate(demo_form_server, FORM)
    assert list(body) == ["images", "status"] and body["status"] == "success"
    assert [list(item) for item in body["images"]] == [["image_url", "mime_type", "seed"]] * 2
    assert [item["seed"] for item in body["images"]] == [7, 8]
    assert all(item["mime_type"] == "image/png" for item in body["images"])
    assert body["images"][0]["image_url"].startswith(demo_form_server.url + "/images/")
    status, data, headers = await call(demo_form_server, "GET", relative(body["images"][0]["image_url"]))
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    assert png.read_text_chunks(data) == {}  # no infotext: the client writes it
    assert demo_form_server.received == [("txt2img", FORM)]
    assert demo_form_server.content_types == [FORM_TYPE]
    assert demo_form_server.responses == [body] and demo_form_server.jobs_served == 1


async def test_same_prompt_and_seed_same_picture(demo_form_server: DemoFormServer) -> None:
    first = await generate(demo_form_server, {**FORM, "num_outputs": "1"})
    second = await generate(demo_form_server, {**FORM, "num_outputs": "1"})
    images = [(await call(demo_form_server, "GET", relative(b["images"][0]["image_url"])))[1] for b in (first, second)]
    assert images[0] == images[1]


async def test_without_a_seed_the_server_picks_wide_ones(demo_form_server_factory: Any) -> None:
    server = await demo_form_server_factory(seed=3)
    body = await generate(server, {k: v for k, v in FORM.items() if k != "seed"})
    seeds = [item["seed"] for item in body["images"]]
    assert seeds[1] == seeds[0] + 1 and seeds[0] < 2**52
    server.seed_rule = "wide"
    body = await generate(server, FORM)
    assert [item["seed"] for item in body["images"]] == [2**40 + (7 << 8), 2**40 + (7 << 8) + 1]


async def test_img2img(demo_form_server: DemoFormServer) -> None:
    body = await generate(demo_form_server, {"prompt": "x", "strength": "0.5", "init_image": a_png_b64()},
                          "/img2img")
    _, data, _ = await call(demo_form_server, "GET", relative(body["images"][0]["image_url"]))
    assert Image.open(io.BytesIO(data)).size == (40, 30)  # no width/height: the input's
    body = await generate(demo_form_server, {"prompt": "x", "width": "64", "height": "64", "strength": "0.5",
                                             "init_image": "data:image/png;base64," + a_png_b64()}, "/img2img")
    assert len(body["images"]) == 1


@pytest.mark.parametrize(("route", "changes", "field"), [
    ("/txt2img", {"width": "1025"}, "width"),
    ("/txt2img", {"height": "0"}, "height"),
    ("/txt2img", {"num_outputs": "5"}, "num_outputs"),
    ("/txt2img", {"num_outputs": "0"}, "num_outputs"),
    ("/txt2img", {"num_inference_steps": "151"}, "num_inference_steps"),
    ("/txt2img", {"guidance_scale": "20.5"}, "guidance_scale"),
    ("/txt2img", {"guidance_scale": "0"}, "guidance_scale"),
    ("/txt2img", {"seed": "lots"}, "seed"),
    ("/img2img", {"strength": "1", "init_image": a_png_b64()}, "strength"),
    ("/img2img", {"strength": "0", "init_image": a_png_b64()}, "strength"),
    ("/img2img", {"strength": "0.5"}, "init_image"),
    ("/img2img", {"strength": "0.5", "init_image": "bm90IGFuIGltYWdl"}, "init_image"),
])
async def test_validation(demo_form_server: DemoFormServer, route: str, changes: dict[str, str],
                          field: str) -> None:
    status, raw, _ = await call(demo_form_server, "POST", route, form={**FORM, **changes})
    assert status == 422
    body = json.loads(raw)
    assert body["status"] == "error" and body["message"].startswith(field)
    assert [d["loc"] for d in body["detail"]] == [["body", field]]
    assert demo_form_server.jobs_served == 0


async def test_a_body_that_is_not_a_form(demo_form_server: DemoFormServer) -> None:
    status, raw, _ = await call(demo_form_server, "POST", "/txt2img", raw=json.dumps(FORM).encode(),
                                headers={"Content-Type": "application/json"})
    assert status == 422 and json.loads(raw)["detail"][0]["loc"] == ["body", "prompt"]
    assert demo_form_server.received == [("txt2img", {})]


async def test_routes(demo_form_server: DemoFormServer) -> None:
    status, raw, headers = await call(demo_form_server, "GET", "/txt2img")
    assert status == 405 and json.loads(raw) == {"detail": "Method Not Allowed"} and "POST" in headers["Allow"]
    status, raw, _ = await call(demo_form_server, "GET", "/sdapi/v1/sd-models")
    assert status == 404 and json.loads(raw) == {"detail": "Not Found"}
    status, _, _ = await call(demo_form_server, "GET", "/images/0123456789abcdef.png")
    assert status == 404


async def test_auth(demo_form_server_factory: Any) -> None:
    server = await demo_form_server_factory(auth=("u", "p"))
    status, raw, _ = await call(server, "POST", "/txt2img", form=FORM)
    assert status == 401 and json.loads(raw)["status"] == "error"
    good = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    status, raw, _ = await call(server, "POST", "/txt2img", form=FORM, headers=good)
    assert status == 200
    url = relative(json.loads(raw)["images"][0]["image_url"])
    assert (await call(server, "GET", url))[0] == 401
    assert (await call(server, "GET", url, headers=good))[0] == 200


async def test_injected_errors(demo_form_server: DemoFormServer) -> None:
    demo_form_server.inject_error("txt2img", 200, {"status": "error", "message": "nope"})
    demo_form_server.inject_error("/txt2img", 500)
    assert (await call(demo_form_server, "POST", "/txt2img", form=FORM))[:2] == (
        200, b'{"status": "error", "message": "nope"}')
    status, raw, _ = await call(demo_form_server, "POST", "/txt2img", form=FORM)
    assert status == 500 and json.loads(raw)["status"] == "error"
    assert (await call(demo_form_server, "POST", "/txt2img", form=FORM))[0] == 200


async def test_download_faults(demo_form_server: DemoFormServer) -> None:
    body = await generate(demo_form_server, {**FORM, "num_outputs": "1"})
    url = relative(body["images"][0]["image_url"])
    _, good, _ = await call(demo_form_server, "GET", url)
    for kind in ("404", "not_image", "truncated", "redirect", "redirect_scheme"):
        demo_form_server.fail_downloads(kind)
    assert (await call(demo_form_server, "GET", url))[0] == 404
    status, raw, headers = await call(demo_form_server, "GET", url)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and png.image_format(raw) is None
    status, raw, _ = await call(demo_form_server, "GET", url)
    assert status == 200 and raw == good[: len(good) // 2]
    status, _, headers = await call(demo_form_server, "GET", url)
    assert status == 302 and headers["Location"] == f"{url}?hop=1"
    status, _, headers = await call(demo_form_server, "GET", url)
    assert status == 302 and headers["Location"].startswith("https://")
    assert (await call(demo_form_server, "GET", url))[1] == good  # faults used up
    demo_form_server.fail_downloads("huge", size=200_000)
    demo_form_server.fail_downloads("huge_chunked", size=200_000)
    status, raw, headers = await call(demo_form_server, "GET", url)
    assert status == 200 and headers["Content-Length"] == "200000" and len(raw) == 200_000
    status, raw, headers = await call(demo_form_server, "GET", url)
    assert "Content-Length" not in headers and len(raw) == 200_000
    with pytest.raises(ValueError):
        demo_form_server.fail_downloads("gone")


async def test_a_slow_download_stalls(demo_form_server: DemoFormServer) -> None:
    body = await generate(demo_form_server, {**FORM, "num_outputs": "1"})
    demo_form_server.fail_downloads("slow", delay=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, raw, _ = await call(demo_form_server, "GET", relative(body["images"][0]["image_url"]))
    assert status == 200 and png.image_format(raw) == "png" and loop.time() - started >= 0.3


def test_the_command_line_has_the_kind() -> None:
    args = _parser().parse_args(["demo-webui", "--kind", "form", "--port", "0"])
    assert args.kind == "form"
    assert _parser().parse_args(["demo-webui"]).kind == "webui"


async def test_serve_a_form_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = asyncio.create_task(serve("127.0.0.1", port, DemoConfig(kind="form")))
    try:
        for _ in range(100):
            try:
                async with aiohttp.ClientSession() as session, session.post(
                        f"http://127.0.0.1:{port}/txt2img", data=FORM) as resp:
                    body = await resp.json()
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.02)
        assert body["status"] == "success" and len(body["images"]) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
