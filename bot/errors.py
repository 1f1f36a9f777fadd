"""sdcord's one error hierarchy. Every layer raises these; the Discord side turns them into short
private messages (with an error id) in one place, and the log gets the detail.

    SdcordError
    ├── ProblemsError          input refused; one message per problem
    │   ├── ConfigError        a setting
    │   └── OptionError        a user's option (names it and its range)
    ├── Refused                a job was not admitted (rate limit, queue cap, shutting down)
    ├── JobFailed              a job ended without a result (a stored reason, for the user)
    │   └── JobInterrupted     the bot stopped or restarted while the job ran
    ├── StorageError           the job store could not keep a job
    └── WebUIError             a backend call failed; `.message` is for the user, `.detail` for the log
        ├── WebUIConnectionError, WebUITimeoutError, WebUIAuthError
        └── WebUIValidationError, WebUIServerError, WebUIResponseError

Messages for people are `bot.text.Text` values (a catalogue key and its values), rendered in the
reader's language by the Discord side; `str()` of an error is for the log. No Discord imports here.
"""

from __future__ import annotations

from typing import Any

from bot.text import Text

__all__ = [
    "ConfigError",
    "JobFailed",
    "JobInterrupted",
    "OptionError",
    "ProblemsError",
    "Refused",
    "SdcordError",
    "StorageError",
    "WebUIAuthError",
    "WebUIConnectionError",
    "WebUIError",
    "WebUIResponseError",
    "WebUIServerError",
    "WebUITimeoutError",
    "WebUIValidationError",
]


class SdcordError(Exception):
    """Base of every error sdcord raises on purpose."""


class ProblemsError(SdcordError, ValueError):
    """Input was refused; `problems` holds one message per problem, all reported at once (a setting's
    problems, for the operator, are plain English strings)."""

    def __init__(self, problems: list[Text | str]) -> None:
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


class ConfigError(ProblemsError):
    """One or more settings are invalid."""


class OptionError(ProblemsError):
    """The user's options are not acceptable: one line per bad option, naming it and its range."""


class Refused(SdcordError):
    """A job was not accepted. `limit` is "rate", "queue" or "shutdown"; `retry_in` is seconds from now."""

    def __init__(self, limit: str, retry_in: float, message: Text) -> None:
        super().__init__(str(message))
        self.limit = limit
        self.retry_in = retry_in
        self.message = message


class _Explained(SdcordError):
    """`message` is for the user, `detail` is for the log."""

    def __init__(self, message: Text | str, detail: str = "") -> None:
        super().__init__(str(message))
        self.message = message
        self.detail = detail


class JobFailed(_Explained):
    """A job ended without a result."""


class JobInterrupted(JobFailed):
    """The bot stopped (or restarted too often) while the job ran."""


class StorageError(_Explained):
    """The job store could not keep a job; nothing was queued."""


class WebUIError(SdcordError):
    """A WebUI call failed. `message` is for the user (plain words); `detail` (the server's own text, which
    WebUI, what went wrong) is for the log and `sdcord doctor`."""

    def __init__(self, message: Text | str, *, backend: str = "", status: int | None = None, detail: str = ""):
        super().__init__(str(message))
        self.message = message
        self.backend = backend
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else str(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message={self.message!r}, detail={self.detail!r})"


class WebUIConnectionError(WebUIError):
    """Connection refused, DNS failure, reset, or the connection could not be opened in time.

    `reached` is False when the request never got to the WebUI (refused, no connection opened), so
    the WebUI cannot have started the job and it is safe to send it to another backend.
    """

    def __init__(self, message: str, *, reached: bool = True, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.reached = reached


class WebUITimeoutError(WebUIError):
    """The WebUI did not answer within the call's timeout (a generation keeps running server-side)."""


class WebUIAuthError(WebUIError):
    """401/403: missing or wrong `--api-auth` credentials."""


class WebUIValidationError(WebUIError):
    """422: the request was rejected. `fields` lists (field, message) pairs; empty for string-detail 422s."""

    def __init__(self, message: str, *, fields: list[tuple[str, str]] | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.fields: list[tuple[str, str]] = list(fields or [])


class WebUIServerError(WebUIError):
    """5xx. `error_type` is the exception class the WebUI reported (e.g. OutOfMemoryError)."""

    def __init__(self, message: str, *, error_type: str | None = None, out_of_memory: bool = False, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.error_type = error_type
        self.out_of_memory = out_of_memory


class WebUIResponseError(WebUIError):
    """Any other non-2xx answer (404 route: the API is off) or a body sdcord can't read."""
