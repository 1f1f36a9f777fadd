"""The ADetailer extension on the demo WebUI (`DemoConfig(extensions=("adetailer",))`, `--extension adetailer`):
/scripts, its args as the real extension (v25.3.0) reads them, its infotext keys, and its visible effect."""

from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image, ImageChops

from bot.demo import EXTENSIONS, DemoConfig, DemoWebUI, render_image
from bot.demo.server import config_from_args, parser
from tests.demo.wire import b64png, generate, get, params_line, post, request

BASE = {"prompt": "a portrait of a knight", "negative_prompt": "blurry", "seed": 42, "steps": 10, "width": 96,
        "height": 96}
DEFAULT_KEYS = ("ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4, "
                "ADetailer mask blur: 4, ADetailer denoising strength: 0.4, ADetailer inpaint only masked: True, "
                "ADetailer inpaint padding: 32")


def with_ad(args: Any, key: str = "ADetailer", **fields: Any) -> dict[str, Any]:
    return {**BASE, **fields, "alwayson_scripts": {key: {"args": args}}}


@pytest.fixture
async def ad_webui(demo_webui_factory: Any) -> DemoWebUI:
    return await demo_webui_factory(extensions=("adetailer",))


async def test_scripts_list_and_routes_with_and_without_the_extension(demo_webui: DemoWebUI,
                                                                      ad_webui: DemoWebUI) -> None:
    plain = await get(demo_webui, "scripts")
    assert "adetailer" not in plain["txt2img"] and "adetailer" not in plain["img2img"]
    status, raw = await request(demo_webui, "POST", "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt"}]))
    assert status == 422
    assert raw == b'{"error":"HTTPException","detail":"Script \'ADetailer\' not found","body":"","errors":""}'
    assert (await request(demo_webui, "GET", "/adetailer/v1/version"))[0] == 404

    listed = await get(ad_webui, "scripts")
    assert listed == {"txt2img": [*plain["txt2img"], "adetailer"], "img2img": [*plain["img2img"], "adetailer"]}
    assert await get(ad_webui, "/adetailer/v1/version") == {"version": "25.3.0"}
    models = (await get(ad_webui, "/adetailer/v1/ad_model"))["ad_model"]
    assert models[0] == "face_yolov8n.pt" and "hand_yolov8n.pt" in models and "mediapipe_face_full" in models
    options = await get(ad_webui, "options")
    assert options["ad_max_models"] == 4 and options["ad_same_seed_for_each_tab"] is False
    for key in ("ADetailer", "adetailer", "ADETAILER"):  # A1111 matches always-on scripts case-insensitively
        status, _ = await post(ad_webui, "txt2img", with_ad([False], key=key, steps=1, width=64, height=64))
        assert status == 200


async def test_infotext_keys_defaults_and_a_visibly_detailed_image(ad_webui: DemoWebUI) -> None:
    plain, plain_info = await generate(ad_webui, "txt2img", BASE)
    detailed, info = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt"}]))
    line = params_line(info)
    assert line.endswith(f"Model: v1-5-pruned-emaonly, {DEFAULT_KEYS}, ADetailer version: 25.3.0, Version: v1.10.1")
    assert info["extra_generation_params"] == {
        "ADetailer model": "face_yolov8n.pt", "ADetailer confidence": 0.3, "ADetailer dilate erode": 4,
        "ADetailer mask blur": 4, "ADetailer denoising strength": 0.4, "ADetailer inpaint only masked": True,
        "ADetailer inpaint padding": 32, "ADetailer version": "25.3.0"}
    assert detailed.size == plain.size == (96, 96)
    changed = ImageChops.difference(plain, detailed).point(lambda v: 255 if v > 24 else 0).getbbox()
    assert changed is not None  # a face was painted...
    x1, y1, x2, y2 = changed
    assert (x2 - x1) * (y2 - y1) < 96 * 96 / 3  # ...in one place, the rest untouched
    assert detailed.crop((0, 80, 96, 96)).tobytes() == plain.crop((0, 80, 96, 96)).tobytes()
    again, _ = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt"}]))
    assert again.tobytes() == detailed.tobytes()  # deterministic
    prompted, _ = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt",
                                                                              "ad_prompt": "a green face"}]))
    assert prompted.tobytes() != detailed.tobytes()  # ad_prompt changes what is painted
    # the first txt2img had no ADetailer: no keys, and the sampling state shows one job
    assert "ADetailer" not in params_line(plain_info)
    assert ad_webui.received[1][1]["alwayson_scripts"]["ADetailer"]["args"][2] == {"ad_model": "face_yolov8n.pt"}


async def test_changed_fields_second_tab_suffixes_and_old_style_args(ad_webui: DemoWebUI) -> None:
    args = [True, False,
            {"ad_model": "face_yolov8s.pt", "ad_prompt": "a smiling face, blue eyes", "ad_confidence": 0.5,
             "ad_mask_k": 1, "ad_inpaint_only_masked": False, "ad_use_steps": True, "ad_steps": 12,
             "ad_use_sampler": True, "ad_sampler": "Euler a", "is_api": ()},
            {"ad_model": "hand_yolov8n.pt", "ad_denoising_strength": 0.6, "ad_dilate_erode": -2}]
    _, info = await generate(ad_webui, "txt2img", with_ad(args))
    assert ("ADetailer model: face_yolov8s.pt, ADetailer prompt: \"a smiling face, blue eyes\", "
            "ADetailer confidence: 0.5, ADetailer method to decide top k masks: Area, ADetailer mask only top k: 1, "
            "ADetailer dilate erode: 4, ADetailer mask blur: 4, ADetailer denoising strength: 0.4, "
            "ADetailer inpaint only masked: False, ADetailer use separate steps: True, ADetailer steps: 12, "
            "ADetailer use separate sampler: True, ADetailer sampler: Euler a, "
            "ADetailer model 2nd: hand_yolov8n.pt, ADetailer confidence 2nd: 0.3, ADetailer dilate erode 2nd: -2, "
            "ADetailer mask blur 2nd: 4, ADetailer denoising strength 2nd: 0.6, "
            "ADetailer inpaint only masked 2nd: True, ADetailer inpaint padding 2nd: 32, "
            "ADetailer version: 25.3.0, Version: v1.10.1") in params_line(info)

    # a lone dict lands in the "enable" slot: tab 1 keeps its UI default (face_yolov8n.pt) and runs 2nd
    _, info = await generate(ad_webui, "txt2img", with_ad([{"ad_model": "hand_yolov8n.pt"}]))
    line = params_line(info)
    assert "ADetailer model: hand_yolov8n.pt," in line and "ADetailer model 2nd: face_yolov8n.pt," in line
    _, info = await generate(ad_webui, "txt2img", with_ad([True]))  # enable only: tab 1's defaults
    assert f"{DEFAULT_KEYS}, ADetailer version: 25.3.0" in params_line(info)
    # an invalid dict is dropped (pydantic ValidationError) and the next valid one is the first
    _, info = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt", "nope": 1},
                                                           {"ad_model": "hand_yolov8n.pt"}]))
    line = params_line(info)
    assert "ADetailer model: hand_yolov8n.pt," in line and "2nd" not in line
    # int and str values are coerced like pydantic v1 does
    _, info = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt",
                                                                         "ad_confidence": 1, "ad_mask_blur": "8"}]))
    assert "ADetailer confidence: 1.0, ADetailer dilate erode: 4, ADetailer mask blur: 8," in params_line(info)


async def test_disabled_runs_leave_the_image_and_infotext_alone(ad_webui: DemoWebUI) -> None:
    plain, _ = await generate(ad_webui, "txt2img", BASE)
    for args in ([False, False, {"ad_model": "face_yolov8n.pt"}],  # enable off
                 [True, False, {"ad_model": "None"}, {"ad_model": "None"}],  # no model in any tab
                 [True, False, {"ad_model": "face_yolov8n.pt", "ad_tab_enable": False}],
                 [True, False, {"ad_model": "face_yolov8n.pt", "ad_confidence": 2}],  # le=1: invalid
                 [True, False, {"ad_model": None}], [], [False]):
        image, info = await generate(ad_webui, "txt2img", with_ad(args))
        assert "ADetailer" not in params_line(info), args
        assert image.tobytes() == plain.tobytes(), args
    status, answer = await post(ad_webui, "txt2img", {**BASE, "alwayson_scripts": {"ADetailer": {}}})
    assert status == 200 and "ADetailer" not in params_line(json.loads(answer["info"]))
    # a confidence above every detection: the keys are written, nothing is painted
    image, info = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt",
                                                                             "ad_confidence": 0.99}]))
    assert "ADetailer confidence: 0.99" in params_line(info) and image.tobytes() == plain.tobytes()
    # an unknown model raises inside the script: A1111 logs it, keeps the keys and the image
    image, info = await generate(ad_webui, "txt2img", with_ad([True, False, {"ad_model": "face_yolov9.pt"}]))
    assert "ADetailer model: face_yolov9.pt" in params_line(info) and image.tobytes() == plain.tobytes()


async def test_odd_alwayson_entries_fail_like_a1111(ad_webui: DemoWebUI) -> None:
    for entry, error, message in ((None, "TypeError", "argument of type 'NoneType' is not iterable"),
                                  (7, "TypeError", "argument of type 'int' is not iterable"),
                                  ({"args": 5}, "TypeError", "object of type 'int' has no len()"),
                                  ({"args": {"0": True}}, "KeyError", "0"),
                                  (["args"], "TypeError", "list indices must be integers or slices, not str")):
        status, raw = await request(ad_webui, "POST", "txt2img", {**BASE, "alwayson_scripts": {"ADetailer": entry}})
        assert status == 500 and json.loads(raw) == {"error": error, "detail": "", "body": "", "errors": message}


async def test_inpainting_passes_are_jobs_with_their_own_steps(demo_webui_factory: Any) -> None:
    demo = await demo_webui_factory(extensions=("adetailer",), step_delay=0.002)
    await generate(demo, "txt2img", with_ad([True, False, {"ad_model": "face_yolov8n.pt"}]))
    assert demo.state.job_no == 2 and demo.state.sampling_steps == 5  # main job, then int(0.4 * 10) + 1 steps
    await generate(demo, "txt2img", with_ad([True, False, {"ad_model": "hand_yolov8n.pt", "ad_use_steps": True,
                                                           "ad_steps": 20, "ad_denoising_strength": 0.5}]))
    assert demo.state.job_no == 3 and demo.state.sampling_steps == 11  # two hands, 11 steps each


async def test_img2img_masks_and_skip_img2img(ad_webui: DemoWebUI) -> None:
    init = render_image(b"an old photo", 80, 96)
    base = {**BASE, "width": 64, "height": 64, "init_images": [b64png(init)], "denoising_strength": 0.5}
    image, info = await generate(ad_webui, "img2img", {**base, "alwayson_scripts": {
        "ADetailer": {"args": [True, True, {"ad_model": "face_yolov8n.pt"}]}}})
    line = params_line(info)
    assert image.size == (80, 96)  # skip img2img: ADetailer works on the init image itself
    assert line.startswith("Steps: 1, Sampler: Euler, ") and "Size: 128x128" in line and DEFAULT_KEYS in line
    assert info["width"] == 128 and info["steps"] == 1
    changed = ImageChops.difference(image, init).getbbox()
    assert changed is not None and changed != (0, 0, 80, 96)

    black = Image.new("L", (80, 96), 0)  # an empty inpainting mask disables ADetailer
    _, info = await generate(ad_webui, "img2img", {**base, "mask": b64png(black), "alwayson_scripts": {
        "ADetailer": {"args": [True, False, {"ad_model": "face_yolov8n.pt"}]}}})
    assert "ADetailer" not in params_line(info) and "Mask blur: 4" in params_line(info)
    top = Image.new("L", (80, 96), 0)
    top.paste(255, (0, 0, 80, 60))
    _, info = await generate(ad_webui, "img2img", {**base, "mask": b64png(top), "alwayson_scripts": {
        "ADetailer": {"args": [True, False, {"ad_model": "face_yolov8n.pt"}]}}})
    assert (f"Denoising strength: 0.5, {DEFAULT_KEYS}, ADetailer version: 25.3.0, Mask blur: 4, "
            "Inpaint area: Only masked, Masked area padding: 0, Masked content: fill") in params_line(info)
    _, info = await generate(ad_webui, "img2img", {**base, "mask": b64png(top), "alwayson_scripts": {
        "ADetailer": {"args": [True, True, {"ad_model": "face_yolov8n.pt"}]}}})
    assert "ADetailer" not in params_line(info)  # skip img2img with inpainting is refused


def test_config_and_command_line() -> None:
    assert EXTENSIONS == ("adetailer",)
    assert DemoConfig().extensions == ()
    assert DemoConfig(extensions=["ADetailer", "adetailer"]).extensions == ("adetailer",)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown demo extension"):
        DemoConfig(extensions=("controlnet",))
    assert config_from_args(parser().parse_args([])).extensions == ()
    config = config_from_args(parser().parse_args(["--extension", "adetailer", "--extension", "adetailer",
                                                   "--dialect", "forge"]))
    assert config.extensions == ("adetailer",) and config.dialect == "forge"
    with pytest.raises(SystemExit):
        parser().parse_args(["--extension", "controlnet"])
    assert DemoConfig(step_delay=0.05).interrogate_seconds == pytest.approx(0.5)
    assert DemoConfig(step_delay=0.05, interrogate_delay=0.0).interrogate_seconds == 0.0
