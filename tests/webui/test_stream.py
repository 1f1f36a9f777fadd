"""Decoding a generation response while it arrives gives exactly what parsing it whole gives."""

from __future__ import annotations

import base64
import io
import random

import orjson
import pytest
from PIL import Image

from bot.errors import WebUIResponseError
from bot.webui.client import decode_generation_response, result_from
from bot.webui.stream import GenerationStream
from tests.support.fixtures import fixture_bytes


def png(seed: int, size: int = 40) -> bytes:
    """Noise, so it doesn't compress: a 700-pixel one is over 1 MiB of base64 (decoded in several steps)."""
    image = Image.frombytes("RGB", (size, size), random.Random(seed).randbytes(size * size * 3))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def streamed(body: bytes, chunks: list[int]) -> tuple[list[bytes], dict | None]:
    stream = GenerationStream()
    pos = 0
    for size in chunks:
        stream.feed(body[pos:pos + size])
        if stream.ready:
            stream.decode()
        pos += size
    stream.feed(body[pos:])
    images, rest, raw = stream.finish()
    if rest is None:
        whole = decode_generation_response(raw or b"", 0.0)
        return images + whole.images, {"info": whole.info, "parameters": whole.parameters}
    result = result_from(images, rest, 0.0)
    return result.images, {"info": result.info, "parameters": result.parameters}


def whole(body: bytes) -> tuple[list[bytes], dict]:
    result = decode_generation_response(body, 0.0)
    return result.images, {"info": result.info, "parameters": result.parameters}


def cuts(rng: random.Random, length: int) -> list[int]:
    out, total = [], 0
    while total < length:
        size = rng.choice([1, 2, 3, 5, 7, 64, 1000, 65536])
        out.append(size)
        total += size
    return out


def test_the_a1111_fixture_at_every_chunking() -> None:
    body = fixture_bytes("a1111-txt2img-response.json")
    rng = random.Random(1)
    expected = whole(body)
    assert len(expected[0]) >= 1
    for _ in range(30):
        assert streamed(body, cuts(rng, len(body))) == expected
    assert streamed(body, [1] * 2000) == expected  # byte by byte through the prefix and the first image


def test_big_images_escapes_data_urls_and_non_images() -> None:
    images = [png(0, 700), png(1, 300), png(2, 300)]
    assert len(base64.b64encode(images[0])) > 1024 * 1024
    b64 = [base64.b64encode(i).decode() for i in images]
    items = [b64[0].replace("/", "\\/"),  # what some JSON encoders write for "/"
             "data:image/png;base64," + b64[1],
             "not an image",
             "\\n".join(b64[2][i:i + 76] for i in range(0, len(b64[2]), 76))]  # MIME line breaks, escaped
    body = ('{"images":[' + ",".join(f'"{i}"' for i in items) +
            '],"parameters":{"prompt":"x"},"info":"{\\"seed\\": 5, \\"all_seeds\\": [5, 6]}"}').encode()
    for chunks in ([len(body)], cuts(random.Random(2), len(body)), [3] * 400):
        got, rest = streamed(body, chunks)
        assert got == images and rest == {"info": {"seed": 5, "all_seeds": [5, 6]}, "parameters": {"prompt": "x"}}


def test_other_shapes_fall_back_to_parsing_the_rest_whole() -> None:
    a, b = (base64.b64encode(png(s)).decode() for s in (3, 4))
    shapes = [
        {"parameters": {}, "images": [a, b], "info": "{}"},  # another key first
        {"images": [a, None, b, {"x": 1}], "info": "{}"},  # extensions put other things in the list
    ]
    for shape in shapes:
        body = orjson.dumps(shape)
        assert streamed(body, cuts(random.Random(5), len(body))) == whole(body)
    pretty = orjson.dumps(shapes[0], option=orjson.OPT_INDENT_2)
    assert streamed(pretty, [10] * 10)[0] == [base64.b64decode(a), base64.b64decode(b)]


def test_a_body_cut_off_in_the_image_list_is_an_error() -> None:
    body = b'{"images":["' + base64.b64encode(png(1)) + b'"'
    stream = GenerationStream()
    stream.feed(body)
    with pytest.raises(WebUIResponseError, match="middle of its image list"):
        stream.finish()
