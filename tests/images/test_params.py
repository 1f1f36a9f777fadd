"""bot.params: showing an image's parameters and rebuilding a /draw request from them."""

from __future__ import annotations

import base64
import json

import pytest

from bot.config import Settings
from bot.core.catalogue import Catalogue
from bot.core.payload import DrawOptions, build_request, options_from_infotext
from bot.errors import OptionError
from bot.images.infotext import create_infotext
from bot.images.params import ParamsView, describe, format_draw_command
from bot.images.png import read_parameters
from tests.support.fixtures import fixture

SETTINGS = Settings(discord_token="t")


def a1111_infotexts() -> list[str]:
    return json.loads(fixture("a1111-txt2img-response.json")["info"])["infotexts"]


def catalogue() -> Catalogue:
    return Catalogue(fixture("a1111-sd-models-v1.10.1.json"), fixture("a1111-samplers-v1.10.1.json"),
                     fixture("a1111-schedulers-v1.10.1.json"))


# Reference §3.6: 512x768 with hires x2, clip skip 2, as A1111 v1.10.1 writes it.
HIRES = (
    "portrait of an astronaut, (detailed:1.2)\n"
    "Negative prompt: lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 42, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.4, Clip skip: 2, "
    "Hires upscale: 2.0, Hires steps: 10, Hires upscaler: R-ESRGAN 4x+, Version: v1.10.1"
)

# Forge with a Flux checkpoint (reference §6: Distilled CFG Scale, Diffusion in Low Bits, Module N).
FORGE = (
    "a photo of a corgi wearing sunglasses, 35mm\n"
    "Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, "
    "Seed: 2871923641, Size: 896x1152, Model hash: 00d7b3fb3f, Model: flux1-dev-bnb-nf4-v2, "
    "Diffusion in Low Bits: Automatic (fp16 LoRA), Module 1: ae, Module 2: clip_l, "
    "Module 3: t5xxl_fp8_e4m3fn, "
    "Version: f2.0.1v1.10.1-previous-669-gdfdcbab6"
)

# SD.Next (reference §6/§7.5): its own key order, WxH-looking Batch/Index, App, a commit as Version.
SDNEXT = (
    "a cat in a hat\n"
    "Negative prompt: ugly, blurry\n"
    "Steps: 20, Size: 512x512, Sampler: Euler a, Seed: 1, CFG scale: 6, Batch: 1x2, Index: 1x1, "
    "Model: sd_xl_base_1.0, Model hash: 31e35c80fc, App: SD.Next, Version: 1a2b3c4, "
    "Pipeline: StableDiffusionXLPipeline, Operations: txt2img"
)

# A1111 <= 1.8: combined sampler names, no Schedule type.
OLD = (
    "a castle on a hill, sunset\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0"
)

# Multi-line prompt and negative, CJK and emoji, quoted values, a bare flag, written by the A1111 writer.
MULTI = create_infotext(
    "masterpiece, 1girl,\n(猫耳:1.2), 🌸 cherry   blossoms",
    "lowres,\nbad anatomy",
    {
        "Steps": 28, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 5.5, "Seed": 987654321,
        "Size": "832x1216", "Model hash": "1449e5b0b9", "Model": "anime, v3: final",
        "Lora hashes": "add_detail: 7c6bad76eb54, 猫: 0123456789ab", "Emphasis": "Original",
        "Template": 'say "hi", ok', "NGMS all steps": "NGMS all steps", "Hires resize": "1024x768",
        "Version": "v1.10.1",
    },
)


# --------------------------------------------------------------------------------------------------
# describe
# --------------------------------------------------------------------------------------------------


def test_describe_a1111_fixture_infotext() -> None:
    view = describe(a1111_infotexts()[0])
    assert view == ParamsView(
        prompt="a watercolor painting of a red fox in an autumn forest",
        negative_prompt="blurry, lowres",
        fields=[("Steps", "20"), ("Sampler", "Euler a"), ("Schedule type", "Automatic"), ("CFG scale", "7.0"),
                ("Seed", "1234567890"), ("Size", "64x64"), ("Model hash", "6ce0161689"),
                ("Model", "v1-5-pruned-emaonly"), ("Version", "v1.10.1")],
        flavour="A1111",
        draw_command=(
            "/draw prompt:a watercolor painting of a red fox in an autumn forest "
            "negative_prompt:blurry, lowres "
            "steps:20 cfg_scale:7 seed:1234567890 width:64 height:64 sampler:Euler a scheduler:Automatic "
            "model:v1-5-pruned-emaonly"
        ),
        truncated=False,
        has_parameters=True,
    )
    assert describe(a1111_infotexts()[1]).fields[4] == ("Seed", "1234567891")


def test_describe_hires_keeps_size_as_written_and_lists_no_injected_defaults() -> None:
    view = describe(HIRES)
    assert view.flavour == "A1111"
    assert view.prompt == "portrait of an astronaut, (detailed:1.2)"
    assert view.negative_prompt == "lowres"
    assert view.fields == [
        ("Steps", "20"), ("Sampler", "DPM++ 2M"), ("Schedule type", "Karras"), ("CFG scale", "6.5"),
        ("Seed", "42"),
        ("Size", "512x768"), ("Model hash", "6ce0161689"), ("Model", "v1-5-pruned-emaonly"),
        ("Denoising strength", "0.4"), ("Clip skip", "2"), ("Hires upscale", "2.0"), ("Hires steps", "10"),
        ("Hires upscaler", "R-ESRGAN 4x+"), ("Version", "v1.10.1"),
    ]
    names = {name for name, _ in view.fields}
    assert not names & {"Size-1", "Hires resize-1", "RNG", "Emphasis", "Hires sampler", "Mask mode"}
    assert view.draw_command == (
        "/draw prompt:portrait of an astronaut, (detailed:1.2) negative_prompt:lowres steps:20 cfg_scale:6.5 "
        "seed:42 width:512 height:768 sampler:DPM++ 2M scheduler:Karras model:v1-5-pruned-emaonly clip_skip:2"
    )


def test_describe_forge() -> None:
    view = describe(FORGE)
    assert view.flavour == "Forge"
    assert view.negative_prompt == ""
    assert view.fields == [
        ("Steps", "20"), ("Sampler", "Euler"), ("Schedule type", "Simple"), ("CFG scale", "1"),
        ("Distilled CFG Scale", "3.5"), ("Seed", "2871923641"), ("Size", "896x1152"),
        ("Model hash", "00d7b3fb3f"), ("Model", "flux1-dev-bnb-nf4-v2"),
        ("Diffusion in Low Bits", "Automatic (fp16 LoRA)"), ("Module 1", "ae"), ("Module 2", "clip_l"),
        ("Module 3", "t5xxl_fp8_e4m3fn"), ("Version", "f2.0.1v1.10.1-previous-669-gdfdcbab6"),
    ]
    assert view.draw_command == (
        "/draw prompt:a photo of a corgi wearing sunglasses, 35mm steps:20 cfg_scale:1 seed:2871923641 "
        "width:896 height:1152 sampler:Euler scheduler:Simple model:flux1-dev-bnb-nf4-v2"
    )


def test_describe_sdnext_keeps_wxh_values_and_omits_the_scheduler() -> None:
    view = describe(SDNEXT)
    assert view.flavour == "SD.Next"
    assert (view.prompt, view.negative_prompt) == ("a cat in a hat", "ugly, blurry")
    assert view.fields == [
        ("Steps", "20"), ("Size", "512x512"), ("Sampler", "Euler a"), ("Seed", "1"), ("CFG scale", "6"),
        ("Batch", "1x2"), ("Index", "1x1"), ("Model", "sd_xl_base_1.0"), ("Model hash", "31e35c80fc"),
        ("App", "SD.Next"), ("Version", "1a2b3c4"), ("Pipeline", "StableDiffusionXLPipeline"),
        ("Operations", "txt2img"),
    ]
    assert view.draw_command == (
        "/draw prompt:a cat in a hat negative_prompt:ugly, blurry steps:20 cfg_scale:6 seed:1 width:512 "
        "height:512 sampler:Euler a model:sd_xl_base_1.0"
    )


@pytest.mark.parametrize(
    ("params", "flavour"),
    [
        # No App key: a commit as Version, or SD.Next's key order (Seed/Size before Sampler).
        ("Steps: 20, Seed: 1, Sampler: Euler a, CFG scale: 6, Size: 512x512, Version: 0a1b2c3d", "SD.Next"),
        ("Steps: 20, Seed: 1, Sampler: Euler a, CFG scale: 6, Size: 512x512, Operations: txt2img", "SD.Next"),
        ("Steps: 20, Size: 512x512, Sampler: Euler a, Seed: 1, CFG scale: 6", "SD.Next"),
        # Forge without Version: its own keys.
        ("Steps: 20, Sampler: Euler, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1", "Forge"),
        ("Steps: 20, Sampler: Euler, Version: f0.0.17v1.8.0rc-latest-276-g29be1da7, Seed: 1", "Forge"),
        # A1111: its Version forms, or its key order without a Version.
        ("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Version: v1.10.1-5-gabc1234", "A1111"),
        ("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Version: 1.10.1", "A1111"),
        ("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512", "A1111"),
        # Something else in the same format.
        ("Steps: 20, Sampler: euler, CFG scale: 7, Seed: 1, Version: ComfyUI", "unknown"),
    ],
)
def test_flavour(params: str, flavour: str) -> None:
    assert describe(f"a cat\n{params}").flavour == flavour


def test_describe_old_a1111() -> None:
    view = describe(OLD)
    assert view.flavour == "A1111"
    assert ("Sampler", "DPM++ 2M Karras") in view.fields
    assert "Schedule type" not in dict(view.fields)
    assert "sampler:DPM++ 2M scheduler:Karras" in view.draw_command


def test_describe_multiline_cjk_emoji_quoted_values_and_flags() -> None:
    view = describe(MULTI)
    assert view.prompt == "masterpiece, 1girl,\n(猫耳:1.2), 🌸 cherry   blossoms"
    assert view.negative_prompt == "lowres,\nbad anatomy"
    assert view.fields == [
        ("Steps", "28"), ("Sampler", "DPM++ 2M"), ("Schedule type", "Karras"), ("CFG scale", "5.5"),
        ("Seed", "987654321"), ("Size", "832x1216"), ("Model hash", "1449e5b0b9"),
        ("Model", "anime, v3: final"),
        ("Lora hashes", "add_detail: 7c6bad76eb54, 猫: 0123456789ab"), ("Emphasis", "Original"),
        ("Template", 'say "hi", ok'), ("NGMS all steps", ""), ("Hires resize", "1024x768"),
        ("Version", "v1.10.1"),
    ]
    # One line, whitespace collapsed; colons and commas in values are written as they are.
    assert view.draw_command == (
        "/draw prompt:masterpiece, 1girl, (猫耳:1.2), 🌸 cherry blossoms negative_prompt:lowres, bad anatomy "
        "steps:28 cfg_scale:5.5 seed:987654321 width:832 height:1216 sampler:DPM++ 2M scheduler:Karras "
        "model:anime, v3: final"
    )
    assert "\n" not in view.draw_command and not view.truncated


def test_describe_crlf_text() -> None:
    view = describe(a1111_infotexts()[0].replace("\n", "\r\n") + "\r\n")
    assert view.negative_prompt == "blurry, lowres"
    assert view.fields[-1] == ("Version", "v1.10.1")


def test_describe_repeated_key_keeps_first_place_and_last_value() -> None:
    view = describe("x\nSteps: 20, Seed: 1, Sampler: Euler a, Seed: 2, Size: 64x64")
    assert view.fields == [("Steps", "20"), ("Seed", "2"), ("Sampler", "Euler a"), ("Size", "64x64")]
    assert " seed:2 " in view.draw_command


@pytest.mark.parametrize(
    "text", ["a cat sitting", "a cat\nSteps: 20, Seed: 5", "", "red: 1, green: 2, blue: 3"]
)
def test_describe_without_generation_parameters(text: str) -> None:
    view = describe(text)
    assert not view.has_parameters and view.flavour == "unknown"
    if text == "a cat sitting":
        assert view.fields == [] and view.prompt == "a cat sitting"
        assert view.draw_command == "/draw prompt:a cat sitting"
    if text == "a cat\nSteps: 20, Seed: 5":  # only 2 pairs: A1111 reads it all as prompt
        assert view.prompt == text and view.fields == []
        assert view.draw_command == "/draw prompt:a cat Steps: 20, Seed: 5"
    if text == "red: 1, green: 2, blue: 3":  # A1111 reads a one-line prompt like this as params
        assert view.prompt == "" and view.fields == [("red", "1"), ("green", "2"), ("blue", "3")]
        assert view.draw_command == ""


def test_describe_prompt_and_negative_without_params() -> None:
    view = describe("a cat\nNegative prompt: a dog")
    assert (view.prompt, view.negative_prompt, view.fields) == ("a cat", "a dog", [])
    assert view.draw_command == "/draw prompt:a cat negative_prompt:a dog"


def test_describe_params_without_prompt_has_no_command() -> None:
    view = describe("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512")
    assert view.has_parameters and view.prompt == "" and len(view.fields) == 5
    assert view.draw_command == ""  # /draw needs a prompt


def test_describe_hypernet_prompt_is_the_texts_own() -> None:
    text = "a cat\nSteps: 20, Sampler: Euler a, Seed: 1, Hypernet: anime, Hypernet strength: 0.5"
    assert describe(text).prompt == "a cat"
    assert options_from_infotext(text).prompt == "a cat<hypernet:anime:0.5>"  # as A1111 pastes it


# --------------------------------------------------------------------------------------------------
# options_from_infotext
# --------------------------------------------------------------------------------------------------


def test_options_a1111_fixture_and_build_with_the_webuis_lists() -> None:
    opts = options_from_infotext(a1111_infotexts()[0])
    assert opts == DrawOptions(
        prompt="a watercolor painting of a red fox in an autumn forest", negative_prompt="blurry, lowres",
        model="v1-5-pruned-emaonly", sampler="Euler a", scheduler="Automatic", steps=20, cfg_scale=7.0,
        seed=1234567890, width=64, height=64, batch=1,
    )
    assert isinstance(opts.cfg_scale, float)
    built = build_request(opts, SETTINGS, catalogue())
    assert built.payload["sampler_name"] == "Euler a" and built.payload["scheduler"] == "Automatic"
    assert built.payload["seed"] == 1234567890
    assert (built.payload["width"], built.payload["height"]) == (64, 64)
    assert built.model == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert built.notes == []


def test_options_new_seed() -> None:
    assert options_from_infotext(a1111_infotexts()[0], new_seed=True).seed is None


def test_options_hires_keeps_first_pass_size() -> None:
    assert options_from_infotext(HIRES) == DrawOptions(
        prompt="portrait of an astronaut, (detailed:1.2)", negative_prompt="lowres",
        model="v1-5-pruned-emaonly", sampler="DPM++ 2M", scheduler="Karras", steps=20, cfg_scale=6.5, seed=42,
        width=512, height=768, batch=1, clip_skip=2,
    )


@pytest.mark.parametrize(
    ("first_pass", "size"),
    [("0x0", (512, 512)), ("640x384", (640, 384))],
)
def test_options_pre_1_0_first_pass_size(first_pass: str, size: tuple[int, int]) -> None:
    text = ("a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 1024x1024, "
            f"Model hash: 7460a6fa, Denoising strength: 0.7, First pass size: {first_pass}")
    opts = options_from_infotext(text)
    assert (opts.width, opts.height) == size
    assert opts.model is None  # an 8-digit hash of old releases can't be matched against today's list
    assert (opts.sampler, opts.scheduler) == ("Euler a", "Automatic")


def test_options_forge() -> None:
    assert options_from_infotext(FORGE) == DrawOptions(
        prompt="a photo of a corgi wearing sunglasses, 35mm", negative_prompt="",
        model="flux1-dev-bnb-nf4-v2",
        sampler="Euler", scheduler="Simple", steps=20, cfg_scale=1.0, seed=2871923641, width=896, height=1152,
        batch=1,
    )


def test_options_forge_scheduler_unknown_to_a1111_is_kept() -> None:
    text = FORGE.replace("Schedule type: Simple", "Schedule type: Align Your Steps GITS")
    assert options_from_infotext(text).scheduler == "Align Your Steps GITS"
    assert options_from_infotext(FORGE.replace("Simple", "SGMUniform")).scheduler == "SGMUniform"  # an alias
    assert options_from_infotext(FORGE.replace("Simple", "sgm_uniform")).scheduler == "SGM Uniform"  # a name


def test_options_sdnext() -> None:
    assert options_from_infotext(SDNEXT) == DrawOptions(
        prompt="a cat in a hat", negative_prompt="ugly, blurry", model="sd_xl_base_1.0", sampler="Euler a",
        scheduler=None, steps=20, cfg_scale=6.0, seed=1, width=512, height=512, batch=1,
    )
    # SD.Next's own sampler names are used as written, never split into sampler + schedule.
    assert options_from_infotext(SDNEXT.replace("Euler a", "DPM++ 2M Karras")).sampler == "DPM++ 2M Karras"
    # its sigma schedule ("Sampler sigma", written when not `default`) is the schedule type of a rerun
    assert options_from_infotext(SDNEXT + ", Sampler sigma: karras").scheduler == "Karras"
    assert options_from_infotext(SDNEXT + ", Sampler sigma: betas").scheduler == "Beta"
    assert options_from_infotext(SDNEXT + ", Sampler sigma: lambdas").scheduler is None  # no A1111 equivalent


@pytest.mark.parametrize(
    ("sampler", "version", "expected"),
    [
        ("DPM++ 2M Karras", "v1.6.0", ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE Exponential", "v1.7.0", ("DPM++ 2M SDE", "Exponential")),
        ("DPM++ SDE Karras", None, ("DPM++ SDE", "Karras")),
        ("LMS Karras", "v1.5.1", ("LMS", "Karras")),
        # A plain name meant the model's own (uniform) schedule before 1.9; Automatic now means Karras.
        ("DPM++ 2M", "v1.8.0", ("DPM++ 2M", "Uniform")),
        ("DPM2 a", None, ("DPM2 a", "Uniform")),
        ("Euler a", "v1.6.0", ("Euler a", "Automatic")),
        ("DDIM", None, ("DDIM", "Automatic")),
        # A sampler from an extension or fork stays as written.
        ("Euler Dy", None, ("Euler Dy", "Automatic")),
    ],
)
def test_options_old_sampler_names(sampler: str, version: str | None, expected: tuple[str, str]) -> None:
    text = f"a castle\nSteps: 30, Sampler: {sampler}, CFG scale: 7, Seed: 3, Size: 512x512"
    if version:
        text += f", Version: {version}"
    opts = options_from_infotext(text)
    assert (opts.sampler, opts.scheduler) == expected


def test_options_old_a1111_builds_against_the_webuis_lists() -> None:
    built = build_request(options_from_infotext(OLD), SETTINGS, catalogue())
    assert (built.payload["sampler_name"], built.payload["scheduler"]) == ("DPM++ 2M", "Karras")
    assert built.payload["steps"] == 30 and built.payload["cfg_scale"] == 7.0


def test_options_old_1_8_schedule_type_setting_is_honoured() -> None:
    # 1.6-1.8 wrote their "Scheduler type" setting as a lowercase name.
    text = "x\nSteps: 20, Sampler: DPM++ 2M, Schedule type: karras, Seed: 1, Version: v1.7.0"
    opts = options_from_infotext(text)
    assert (opts.sampler, opts.scheduler) == ("DPM++ 2M", "Karras")


def test_options_multiline_and_quoted_values_are_kept_exactly() -> None:
    opts = options_from_infotext(MULTI)
    assert opts.prompt == "masterpiece, 1girl,\n(猫耳:1.2), 🌸 cherry   blossoms"
    assert opts.negative_prompt == "lowres,\nbad anatomy"
    assert opts.model == "anime, v3: final"
    assert (opts.steps, opts.cfg_scale, opts.seed, opts.width, opts.height) == (28, 5.5, 987654321, 832, 1216)


def test_options_absent_and_unparseable_values_are_none() -> None:
    text = "a cat\nSteps: abc, CFG scale: high, Seed: 12.5, Size: 512 x 512, Clip skip: 2"
    opts = options_from_infotext(text)
    assert opts == DrawOptions(prompt="a cat", negative_prompt="", batch=1, clip_skip=2)  # Clip skip is an option
    opts = options_from_infotext("a cat\nSteps: 20, Seed: 7, Size: 512x512")
    assert (opts.sampler, opts.scheduler, opts.cfg_scale, opts.model) == (None, None, None, None)
    # Only a schedule type: that one is kept, the sampler stays the default.
    opts = options_from_infotext("a cat\nSteps: 20, Schedule type: Exponential, Seed: 7")
    assert (opts.sampler, opts.scheduler) == (None, "Exponential")
    # A model hash stands in for a missing model name.
    assert options_from_infotext("a cat\nSteps: 20, Seed: 7, Model hash: 6ce0161689").model == "6ce0161689"


def test_options_out_of_range_values_are_left_for_the_payload_builder() -> None:
    opts = options_from_infotext("a cat\nSteps: 500, CFG scale: 45, Seed: 99999999999999999, Size: 4096x4096")
    assert (opts.steps, opts.cfg_scale, opts.seed) == (500, 45.0, 99999999999999999)
    assert (opts.width, opts.height) == (4096, 4096)
    with pytest.raises(OptionError) as info:
        build_request(opts, SETTINGS)
    refused = [f"`{p.args['option']}`" for p in info.value.problems]
    assert refused == ["`steps`", "`cfg_scale`", "`seed`", "`width`", "`height`"]


def test_options_empty_negative_is_explicit_so_the_default_negative_is_not_added() -> None:
    opts = options_from_infotext(FORGE)
    built = build_request(opts, Settings(discord_token="t", default_negative_prompt="ugly"))
    assert built.payload["negative_prompt"] == ""


@pytest.mark.parametrize(
    "text",
    ["a cat", "a cat\nSteps: 20, Seed: 5", "", "   \n ", "a cat\nNegative prompt: a dog",
     "red: 1, green: 2, blue: 3", "a cat\nfoo: 1, bar: 2, baz: 3"],
)
def test_options_refuse_text_without_generation_parameters(text: str) -> None:
    with pytest.raises(ValueError, match="no generation parameters"):
        options_from_infotext(text)


# --------------------------------------------------------------------------------------------------
# format_draw_command
# --------------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_command_fits_2000_and_says_when_cut() -> None:
    opts = DrawOptions(prompt="p" * 1500, negative_prompt="n" * 1500, steps=20, seed=1, sampler="Euler a")
    command, truncated = format_draw_command(opts)
    assert truncated and len(command) == 2000
    # Both texts are shortened to equal lengths when both are long.
    prompt = command.split(" negative_prompt:")[0].removeprefix("/draw prompt:")
    negative = command.split(" negative_prompt:")[1].split(" steps:")[0]
    assert set(prompt) == {"p"} and set(negative) == {"n"} and abs(len(prompt) - len(negative)) <= 1
    assert command.endswith(" steps:20 seed:1 sampler:Euler a")


def test_command_short_negative_is_kept_whole() -> None:
    command, truncated = format_draw_command(DrawOptions(prompt="p " * 1200, negative_prompt="lowres"))
    assert truncated and len(command) <= 2000 and command.endswith(" negative_prompt:lowres")


def test_command_counts_emoji_as_two_units() -> None:
    command, truncated = format_draw_command(DrawOptions(prompt="🌸" * 1500, seed=3))
    assert truncated and utf16_len(command) <= 2000 and utf16_len(command) >= 1998
    assert command.endswith(" seed:3") and "\ufffd" not in command


def test_command_caps_other_values_and_options_order() -> None:
    opts = DrawOptions(prompt="a", negative_prompt="b", model="m" * 300, sampler="s", scheduler="k", steps=5,
                       cfg_scale=7.25, seed=-1, width=64, height=72, batch=3)
    command, truncated = format_draw_command(opts)
    assert truncated
    assert command == ("/draw prompt:a negative_prompt:b steps:5 cfg_scale:7.25 seed:-1 width:64 height:72 "
                       f"sampler:s scheduler:k model:{'m' * 100} batch:3")
    plain = DrawOptions(prompt="a", batch=1, negative_prompt="")
    assert format_draw_command(plain) == ("/draw prompt:a", False)


# --------------------------------------------------------------------------------------------------
# From a real PNG
# --------------------------------------------------------------------------------------------------


def test_png_from_the_a1111_response() -> None:
    response = fixture("a1111-txt2img-response.json")
    png = base64.b64decode(response["images"][0])
    text = read_parameters(png)
    assert text == a1111_infotexts()[0]
    view = describe(text)
    assert view.flavour == "A1111" and view.has_parameters and dict(view.fields)["Seed"] == "1234567890"
    opts = options_from_infotext(text)
    assert (opts.prompt, opts.seed, opts.width, opts.height, opts.sampler) == (
        "a watercolor painting of a red fox in an autumn forest", 1234567890, 64, 64, "Euler a")
    second = options_from_infotext(read_parameters(base64.b64decode(response["images"][1])), new_seed=True)
    assert second.seed is None and second.prompt == opts.prompt


def test_sdnext_commit_is_not_taken_for_an_old_a1111_version() -> None:
    from bot.images import params

    text = SDNEXT.replace("1a2b3c4", "1c23456").replace("Euler a", "DDIM")  # "1c23456" parses as 1rc23456
    flavour = describe(text).flavour
    assert flavour == "SD.Next"
    parsed = params._parse(text, flavour)
    assert "Pad conds v0" not in parsed and "Downcast alphas_cumprod" not in parsed


def test_options_clip_skip_tiling_and_adetailer_round_trip() -> None:
    text = ("a knight\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 5, Size: 512x512, "
            "Clip skip: 3, Tiling: True, ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, "
            "ADetailer version: 24.11.1")
    opts = options_from_infotext(text)
    assert (opts.clip_skip, opts.tiling, opts.fix_faces) == (3, True, True)
    plain = options_from_infotext("a knight\nSteps: 20, Seed: 5, Size: 512x512")
    assert (plain.clip_skip, plain.tiling, plain.fix_faces) == (None, False, False)


def test_the_draw_line_carries_clip_skip_tiling_and_fix_faces() -> None:
    view = describe("a tile\nSteps: 20, Seed: 3, Size: 512x512, Clip skip: 2, Tiling: True, "
                    "ADetailer model: face_yolov8n.pt, ADetailer version: 25.3.0")
    assert view.draw_command.endswith(" clip_skip:2 tiling:True fix_faces:True")
