"""Small HTTP and image helpers for the demo WebUI tests that need only JSON in and out."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import aiohttp
from PIL import Image

from bot.demo import DemoWebUI

API = "/sdapi/v1/"


async def request(demo: DemoWebUI, method: str, route: str, body: Any = None) -> tuple[int, bytes]:
    """(status, raw body) of one request; `route` under /sdapi/v1/ unless it starts with "/"."""
    path = route if route.startswith("/") else API + route
    async with aiohttp.ClientSession() as session, session.request(method, demo.url + path, json=body) as resp:
        return resp.status, await resp.read()


async def post(demo: DemoWebUI, route: str, body: Any) -> tuple[int, Any]:
    status, raw = await request(demo, "POST", route, body)
    return status, json.loads(raw)


async def get(demo: DemoWebUI, route: str) -> Any:
    status, raw = await request(demo, "GET", route)
    assert status == 200, raw[:300]
    return json.loads(raw)


async def generate(demo: DemoWebUI, route: str, body: dict[str, Any]) -> tuple[Image.Image, dict[str, Any]]:
    """The first image (RGB) and the parsed `info` of a successful txt2img/img2img request."""
    status, answer = await post(demo, route, body)
    assert status == 200, answer
    return image_of(answer["images"][0]), json.loads(answer["info"])


def b64png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_of(b64: str) -> Image.Image:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as opened:
        return opened.convert("RGB")


def params_line(info: dict[str, Any], k: int = 0) -> str:
    """The parameters line (the last) of image `k`'s infotext."""
    return info["infotexts"][k].rsplit("\n", 1)[-1]
