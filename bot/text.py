"""A message for a person, without its wording: a catalogue key and the values that fill it in.

The engine and the backend client say *what* happened (`Text("option.range", option=Opt("steps"), ...)`);
the Discord side renders it in the reader's language from the catalogue (`bot/discord_app/locales/`).
No wording lives in the engine. `str(text)` is for logs only.

Values are plain (str, int, float), another `Text` (rendered in the same language), or an `Opt`: the
name of a command option, shown as the reader's client shows it (`steps` is `스텝` in Korean).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Opt", "T", "Text", "period", "text_from_json"]


class Opt(str):
    """The name of a command option, rendered in the reader's language."""

    __slots__ = ()


class Text:
    """A catalogue key and its values. Immutable, comparable, JSON-able (`to_json`/`text_from_json`)."""

    __slots__ = ("args", "key")

    def __init__(self, key: str, args: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "args", dict(args or {}))

    key: str
    args: dict[str, Any]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Text is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and (self.key, self.args) == (other.key, other.args)

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"T({self.key!r}, {self.args!r})" if self.args else f"T({self.key!r})"

    def __str__(self) -> str:  # logs only
        if not self.args:
            return self.key
        return f"{self.key}(" + ", ".join(f"{k}={v}" for k, v in self.args.items()) + ")"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "args": {k: _value_to_json(v) for k, v in self.args.items()}}


def T(key: str, /, **args: Any) -> Text:
    return Text(key, args)


def _value_to_json(value: Any) -> Any:
    if isinstance(value, Text):
        return {"$text": value.to_json()}
    if isinstance(value, Opt):
        return {"$opt": str(value)}
    return value


def _value_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "$text" in value:
            return text_from_json(value["$text"])
        if "$opt" in value:
            return Opt(value["$opt"])
    return value


def text_from_json(data: Any) -> Text | str:
    """A stored `Text` back; a plain string (stored by an older version) stays a string."""
    if isinstance(data, dict) and isinstance(data.get("key"), str):
        return Text(data["key"], {k: _value_from_json(v) for k, v in (data.get("args") or {}).items()})
    return str(data)


def period(seconds: float) -> Text:
    """A length of time in whole hours, minutes or seconds ("1 minute", "10 minutes", "90 seconds")."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return T("period.hours", count=int(seconds // 3600))
    if seconds >= 60 and seconds % 60 == 0:
        return T("period.minutes", count=int(seconds // 60))
    return T("period.seconds", count=max(1, round(seconds)))
