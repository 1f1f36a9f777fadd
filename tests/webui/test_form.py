"""FormClient (the form-encoded "Stable Diffusion API server" kind) against the demo form server on loopback."""

from __future__ import annotations

import base64
import io
import socket
from typing import Any

import pytest
from PIL import Image

from bot.demo import DemoFormServer, DemoWebUI
from bot.discord_app.catalog import english
from bot.errors import (
    WebUIAuthError,
    WebUIConnectionError,
    WebUIResponseError,
    WebUIServerError,
    WebUITimeoutError,
    WebUIValidationError,
)
from bot.images import png
from bot.images.infotext import parse_generation_parameters
from bot.text import Opt, T
from bot.webui.backend import Backend, open_backend
from bot.webui.client import GenerationResult, Progress
from bot.webui.form import FormClient

# What the engine sends: the WebUI's payload, with the bot's default sampler and scheduler filled in.
SMALL: dict[str, Any] = {"prompt": "a red fox", "negative_prompt": "", "seed": 1000, "sampler_name": "DPM++ 2M",
                         "scheduler": "Karras", "steps": 3, "cfg_scale": 7.0, "width": 64, "height": 64,
                         "batch_size": 1, "n_iter": 1, "send_images": True, "save_images": False}


def client_for(server: DemoFormServer, **kwargs: Any) -> FormClient:
    return FormClient(server.backend_url, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def a_png(width: int = 48, height: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------ the interface


async def test_open_backend_makes_a_form_client_for_form_urls(demo_form_server: DemoFormServer) -> None:
    client = open_backend(demo_form_server.backend_url, name="form0")
    try:
        assert isinstance(client, FormClient) and isinstance(client, Backend)
        assert client.kind == "form" and client.name == "form0"
        assert client.display_url == demo_form_server.backend_url  # form+http://127.0.0.1:port
        assert FormClient(demo_form_server.url).display_url == client.display_url  # the prefix is optional
        with_creds = demo_form_server.backend_url.replace("http://", "http://u:p@")
        assert FormClient(with_creds).display_url == client.display_url  # credentials never shown
    finally:
        await client.close()


async def test_no_progress_interrupt_catalogue_or_upscaling(demo_form_server: DemoFormServer) -> None:
    async with client_for(demo_form_server) as client:
        progress = await client.progress(skip_current_image=False)
        assert isinstance(progress, Progress) and progress.idle and progress.current_image is None
        await client.interrupt()
        for call in (client.sd_models, client.samplers, client.schedulers, client.upscalers,
                     client.prompt_styles, client.loras):
            assert await call() == []
        assert await client.options() == {}
        with pytest.raises(WebUIResponseError) as caught:
            await client.extra_single_image(a_png(), upscaling_resize=2)
        assert caught.value.message == T("failure.unsupported", options=[Opt("upscale")])
    assert demo_form_server.received == []


async def test_version_info(demo_form_server: DemoFormServer) -> None:
    async with client_for(demo_form_server) as client:
        info = await client.version_info()
    assert info["kind"] == "form" and info["flavour"] == "form" and info["version"] is None
    assert info["api"] is True and info["backend"] == demo_form_server.backend_url and info["detail"]
    assert demo_form_server.received == []  # a GET, never a generation


async def test_version_info_of_a_webui_is_not_a_form_server(demo_webui: DemoWebUI) -> None:
    async with FormClient("form+" + demo_webui.url) as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.version_info()
    assert caught.value.message == T("failure.not_form") and caught.value.status == 404


async def test_unreachable() -> None:
    async with FormClient(f"form+http://127.0.0.1:{free_port()}", connect_timeout=2.0) as client:
        with pytest.raises(WebUIConnectionError) as caught:
            await client.txt2img(SMALL)
        assert caught.value.reached is False  # safe to send the job elsewhere
        assert caught.value.message == T("failure.unreachable")
        with pytest.raises(WebUIConnectionError):
            await client.version_info()


# ------------------------------------------------------------------------------------ the fields


async def test_txt2img_fields_as_the_server_receives_them(demo_form_server: DemoFormServer) -> None:
    prompt = "여우 & 狐狸, a=b+c; 100% <fox>"
    payload = {**SMALL, "prompt": prompt, "negative_prompt": "blurry", "override_settings":
               {"sd_model_checkpoint": "v1-5"}, "batch_size": 2, "cfg_scale": 6.5}
    async with client_for(demo_form_server) as client:
        result = await client.txt2img(payload)
    assert isinstance(result, GenerationResult)
    assert demo_form_server.content_types == ["application/x-www-form-urlencoded; charset=utf-8"]
    # The bot's defaults (sampler, scheduler, a default negative prompt and model) are not sent.
    assert demo_form_server.received == [("txt2img", {
        "prompt": prompt, "seed": "1000", "num_outputs": "2", "width": "64", "height": "64",
        "num_inference_steps": "3", "guidance_scale": "6.5"})]
    assert len(result.images) == 2 and result.seeds == [1000, 1001]
    assert result.parameters == demo_form_server.received[0][1]
    assert result.info["all_seeds"] == [1000, 1001] and result.info["seed"] == 1000
    assert result.info["steps"] == 3 and result.info["cfg_scale"] == 6.5 and result.info["sampler_name"] is None
    assert (result.info["width"], result.info["height"]) == (64, 64) and result.index_of_first_image == 0


@pytest.mark.parametrize(("batch", "n_iter", "sent"), [(1, 1, "1"), (3, 1, "3"), (2, 2, "4"), (4, 1, "4")])
async def test_num_outputs(demo_form_server: DemoFormServer, batch: int, n_iter: int, sent: str) -> None:
    async with client_for(demo_form_server) as client:
        result = await client.txt2img({**SMALL, "batch_size": batch, "n_iter": n_iter})
    assert demo_form_server.received[-1][1]["num_outputs"] == sent
    assert len(result.images) == len(result.infotexts) == len(result.seeds) == int(sent)


async def test_seed_minus_one_is_picked_by_the_client_and_shown(demo_form_server: DemoFormServer) -> None:
    async with client_for(demo_form_server) as client:
        first = await client.txt2img({**SMALL, "seed": -1})
        second = await client.txt2img({**SMALL, "seed": -1})
    sent = [int(fields["seed"]) for _, fields in demo_form_server.received]
    assert all(0 <= s < 2**32 for s in sent) and sent[0] != sent[1]
    assert first.seeds == [sent[0]] and second.seeds == [sent[1]]
    assert parse_generation_parameters(first.infotexts[0])["Seed"] == str(sent[0])
    async with client_for(demo_form_server) as client:  # a rerun with that seed is the same picture
        again = await client.txt2img({**SMALL, "seed": sent[0]})
    assert png.strip_metadata(again.images[0]) == png.strip_metadata(first.images[0])


async def test_seeds_above_2_32(demo_form_server: DemoFormServer) -> None:
    demo_form_server.seed_rule = "wide"  # the server reports its own, wider seeds
    async with client_for(demo_form_server) as client:
        result = await client.txt2img({**SMALL, "batch_size": 2, "seed": 77})
        explicit = await client.txt2img({**SMALL, "seed": 2**40 + 5})
    assert result.seeds == [2**40 + (77 << 8), 2**40 + (77 << 8) + 1]
    assert all(s > 2**32 for s in result.seeds) and result.info["all_seeds"] == result.seeds
    assert [parse_generation_parameters(t)["Seed"] for t in result.infotexts] == [str(s) for s in result.seeds]
    assert demo_form_server.received[-1][1]["seed"] == str(2**40 + 5)  # sent as given
    assert explicit.seeds[0] > 2**32


async def test_img2img_strength_and_init_image(demo_form_server: DemoFormServer) -> None:
    init = a_png()
    async with client_for(demo_form_server) as client:
        result = await client.img2img({**SMALL, "denoising_strength": 0.6, "resize_mode": 0,
                                       "init_images": [b64(init)]})
        from_uri = await client.img2img({**SMALL, "denoising_strength": 0.35,
                                         "init_images": ["data:image/png;base64," + b64(init)]})
        from_bytes = await client.img2img({**SMALL, "width": None, "height": None, "denoising_strength": 0.5,
                                           "init_images": [init]})
    fields = [f for _, f in demo_form_server.received]
    assert [r for r, _ in demo_form_server.received] == ["img2img"] * 3
    assert fields[0]["strength"] == "0.6" and fields[0]["init_image"] == b64(init)
    assert fields[0]["width"] == "64" and fields[0]["height"] == "64"
    assert fields[1]["strength"] == "0.35" and fields[1]["init_image"] == b64(init)
    assert fields[2]["init_image"] == b64(init) and "width" not in fields[2] and "height" not in fields[2]
    params = parse_generation_parameters(result.infotexts[0])
    assert params["Denoising strength"] == "0.6" and result.info["denoising_strength"] == 0.6
    assert "init_image" not in result.parameters  # not kept with the result
    assert parse_generation_parameters(from_bytes.infotexts[0])["Size-1"] == "48"  # the server's size
    assert from_uri.images and Image.open(io.BytesIO(from_uri.images[0])).size == (64, 64)


async def test_the_written_infotext_reads_back(demo_form_server: DemoFormServer) -> None:
    async with client_for(demo_form_server) as client:
        result = await client.txt2img({**SMALL, "prompt": "a fox, in snow: 2", "steps": 12, "cfg_scale": 4.5,
                                       "seed": 4242, "width": 96, "height": 64})
    infotext = result.infotexts[0]
    assert png.read_parameters(result.images[0]) == infotext  # in the PNG's parameters chunk
    params = parse_generation_parameters(infotext)
    assert params["Prompt"] == "a fox, in snow: 2" and params["Negative prompt"] == ""
    assert params["Steps"] == "12" and params["CFG scale"] == "4.5" and params["Seed"] == "4242"
    assert (params["Size-1"], params["Size-2"]) == ("96", "64")
    assert params["Server"] == "form" and "Model" not in params and "Sampler" not in params
    assert "Denoising strength" not in params
    assert Image.open(io.BytesIO(result.images[0])).size == (96, 64)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
async def test_jpeg_and_webp_answers_become_pngs_with_their_infotext(demo_form_server: DemoFormServer,
                                                                     fmt: str) -> None:
    demo_form_server.image_format = fmt
    async with client_for(demo_form_server) as client:
        result = await client.txt2img(SMALL)
    assert png.image_format(result.images[0]) == "png"
    assert png.read_parameters(result.images[0]) == result.infotexts[0]
    assert Image.open(io.BytesIO(result.images[0])).size == (64, 64)


async def test_relative_image_urls_are_the_servers_own(demo_form_server: DemoFormServer) -> None:
    demo_form_server.relative_urls = True
    async with client_for(demo_form_server) as client:
        result = await client.txt2img(SMALL)
    assert len(result.images) == 1 and demo_form_server.downloads[-1].startswith("/images/")


async def test_credentials_go_to_the_server_and_its_images(demo_form_server_factory: Any) -> None:
    server = await demo_form_server_factory(auth=("alice", "s3cret"))
    async with FormClient(server.backend_url.replace("http://", "http://alice:s3cret@")) as client:
        result = await client.txt2img(SMALL)
        await client.version_info()
    assert len(result.images) == 1
    async with FormClient(server.backend_url, auth=("alice", "s3cret")) as client:
        assert len((await client.txt2img(SMALL)).images) == 1
    async with client_for(server) as client:
        with pytest.raises(WebUIAuthError) as caught:
            await client.txt2img(SMALL)
    assert caught.value.message == T("failure.auth_missing") and caught.value.status == 401


# ------------------------------------------------------------------------------------ what it can't do


@pytest.mark.parametrize(("kind", "payload", "asked", "missing"), [
    ("txt2img", SMALL, {"steps", "width"}, []),
    ("txt2img", SMALL, {"sampler", "scheduler"}, ["sampler", "scheduler"]),
    ("txt2img", {**SMALL, "override_settings": {"sd_model_checkpoint": "x"}}, {"model"}, ["model"]),
    ("txt2img", {**SMALL, "override_settings": {"sd_model_checkpoint": "x"}}, set(), []),
    ("txt2img", {**SMALL, "negative_prompt": "blurry"}, {"negative_prompt"}, ["negative_prompt"]),
    ("txt2img", {**SMALL, "negative_prompt": "blurry"}, set(), []),  # a default: simply not sent
    ("txt2img", {**SMALL, "enable_hr": True, "hr_scale": 2.0}, {"hires"}, ["hires"]),
    ("txt2img", {**SMALL, "styles": ["Cinematic"]}, {"style"}, ["style"]),
    ("txt2img", {**SMALL, "prompt": "a fox <lora:add_detail:0.8>"}, {"lora"}, ["lora"]),
    ("txt2img", {**SMALL, "prompt": "a fox <LyCo:thing:1>"}, set(), ["lora"]),
    ("txt2img", {**SMALL, "width": 1024, "height": 1024}, {"width", "height"}, []),
    ("txt2img", {**SMALL, "width": 1536, "height": 1088}, {"width", "height"}, ["width", "height"]),
    ("txt2img", {**SMALL, "batch_size": 4}, {"batch"}, []),
    ("txt2img", {**SMALL, "batch_size": 5}, {"batch"}, ["batch"]),
    ("txt2img", {**SMALL, "batch_size": 3, "n_iter": 2}, set(), ["batch"]),
    ("txt2img", {**SMALL, "steps": 150}, set(), []),
    ("txt2img", {**SMALL, "steps": 151}, {"steps"}, ["steps"]),
    ("txt2img", {**SMALL, "cfg_scale": 20}, set(), []),
    ("txt2img", {**SMALL, "cfg_scale": 25.0}, {"cfg_scale"}, ["cfg_scale"]),
    ("txt2img", {**SMALL, "subseed": -1, "subseed_strength": 0.3}, set(), ["variation"]),
    ("txt2img", {**SMALL, "subseed_strength": 0}, set(), []),
    ("img2img", {**SMALL, "denoising_strength": 0.6}, {"strength", "init_image"}, []),
    ("img2img", {**SMALL, "denoising_strength": 1.0}, {"strength"}, ["strength"]),
    ("upscale", {}, set(), ["upscale"]),
    ("txt2img", {**SMALL, "negative_prompt": "x", "styles": ["a"], "enable_hr": True, "batch_size": 8},
     {"negative_prompt", "sampler"}, ["negative_prompt", "sampler", "hires", "style", "batch"]),
])
def test_missing(kind: str, payload: dict[str, Any], asked: set[str], missing: list[str]) -> None:
    assert FormClient("form+http://127.0.0.1:1").missing(kind, payload, frozenset(asked)) == missing


async def test_a_payload_it_cant_run_is_refused_before_sending(demo_form_server: DemoFormServer) -> None:
    async with client_for(demo_form_server) as client:
        with pytest.raises(WebUIValidationError) as caught:
            await client.txt2img({**SMALL, "enable_hr": True, "styles": ["Cinematic"]})
        with pytest.raises(WebUIValidationError):
            await client.img2img({**SMALL, "subseed_strength": 0.5, "init_images": [b64(a_png())]})
    assert caught.value.message == T("failure.unsupported", options=[Opt("hires"), Opt("style")])
    assert english(caught.value.message) == "This image server can't do: `hires`, `style`."
    assert caught.value.backend == demo_form_server.backend_url
    assert demo_form_server.received == []


# ------------------------------------------------------------------------------------ failures


async def test_status_other_than_success(demo_form_server: DemoFormServer) -> None:
    demo_form_server.inject_error("txt2img", 200, {"status": "error", "message": "NSFW content detected"})
    demo_form_server.inject_error("txt2img", 200, {"status": "error", "message": "CUDA out of memory. Tried "
                                                   "to allocate 2.00 GiB"})
    demo_form_server.inject_error("txt2img", 200, {"status": "failed", "error": "RuntimeError",
                                                   "message": "boom"})
    demo_form_server.inject_error("txt2img", 200, {"status": "success", "images": []})
    async with client_for(demo_form_server) as client:
        with pytest.raises(WebUIValidationError) as rejected:
            await client.txt2img(SMALL)
        with pytest.raises(WebUIServerError) as oom:
            await client.txt2img(SMALL)
        with pytest.raises(WebUIServerError) as failed:
            await client.txt2img(SMALL)
        with pytest.raises(WebUIResponseError) as empty:
            await client.txt2img(SMALL)
    assert rejected.value.message == T("failure.rejected") and "NSFW content detected" in rejected.value.detail
    assert oom.value.out_of_memory and oom.value.message == T("failure.oom")
    assert failed.value.message == T("failure.server_error", error="RuntimeError")
    assert empty.value.message == T("failure.bad_answer")
    assert not demo_form_server.downloads


async def test_http_errors(demo_form_server: DemoFormServer) -> None:
    demo_form_server.inject_error("txt2img", 500)
    demo_form_server.inject_error("txt2img", 422, {"detail": [{"loc": ["body", "guidance_scale"],
                                                               "msg": "too high", "type": "value_error"}]})
    demo_form_server.inject_error("img2img", 503, b"")
    async with client_for(demo_form_server) as client:
        with pytest.raises(WebUIServerError) as server_error:
            await client.txt2img(SMALL)
        with pytest.raises(WebUIValidationError) as invalid:
            await client.txt2img(SMALL)
        with pytest.raises(WebUIServerError) as unavailable:
            await client.img2img({**SMALL, "init_images": [b64(a_png())]})
    assert server_error.value.status == 500
    assert server_error.value.message == T("failure.server_status", status=500)
    assert invalid.value.message == T("failure.rejected_fields", fields="guidance_scale")
    assert unavailable.value.status == 503


async def test_the_servers_own_validation(demo_form_server: DemoFormServer) -> None:
    # A payload `missing` lets through but the server refuses (its init image is not an image).
    async with client_for(demo_form_server) as client:
        with pytest.raises(WebUIValidationError) as caught:
            await client.img2img({**SMALL, "init_images": [b64(b"not an image at all")]})
    assert caught.value.message == T("failure.rejected_fields", fields="init_image")


async def test_a_path_without_the_api_is_not_a_form_server(demo_webui: DemoWebUI) -> None:
    async with FormClient(demo_webui.url) as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.txt2img(SMALL)
    assert caught.value.message == T("failure.not_form")


# ------------------------------------------------------------------------------------ downloads


@pytest.mark.parametrize(("fault", "status", "why"), [
    ("404", 404, "HTTP 404"),
    ("huge", 200, "over the"),
    ("huge_chunked", 200, "over the"),
    ("not_image", None, "not usable"),
    ("truncated", None, "not usable"),
    ("redirect_scheme", 302, "redirects to https:"),
])
async def test_downloads_that_fail(demo_form_server: DemoFormServer, fault: str, status: int | None,
                                   why: str) -> None:
    demo_form_server.fail_downloads(fault, size=3 * 1024 * 1024)
    async with client_for(demo_form_server, max_download=1024 * 1024) as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.txt2img(SMALL)
        assert len((await client.txt2img(SMALL)).images) == 1  # the fault was one download
    assert caught.value.message == T("failure.download") and caught.value.status == status
    assert why in caught.value.detail
    assert english(caught.value.message) == "The image server made the picture, but the bot couldn't download it."


async def test_a_slow_download_times_out(demo_form_server: DemoFormServer) -> None:
    demo_form_server.fail_downloads("slow", delay=5.0)
    async with client_for(demo_form_server, read_timeout=0.3) as client:
        with pytest.raises(WebUITimeoutError) as caught:
            await client.txt2img(SMALL)
    assert caught.value.message == T("failure.timeout_answer", seconds="0.3")


async def test_a_download_over_its_total_time_times_out(demo_form_server: DemoFormServer) -> None:
    demo_form_server.fail_downloads("slow", delay=5.0)
    async with client_for(demo_form_server, download_timeout=0.5, read_timeout=30) as client:
        with pytest.raises(WebUITimeoutError):
            await client.txt2img(SMALL)


async def test_a_redirect_to_the_same_scheme_is_followed(demo_form_server: DemoFormServer) -> None:
    demo_form_server.fail_downloads("redirect", times=2)
    async with client_for(demo_form_server) as client:
        result = await client.txt2img(SMALL)
    assert len(result.images) == 1 and len(demo_form_server.downloads) == 3


async def test_too_many_redirects(demo_form_server: DemoFormServer) -> None:
    demo_form_server.fail_downloads("redirect", times=4)
    async with client_for(demo_form_server) as client:
        with pytest.raises(WebUIResponseError) as caught:
            await client.txt2img(SMALL)
    assert caught.value.message == T("failure.download") and "more than 3" in caught.value.detail


async def test_one_failed_download_fails_the_batch(demo_form_server: DemoFormServer) -> None:
    demo_form_server.fail_downloads("404")
    async with client_for(demo_form_server) as client:
        with pytest.raises(WebUIResponseError):
            await client.txt2img({**SMALL, "batch_size": 4})


def test_an_image_with_its_own_parameters_gets_ours() -> None:
    from bot.webui.form import _png_with

    theirs = png.add_text_chunk(a_png(), "parameters", "something else")
    ours = _png_with(theirs, "png", "a fox\nSteps: 3, Seed: 1, Size: 48x32")
    assert png.read_parameters(ours) == "a fox\nSteps: 3, Seed: 1, Size: 48x32"
    plain = a_png()
    assert png.read_parameters(_png_with(plain, "png", "x\nSteps: 1, Seed: 2, Size: 48x32")).startswith("x\n")
