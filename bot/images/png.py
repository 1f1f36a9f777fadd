"""Byte-level PNG work (and EXIF UserComment reading for JPEG/WebP) for WebUI images.

Nothing here decodes pixels except `fit_to_limit`, which must re-encode. No Discord imports.

Errors are all `ValueError` subclasses under `ImageDataError`:

* `NotPNGError`: the bytes do not start with the PNG signature (PNG-only functions).
* `CorruptImageError`: truncated or damaged structure (chunk/segment lengths, PNG CRCs).
* `UnsupportedImageError`: `read_parameters`/`fit_to_limit` got something that is not PNG, JPEG
  or WebP.
* `ImageTooLargeError`: `fit_to_limit` refuses an image above its pixel bound.
* `CannotFitError`: `fit_to_limit` could not get under the limit.

Text chunks (``tEXt``/``zTXt``/``iTXt``) are legal anywhere between IHDR and IEND, including after
IDAT, so readers walk the whole chunk list. That walk only reads the 8-byte headers and skips
payloads by length, so it costs microseconds even for multi-megabyte files; stopping at IDAT would
save nothing measurable and would miss valid chunks.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from bot.errors import SdcordError
from bot.text import T, Text

__all__ = [
    "MAX_ICC_PROFILE",
    "MAX_TEXT_CHUNK",
    "PNG_SIGNATURE",
    "CannotFitError",
    "CorruptImageError",
    "FitResult",
    "ImageDataError",
    "ImageTooLargeError",
    "NotPNGError",
    "PNGChunk",
    "UnsupportedImageError",
    "add_text_chunk",
    "build_exif",
    "encode_user_comment",
    "ensure_parameters",
    "fit_to_limit",
    "image_format",
    "iter_chunks",
    "png_dimensions",
    "read_parameters",
    "read_text_chunks",
    "strip_metadata",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Largest decompressed zTXt/iTXt payload read (Pillow's ``MAX_TEXT_CHUNK``); bigger ones are skipped.
MAX_TEXT_CHUNK = 1024 * 1024

_TEXT_TYPES = frozenset((b"tEXt", b"zTXt", b"iTXt"))
_IHDR_END = 8 + 12 + 13  # signature + IHDR chunk
_MAX_CHUNK_LENGTH = 2**31 - 1
_HEADER = struct.Struct(">I4s")
_U32 = struct.Struct(">I")

_PARAMETERS = "parameters"
_USER_COMMENT_TAG = 0x9286
_EXIF_IFD_TAG = 0x8769
_UNICODE_PREFIX = b"UNICODE\x00"
_ASCII_PREFIX = b"ASCII\x00\x00\x00"
_JIS_PREFIX = b"JIS\x00\x00\x00\x00\x00"
_UNDEFINED_PREFIX = b"\x00" * 8

MiB = 1024 * 1024


class ImageDataError(SdcordError, ValueError):
    """Base class of every error raised by this module for bad input bytes."""


class NotPNGError(ImageDataError):
    """The data does not start with the PNG signature."""


class CorruptImageError(ImageDataError):
    """The image is truncated or its structure is damaged (lengths, CRCs, markers)."""


class UnsupportedImageError(ImageDataError):
    """The data is not a PNG, JPEG or WebP image."""


class ImageTooLargeError(ImageDataError):
    """The image has more pixels than the caller allows (decompression-bomb guard)."""


class CannotFitError(ImageDataError):
    """`fit_to_limit` could not produce an image under the byte limit."""


class PNGChunk(NamedTuple):
    """One chunk: its type, the offsets of its first (length field) and past-last (CRC) byte, and a
    zero-copy view of its payload."""

    type: bytes
    start: int
    end: int
    data: memoryview


# --------------------------------------------------------------------------------------------------
# Chunk walking
# --------------------------------------------------------------------------------------------------


def _check_signature(data: bytes) -> None:
    if data[:8] != PNG_SIGNATURE:
        raise NotPNGError("not a PNG (bad signature)")


def iter_chunks(data: bytes, *, verify_crc: bool = True) -> Iterator[PNGChunk]:
    """Yield every chunk from IHDR up to and including IEND; bytes after IEND are ignored.

    Raises `NotPNGError` without the signature, `CorruptImageError` when a chunk is truncated, has
    an impossible length or a non-letter type, when the first chunk is not IHDR, when the data ends
    before IEND, or (with `verify_crc`) on a CRC mismatch. Errors are raised lazily, when the walk
    reaches the damage.
    """
    _check_signature(data)
    view = memoryview(data)
    size = len(view)
    pos = 8
    first = True
    while True:
        if pos + 12 > size:
            raise CorruptImageError(f"PNG truncated: chunk header expected at offset {pos}")
        length, ctype = _HEADER.unpack_from(view, pos)
        if length > _MAX_CHUNK_LENGTH:
            raise CorruptImageError(f"PNG chunk at offset {pos} has an invalid length {length}")
        if not ctype.isalpha():
            raise CorruptImageError(f"PNG chunk at offset {pos} has an invalid type {ctype!r}")
        if first and ctype != b"IHDR":
            raise CorruptImageError(f"PNG does not start with IHDR (found {ctype!r})")
        first = False
        end = pos + 12 + length
        if end > size:
            raise CorruptImageError(f"PNG truncated inside {ctype.decode()} chunk at offset {pos}")
        if verify_crc:
            _verify_crc(view, pos, end, ctype)
        yield PNGChunk(ctype, pos, end, view[pos + 8 : end - 4])
        if ctype == b"IEND":
            return
        pos = end


def _verify_crc(view: memoryview, start: int, end: int, ctype: bytes) -> None:
    (stored,) = _U32.unpack_from(view, end - 4)
    if zlib.crc32(view[start + 4 : end - 4]) != stored:
        raise CorruptImageError(f"PNG {ctype.decode()} chunk at offset {start} has a bad CRC")


def png_dimensions(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from IHDR. Reads only the first 33 bytes (CRC checked)."""
    _check_signature(data)
    if len(data) < _IHDR_END:
        raise CorruptImageError("PNG truncated inside IHDR")
    length, ctype = _HEADER.unpack_from(data, 8)
    if ctype != b"IHDR" or length != 13:
        raise CorruptImageError("PNG does not start with a valid IHDR chunk")
    view = memoryview(data)
    _verify_crc(view, 8, _IHDR_END, ctype)
    width, height = struct.unpack_from(">II", data, 16)
    if not (0 < width <= _MAX_CHUNK_LENGTH and 0 < height <= _MAX_CHUNK_LENGTH):
        raise CorruptImageError(f"PNG has invalid dimensions {width}x{height}")
    return width, height


# --------------------------------------------------------------------------------------------------
# Text chunks
# --------------------------------------------------------------------------------------------------


def _decompress(payload: bytes | memoryview, limit: int) -> bytes | None:
    """zlib-decompress at most `limit` bytes; None for invalid data or when the limit is exceeded."""
    obj = zlib.decompressobj()
    try:
        out = obj.decompress(payload, limit)
    except zlib.error:
        return None
    if obj.unconsumed_tail:
        return None
    return out


def _decode_text_chunk(ctype: bytes, payload: memoryview, limit: int) -> tuple[str, str] | None:
    """(key, text) of one text chunk, or None when Pillow would skip it too."""
    raw = bytes(payload)
    key, _sep, rest = raw.partition(b"\0")
    if not key:
        return None
    if ctype == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if ctype == b"zTXt":
        if rest[:1] not in (b"", b"\0"):  # compression method must be 0 (deflate)
            return None
        text = _decompress(rest[1:], limit) if rest else b""
        if text is None:
            return None
        return key.decode("latin-1"), text.decode("latin-1")
    # iTXt: key \0 flag method lang \0 translated-key \0 text
    if len(rest) < 2:
        return None
    flag, method, tail = rest[0], rest[1], rest[2:]
    parts = tail.split(b"\0", 2)
    if len(parts) != 3:
        return None
    lang, tkey, text = parts
    if flag:
        if method != 0:
            return None
        text = _decompress(text, limit)
        if text is None:
            return None
    try:
        lang.decode("utf-8")
        tkey.decode("utf-8")
        return key.decode("latin-1"), text.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _scan_png(data: bytes, limit: int) -> tuple[dict[str, str], bytes | None]:
    """Text chunks (last occurrence of a key wins) and the last eXIf payload of a PNG."""
    texts: dict[str, str] = {}
    exif: bytes | None = None
    view = memoryview(data)
    for chunk in iter_chunks(data, verify_crc=False):
        if chunk.type in _TEXT_TYPES or chunk.type == b"eXIf":
            _verify_crc(view, chunk.start, chunk.end, chunk.type)
            if chunk.type == b"eXIf":
                exif = bytes(chunk.data)
                continue
            decoded = _decode_text_chunk(chunk.type, chunk.data, limit)
            if decoded is not None:
                texts[decoded[0]] = decoded[1]
    return texts, exif


def read_text_chunks(data: bytes, *, max_decompressed: int = MAX_TEXT_CHUNK) -> dict[str, str]:
    """All ``tEXt`` (Latin-1), ``zTXt`` (zlib, Latin-1) and ``iTXt`` (UTF-8, compressed or not)
    chunks of a PNG, keyed by keyword, in file order.

    Like Pillow's ``Image.text``, a later chunk with the same keyword replaces an earlier one (last
    wins), chunks after IDAT count, and malformed, undecodable or over-`max_decompressed` compressed
    chunks are skipped. The CRC of every text chunk is checked (`CorruptImageError`); IDAT CRCs are
    not, to stay fast.
    """
    return _scan_png(data, max_decompressed)[0]


# --------------------------------------------------------------------------------------------------
# EXIF UserComment (JPEG / WebP / PNG eXIf)
# --------------------------------------------------------------------------------------------------


def image_format(data: bytes) -> str | None:
    """``'png'``, ``'jpg'`` or ``'webp'`` from the magic bytes, else None."""
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _jpeg_exif(data: bytes) -> bytes | None:
    """Payload of the first ``APP1 "Exif\\0\\0"`` segment, scanning the headers up to SOS."""
    pos = 2
    size = len(data)
    while True:
        while pos < size and data[pos] == 0xFF and pos + 1 < size and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 2 > size:
            raise CorruptImageError("JPEG truncated before image data")
        if data[pos] != 0xFF:
            raise CorruptImageError(f"JPEG marker expected at offset {pos}")
        marker = data[pos + 1]
        pos += 2
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # no length field
        if marker in (0xD9, 0xDA):  # EOI / SOS: metadata segments are over
            return None
        if pos + 2 > size:
            raise CorruptImageError("JPEG truncated inside a segment header")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            raise CorruptImageError(f"JPEG segment at offset {pos - 2} is truncated")
        if marker == 0xE1 and data[pos + 2 : pos + 8] == b"Exif\x00\x00":
            return data[pos + 8 : pos + length]
        pos += length


def _webp_exif(data: bytes) -> bytes | None:
    """Payload of the ``EXIF`` chunk of a RIFF/WebP container."""
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = min(len(data), 8 + riff_size)
    pos = 12
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        if pos + 8 + length > end:
            raise CorruptImageError(f"WebP chunk {fourcc!r} at offset {pos} is truncated")
        if fourcc == b"EXIF":
            return data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)
    if pos < end:
        raise CorruptImageError("WebP truncated inside a chunk header")
    return None


def _exif_user_comment(exif: bytes) -> bytes | None:
    """Raw UserComment (tag 0x9286) from a TIFF/EXIF blob: Exif IFD first, then IFD0. Malformed
    EXIF gives None (it is metadata, not the image)."""
    if exif[:6] == b"Exif\x00\x00":
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return None
    u16, u32 = struct.Struct(order + "H"), struct.Struct(order + "I")
    if u16.unpack_from(exif, 2)[0] != 42:
        return None

    def entries(offset: int) -> dict[int, tuple[int, int, int]]:
        if offset + 2 > len(exif):
            return {}
        (count,) = u16.unpack_from(exif, offset)
        found: dict[int, tuple[int, int, int]] = {}
        for i in range(count):
            at = offset + 2 + 12 * i
            if at + 12 > len(exif):
                break
            tag, typ = struct.unpack_from(order + "HH", exif, at)
            (n,) = u32.unpack_from(exif, at + 4)
            found.setdefault(tag, (typ, n, at + 8))
        return found

    def value_bytes(typ: int, n: int, field: int) -> bytes | None:
        if typ not in (1, 2, 7):  # BYTE, ASCII, UNDEFINED: one byte per element
            return None
        if n <= 4:
            return exif[field : field + n]
        (offset,) = u32.unpack_from(exif, field)
        if offset + n > len(exif):
            return None
        return exif[offset : offset + n]

    ifd0 = entries(u32.unpack_from(exif, 4)[0])
    places = []
    if _EXIF_IFD_TAG in ifd0:
        typ, _n, field = ifd0[_EXIF_IFD_TAG]
        if typ in (4, 13):  # LONG or IFD
            places.append(entries(u32.unpack_from(exif, field)[0]))
    places.append(ifd0)
    for ifd in places:
        if _USER_COMMENT_TAG in ifd:
            return value_bytes(*ifd[_USER_COMMENT_TAG])
    return None


def _decode_utf16(body: bytes) -> str:
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", "replace")
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", "replace")
    # No BOM: A1111 (piexif "unicode") writes big-endian; some tools write little-endian. For
    # mostly-ASCII text the zero high bytes give the order away; otherwise assume big-endian.
    zeros_even = body[0::2].count(0)
    zeros_odd = body[1::2].count(0)
    codec = "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"
    return body[: len(body) & ~1].decode(codec, "replace")


def _decode_user_comment(raw: bytes) -> str:
    prefix, body = raw[:8], raw[8:]
    if prefix == _UNICODE_PREFIX:
        text = _decode_utf16(body)
    elif prefix in (_ASCII_PREFIX, _UNDEFINED_PREFIX):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("latin-1")
    elif prefix == _JIS_PREFIX:
        text = body.decode("shift_jis", "replace")
    else:
        text = raw.decode("utf-8", "ignore")  # what A1111 does when piexif cannot classify it
    return text.rstrip("\x00")


def encode_user_comment(text: str) -> bytes:
    """A1111's UserComment encoding (piexif ``"unicode"``): ``b"UNICODE\\0"`` + UTF-16-BE."""
    return _UNICODE_PREFIX + text.encode("utf-16-be")


def build_exif(user_comment: str) -> bytes:
    """A minimal big-endian EXIF blob (``Exif\\0\\0`` + TIFF) holding only the Exif IFD's
    UserComment, the layout piexif produces for A1111."""
    comment = encode_user_comment(user_comment)
    # Header (8) | IFD0: 1 entry (2 + 12 + 4) | Exif IFD: 1 entry (2 + 12 + 4) | comment
    ifd0_at, exif_ifd_at = 8, 8 + 18
    data_at = exif_ifd_at + 18
    tiff = b"MM\x00\x2a" + struct.pack(">I", ifd0_at)
    tiff += struct.pack(">HHHII", 1, _EXIF_IFD_TAG, 4, 1, exif_ifd_at) + struct.pack(">I", 0)
    tiff += struct.pack(">HHHII", 1, _USER_COMMENT_TAG, 7, len(comment), data_at) + struct.pack(">I", 0)
    return b"Exif\x00\x00" + tiff + comment


def read_parameters(data: bytes) -> str | None:
    """The generation infotext embedded in an image, or None when it has none.

    * PNG: the ``parameters`` text chunk (tEXt/zTXt/iTXt). As in A1111's ``read_info_from_image``,
      a non-empty EXIF UserComment (``eXIf`` chunk) wins over it.
    * JPEG/WebP: the EXIF UserComment. ``UNICODE\\0`` + UTF-16 (big-endian as A1111 writes it, or
      little-endian / BOM-marked), ``ASCII``, ``JIS`` and unmarked comments are understood. An
      empty comment counts as none.

    Only headers are read; pixels are never decoded. Raises `UnsupportedImageError` for bytes that
    are not PNG/JPEG/WebP and `CorruptImageError` when the container structure is damaged before
    the metadata could be read.
    """
    kind = image_format(data)
    if kind == "png":
        texts, exif = _scan_png(data, MAX_TEXT_CHUNK)
        if exif is not None:
            raw = _exif_user_comment(exif)
            comment = _decode_user_comment(raw) if raw else ""
            if comment:
                return comment
        return texts.get(_PARAMETERS)
    if kind == "jpg":
        exif = _jpeg_exif(data)
    elif kind == "webp":
        exif = _webp_exif(data)
    else:
        raise UnsupportedImageError("not a PNG, JPEG or WebP image")
    if not exif:
        return None
    raw = _exif_user_comment(exif)
    if not raw:
        return None
    return _decode_user_comment(raw) or None


# --------------------------------------------------------------------------------------------------
# Writing text chunks
# --------------------------------------------------------------------------------------------------


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return _U32.pack(len(payload)) + ctype + payload + _U32.pack(zlib.crc32(payload, zlib.crc32(ctype)))


def _text_chunk(key: str, text: str) -> bytes:
    try:
        key_bytes = key.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"PNG text keyword must be Latin-1: {key!r}") from None
    if not 1 <= len(key_bytes) <= 79:
        raise ValueError("PNG text keyword must be 1-79 bytes")
    if any(not (32 <= b <= 126 or 161 <= b <= 255) for b in key_bytes):
        raise ValueError(f"PNG text keyword must be printable Latin-1: {key!r}")
    if key != key.strip(" ") or "  " in key:
        raise ValueError(f"PNG text keyword has leading, trailing or double spaces: {key!r}")
    if "\x00" in text:
        raise ValueError("PNG text must not contain NUL characters")
    try:
        return _chunk(b"tEXt", key_bytes + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        # Not Latin-1 (CJK, emoji, ...): uncompressed iTXt, no language tag, no translated key.
        return _chunk(b"iTXt", key_bytes + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _insert_after_ihdr(data: bytes, chunk: bytes) -> bytes:
    view = memoryview(data)
    return b"".join((view[:_IHDR_END], chunk, view[_IHDR_END:]))


def add_text_chunk(data: bytes, key: str, text: str) -> bytes:
    """A copy of the PNG with one more text chunk right after IHDR (so before IDAT).

    ``tEXt`` when `text` is Latin-1 encodable, else an uncompressed ``iTXt`` (UTF-8), exactly as
    Pillow's ``PngInfo.add_text`` chooses. Every other byte is copied unchanged. Existing chunks
    with the same keyword are kept; readers that let the last one win (Pillow) will still see
    theirs. The input's chunk structure is validated (not its IDAT CRCs): `NotPNGError`,
    `CorruptImageError`; a bad keyword or a NUL in `text` raises plain `ValueError`.
    """
    chunk = _text_chunk(key, text)
    for _ in iter_chunks(data, verify_crc=False):
        pass
    return _insert_after_ihdr(data, chunk)


def _is_parameters_chunk(chunk: PNGChunk) -> bool:
    head = chunk.data[: len(_PARAMETERS) + 1]
    return head == b"parameters\x00" or (chunk.type == b"tEXt" and chunk.data == b"parameters")


def ensure_parameters(data: bytes, infotext: str | None) -> bytes:
    """Make sure the PNG carries its infotext.

    If any ``parameters`` text chunk exists, or `infotext` is None, the *same* object is returned
    untouched. Otherwise a copy with `infotext` inserted after IHDR is returned (see
    `add_text_chunk`). This is the hot path: it only walks the chunk headers (no CRC, no
    decompression). Raises `NotPNGError`/`CorruptImageError` for broken input.
    """
    for chunk in iter_chunks(data, verify_crc=False):
        if chunk.type in _TEXT_TYPES and _is_parameters_chunk(chunk):
            return data
    if infotext is None:
        return data
    return _insert_after_ihdr(data, _text_chunk(_PARAMETERS, infotext))


# --------------------------------------------------------------------------------------------------
# Stripping metadata from uploads
# --------------------------------------------------------------------------------------------------

#: Largest colour profile `strip_metadata` keeps: a PNG ``iCCP`` chunk, a JPEG's ``APP2 ICC_PROFILE``
#: segments together, a WebP ``ICCP`` chunk. Real profiles are a few KiB; bigger ones are dropped whole.
MAX_ICC_PROFILE = MiB

# Ancillary PNG chunks that change how the pixels are shown (transparency, colour space). Every other
# ancillary chunk is dropped: text, eXIf (but see `_orientation_exif`), tIME, pHYs, bKGD, hIST, sPLT,
# the APNG frames (acTL/fcTL/fdAT: decoders show the IDAT image), private chunks. Critical chunks
# (IHDR, PLTE, IDAT, IEND, and unknown ones, which a decoder must not skip) are always kept.
_PNG_RENDERING = frozenset((b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"cICP", b"mDCV", b"cLLI"))
_ORIENTATION_TAG = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"
_ICC_PREFIX = b"ICC_PROFILE\x00"
# WebP: the chunks that make the picture; EXIF and "XMP " go (EXIF but for its orientation), unknown too.
_WEBP_IMAGE = frozenset((b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"))
_VP8X_ICC, _VP8X_EXIF, _VP8X_XMP = 0x20, 0x08, 0x04


def _exif_orientation(exif: bytes | memoryview) -> int | None:
    """The Orientation (IFD0 tag 0x0112) of a TIFF/EXIF blob when it is not the default 1, else None."""
    exif = bytes(exif[: 64 * 1024])  # IFD0 sits at the start in practice; no need to copy a huge blob
    if exif[:6] == _EXIF_PREFIX:
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8 or struct.unpack_from(order + "H", exif, 2)[0] != 42:
        return None
    (ifd,) = struct.unpack_from(order + "I", exif, 4)
    if ifd + 2 > len(exif):
        return None
    (count,) = struct.unpack_from(order + "H", exif, ifd)
    for i in range(count):
        at = ifd + 2 + 12 * i
        if at + 12 > len(exif):
            return None
        tag, typ, n = struct.unpack_from(order + "HHI", exif, at)
        if tag == _ORIENTATION_TAG:
            if typ != 3 or n != 1:  # SHORT, one value
                return None
            (value,) = struct.unpack_from(order + "H", exif, at + 8)
            return value if 2 <= value <= 8 else None
    return None


def _orientation_exif(old: bytes | memoryview) -> bytes | None:
    """What is left of an EXIF blob: only its Orientation (it says how the stored pixels are meant to be
    shown, and a WebUI may apply it), in the old blob's framing (with or without ``Exif\\0\\0``); None
    when it has the default orientation (nothing to keep)."""
    orientation = _exif_orientation(old)
    if orientation is None:
        return None
    tiff = (b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">HHHIHH", 1, _ORIENTATION_TAG, 3, 1, orientation, 0)
            + struct.pack(">I", 0))
    return (_EXIF_PREFIX if old[:6] == _EXIF_PREFIX else b"") + tiff


def _strip_png(data: bytes, max_icc: int) -> bytes:
    view = memoryview(data)
    parts: list[bytes | memoryview] = [view[:8]]
    changed = False
    end = 8
    for chunk in iter_chunks(data, verify_crc=False):
        ctype, end = chunk.type, chunk.end
        critical = not ctype[0] & 0x20
        if critical or (ctype in _PNG_RENDERING and (ctype != b"iCCP" or len(chunk.data) <= max_icc)):
            parts.append(view[chunk.start : chunk.end])  # copied as it is: its CRC stays valid
            continue
        kept = _orientation_exif(chunk.data) if ctype == b"eXIf" else None
        if kept is not None and kept == chunk.data:
            parts.append(view[chunk.start : chunk.end])
            continue
        changed = True
        if kept is not None:
            parts.append(_chunk(b"eXIf", kept))
    if not changed and end == len(data):
        return data
    return b"".join(parts)  # bytes after IEND are dropped too


def _jpeg_segment_end(data: bytes, pos: int) -> int:
    """Past the end of the entropy-coded data that starts at `pos`: the offset of the next marker (0xFF
    followed by neither a stuffed 0x00, a restart marker nor another 0xFF), or the end of the data."""
    size = len(data)
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= size:
            return size
        following = data[i + 1]
        if following == 0xFF:  # fill byte
            pos = i + 1
        elif following == 0x00 or 0xD0 <= following <= 0xD7:
            pos = i + 2
        else:
            return i


def _strip_jpeg(data: bytes, max_icc: int) -> bytes:
    """Drop APP1-APP15 and COM segments (EXIF, XMP, Photoshop, MPF, comments, ...) wherever they are, and
    whatever follows EOI (appended previews, motion-photo videos). Kept: APP0 (JFIF), APP14 "Adobe" (its
    colour transform changes the pixels), the APP2 ICC profile up to `max_icc` bytes, an EXIF orientation
    (`_orientation_exif`), and every other segment and the scans byte for byte."""
    size = len(data)
    view = memoryview(data)
    parts: list[bytes | memoryview] = [view[:2]]
    icc: list[int] = []  # indexes into parts
    icc_bytes = 0
    changed = False
    seen_exif = False
    pos = 2
    while pos < size:
        start = pos
        while pos + 1 < size and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > size or data[pos] != 0xFF:
            raise CorruptImageError(f"JPEG marker expected at offset {pos}")
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD9:  # EOI
            parts.append(view[start:pos])
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            parts.append(view[start:pos])
            continue
        if marker == 0xD8 or pos + 2 > size:
            raise CorruptImageError(f"JPEG segment header expected at offset {start}")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > size:
            raise CorruptImageError(f"JPEG segment at offset {start} is truncated")
        payload = view[pos + 2 : pos + length]
        pos += length
        if marker == 0xDA:  # SOS: the header, then the scan's data up to the next marker
            scan_end = _jpeg_segment_end(data, pos)
            parts.append(view[start:scan_end])
            pos = scan_end
            continue
        if not (0xE1 <= marker <= 0xEF or marker == 0xFE):
            parts.append(view[start:pos])  # SOFn, DHT, DQT, DRI, APP0, ...
        elif marker == 0xEE and payload[:5] == b"Adobe":
            parts.append(view[start:pos])
        elif marker == 0xE2 and payload[: len(_ICC_PREFIX)] == _ICC_PREFIX:
            icc.append(len(parts))
            icc_bytes += len(payload) - len(_ICC_PREFIX) - 2  # less the name, sequence number and count
            parts.append(view[start:pos])
        else:
            kept = None
            if marker == 0xE1 and payload[:6] == _EXIF_PREFIX and not seen_exif:
                seen_exif = True
                kept = _orientation_exif(payload)
            if kept is not None and kept == payload:  # already only the orientation
                parts.append(view[start:pos])
                continue
            changed = True
            if kept is not None:
                parts.append(b"\xff\xe1" + struct.pack(">H", len(kept) + 2) + kept)
    if icc_bytes > max_icc:
        changed = True
        for index in icc:
            parts[index] = b""
    if not changed and pos >= size:
        return data
    return b"".join(parts)


def _strip_webp(data: bytes, max_icc: int) -> bytes:
    """Drop the EXIF (but for its orientation), XMP and unknown chunks, and an ICCP over `max_icc`; fix
    the RIFF size and the VP8X flags. The image chunks are copied byte for byte."""
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = min(len(data), 8 + riff_size)
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    vp8x: int | None = None  # its index in parts
    has_icc = has_exif = changed = False
    pos = 12
    while pos + 8 <= end:
        fourcc = bytes(view[pos : pos + 4])
        (length,) = struct.unpack_from("<I", data, pos + 4)
        if pos + 8 + length > end:
            raise CorruptImageError(f"WebP chunk {fourcc!r} at offset {pos} is truncated")
        chunk_end = min(end, pos + 8 + length + (length & 1))
        payload = view[pos + 8 : pos + 8 + length]
        if fourcc in _WEBP_IMAGE or (fourcc == b"ICCP" and length <= max_icc):
            if fourcc == b"VP8X":
                if length < 10:
                    raise CorruptImageError("WebP VP8X chunk is too short")
                vp8x = len(parts)
            has_icc = has_icc or fourcc == b"ICCP"
            parts.append(view[pos:chunk_end])
        else:
            kept = _orientation_exif(payload) if fourcc == b"EXIF" else None
            if kept is not None and kept == payload:
                has_exif = True
                parts.append(view[pos:chunk_end])
            else:
                changed = True
                if kept is not None:
                    has_exif = True
                    parts.append(b"EXIF" + struct.pack("<I", len(kept)) + kept + b"\0" * (len(kept) & 1))
        pos = chunk_end
    if pos < end:
        raise CorruptImageError("WebP truncated inside a chunk header")
    if not changed and end == len(data):
        return data
    if vp8x is not None:
        chunk = bytearray(parts[vp8x])
        flags = chunk[8] & ~(_VP8X_ICC | _VP8X_EXIF | _VP8X_XMP)
        chunk[8] = flags | (_VP8X_ICC if has_icc else 0) | (_VP8X_EXIF if has_exif else 0)
        parts[vp8x] = bytes(chunk)
    body = b"".join(parts)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def strip_metadata(data: bytes, *, max_icc_profile: int = MAX_ICC_PROFILE) -> bytes:
    """An uploaded PNG, JPEG or WebP without the metadata that doesn't change its pixels, for the WebUI.

    Byte-level, O(size): chunks and segments are copied or left out, pixels are never decoded or
    re-encoded, and what is kept is byte for byte what it was (PNG CRCs stay valid).

    * PNG: ancillary chunks go (text, eXIf, tIME, pHYs, bKGD, APNG frames, private ones, ...) except
      those that change rendering: tRNS, gAMA, cHRM, sRGB, sBIT, cICP, mDCV, cLLI and an iCCP of at
      most `max_icc_profile` bytes. Bytes after IEND go.
    * JPEG: APP1-APP15 and COM go (EXIF, XMP, Photoshop, MPF, ...), except APP14 "Adobe" and an ICC
      profile (APP2) of at most `max_icc_profile` bytes; so does anything after EOI.
    * WebP: EXIF, XMP and unknown chunks go, and an ICCP over the bound; the RIFF size and the VP8X
      flags are fixed.

    An EXIF Orientation other than 1 is kept as a minimal EXIF holding only it, so the image is shown
    (and generated from) the way it was. Read the infotext (`read_parameters`) from the original
    bytes: it is gone here. Returns `data` itself when there is nothing to drop. Sync: run it in a
    thread. Raises `UnsupportedImageError` for other formats and `CorruptImageError` when the structure
    is damaged (the caller may then send the bytes as they are).
    """
    kind = image_format(data)
    if kind == "png":
        return _strip_png(data, max_icc_profile)
    if kind == "jpg":
        return _strip_jpeg(data, max_icc_profile)
    if kind == "webp":
        return _strip_webp(data, max_icc_profile)
    raise UnsupportedImageError("not a PNG, JPEG or WebP image")


# --------------------------------------------------------------------------------------------------
# Fitting under an upload limit
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """What to upload: the bytes, their extension and a short note (None when unchanged)."""

    data: bytes
    extension: str  # 'png' | 'webp' | 'jpg'
    note: Text | None


_WEBP_QUALITIES = (90, 80, 70)
_JPEG_QUALITIES = (85, 70)
_DOWNSCALE_QUALITY = 80
_HOPELESS_FACTOR = 2.5  # a result this many times over the limit: lower qualities won't rescue it
_MAX_ROUNDS = 12
_MIN_SIDE = 16


def _human_size(n: int) -> str:
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"


def _encode(image, fmt: str, quality: int, exif: bytes | None) -> bytes | None:
    buf = io.BytesIO()
    kwargs = {"quality": quality}
    if exif:
        kwargs["exif"] = exif
    try:
        image.save(buf, "WEBP" if fmt == "webp" else "JPEG", **kwargs)
    except (OSError, ValueError, KeyError):
        # No codec, dimensions over WebP's 16383 px, EXIF over JPEG's 64 KiB segment, ...
        return None
    return buf.getvalue()


def fit_to_limit(
    data: bytes,
    limit: int,
    infotext: str | None,
    *,
    max_pixels: int = 64_000_000,
) -> FitResult:
    """Return `data` unchanged if ``len(data) <= limit``, else re-encode it to fit.

    Synchronous and CPU-bound: run it in a thread. The ladder is WebP at quality 90/80/70, then
    JPEG at 85/70, then repeated downscaling (Lanczos, factor estimated from the best size so far)
    with WebP/JPEG at quality 80, until the result fits. Non-RGB images (RGBA, P, ...; grayscale is
    kept) become RGB like the WebUI's JPEG/WebP output. The infotext goes into the EXIF UserComment
    (``UNICODE\\0`` + UTF-16-BE, Exif IFD tag 0x9286) so `read_parameters` returns it. With
    `infotext` None, the source image's own parameters (if any) are carried over.

    The note is a message for the user: `note.reencoded` (format, quality, limit) or `note.downscaled`
    (w, h, format, quality, limit), e.g. "re-encoded as WebP (q90) to fit the 10.0 MiB limit".

    Raises `UnsupportedImageError` (not PNG/JPEG/WebP), `ImageTooLargeError` (more than
    `max_pixels` pixels; checked from the header before decoding; Pillow's own global bomb limit
    still applies on top), `CorruptImageError` (cannot be decoded) and `CannotFitError`.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    kind = image_format(data)
    if kind is None:
        raise UnsupportedImageError("not a PNG, JPEG or WebP image")
    if len(data) <= limit:
        return FitResult(data, kind, None)

    from PIL import Image, ImageOps  # local import: only this function needs Pillow

    if infotext is None:
        infotext = read_parameters(data)
    exif = build_exif(infotext) if infotext else None

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except OSError as exc:
        raise CorruptImageError(f"cannot open image: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height:,} pixels, over the {max_pixels:,} pixel limit"
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptImageError(f"cannot decode image: {exc}") from exc
    try:
        if image.getexif().get(0x0112, 1) != 1:
            image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, struct.error):
        pass  # unreadable orientation metadata: keep the pixels as stored
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")

    best = len(data)
    limit_text = _human_size(limit)

    def attempt(img, fmt: str, qualities: tuple[int, ...]) -> tuple[bytes, int] | None:
        nonlocal best
        for quality in qualities:
            out = _encode(img, fmt, quality, exif)
            if out is None:
                return None
            if len(out) <= limit:
                return out, quality
            best = min(best, len(out))
            if len(out) > _HOPELESS_FACTOR * limit:
                return None
        return None

    label = {"webp": "WebP", "jpg": "JPEG"}
    for fmt, qualities in (("webp", _WEBP_QUALITIES), ("jpg", _JPEG_QUALITIES)):
        hit = attempt(image, fmt, qualities)
        if hit is not None:
            return FitResult(hit[0], fmt, T("note.reencoded", format=label[fmt], quality=hit[1], limit=limit_text))

    current = image
    for _ in range(_MAX_ROUNDS):
        factor = min(0.9, max(0.25, math.sqrt(limit / best) * 0.95))
        new_size = (max(1, round(current.width * factor)), max(1, round(current.height * factor)))
        if min(new_size) < _MIN_SIDE:
            break
        current = image.resize(new_size, Image.Resampling.LANCZOS)
        for fmt in ("webp", "jpg"):
            hit = attempt(current, fmt, (_DOWNSCALE_QUALITY,))
            if hit is not None:
                note = T("note.downscaled", w=new_size[0], h=new_size[1], format=label[fmt], quality=hit[1],
                         limit=limit_text)
                return FitResult(hit[0], fmt, note)
    raise CannotFitError(f"could not re-encode the image under {_human_size(limit)}")


def check_upload(data: bytes, *, max_pixels: int) -> tuple[str, int, int]:
    """Make sure user-supplied bytes are a real, whole PNG/JPEG/WebP of at most `max_pixels` pixels.

    The pixel count comes from the header before anything is decoded, so a decompression bomb is
    refused cheaply; then the image is decoded once to catch truncated or corrupt files. Sync and
    CPU-bound: run it in a thread. Returns (format, width, height); raises `UnsupportedImageError`,
    `ImageTooLargeError` or `CorruptImageError`.
    """
    from PIL import Image

    kind = image_format(data)
    if kind is None:
        raise UnsupportedImageError("not a PNG, JPEG or WebP image")
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"{width}x{height} is {width * height:,} pixels")
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ImageDataError):
            raise
        raise CorruptImageError(f"cannot decode the image: {exc}") from exc
    return kind, width, height
