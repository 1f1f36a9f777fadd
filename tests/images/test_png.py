"""PNG chunk walking, text chunks, EXIF UserComment reading, insertion and fit_to_limit."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import struct
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from bot.images.png import (
    MAX_ICC_PROFILE,
    PNG_SIGNATURE,
    CannotFitError,
    CorruptImageError,
    FitResult,
    ImageDataError,
    ImageTooLargeError,
    NotPNGError,
    UnsupportedImageError,
    add_text_chunk,
    build_exif,
    ensure_parameters,
    fit_to_limit,
    image_format,
    iter_chunks,
    png_dimensions,
    read_parameters,
    read_text_chunks,
    strip_metadata,
)
from bot.text import T
from tests.support.fixtures import fixture

INFOTEXT = (
    "a watercolor painting of a red fox\nNegative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 1, Size: 64x48, "
    "Version: v1.10.1"
)
CJK_INFOTEXT = (
    "一只狐狸 🦊, 水彩画\nNegative prompt: 模糊\nSteps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 1"
)


@pytest.fixture(scope="module")
def txt2img_response():
    response = fixture("a1111-txt2img-response.json")
    images = [base64.b64decode(s) for s in response["images"]]
    return images, json.loads(response["info"])


def make_png(size=(64, 48), mode="RGB", pnginfo=None, seed=0, **save) -> bytes:
    rng = random.Random(seed)
    channels = len(mode) if mode in ("RGB", "RGBA", "L", "LA") else 1
    raw = bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * channels))
    image = Image.frombytes(mode, size, raw)
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=pnginfo, **save)
    return buf.getvalue()


def noisy_image(size=(1024, 1024), mode="RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "P": 1}[mode]
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * channels))


def png_bytes(image: Image.Image, pnginfo=None, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=pnginfo, **save)
    return buf.getvalue()


def chunk_types(data: bytes) -> list[bytes]:
    return [c.type for c in iter_chunks(data)]


def raw_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def insert_before_iend(data: bytes, chunk: bytes) -> bytes:
    iend = [c for c in iter_chunks(data)][-1]
    return data[: iend.start] + chunk + data[iend.start :]


def pillow_text(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return dict(image.text)


# --------------------------------------------------------------------------------------------------
# WebUI fixture PNGs
# --------------------------------------------------------------------------------------------------


def test_fixture_pngs_parameters_and_identity(txt2img_response):
    images, info = txt2img_response
    assert len(images) == len(info["infotexts"]) == 2
    for index, data in enumerate(images):
        assert image_format(data) == "png"
        assert chunk_types(data) == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
        assert read_parameters(data) == info["infotexts"][index]
        assert read_text_chunks(data) == {"parameters": info["infotexts"][index]}
        assert ensure_parameters(data, "something else") is data
        assert ensure_parameters(data, None) is data
        with Image.open(io.BytesIO(data)) as image:
            assert png_dimensions(data) == image.size == (64, 64)
            assert image.info["parameters"] == info["infotexts"][index]


def test_iter_chunks_offsets_and_views(txt2img_response):
    data = txt2img_response[0][0]
    chunks = list(iter_chunks(data))
    assert chunks[0].start == 8
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.end == nxt.start
    assert chunks[-1].end == len(data)
    for chunk in chunks:
        assert bytes(chunk.data) == data[chunk.start + 8 : chunk.end - 4]
        (length,) = struct.unpack(">I", data[chunk.start : chunk.start + 4])
        assert len(chunk.data) == length
    ctype, start, end, payload = chunks[1]  # tuple-unpackable
    assert ctype == b"tEXt" and bytes(payload).startswith(b"parameters\x00")


# --------------------------------------------------------------------------------------------------
# Insertion
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_ensure_parameters_inserts_text_chunk(mode):
    data = make_png(mode=mode, seed=1)
    assert read_parameters(data) is None
    result = ensure_parameters(data, INFOTEXT)
    assert result is not data

    types = chunk_types(result)  # verify_crc=True: every CRC valid, inserted one included
    assert types[:2] == [b"IHDR", b"tEXt"]
    assert types.index(b"tEXt") < types.index(b"IDAT")
    inserted = list(iter_chunks(result))[1]
    assert bytes(inserted.data) == b"parameters\x00" + INFOTEXT.encode("latin-1")
    (crc,) = struct.unpack(">I", result[inserted.end - 4 : inserted.end])
    assert crc == zlib.crc32(b"tEXt" + bytes(inserted.data))

    # Every original byte is still there, in order, around the new chunk.
    assert result[:33] == data[:33]
    assert result[inserted.end :] == data[33:]
    assert len(result) == len(data) + 12 + len(inserted.data)

    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(result)) as after:
        assert after.info["parameters"] == INFOTEXT
        assert after.mode == before.mode and after.size == before.size
        assert after.tobytes() == before.tobytes()
    assert read_parameters(result) == INFOTEXT
    assert ensure_parameters(result, "other") is result


def test_ensure_parameters_without_infotext_returns_same_object():
    data = make_png()
    assert ensure_parameters(data, None) is data


def test_non_latin1_text_written_as_itxt_byte_exact():
    data = make_png(seed=2)
    result = add_text_chunk(data, "parameters", CJK_INFOTEXT)
    chunk = list(iter_chunks(result))[1]
    assert chunk.type == b"iTXt"
    assert bytes(chunk.data) == b"parameters\x00\x00\x00\x00\x00" + CJK_INFOTEXT.encode("utf-8")
    assert read_parameters(result) == CJK_INFOTEXT
    assert read_parameters(result).encode("utf-8") == CJK_INFOTEXT.encode("utf-8")
    with Image.open(io.BytesIO(result)) as image:
        assert image.info["parameters"] == CJK_INFOTEXT
        assert image.tobytes() == Image.open(io.BytesIO(data)).tobytes()


def test_latin1_non_ascii_stays_text():
    result = add_text_chunk(make_png(), "Comment", "café, naïve ±")
    assert list(iter_chunks(result))[1].type == b"tEXt"
    assert read_text_chunks(result) == {"Comment": "café, naïve ±"} == pillow_text(result)


def test_pillow_written_cjk_is_itxt_and_reads_back():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", CJK_INFOTEXT)
    data = make_png(pnginfo=info)
    assert b"iTXt" in chunk_types(data)
    assert read_parameters(data) == CJK_INFOTEXT


@pytest.mark.parametrize(
    "key, text",
    [
        ("", "x"),
        ("k" * 80, "x"),
        ("ключ", "x"),
        (" lead", "x"),
        ("a  b", "x"),
        ("tab\tkey", "x"),
        ("ok", "nul\x00"),
    ],
)
def test_add_text_chunk_rejects_bad_keyword_or_text(key, text):
    with pytest.raises(ValueError):
        add_text_chunk(make_png(), key, text)


def test_add_text_chunk_rejects_non_png_and_truncated():
    with pytest.raises(NotPNGError):
        add_text_chunk(b"GIF89a" + b"\x00" * 40, "parameters", "x")
    data = make_png()
    with pytest.raises(CorruptImageError):
        add_text_chunk(data[:-20], "parameters", "x")


# --------------------------------------------------------------------------------------------------
# Reading text chunks
# --------------------------------------------------------------------------------------------------


def test_ztxt_and_compressed_itxt():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT, zip=True)  # Latin-1 → zTXt
    info.add_itxt("prompt_cjk", CJK_INFOTEXT, lang="zh", tkey="提示", zip=True)
    info.add_itxt("plain_itxt", "uncompressed ✓")
    info.add_text("Software", "sdcord")
    data = make_png(pnginfo=info)
    types = chunk_types(data)
    assert types.count(b"zTXt") == 1 and types.count(b"iTXt") == 2 and types.count(b"tEXt") == 1
    itxt_flags = [c.data[c.data.tobytes().index(b"\x00") + 1] for c in iter_chunks(data) if c.type == b"iTXt"]
    assert sorted(itxt_flags) == [0, 1]  # one compressed, one not
    texts = read_text_chunks(data)
    assert texts == {
        "parameters": INFOTEXT,
        "prompt_cjk": CJK_INFOTEXT,
        "plain_itxt": "uncompressed ✓",
        "Software": "sdcord",
    }
    assert texts == pillow_text(data)
    assert read_parameters(data) == INFOTEXT
    assert ensure_parameters(data, "x") is data  # a zTXt parameters chunk counts


def test_duplicates_last_wins_like_pillow_and_chunks_after_idat_count():
    data = make_png()
    data = add_text_chunk(data, "parameters", "first")  # right after IHDR
    data = insert_before_iend(data, raw_chunk(b"tEXt", b"parameters\x00after idat"))
    data = insert_before_iend(data, raw_chunk(b"tEXt", b"late\x00only after idat"))
    assert chunk_types(data).index(b"IDAT") < len(chunk_types(data)) - 2
    texts = read_text_chunks(data)
    assert texts == pillow_text(data) == {"parameters": "after idat", "late": "only after idat"}
    assert read_parameters(data) == "after idat"


def test_parameters_only_after_idat_is_found_and_not_duplicated():
    data = insert_before_iend(make_png(), raw_chunk(b"tEXt", b"parameters\x00tail"))
    assert read_parameters(data) == "tail"
    assert ensure_parameters(data, "new") is data


def test_malformed_and_oversized_text_chunks_are_skipped():
    bomb = zlib.compress(b"A" * (4 * 1024 * 1024))  # 4 MiB > MAX_TEXT_CHUNK
    data = make_png()
    for chunk in (
        raw_chunk(b"zTXt", b"bomb\x00\x00" + bomb),
        raw_chunk(b"zTXt", b"badzlib\x00\x00not zlib at all"),
        raw_chunk(b"zTXt", b"method\x00\x07" + zlib.compress(b"x")),
        raw_chunk(b"iTXt", b"short\x00\x00"),
        raw_chunk(b"iTXt", b"badutf8\x00\x00\x00\x00\x00\xff\xfe"),
        raw_chunk(b"tEXt", b"\x00no key"),
        raw_chunk(b"tEXt", b"nokeyvalue"),
    ):
        data = insert_before_iend(data, chunk)
    texts = read_text_chunks(data)
    assert texts == {"nokeyvalue": ""}
    assert "bomb" in read_text_chunks(data, max_decompressed=8 * 1024 * 1024)
    assert read_parameters(data) is None


def test_bad_crc_in_text_chunk_raises_but_idat_crc_is_not_checked_by_readers():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    data = bytearray(make_png(pnginfo=info))
    chunks = list(iter_chunks(bytes(data)))
    text_chunk = next(c for c in chunks if c.type == b"tEXt")
    idat = next(c for c in chunks if c.type == b"IDAT")

    bad_idat = bytearray(data)
    bad_idat[idat.start + 10] ^= 0xFF
    with pytest.raises(CorruptImageError, match="CRC"):
        list(iter_chunks(bytes(bad_idat)))
    assert read_parameters(bytes(bad_idat)) == INFOTEXT  # header walk only

    bad_text = bytearray(data)
    bad_text[text_chunk.start + 12] ^= 0x01
    with pytest.raises(CorruptImageError, match="CRC"):
        read_parameters(bytes(bad_text))
    with pytest.raises(CorruptImageError):
        read_text_chunks(bytes(bad_text))


# --------------------------------------------------------------------------------------------------
# Broken input
# --------------------------------------------------------------------------------------------------


def test_every_truncation_raises_corrupt_never_anything_else(txt2img_response):
    data = txt2img_response[0][0]
    for cut in range(len(data)):
        prefix = data[:cut]
        with pytest.raises(ImageDataError) as excinfo:
            list(iter_chunks(prefix))
        assert isinstance(excinfo.value, NotPNGError if cut < 8 else CorruptImageError), cut
        with pytest.raises(ImageDataError):
            read_text_chunks(prefix)
        if cut >= 8:
            with pytest.raises(ImageDataError):
                read_parameters(prefix)  # recognised as PNG, walk hits the truncation
        if cut < 33:
            with pytest.raises(ImageDataError):
                png_dimensions(prefix)
    assert png_dimensions(data[:33]) == (64, 64)


def test_truncated_png_without_parameters_raises_in_ensure():
    data = make_png()
    with pytest.raises(CorruptImageError):
        ensure_parameters(data[: len(data) - 5], INFOTEXT)
    with pytest.raises(CorruptImageError):
        ensure_parameters(data[:-12], INFOTEXT)  # IEND missing


def test_random_bytes():
    rng = random.Random(1234)
    for length in (0, 1, 7, 8, 100, 5000):
        blob = bytes(rng.getrandbits(8) for _ in range(length))
        if image_format(blob) is not None:
            continue
        with pytest.raises(UnsupportedImageError):
            read_parameters(blob)
        with pytest.raises(NotPNGError):
            list(iter_chunks(blob))
        with pytest.raises(NotPNGError):
            png_dimensions(blob)
        with pytest.raises(NotPNGError):
            ensure_parameters(blob, "x")
        with pytest.raises(UnsupportedImageError):
            fit_to_limit(blob, 1, "x")


def test_signature_followed_by_garbage_and_absurd_lengths():
    tails = (
        b"",
        b"\x00" * 3,
        b"\xff\xff\xff\xffIHDR" + b"\x00" * 20,  # length over 2**31-1
        b"\x00\x00\x00\x0dIH\x00R" + b"\x00" * 17,  # non-letter type
        b"\x00\x00\x00\x00IDAT\x00\x00\x00\x00",  # first chunk is not IHDR
    )
    for tail in tails:
        with pytest.raises(CorruptImageError):
            list(iter_chunks(PNG_SIGNATURE + tail))
        with pytest.raises(CorruptImageError):
            read_parameters(PNG_SIGNATURE + tail)


def test_fuzzed_pngs_only_raise_image_data_errors(txt2img_response):
    data = txt2img_response[0][0]
    rng = random.Random(99)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        blob = bytes(mutated)
        for func in (lambda b: list(iter_chunks(b)), read_text_chunks, read_parameters, png_dimensions,
                     lambda b: ensure_parameters(b, "x")):
            try:
                func(blob)
            except ImageDataError:
                pass


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_fuzzed_jpeg_and_webp_headers_only_raise_image_data_errors(fmt):
    data = encode(noisy_image((16, 16)), fmt, exif=build_exif(INFOTEXT))
    header = min(len(data), 600)  # the EXIF sits in the first few hundred bytes
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(header)] = rng.getrandbits(8)
        try:
            result = read_parameters(bytes(mutated))
        except ImageDataError:
            continue
        assert result is None or isinstance(result, str)


# --------------------------------------------------------------------------------------------------
# JPEG / WebP / PNG eXIf UserComment
# --------------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def pillow_exif_with_comment(raw_comment: bytes) -> bytes:
    exif = Image.Exif()  # Pillow writes little-endian TIFF, unlike piexif
    exif.get_ifd(0x8769)[0x9286] = raw_comment
    return exif.tobytes()


def test_jpeg_without_exif_has_no_parameters():
    data = encode(noisy_image((32, 32)), "JPEG")
    assert image_format(data) == "jpg"
    assert read_parameters(data) is None


def test_webp_without_exif_has_no_parameters():
    data = encode(noisy_image((32, 32)), "WEBP")
    assert image_format(data) == "webp"
    assert read_parameters(data) is None


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("text", [INFOTEXT, CJK_INFOTEXT])
def test_a1111_style_exif_round_trip(fmt, text):
    data = encode(noisy_image((32, 32)), fmt, exif=build_exif(text), quality=90)
    assert read_parameters(data) == text
    with Image.open(io.BytesIO(data)) as image:  # an independent reader sees the A1111 layout
        comment = image.getexif().get_ifd(0x8769)[0x9286]
    assert comment == b"UNICODE\x00" + text.encode("utf-16-be")


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"UNICODE\x00" + CJK_INFOTEXT.encode("utf-16-be"), CJK_INFOTEXT),
        (b"UNICODE\x00" + INFOTEXT.encode("utf-16-le"), INFOTEXT),
        (b"UNICODE\x00" + b"\xff\xfe" + CJK_INFOTEXT.encode("utf-16-le"), CJK_INFOTEXT),
        (b"UNICODE\x00" + b"\xfe\xff" + CJK_INFOTEXT.encode("utf-16-be"), CJK_INFOTEXT),
        (b"ASCII\x00\x00\x00" + INFOTEXT.encode("ascii"), INFOTEXT),
        (b"ASCII\x00\x00\x00" + "fox ✓".encode("utf-8") + b"\x00\x00", "fox ✓"),
        (b"\x00" * 8 + b"undefined charset", "undefined charset"),
        (INFOTEXT.encode("utf-8"), INFOTEXT),  # no prefix at all
    ],
)
def test_user_comment_encodings_in_pillow_written_exif(raw, expected):
    data = encode(noisy_image((16, 16)), "JPEG", exif=pillow_exif_with_comment(raw))
    assert read_parameters(data) == expected


def test_empty_user_comment_is_none():
    data = encode(noisy_image((16, 16)), "JPEG", exif=build_exif(""))
    assert read_parameters(data) is None


def test_truncated_jpeg_and_webp_headers():
    jpeg = encode(noisy_image((16, 16)), "JPEG", exif=build_exif(INFOTEXT))
    with pytest.raises(CorruptImageError):
        read_parameters(jpeg[:30])  # cut inside the APP1 segment
    assert read_parameters(jpeg[: len(jpeg) // 2 + 300]) == INFOTEXT  # damage after the metadata
    webp = encode(noisy_image((16, 16)), "WEBP", exif=build_exif(INFOTEXT))
    with pytest.raises(CorruptImageError):
        read_parameters(webp[:40])


def test_png_exif_user_comment_wins_like_read_info_from_image():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "from text chunk")
    data = png_bytes(noisy_image((16, 16)), pnginfo=info, exif=build_exif("from exif"))
    assert b"eXIf" in chunk_types(data)
    assert read_text_chunks(data)["parameters"] == "from text chunk"
    assert read_parameters(data) == "from exif"
    empty = png_bytes(noisy_image((16, 16)), pnginfo=info, exif=build_exif(""))
    assert read_parameters(empty) == "from text chunk"


# --------------------------------------------------------------------------------------------------
# fit_to_limit
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_noisy_png():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", CJK_INFOTEXT)
    return png_bytes(noisy_image((1024, 1024)), pnginfo=info, compress_level=1)


def test_fit_unchanged_when_under_limit(big_noisy_png):
    result = fit_to_limit(big_noisy_png, len(big_noisy_png), "ignored")
    assert result == FitResult(big_noisy_png, "png", None)
    assert result.data is big_noisy_png
    with pytest.raises(Exception):
        result.note = "x"  # frozen


@pytest.mark.parametrize(
    "limit, limit_text", [(1_500_000, "1.4 MiB"), (400_000, "390.6 KiB"), (150_000, "146.5 KiB")]
)
def test_fit_large_noisy_png_under_limit_keeps_infotext(big_noisy_png, limit, limit_text):
    assert len(big_noisy_png) > 3_000_000
    result = fit_to_limit(big_noisy_png, limit, INFOTEXT)
    assert len(result.data) <= limit
    assert result.extension in ("webp", "jpg")
    assert image_format(result.data) == result.extension
    assert read_parameters(result.data) == INFOTEXT
    note = result.note
    assert note.key in ("note.reencoded", "note.downscaled"), note
    assert note.args["limit"] == limit_text and note.args["quality"] in (90, 80, 70, 85)
    assert note.args["format"] == {"webp": "WebP", "jpg": "JPEG"}[result.extension]
    with Image.open(io.BytesIO(result.data)) as image:
        image.load()
        assert image.mode == "RGB"
        if note.key == "note.downscaled":
            assert image.width < 1024 and (image.width, image.height) == (note.args["w"], note.args["h"])
        else:
            assert image.size == (1024, 1024)


def test_fit_carries_source_parameters_when_infotext_is_none(big_noisy_png):
    result = fit_to_limit(big_noisy_png, 1_500_000, None)
    assert read_parameters(result.data) == CJK_INFOTEXT
    assert result.note == T("note.reencoded", format="WebP", quality=result.note.args["quality"], limit="1.4 MiB")
    assert result.note.args["quality"] in (90, 80, 70)


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_fit_converts_to_rgb(mode):
    data = png_bytes(noisy_image((256, 256), mode))
    result = fit_to_limit(data, len(data) // 2, "x")
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.mode == "RGB"
    assert read_parameters(result.data) == "x"


def test_fit_refuses_too_many_pixels():
    data = png_bytes(noisy_image((300, 300)))
    with pytest.raises(ImageTooLargeError, match="pixel"):
        fit_to_limit(data, 1000, "x", max_pixels=300 * 300 - 1)


def test_fit_cannot_fit_raises():
    data = png_bytes(noisy_image((64, 64)))
    with pytest.raises(CannotFitError):
        fit_to_limit(data, 200, "x" * 1000)  # the infotext alone is larger than the limit


def test_fit_corrupt_png_raises():
    data = png_bytes(noisy_image((128, 128)))
    with pytest.raises(CorruptImageError):
        fit_to_limit(data[: len(data) // 2], 1000, "x")


def test_ensure_parameters_is_fast_on_big_png(big_noisy_png):
    stripped = png_bytes(Image.open(io.BytesIO(big_noisy_png)), compress_level=1)
    assert read_parameters(stripped) is None
    for data in (big_noisy_png, stripped):
        start = time.perf_counter()
        for _ in range(20):
            ensure_parameters(data, INFOTEXT)
            read_parameters(data)
        per_call = (time.perf_counter() - start) / 40
        assert per_call < 0.005  # measured ~2-110 µs; generous bound for slow CI


# --------------------------------------------------------------------------------------------------
# strip_metadata: what an upload (img2img, upscale) keeps on its way to the WebUI
# --------------------------------------------------------------------------------------------------


def decoded(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


def insert_after_ihdr(data: bytes, chunk: bytes) -> bytes:
    return data[:33] + chunk + data[33:]


def exif_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010E] = "a description"
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00a secret prompt"
    return exif.tobytes()


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_markers(data: bytes) -> list[int]:
    """The markers of every segment before the first scan."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        out.append(data[pos + 1])
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return out


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 12
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos + 4)
        out.append((data[pos : pos + 4], data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return out


def test_strip_png_drops_an_8_mb_text_chunk_and_every_other_metadata_chunk():
    image = noisy_image((96, 64), "RGBA")
    clean = png_bytes(image)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    info.add_text("comment", "z" * 5000, zip=True)
    info.add_itxt("Description", CJK_INFOTEXT)
    camera = Image.Exif()
    camera[0x010F] = "a camera maker"
    source = png_bytes(image, pnginfo=info, dpi=(300, 300), exif=camera.tobytes())
    huge = raw_chunk(b"tEXt", b"Huge\x00" + b"x" * (8 * 1024 * 1024))
    source = insert_after_ihdr(source, huge + raw_chunk(b"tIME", b"\x07\xe9\x01\x02\x03\x04\x05")
                               + raw_chunk(b"prVt", b"a private chunk") + raw_chunk(b"bKGD", b"\x00\x01\x00\x02\x00\x03"))
    source = insert_before_iend(source, raw_chunk(b"tEXt", b"after\x00the image data")) + b"bytes after IEND"
    assert len(source) > 8 * 1024 * 1024
    assert read_parameters(source) == INFOTEXT  # what the job reads, from the original bytes

    start = time.perf_counter()
    stripped = strip_metadata(source)
    elapsed = time.perf_counter() - start

    assert stripped == clean  # IHDR, IDAT, IEND copied byte for byte: exactly what Pillow writes without metadata
    assert chunk_types(stripped) == [b"IHDR", *[b"IDAT"] * (len(chunk_types(clean)) - 2), b"IEND"]  # CRCs checked
    assert decoded(stripped) == decoded(source) == ("RGBA", (96, 64), image.tobytes())
    assert read_parameters(stripped) is None and pillow_text(stripped) == {}
    assert strip_metadata(stripped) is stripped and strip_metadata(clean) is clean  # nothing to do: no copy
    assert elapsed < 0.5  # headers walked, payloads skipped by length: measured well under 10 ms


def test_strip_png_keeps_the_chunks_that_change_rendering():
    image = Image.frombytes("P", (40, 30), bytes(random.Random(3).getrandbits(4) for _ in range(40 * 30)))
    image.putpalette([i * 15 % 256 for i in range(16 * 3)])
    profile = bytes(range(256)) * 8
    source = png_bytes(image, transparency=2, icc_profile=profile, dpi=(72, 72))
    rendering = (raw_chunk(b"gAMA", struct.pack(">I", 45455)) + raw_chunk(b"cHRM", bytes(32))
                 + raw_chunk(b"sBIT", b"\x08\x08\x08") + raw_chunk(b"cICP", b"\x01\x0d\x00\x01"))
    source = insert_after_ihdr(source, rendering + raw_chunk(b"tEXt", b"Software\x00paint"))
    source = insert_before_iend(source, raw_chunk(b"hIST", bytes(32)))
    kept = [b"IHDR", b"gAMA", b"cHRM", b"sBIT", b"cICP", b"iCCP", b"PLTE", b"tRNS"]

    stripped = strip_metadata(source)
    types = chunk_types(stripped)
    assert [t for t in types if t not in (b"IDAT", b"IEND")] == kept
    assert decoded(stripped) == decoded(source)
    with Image.open(io.BytesIO(stripped)) as out:
        assert (out.info["transparency"], out.info["icc_profile"]) == (2, profile)
        assert "dpi" not in out.info
    # A colour profile over the bound goes; the rest stays.
    small_bound = strip_metadata(source, max_icc_profile=100)
    assert b"iCCP" not in chunk_types(small_bound) and b"tRNS" in chunk_types(small_bound)
    assert decoded(small_bound) == decoded(source)
    assert MAX_ICC_PROFILE == 1024 * 1024


def test_strip_png_drops_animation_chunks_and_keeps_the_first_frame():
    frames = [noisy_image((32, 24)) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], duration=100)
    source = buf.getvalue()
    assert {b"acTL", b"fcTL", b"fdAT"} <= set(chunk_types(source))
    stripped = strip_metadata(source)
    assert set(chunk_types(stripped)) == {b"IHDR", b"IDAT", b"IEND"}
    assert decoded(stripped) == decoded(source) == ("RGB", (32, 24), frames[0].tobytes())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_strip_keeps_only_a_non_default_exif_orientation(fmt):
    source = encode(noisy_image((40, 30)), fmt, exif=exif_with_orientation(6))
    assert read_parameters(source) == "a secret prompt"
    stripped = strip_metadata(source)
    assert len(stripped) < len(source)
    assert read_parameters(stripped) is None
    with Image.open(io.BytesIO(stripped)) as out:
        exif = out.getexif()
        assert dict(exif) == {0x0112: 6} and not exif.get_ifd(0x8769)
    assert decoded(stripped) == decoded(source)
    assert strip_metadata(stripped) is stripped
    default = encode(noisy_image((40, 30)), fmt, exif=exif_with_orientation(1))
    with Image.open(io.BytesIO(strip_metadata(default))) as out:
        assert not out.getexif() and "exif" not in out.info


@pytest.mark.parametrize("progressive", [False, True])
def test_strip_jpeg_drops_exif_xmp_comments_and_what_follows_eoi(progressive):
    image = noisy_image((64, 48))
    profile = bytes(range(256)) * 12
    base = encode(image, "JPEG", exif=build_exif(INFOTEXT), comment=b"a comment", icc_profile=profile,
                  quality=90, progressive=progressive)
    assert base[2:4] == b"\xff\xe0"  # APP0 JFIF first
    app0_end = 4 + struct.unpack_from(">H", base, 4)[0]
    extra = (jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>a prompt</x:xmpmeta>")
             + jpeg_segment(0xED, b"Photoshop 3.0\x008BIM" + bytes(100))
             + jpeg_segment(0xEC, b"Ducky\x00" + bytes(40)))
    late = jpeg_segment(0xFE, b"a comment after the scans")
    source = base[:app0_end] + extra + base[app0_end:-2] + late + b"\xff\xd9" + b"an appended motion-photo video"
    assert read_parameters(source) == INFOTEXT

    stripped = strip_metadata(source)
    assert jpeg_markers(stripped) == [m for m in jpeg_markers(base) if m not in (0xE1, 0xFE)]
    assert 0xE0 in jpeg_markers(stripped) and 0xE2 in jpeg_markers(stripped)  # JFIF, the ICC profile
    assert stripped.endswith(b"\xff\xd9") and b"after the scans" not in stripped and b"xmpmeta" not in stripped
    assert decoded(stripped) == decoded(source)
    with Image.open(io.BytesIO(stripped)) as out:
        assert out.info["icc_profile"] == profile
        assert "exif" not in out.info and "comment" not in out.info
    assert read_parameters(stripped) is None
    assert strip_metadata(stripped) is stripped


def test_strip_jpeg_keeps_the_adobe_segment_and_bounds_the_icc_profile():
    cmyk = Image.frombytes("CMYK", (32, 32), os.urandom(32 * 32 * 4))
    source = encode(cmyk, "JPEG", comment=b"x")
    stripped = strip_metadata(source)
    assert 0xEE in jpeg_markers(stripped) and 0xFE not in jpeg_markers(stripped)  # colour transform kept
    assert decoded(stripped) == decoded(source)

    profile = os.urandom(150_000)  # Pillow splits it over three APP2 segments
    source = encode(noisy_image((32, 32)), "JPEG", icc_profile=profile)
    assert jpeg_markers(source).count(0xE2) == 3
    assert strip_metadata(source) is source
    dropped = strip_metadata(source, max_icc_profile=100_000)  # all of it or nothing: a part is no profile
    assert 0xE2 not in jpeg_markers(dropped)
    assert decoded(dropped) == decoded(source)
    with Image.open(io.BytesIO(dropped)) as out:
        assert "icc_profile" not in out.info


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_strip_webp_drops_exif_and_xmp_and_fixes_the_header(mode):
    profile = bytes(range(256)) * 2
    source = encode(noisy_image((64, 48), mode), "WEBP", exif=build_exif(INFOTEXT), xmp=b"<x:xmpmeta/>",
                    icc_profile=profile) + b"trailing bytes"
    fourccs = [c for c, _ in webp_chunks(source[:-14])]
    assert {b"VP8X", b"ICCP", b"EXIF", b"XMP "} <= set(fourccs)
    assert read_parameters(source) == INFOTEXT

    stripped = strip_metadata(source)
    chunks = webp_chunks(stripped)
    assert [c for c, _ in chunks] == [c for c in fourccs if c not in (b"EXIF", b"XMP ")]
    assert struct.unpack_from("<I", stripped, 4)[0] == len(stripped) - 8
    flags = chunks[0][1][0]
    assert flags & 0x20 and not flags & 0x08 and not flags & 0x04  # ICC yes, EXIF and XMP no
    assert bool(flags & 0x10) == (mode == "RGBA")  # alpha untouched
    assert decoded(stripped) == decoded(source)
    with Image.open(io.BytesIO(stripped)) as out:
        assert out.info["icc_profile"] == profile and "exif" not in out.info and "xmp" not in out.info
    assert read_parameters(stripped) is None
    assert strip_metadata(stripped) is stripped

    no_profile = strip_metadata(source, max_icc_profile=100)
    chunks = webp_chunks(no_profile)
    assert b"ICCP" not in [c for c, _ in chunks] and not chunks[0][1][0] & 0x20
    assert decoded(no_profile) == decoded(source)


def test_strip_refuses_other_formats_and_only_raises_image_data_errors():
    with pytest.raises(UnsupportedImageError):
        strip_metadata(b"GIF89a" + bytes(100))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    image = noisy_image((24, 16))
    samples = [png_bytes(image, pnginfo=info), encode(image, "JPEG", exif=build_exif(INFOTEXT), comment=b"c"),
               encode(image, "WEBP", exif=build_exif(INFOTEXT))]
    rng = random.Random(7)
    for data in samples:
        for cut in range(0, len(data), max(1, len(data) // 97)):
            try:
                strip_metadata(data[:cut])
            except ImageDataError:
                pass
        for _ in range(200):
            damaged = bytearray(data)
            for _ in range(3):
                damaged[rng.randrange(2 if damaged[:2] == b"\xff\xd8" else 12, len(damaged))] = rng.randrange(256)
            try:
                strip_metadata(bytes(damaged))
            except ImageDataError:
                pass
