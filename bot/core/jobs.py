"""What a job is: where it came from (its origin, one value), what it asks for (a request), and its
states. No Discord imports: the Discord side turns an interaction into an `Origin` and renders a
`Job`'s state; everything here is plain data that the job store can keep.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot.text import Text, text_from_json

__all__ = [
    "DEFAULT_UPLOAD_LIMIT", "FINAL_STATES", "DescribeRequest", "DrawRequest", "InteractionRef", "Job", "JobProgress",
    "JobState", "Origin", "PayloadFacts", "Request", "Ticket", "UpscaleRequest", "request_from_record",
]

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's per-file limit without boosts


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class InteractionRef:
    """The chat interaction a job answers: enough to edit its response later, also after a restart.
    `token` is a credential (valid until `expires_at`, epoch seconds): never log it."""

    application_id: int
    token: str = field(repr=False)
    expires_at: float
    id: int = 0


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, where, and how to answer: one value from the command to the delivery."""

    user_id: int
    channel_id: int
    guild_id: int | None = None
    interaction: InteractionRef | None = None  # None: started by a reaction (the job posts its own message)
    reply_to: int | None = None  # the message a reaction-started job answers
    parent_id: str | None = None  # the job this one reruns
    filesize_limit: int = DEFAULT_UPLOAD_LIMIT
    credit: bool = False  # say who the job is for (started by a button, a menu or a reaction)
    locale: str = "en"  # the language to answer in (the user's, else the server's)
    interaction_only: bool = False  # the bot can't post here (a user install): answer only through the interaction

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Origin:
        interaction = data.get("interaction")
        ref = InteractionRef(**interaction) if isinstance(interaction, dict) and interaction.get("token") else None
        known = {"user_id", "channel_id", "guild_id", "reply_to", "parent_id", "filesize_limit", "credit", "locale",
                 "interaction_only"}
        return cls(**{k: v for k, v in data.items() if k in known}, interaction=ref)

    def without_token(self) -> Origin:
        """The same origin once its token is of no more use (it is not kept longer than needed)."""
        return self if self.interaction is None else replace(self, interaction=None)


def notes_to_json(notes: Any) -> list[Any]:
    return [n.to_json() if isinstance(n, Text) else str(n) for n in notes or ()]


def notes_from_json(data: Any) -> list[Text | str]:
    return [text_from_json(n) for n in data or ()]


class PayloadFacts:
    """What a WebUI payload says about its job (for requests that carry one)."""

    __slots__ = ()
    payload: dict[str, Any]

    @property
    def title(self) -> str:
        """What the job is, for its message."""
        return str(self.payload.get("prompt", ""))

    @property
    def model(self) -> str | None:
        overrides = self.payload.get("override_settings") or {}
        return overrides.get("sd_model_checkpoint")


@dataclass(frozen=True, slots=True)
class DrawRequest(PayloadFacts):
    """A validated txt2img or img2img job, as it is stored: the WebUI payload (the input image is not in
    it), notes for the user, spoiler, and the input image's content hash (its bytes are kept in the data
    dir and read when the job runs)."""

    payload: dict[str, Any]
    notes: tuple[Text | str, ...] = ()
    spoiler: bool = False
    init_image: str | None = None  # sha256 of the img2img input
    asked: tuple[str, ...] = ()  # the options set on purpose (not the bot's defaults), for routing
    mask: str | None = None  # sha256 of the inpainting mask (Zoom out), kept like the input

    @property
    def kind(self) -> str:
        return "img2img" if self.init_image else "txt2img"

    def record(self) -> dict[str, Any]:
        """The stored payload: the WebUI's, plus the input's hash."""
        inputs = {"init_image": self.init_image, "mask": self.mask}
        return {**self.payload, **{k: v for k, v in inputs.items() if v}}


class _NoPrompt:
    """What a request on an input image alone (/upscale, /describe) says about itself: no prompt to show (the
    Discord side says what it is, in the reader's language), nothing to spoiler, no options asked."""

    __slots__ = ()
    spoiler = False
    notes: tuple[str, ...] = ()
    asked: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class UpscaleRequest(_NoPrompt):
    """Upscale one image with the WebUI's extras (`extra-single-image`); the result keeps its infotext.
    `image` is the sha256 of the stored input."""

    image: str
    infotext: str | None
    scale: float = 2.0
    upscaler: str = "R-ESRGAN 4x+"
    source_job: str | None = None
    index: int = 0
    kind = "upscale"

    def record(self) -> dict[str, Any]:
        return {"image": self.image, "infotext": self.infotext, "scale": self.scale, "upscaler": self.upscaler,
                "source_job": self.source_job, "index": self.index}


@dataclass(frozen=True, slots=True)
class DescribeRequest(_NoPrompt):
    """/describe: the WebUI's interrogators (CLIP, and deepdanbooru when it has it) on one image, turned into
    prompt suggestions. `image` is the sha256 of the stored input."""

    image: str
    kind = "describe"

    def record(self) -> dict[str, Any]:
        return {"image": self.image}


Request = DrawRequest | UpscaleRequest | DescribeRequest


def request_from_record(kind: str, payload: dict[str, Any], extra: dict[str, Any]) -> Request:
    """Rebuild a stored job's request (the inverse of `record()` plus the `extra` column)."""
    if kind == "upscale":
        known = {"image", "infotext", "scale", "upscaler", "source_job", "index"}
        return UpscaleRequest(**{k: v for k, v in payload.items() if k in known})
    if kind == "describe":
        return DescribeRequest(str(payload.get("image", "")))
    body = dict(payload)
    digest = body.pop("init_image", None)
    mask = body.pop("mask", None)
    return DrawRequest(body, notes=tuple(notes_from_json(extra.get("notes"))), spoiler=bool(extra.get("spoiler")),
                       init_image=digest if isinstance(digest, str) else None,
                       mask=mask if isinstance(mask, str) else None,
                       asked=tuple(str(a) for a in extra.get("asked") or ()))


@dataclass(frozen=True, slots=True)
class JobProgress:
    fraction: float  # 0..1
    step: int  # 1-based step within the current pass
    steps: int
    eta: float | None  # seconds
    preview: bytes | None = field(default=None, repr=False)  # the WebUI's live preview (PNG), if any


@dataclass(eq=False)
class Ticket:
    """An admitted (rate-limited, slot-reserved) job that is not yet submitted."""

    user_id: int
    used: bool = False
    key: str | None = None  # its reservation in a shared queue (PostgreSQL)
    quota: tuple[float, tuple[tuple[int, int | None], ...]] | None = None  # (UTC day, daily counts it took)


@dataclass(eq=False)
class Job:
    id: str
    origin: Origin
    request: Request
    seq: int  # arrival order, kept across restarts
    round: int  # fair-queue round, kept across restarts
    created: float  # the scheduler's clock
    state: JobState = JobState.QUEUED
    backend: str | None = None
    started: float | None = None
    finished: float | None = None
    progress: JobProgress | None = None
    result: Any = None  # an Outcome once done (its image bytes are dropped after delivery)
    error: BaseException | None = None
    attempts: int = 0  # times it started running, restarts included
    resumed: bool = False  # it was running when the bot stopped: it runs again
    front: bool = False  # goes before every other waiting job (resumed or handed back by a backend)
    message_id: int | None = None  # the job's own message, once known
    waiting_for_backend: bool = False  # every backend is down
    pausing: bool = False  # the bot is shutting down; the job continues after the restart
    cancel_requested: bool = False
    cancelled_by: int | None = None
    handed_over: bool = False  # another process runs it now and keeps its message current (shared queue)
    ticket: Ticket | None = field(default=None, repr=False)  # a shared queue's new job, until it is stored
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def user_id(self) -> int:
        return self.origin.user_id

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def key(self) -> tuple[int, int, int]:
        """Its place in the fair order: resumed jobs first, then by round, then by arrival."""
        return (0 if self.front else 1, self.round, self.seq)

    def touch(self) -> None:
        self._changed.set()

    async def wait_changed(self, timeout: float | None = None) -> bool:
        """Wait until something about the job changed (True) or the timeout passed (False)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def wait_done(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._done.wait(), timeout)

    def finish(self, state: JobState, now: float, *, result: Any = None, error: BaseException | None = None) -> None:
        self.state, self.finished, self.result, self.error = state, now, result, error
        self.waiting_for_backend = False
        self.touch()
        self._done.set()
