"""Decode a txt2img/img2img response while it arrives, so its body is never held whole.

A WebUI answers `{"images":["<base64>",...],"parameters":{...},"info":"..."}` (FastAPI writes it
compact, images first). `GenerationStream` is fed the body chunk by chunk on the event loop, where it
only finds the string boundaries (memchr) and gathers base64 characters; `decode()`, which the client
runs in a worker thread whenever `ready` says about 1 MiB is waiting (and once more in `finish()`),
turns them into image bytes. Only the small rest after the image list is parsed as JSON. A job then
needs about its decoded PNGs in memory, not body + PNGs (the body is 4/3 of the PNGs).

Anything shaped otherwise (another key first, a non-string item, an escape other than `\\/` or a
line break inside a string) falls back to collecting the rest of the body and parsing it whole, with
the images already decoded kept in their place.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson

from bot.errors import WebUIResponseError
from bot.text import T

from .errors import short

__all__ = ["GenerationStream", "looks_like_image"]

_PREFIX = b'{"images":['
_WHITESPACE = b" \t\r\n"
_DECODE_AT = 1024 * 1024  # base64 characters gathered before a decode in a thread
_SLICE = 256 * 1024  # base64 characters per a2b_base64 call (a multiple of 4)
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")

_PREAMBLE, _ITEM, _STRING, _AFTER, _TAIL, _RAW = range(6)


def looks_like_image(data: bytes | bytearray) -> bool:
    if data.startswith(_IMAGE_MAGIC):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return len(data) > 12 and data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis")


@dataclass(eq=False)
class _Item:
    """One string of the image list: base64 gathered on the loop, decoded in a thread."""

    pending: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    invalid: bool = False
    started: bool = False  # past a "data:...;base64," prefix, if any

    def decode(self, *, final: bool) -> None:
        pending = self.pending
        if not self.started:
            if pending[:5] == b"data:":
                comma = pending.find(b",")
                if comma < 0:
                    self.invalid = final or len(pending) > 200
                    return
                del pending[: comma + 1]
            self.started = True
        cut = len(pending) if final else len(pending) // 4 * 4
        view = memoryview(pending)
        try:  # in slices: a 256 KiB call holds the GIL well under 1 ms, so the loop thread gets it back
            for start in range(0, cut, _SLICE):
                self.out += binascii.a2b_base64(view[start:min(cut, start + _SLICE)])
        except (binascii.Error, ValueError):
            self.invalid = True
        finally:
            view.release()
        del pending[:cut]

    def image(self) -> bytes | None:
        if not self.invalid:
            self.decode(final=True)
        return bytes(self.out) if not self.invalid and looks_like_image(self.out) else None


class GenerationStream:
    def __init__(self) -> None:
        self._state = _PREAMBLE
        self._head = bytearray()  # the first bytes, until the prefix is known
        self._rest = bytearray()  # after the image list (or everything, in the fallback)
        self._slots: list[_Item | bytes | None] = []  # per item: being decoded, an image, or not an image
        self._item = _Item()  # the string being read
        self._escape = False

    @property
    def items(self) -> int:
        return len(self._slots)

    @property
    def ready(self) -> bool:
        """Enough base64 waits that `decode()` (in a thread) is worth its hop."""
        if self._slots and isinstance(self._slots[-1], _Item):  # a string just ended
            return True
        return self._state == _STRING and len(self._item.pending) >= _DECODE_AT

    # ------------------------------------------------------------------ on the loop: scanning
    def feed(self, chunk: bytes) -> None:
        data = memoryview(chunk)
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == _PREAMBLE:
                self._head += data[i:]
                if len(self._head) < len(_PREFIX):
                    return
                if not self._head.startswith(_PREFIX):
                    self._rest, self._head = self._head, bytearray()
                    self._state = _RAW
                    return
                data = memoryview(bytes(self._head[len(_PREFIX):]))
                i, n = 0, len(data)
                self._head = bytearray()
                self._state = _ITEM
            elif state == _ITEM or state == _AFTER:
                c = data[i]
                if c in _WHITESPACE:
                    i += 1
                elif c == 0x22 and state == _ITEM:  # '"'
                    self._item, self._escape, self._state = _Item(), False, _STRING
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

    def _string(self, data: memoryview, i: int, n: int) -> int:
        raw = data.obj if isinstance(data.obj, bytes) and data.nbytes == len(data.obj) else bytes(data)
        item = self._item
        while i < n:
            if self._escape:
                self._escape = False
                c = raw[i]
                if c == 0x2F:  # '\/' is a plain '/'
                    item.pending.append(c)
                elif c not in (0x6E, 0x72):  # '\n', '\r': line breaks inside base64 are skipped
                    item.invalid = True  # any other escape: not base64 image data
                i += 1
                continue
            quote = raw.find(b'"', i)
            stop = quote if quote >= 0 else n
            backslash = raw.find(b"\\", i, stop)
            end = backslash if backslash >= 0 else stop
            if not item.invalid:
                item.pending += data[i:end]  # a view: appended without an intermediate copy
            if backslash >= 0:
                self._escape = True
                i = backslash + 1
                continue
            if quote >= 0:
                self._slots.append(item)  # decoded by the next `decode()`
                self._state = _AFTER
                return quote + 1
            return n
        return n

    def _fall_back(self, remaining: memoryview) -> None:
        """Not the usual shape: keep the rest and parse it whole at the end; the items read so far
        stand in as nulls (the whole-body parser skips non-image items)."""
        self._rest = bytearray(_PREFIX + b"null," * len(self._slots)) + remaining
        self._state = _RAW

    # ------------------------------------------------------------------ in a worker thread: decoding
    def decode(self) -> None:
        """Decode what has been gathered (blocking: run it in a thread, between two `feed` calls)."""
        for k, slot in enumerate(self._slots):
            if isinstance(slot, _Item):
                self._slots[k] = slot.image()
        if self._state == _STRING and not self._item.invalid:
            self._item.decode(final=False)

    def finish(self) -> tuple[list[bytes], dict[str, Any] | None, bytes | None]:
        """(images, the body's other fields) for the usual shape; (images, None, raw rest) when the rest
        must be parsed whole (`decode_generation_response`). Blocking: run it in a thread."""
        self.decode()
        images = [s for s in self._slots if isinstance(s, bytes)]
        if self._state == _PREAMBLE:
            return [], None, bytes(self._head)
        if self._state == _RAW:
            return images, None, bytes(self._rest)
        if self._state != _TAIL:
            raise WebUIResponseError(T("failure.bad_answer"), detail=f"the generation response ended in the middle of its image "
                                                        f"list ({len(self._slots)} item(s) read)")
        tail = bytes(self._rest).strip()
        try:
            if tail.startswith(b","):
                data = orjson.loads(b"{" + tail[1:])
            elif tail == b"}":
                data = {}
            else:
                raise orjson.JSONDecodeError("unexpected", tail.decode("utf-8", "replace"), 0)
        except orjson.JSONDecodeError as exc:
            raise WebUIResponseError(T("failure.bad_answer"), detail=short(f"generation response is not JSON: {exc}")) from None
        if not isinstance(data, dict):
            raise WebUIResponseError(T("failure.bad_answer"), detail="the generation response is not an object")
        return images, data, None
