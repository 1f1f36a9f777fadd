"""The payload each WebUI flavour gets (`bot.webui.flavours`), and the contract per flavour against the demo:
txt2img with hires and a schedule type, what the server received, and the infotext of the result."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.config import Settings
from bot.core.files import DataFiles
from bot.core.generate import Generator
from bot.core.jobs import DrawRequest
from bot.core.payload import DrawOptions, build_request
from bot.demo import DemoWebUI
from bot.demo import sdnext as demo_sdnext
from bot.discord_app.catalog import english
from bot.errors import WebUIValidationError
from bot.images.infotext import parse_generation_parameters
from bot.text import T
from bot.webui import flavours
from bot.webui.client import WebUIClient, WebUIResponseError
from bot.webui.errors import error_from_response
from bot.webui.flavours import adapt_payload, reported_scheduler, sdnext_sigma, unsupported
from tests.support.fixtures import fixture_bytes

SETTINGS = Settings(discord_token="t")


def hires_payload(**options: Any) -> dict[str, Any]:
    """What the engine builds for `/draw hires:2 scheduler:Karras` (one code path for every flavour)."""
    opts = {"prompt": "a lighthouse", "sampler": "DPM++ 2M", "scheduler": "Karras", "hires": 2.0, "steps": 4,
            "width": 64, "height": 64, "seed": 7, **options}
    return build_request(DrawOptions(**opts), SETTINGS).payload


# ----------------------------------------------------------------------------- the pure adaptation


def test_a1111_and_forge_get_the_payload_as_built() -> None:
    payload = hires_payload()
    assert payload["hr_sampler_name"] is None and payload["hr_scheduler"] is None  # A1111's "same as first pass"
    for flavour in ("a1111", "forge", None):
        assert adapt_payload(flavour, payload) is payload


def test_sdnext_gets_no_nulls_its_sigma_option_and_a_resizing_hires_pass() -> None:
    payload = hires_payload(model="sd_xl_base_1.0")
    before = copy.deepcopy(payload)
    sent = adapt_payload("sdnext", payload)
    assert payload == before  # a new dict; the stored request is untouched
    assert None not in sent.values()
    assert not {"scheduler", "hr_scheduler", "hr_sampler_name"} & sent.keys()  # SD.Next: "Same as primary"
    assert sent["override_settings"] == {"sd_model_checkpoint": "sd_xl_base_1.0", "schedulers_sigma": "karras"}
    assert sent["override_settings_restore_afterwards"] is True
    assert (sent["hr_resize_mode"], sent["hr_upscaler"], sent["hr_scale"]) == (1, "Latent Bilinear", 2.0)
    assert sent["sampler_name"] == "DPM++ 2M" and sent["denoising_strength"] == 0.5
    plain = adapt_payload("sdnext", build_request(DrawOptions(prompt="x"), SETTINGS).payload)
    assert "enable_hr" not in plain and "hr_resize_mode" not in plain
    assert plain["override_settings"] == {"schedulers_sigma": "karras"}  # the bot's default DPM++ 2M + Karras
    assert adapt_payload("sdnext", {"upscaler_1": "Lanczos", "image": "…"}) == {"upscaler_1": "Lanczos", "image": "…"}


@pytest.mark.parametrize(("sampler", "scheduler", "sigma"), [
    ("DPM++ 2M", "Karras", "karras"), ("DPM++ 2M", "karras", "karras"), ("Euler", "Exponential", "exponential"),
    ("UniPC", "Beta", "betas"), ("Euler a", "Automatic", "default"), ("Euler a", None, "default"),
    ("Euler a", "Karras", None),  # EulerAncestral's config has no use_karras_sigmas
    ("DDIM", "Beta", None), ("Euler EDM", "Beta", None), ("Euler EDM", "Karras", "karras"),
    ("DPM++ 2M", "SGM Uniform", None), ("DPM++ 2M", "Align Your Steps", None),  # no equivalent in SD.Next
    ("DPM++ 2M SDE Heun", "Karras", None),  # an A1111 sampler SD.Next doesn't have
])
def test_sdnext_sigma(sampler: str, scheduler: str | None, sigma: str | None) -> None:
    assert sdnext_sigma(sampler, scheduler) == sigma


def test_a_schedule_sdnext_cant_apply_is_sent_as_its_default_and_refused_only_when_asked() -> None:
    payload = build_request(DrawOptions(prompt="x", sampler="Euler a"), SETTINGS).payload
    assert payload["scheduler"] == "Karras"  # the bot's default, not asked
    assert adapt_payload("sdnext", payload)["override_settings"] == {"schedulers_sigma": "default"}
    assert unsupported("sdnext", "txt2img", payload, frozenset({"sampler"})) == []
    assert unsupported("sdnext", "txt2img", payload, frozenset({"sampler", "scheduler"})) == ["scheduler"]
    assert unsupported("sdnext", "img2img", payload, {"scheduler"}) == ["scheduler"]
    assert unsupported("sdnext", "upscale", payload, {"scheduler"}) == []
    for flavour in ("a1111", "forge", None):
        assert unsupported(flavour, "txt2img", payload, {"scheduler"}) == []
    karras = build_request(DrawOptions(prompt="x", scheduler="Karras"), SETTINGS).payload
    assert unsupported("sdnext", "txt2img", karras, {"scheduler"}) == []


def test_the_schedule_reported_is_what_the_server_wrote() -> None:
    a1111 = parse_generation_parameters("x\nSteps: 4, Sampler: Euler a, Schedule type: Automatic, Seed: 1")
    assert reported_scheduler(a1111, {"scheduler": "Karras"}) == "Automatic"
    sdnext = "x\nNegative prompt: \nSteps: 4, Size: 64x64, Sampler: DPM++ 2M, Seed: 1, App: SD.Next, Version: 431bcc3"
    # the parser injects "Schedule type: Automatic"; on SD.Next that says nothing, Sampler sigma does
    assert reported_scheduler(parse_generation_parameters(sdnext + ", Sampler sigma: karras"), {}) == "Karras"
    assert reported_scheduler(parse_generation_parameters(sdnext + ", Sampler sigma: betas"), {}) == "Beta"
    assert reported_scheduler(parse_generation_parameters(sdnext + ", Sampler sigma: lambdas"), {}) == "lambdas"
    assert reported_scheduler(parse_generation_parameters(sdnext), {"scheduler": "Karras"}) == "Automatic"
    timesteps = sdnext + ', Sampler timesteps: "999,850,736", Sampler sigma: karras'
    assert reported_scheduler(parse_generation_parameters(timesteps), {"scheduler": "Karras"}) is None
    # no infotext at all: what SD.Next was asked to use
    assert reported_scheduler({}, {"sampler_name": "DPM++ 2M", "scheduler": "Karras"}, "sdnext") == "Karras"
    assert reported_scheduler({}, {"sampler_name": "Euler a", "scheduler": "Karras"}, "sdnext") == "Automatic"


def test_the_client_table_matches_the_demo_sdnext() -> None:
    """Both were read off SD.Next's sd_samplers_diffusers.py; they must not drift apart."""
    mappable = {"karras", "exponential", "betas"}
    for name in demo_sdnext.SAMPLER_NAMES:
        demo = {s for s in mappable if demo_sdnext.sigma_applied(name, {"schedulers_sigma": s})}
        assert flavours.SDNEXT_SAMPLER_SIGMAS.get(name, frozenset()) == demo, name
    assert set(flavours.SDNEXT_SAMPLER_SIGMAS) <= set(demo_sdnext.SAMPLER_NAMES)
    assert set(flavours.SDNEXT_LATENT_UPSCALERS.values()) <= set(demo_sdnext.LATENT_UPSCALERS)
    assert flavours.schedulers_for("a1111") == [] and flavours.schedulers_for("forge") == []


# ----------------------------------------------------------------------------- against the demo, per flavour


async def raw_txt2img(demo: DemoWebUI, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(f"{demo.url}/sdapi/v1/txt2img", json=body) as resp:
        return resp.status, json.loads(await resp.read())


def size_of(image: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(image)) as im:
        return im.size


@pytest.mark.parametrize("dialect", ["a1111", "forge"])
async def test_contract_a1111_and_forge(demo_webui_factory: Any, dialect: str) -> None:
    demo = await demo_webui_factory(dialect=dialect)
    payload = hires_payload()
    async with WebUIClient(demo.url) as client:
        result = await client.txt2img(payload)
        assert client.flavour == dialect
    assert demo.received[-1] == ("txt2img", payload)  # exactly what the engine built, nulls included
    params = parse_generation_parameters(result.infotexts[0])
    assert (params["Sampler"], params["Schedule type"], params["Hires upscale"]) == ("DPM++ 2M", "Karras", "2.0")
    assert params["Hires upscaler"] == "Latent" and params["Denoising strength"] == "0.5"
    assert params["Version"].startswith("f2.0.1" if dialect == "forge" else "v1.10.1")
    assert size_of(result.images[0]) == (128, 128)
    assert reported_scheduler(params, payload, client.flavour) == "Karras"


async def test_contract_sdnext(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(dialect="sdnext")
    payload = hires_payload()
    # The payload as A1111 takes it is a 422 on SD.Next (pydantic 1.10, plain `str` fields): the old bug.
    status, body = await raw_txt2img(demo, payload)
    assert status == 422
    assert {"loc": ["body", "hr_sampler_name"], "msg": "none is not an allowed value",
            "type": "type_error.none.not_allowed"} in body["detail"]
    async with WebUIClient(demo.url) as client:
        result = await client.txt2img(payload)
        assert client.flavour == "sdnext"
    route, received = demo.received[-1]
    assert route == "txt2img" and received == adapt_payload("sdnext", payload)
    assert None not in received.values() and "scheduler" not in received
    assert received["override_settings"]["schedulers_sigma"] == "karras"
    text = result.infotexts[0]
    params = parse_generation_parameters(text, auto_backcompat=False)
    assert (params["App"], params["Sampler"], params["Sampler sigma"]) == ("SD.Next", "DPM++ 2M", "karras")
    assert (params["Hires upscaler"], params["Hires scale"]) == ("Latent Bilinear", "2.0")
    assert "Hires size: 128x128" in text and "Refine: True" in text and "Hires force: True" in text
    assert params["Operations"] == "txt2img; upscale; hires" and params["Hires strength"] == "0.5"
    assert "Schedule type" not in text and "version" not in result.info and "sd_model_name" not in result.info
    assert size_of(result.images[0]) == (128, 128)
    assert reported_scheduler(params, payload, "sdnext") == "Karras"
    # demo echo: SD.Next's own request model (the unknown `scheduler` dropped, its defaults filled in)
    assert "scheduler" not in result.parameters and result.parameters["hr_sampler_name"] == "Same as primary"


async def test_sdnext_sampler_it_cant_give_karras_writes_no_claim(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(dialect="sdnext")
    payload = build_request(DrawOptions(prompt="x", sampler="Euler a", steps=2, width=64, height=64), SETTINGS).payload
    async with WebUIClient(demo.url) as client:
        assert client.missing("txt2img", payload, {"scheduler"}) == []  # flavour not known yet
        result = await client.txt2img(payload)
        assert client.missing("txt2img", payload, {"scheduler"}) == ["scheduler"]
        assert client.missing("txt2img", payload, set()) == []
    assert demo.received[-1][1]["override_settings"] == {"schedulers_sigma": "default"}
    params = parse_generation_parameters(result.infotexts[0], auto_backcompat=False)
    assert "Sampler sigma" not in params
    assert reported_scheduler(params, payload, "sdnext") == "Automatic"


async def test_sdnext_unknown_sampler_is_404_with_a_plain_message(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(dialect="sdnext")
    async with WebUIClient(demo.url) as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.txt2img({"prompt": "x", "sampler_name": "DPM++ 2M Karras", "steps": 1})
    assert caught.value.status == 404 and caught.value.message == T("failure.sampler_not_found")


async def test_generator_refuses_an_asked_schedule_the_backend_turns_out_not_to_have(
        demo_webui_factory: Any, tmp_path: Path) -> None:
    """A job sent before the backend's flavour was known (no catalogue yet): asked now, never dropped."""
    demo = await demo_webui_factory(dialect="sdnext")
    payload = build_request(DrawOptions(prompt="x", sampler="Euler a", scheduler="Karras", steps=2, width=64,
                                        height=64), SETTINGS).payload
    generator = Generator(DataFiles(tmp_path))
    async with WebUIClient(demo.url) as client:
        with pytest.raises(WebUIValidationError) as caught:
            await generator.generate(DrawRequest(payload, asked=("sampler", "scheduler")), client,
                                     filesize_limit=10 << 20)
    assert caught.value.message == T("failure.unsupported", options=["scheduler"])
    assert english(caught.value.message) == "This image server can't do: `scheduler`."
    assert demo.received == []  # the WebUI was never asked to run it
    ok = build_request(DrawOptions(prompt="x", scheduler="Karras", steps=2, width=64, height=64), SETTINGS).payload
    async with WebUIClient(demo.url) as client:
        outcome = await generator.generate(DrawRequest(ok, asked=("scheduler",)), client, filesize_limit=10 << 20)
    assert (outcome.sampler, outcome.scheduler) == ("DPM++ 2M", "Karras")  # what SD.Next wrote: Sampler sigma


# ----------------------------------------------------------------------------- "Sampler not found"


@pytest.mark.parametrize(("name", "status"), [
    ("a1111-error-sampler-not-found.json", 404),  # A1111 <= 1.9 (and its HTTPException shape)
    ("a1111-error-sampler-not-found.json", 400),  # A1111 1.10 answers 400
    ("forge-error-sampler-not-found.json", 400),
])
def test_sampler_not_found_gets_a_plain_message(name: str, status: int) -> None:
    err = error_from_response(status, fixture_bytes(name), backend="http://gpu:7860", path="sdapi/v1/txt2img",
                              had_auth=False)
    assert isinstance(err, WebUIResponseError) and err.status == status
    assert err.message == T("failure.sampler_not_found") and err.detail == "Sampler not found"
    assert english(err.message) == "The image server doesn't have that sampler; pick one from the list."


def test_sdnext_gets_clip_skip_in_its_own_field() -> None:
    payload = build_request(DrawOptions(prompt="x", clip_skip=2, model="m"), SETTINGS).payload
    sent = adapt_payload("sdnext", payload)
    assert sent["clip_skip"] == 2 and "CLIP_stop_at_last_layers" not in sent["override_settings"]
    assert sent["override_settings"]["sd_model_checkpoint"] == "m"
    assert payload["override_settings"]["CLIP_stop_at_last_layers"] == 2  # the stored payload is unchanged
    assert adapt_payload("a1111", payload) is payload
