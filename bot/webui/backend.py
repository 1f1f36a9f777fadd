"""One interface for every kind of image server, one module per kind.

* `webui` (`client.WebUIClient`): the A1111 `/sdapi/v1` API, also served by Forge and SD.Next.
* `form` (`form.FormClient`): the "Stable Diffusion API Server" of the seed documents: form-encoded
  `/txt2img` and `/img2img` that answer with image URLs (`WEBUI_URL=form+http://host:port`).

The engine speaks the WebUI's payload language to every backend (one code path); a backend of another
kind maps it onto its own API and says up front, through `missing`, which asked-for options it has no
field for, so a job only goes where it can run. No Discord imports here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend", "FORM_SCHEME", "backend_kind", "open_backend"]

FORM_SCHEME = "form+"  # form+http://host:port, form+https://host:port


@runtime_checkable
class Backend(Protocol):
    """What the engine needs of an image server. `WebUIClient` is the reference implementation."""

    name: str
    display_url: str  # without credentials; the backend's identity in logs, /status and the pool
    kind: str  # "webui" | "form"

    def missing(self, request_kind: str, payload: dict[str, Any], asked: Collection[str]) -> list[str]:
        """The /draw options of this request this backend can't honour ([] = it can run it).
        `request_kind` is "txt2img", "img2img" or "upscale"; `asked` are the options the user (or the
        server's policy) set explicitly, as opposed to the bot's defaults."""

    async def txt2img(self, payload: dict[str, Any]) -> Any: ...
    async def img2img(self, payload: dict[str, Any]) -> Any: ...
    async def extra_single_image(self, image: bytes, **kwargs: Any) -> Any: ...
    async def progress(self, *, skip_current_image: bool = True) -> Any: ...
    async def interrupt(self) -> None: ...
    async def sd_models(self) -> list[dict[str, Any]]: ...
    async def samplers(self) -> list[dict[str, Any]]: ...
    async def schedulers(self) -> list[dict[str, Any]]: ...
    async def upscalers(self) -> list[dict[str, Any]]: ...
    async def prompt_styles(self) -> list[dict[str, Any]]: ...
    async def loras(self) -> list[dict[str, Any]]: ...
    async def options(self) -> dict[str, Any]: ...
    async def scripts(self) -> dict[str, list[str]]: ...
    async def version_info(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


def backend_kind(url: str) -> str:
    return "form" if url.lower().startswith(FORM_SCHEME) else "webui"


def open_backend(url: str, *, auth: tuple[str, str] | None = None, generation_timeout: float = 1800.0,
                 name: str = "", **kwargs: Any) -> Backend:
    """The client for one `WEBUI_URL` entry, by its kind."""
    if backend_kind(url) == "form":
        from .form import FormClient  # noqa: PLC0415 - only pools with a form server need it

        return FormClient(url[len(FORM_SCHEME):], auth=auth, generation_timeout=generation_timeout, name=name,
                          **kwargs)
    from .client import WebUIClient  # noqa: PLC0415

    return WebUIClient(url, auth=auth, generation_timeout=generation_timeout, name=name, **kwargs)
