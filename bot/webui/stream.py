"""Decode a txt2img/img2img response while it arrives, so its body is never held whole.

A WebUI answers `{"images":["<base64>",...],"parameters":{...},"info":"..."}` (FastAPI writes it
compact, images first). `GenerationStream` is fed the body chunk by chunk: base64 characters are
decoded in slices as they come (a 64 KiB slice takes tens of microseconds, so this runs on the event
loop without stalling it), and only the small rest after the image list is parsed as JSON. The
memory a job needs is then about its decoded PNGs, not body + PNGs (the body is 4/3 of the PNGs).

Anything shaped otherwise (another key first, a non-string item, an escape other than `\\/` or a
line break inside a string) falls back to collecting the rest of the body and parsing it whole, with
the images already decoded kept in their place.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from bot.errors import WebUIResponseError

from .errors import short

__all__ = ["GenerationStream"]

_PREFIX = b'{"images":['
_WHITESPACE = b" \t\r\n"
_DECODE_AT = 64 * 1024  # base64 characters gathered before a decode call (a multiple of 4)
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")

_PREAMBLE, _ITEM, _STRING, _AFTER, _TAIL, _RAW = range(6)


def looks_like_image(data: bytes | bytearray) -> bool:
    if data.startswith(_IMAGE_MAGIC):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return len(data) > 12 and data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis")


class GenerationStream:
    def __init__(self) -> None:
        self._state = _PREAMBLE
        self._head = bytearray()  # the first bytes, until the prefix is known
        self._rest = bytearray()  # after the image list (or everything, in the fallback)
        self.images: list[bytes] = []
        self.skipped = 0  # items that were not image data
        self.items = 0  # items of the image list seen so far
        self._out = bytearray()  # the image being decoded
        self._pending = bytearray()  # base64 characters not decoded yet
        self._escape = False
        self._invalid = False
        self._started = False  # past a "data:...;base64," prefix, if any

    # ------------------------------------------------------------------ feeding
    def feed(self, chunk: bytes) -> None:
        data = memoryview(chunk)
        i = 0
        n = len(data)
        while i < n:
            state = self._state
            if state == _PREAMBLE:
                self._head += data[i:]
                if len(self._head) < len(_PREFIX):
                    return
                if self._head.startswith(_PREFIX):
                    data, i, n = memoryview(bytes(self._head[len(_PREFIX):])), 0, len(self._head) - len(_PREFIX)
                    self._head = bytearray()
                    self._state = _ITEM
                else:
                    self._rest, self._head = self._head, bytearray()
                    self._state = _RAW
                    return
            elif state == _ITEM or state == _AFTER:
                c = data[i]
                if c in _WHITESPACE:
                    i += 1
                elif c == 0x22 and state == _ITEM:  # '"'
                    self._begin_item()
                    i += 1
                elif c == 0x5D:  # ']'
                    self._state = _TAIL
                    i += 1
                elif c == 0x2C and state == _AFTER:  # ','
                    self._state = _ITEM
                    i += 1
                else:
                    self._fall_back(data[i:])
                    return
            elif state == _STRING:
                i = self._string(data, i, n)
            else:  # _TAIL, _RAW
                self._rest += data[i:]
                return

    def _begin_item(self) -> None:
        self._state = _STRING
        self._out = bytearray()
        self._pending = bytearray()
        self._escape = self._invalid = self._started = False

    def _string(self, data: memoryview, i: int, n: int) -> int:
        raw = data.obj if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) else bytes(data)
        while i < n:
            if self._escape:
                self._escape = False
                c = raw[i]
                if c == 0x2F:  # '\/' is a plain '/'
                    self._pending.append(c)
                elif c not in (0x6E, 0x72):  # '\n', '\r': line breaks inside base64 are skipped
                    self._invalid = True  # any other escape: not base64 image data
                i += 1
                continue
            quote = raw.find(b'"', i)
            stop = quote if quote >= 0 else n
            backslash = raw.find(b"\\", i, stop)
            end = backslash if backslash >= 0 else stop
            if not self._invalid:
                self._pending += data[i:end]  # a view: appended without an intermediate copy
                self._decode(final=False)
            if backslash >= 0:
                self._escape = True
                i = backslash + 1
                continue
            if quote >= 0:
                self._end_item()
                return quote + 1
            return n
        return n

    def _decode(self, *, final: bool) -> None:
        pending = self._pending
        if not self._started:
            if pending[:5] == b"data:":
                comma = pending.find(b",")
                if comma < 0:
                    if len(pending) > 200:
                        self._invalid = True
                    return
                del pending[: comma + 1]
            elif len(pending) < 5 and not final:
                return
            self._started = True
        if len(pending) < _DECODE_AT and not final:
            return
        cut = len(pending) if final else len(pending) // 4 * 4
        try:
            self._out += binascii.a2b_base64(pending[:cut])
        except (binascii.Error, ValueError):
            self._invalid = True
        del pending[:cut]

    def _end_item(self) -> None:
        self.items += 1
        if not self._invalid:
            self._decode(final=True)
        if not self._invalid and looks_like_image(self._out):
            self.images.append(bytes(self._out))
        else:
            self.skipped += 1
        self._out = bytearray()
        self._pending = bytearray()
        self._state = _AFTER

    def _fall_back(self, remaining: memoryview) -> None:
        """Not the usual shape: keep the rest and parse it whole at the end; the items decoded so far
        stand in as nulls (the whole-body parser skips non-image items)."""
        self._rest = bytearray(_PREFIX + b"null," * self.items) + remaining
        self._state = _RAW

    # ------------------------------------------------------------------ the end
    def finish(self) -> tuple[list[bytes], dict[str, Any] | None, bytes | None]:
        """(images, the body's other fields) for the usual shape; (images, None, raw rest) when the rest
        must be parsed whole (`decode_generation_response`, in a thread: it may be large)."""
        if self._state == _PREAMBLE:
            return [], None, bytes(self._head)
        if self._state == _RAW:
            return self.images, None, bytes(self._rest)
        if self._state != _TAIL:
            raise WebUIResponseError("The WebUI's generation response ended in the middle of its image list.",
                                     detail=f"{self.items} item(s) read")
        tail = bytes(self._rest).strip()
        try:
            if tail.startswith(b","):
                data = orjson.loads(b"{" + tail[1:])
            elif tail == b"}":
                data = {}
            else:
                raise orjson.JSONDecodeError("unexpected", tail.decode("utf-8", "replace"), 0)
        except orjson.JSONDecodeError as exc:
            raise WebUIResponseError("The WebUI sent a generation response that is not JSON.",
                                     detail=short(str(exc))) from None
        if not isinstance(data, dict):
            raise WebUIResponseError("The WebUI sent a generation response sdcord can't read.")
        return self.images, data, None
