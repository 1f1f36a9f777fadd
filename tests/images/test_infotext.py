"""Infotext writer, parser (A1111 v1.10.1 semantics) and parsed → payload mapping."""

from __future__ import annotations

import itertools
import json

import pytest

from bot.images import infotext as infotext_module
from bot.images.infotext import (
    DEFAULT_SAMPLERS,
    create_infotext,
    infotext_to_payload,
    parse_generation_parameters,
    quote,
    resolve_sampler_and_scheduler,
)
from tests.support.fixtures import fixture

# The keys parse_generation_parameters injects when an infotext has none of them, in A1111 order.
INJECTED_ORDER = [
    "Clip skip",
    "Hires resize-1",
    "Hires resize-2",
    "Hires sampler",
    "Hires schedule type",
    "Hires checkpoint",
    "Hires prompt",
    "Hires negative prompt",
    "Mask mode",
    "Masked content",
    "Inpaint area",
    "Masked area padding",
    "RNG",
    "Schedule type",
    "Schedule max sigma",
    "Schedule min sigma",
    "Schedule rho",
    "VAE Encoder",
    "VAE Decoder",
    "FP8 weight",
    "Refiner switch by sampling steps",
]

PARAMS = "Steps: 20, Sampler: Euler a, CFG scale: 7.0"


# --------------------------------------------------------------------------------------------------
# Fixture: the real A1111 parser output
# --------------------------------------------------------------------------------------------------


def test_png_info_fixture_dict_and_key_order():
    expected = fixture("a1111-png-info-response.json")
    parsed = parse_generation_parameters(expected["info"])
    assert parsed == expected["parameters"]
    assert list(parsed) == list(expected["parameters"])
    # Types matter too: dict equality treats 0 == False == 0.0, so compare them explicitly.
    assert [type(v) for v in parsed.values()] == [type(v) for v in expected["parameters"].values()]


def test_fixture_infotexts_parse_to_info_values():
    response = fixture("a1111-txt2img-response.json")
    info = json.loads(response["info"])
    for index, text in enumerate(info["infotexts"]):
        parsed = parse_generation_parameters(text)
        assert parsed["Prompt"] == info["all_prompts"][index]
        assert parsed["Negative prompt"] == info["all_negative_prompts"][index]
        assert int(parsed["Seed"]) == info["all_seeds"][index]
        payload = infotext_to_payload(parsed)
        assert payload["seed"] == info["all_seeds"][index]
        assert payload["width"] == info["width"] and payload["height"] == info["height"]
        assert payload["steps"] == info["steps"] and payload["cfg_scale"] == info["cfg_scale"]
        assert payload["sampler_name"] == info["sampler_name"]


# --------------------------------------------------------------------------------------------------
# Reference §7.2 edge-case table, one test per row
# --------------------------------------------------------------------------------------------------


def test_bare_prompt_has_no_params():
    parsed = parse_generation_parameters("a cat sitting")
    assert parsed["Prompt"] == "a cat sitting"
    assert parsed["Negative prompt"] == ""
    assert list(parsed) == ["Prompt", "Negative prompt", *INJECTED_ORDER]


def test_two_params_is_not_a_params_line():
    text = "a cat\nSteps: 20, Seed: 5"
    parsed = parse_generation_parameters(text)
    assert parsed["Prompt"] == text
    assert "Steps" not in parsed and "Seed" not in parsed


def test_one_line_prompt_with_three_colon_pairs_is_params():
    parsed = parse_generation_parameters("red: 1, green: 2, blue: 3")
    assert parsed["Prompt"] == ""
    assert (parsed["red"], parsed["green"], parsed["blue"]) == ("1", "2", "3")
    assert list(parsed)[:5] == ["red", "green", "blue", "Prompt", "Negative prompt"]


def test_quoted_value_with_escaped_quotes_and_comma():
    parsed = parse_generation_parameters(f'p\n{PARAMS}, Template: "say \\"hi\\", ok"')
    assert parsed["Template"] == 'say "hi", ok'
    assert parsed["CFG scale"] == "7.0"


def test_bare_flag_dropped_and_hires_resize_split():
    parsed = parse_generation_parameters(f"p\n{PARAMS}, NGMS all steps, Hires resize: 1024x768")
    assert parsed["Hires resize-1"] == "1024"
    assert parsed["Hires resize-2"] == "768"
    assert "Hires resize" not in parsed
    assert not any("NGMS" in key for key in parsed)


def test_lowercase_negative_prompt_stays_in_prompt():
    parsed = parse_generation_parameters(f"x\nnegative prompt: bad\n{PARAMS}")
    assert parsed["Prompt"] == "x\nnegative prompt: bad"
    assert parsed["Negative prompt"] == ""


def test_size_becomes_string_pair_without_size_key():
    parsed = parse_generation_parameters(f"p\n{PARAMS}, Size: 512x768")
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert "Size" not in parsed


def test_missing_clip_skip_injected_as_string_one():
    parsed = parse_generation_parameters(f"p\n{PARAMS}")
    assert parsed["Clip skip"] == "1"
    assert parse_generation_parameters(f"p\n{PARAMS}, Clip skip: 2")["Clip skip"] == "2"


def test_old_combined_sampler_kept_by_parser_split_by_payload():
    parsed = parse_generation_parameters("p\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7")
    assert parsed["Sampler"] == "DPM++ 2M Karras"
    assert parsed["Schedule type"] == "Automatic"  # injected
    payload = infotext_to_payload(parsed)
    assert payload["sampler_name"] == "DPM++ 2M"
    # Karras is DPM++ 2M's own default, which A1111's paste turns into Automatic (same sigmas).
    assert payload["scheduler"] == "Automatic"
    assert infotext_to_payload(parsed, convert_automatic=False)["scheduler"] == "Karras"
    assert "hr_sampler_name" not in payload and "hr_scheduler" not in payload


def test_hires_upscale_is_string_then_float():
    parsed = parse_generation_parameters(f"p\n{PARAMS}, Denoising strength: 0.4, Hires upscale: 2.0")
    assert parsed["Hires upscale"] == "2.0"
    payload = infotext_to_payload(parsed)
    assert payload["hr_scale"] == 2.0 and isinstance(payload["hr_scale"], float)


def test_unquoted_value_with_comma_is_truncated():
    parsed = parse_generation_parameters(f"p\n{PARAMS}, Model: my, model")
    assert parsed["Model"] == "my"


# --------------------------------------------------------------------------------------------------
# Other parser behaviour
# --------------------------------------------------------------------------------------------------


def test_crlf_line_endings():
    text = "line one\r\nline two\r\nNegative prompt: bad\r\nworse\r\n" + PARAMS + "\r\n"
    parsed = parse_generation_parameters(text)
    assert parsed["Prompt"] == "line one\nline two"
    assert parsed["Negative prompt"] == "bad\nworse"
    assert parsed["CFG scale"] == "7.0"


def test_multiline_prompt_and_negative():
    prompt = "masterpiece,\n  a fox in a forest\n\nsecond paragraph"
    negative = "blurry,\nlowres\nbad hands"
    text = create_infotext(prompt, negative, {"Steps": 20, "Sampler": "Euler", "Seed": 3})
    parsed = parse_generation_parameters(text)
    # Lines are stripped by the parser (A1111), blank lines survive.
    assert parsed["Prompt"] == "masterpiece,\na fox in a forest\n\nsecond paragraph"
    assert parsed["Negative prompt"] == negative
    assert parsed["Seed"] == "3"


def test_negative_prompt_marker_is_case_sensitive_and_prefix_only():
    parsed = parse_generation_parameters(f"a\nNegative prompt:bad\nNegative prompt: worse\n{PARAMS}")
    assert parsed["Prompt"] == "a"
    assert parsed["Negative prompt"] == "bad\nworse"


def test_later_duplicate_overwrites_but_keeps_first_position():
    parsed = parse_generation_parameters("p\nSteps: 20, Seed: 1, CFG scale: 7, Seed: 2")
    assert parsed["Seed"] == "2"
    assert list(parsed)[:3] == ["Steps", "Seed", "CFG scale"]


def test_empty_value_is_dropped_like_a1111():
    parsed = parse_generation_parameters("p\nSteps: 20, Foo: , Seed: 1, CFG scale: 7")
    assert "Foo" not in parsed
    assert parsed["Seed"] == "1"


def test_quoted_value_that_is_not_json_is_kept_raw():
    parsed = parse_generation_parameters(f'p\n{PARAMS}, Odd: "a" "b"')
    assert parsed["Odd"] == '"a" "b"'


def test_quoted_values_with_commas_colons_and_newlines():
    params = {
        "Steps": 20,
        "Sampler": "Euler a",
        "Model": "my, model",
        "Lora hashes": "add_detail: 7c6bad76eb54, other: 0123456789ab",
        "Template": 'say "hi", then: go\nnext line',
        "Path": "C:\\models\\x",
    }
    text = create_infotext("p", "", params)
    assert 'Lora hashes: "add_detail: 7c6bad76eb54, other: 0123456789ab"' in text
    parsed = parse_generation_parameters(text)
    for key in ("Model", "Lora hashes", "Template", "Path"):
        assert parsed[key] == params[key]


def test_raw_value_that_looks_quoted_is_decoded_a1111_quirk():
    # quote() leaves '"hi"' raw (no comma/colon/newline); the parser then JSON-decodes it.
    text = create_infotext("p", "", {"Steps": 1, "Sampler": "Euler", "Note": '"hi"'})
    assert 'Note: "hi"' in text
    assert parse_generation_parameters(text)["Note"] == "hi"


@pytest.mark.parametrize(
    "prompt, negative",
    [
        ("一只可爱的猫，水彩画", "模糊，低分辨率"),
        ("🦊 fox in 🍁 forest", "😡, bad"),
        ("東京の夜景\n二行目: コロン", "ぼやけた"),
        ("Ünïcödé, naïve café", ""),
    ],
)
def test_cjk_and_emoji_round_trip(prompt, negative):
    params = {
        "Steps": 30,
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": 6.5,
        "Seed": 4242,
        "Size": "832x1216",
        "Model": "モデル, v2",
        "Hires prompt": f"{prompt} ✨",
    }
    text = create_infotext(prompt, negative, params)
    parsed = parse_generation_parameters(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    assert parsed["Model"] == "モデル, v2"
    assert parsed["Hires prompt"] == f"{prompt} ✨"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("832", "1216")
    assert parsed["Steps"] == "30" and parsed["CFG scale"] == "6.5" and parsed["Seed"] == "4242"


def test_cjk_keys_are_params_but_need_two_characters():
    parsed = parse_generation_parameters("猫猫: 1, 犬犬: 2, 鳥鳥: 3")
    assert (parsed["猫猫"], parsed["犬犬"], parsed["鳥鳥"]) == ("1", "2", "3")
    # re_param needs a key of at least 2 characters, so this stays a prompt.
    assert parse_generation_parameters("猫: 1, 犬: 2, 鳥: 3")["Prompt"] == "猫: 1, 犬: 2, 鳥: 3"


def test_writer_drops_none_and_writes_flags_and_strips():
    params = {"Steps": 20, "Seed": None, "NGMS all steps": "NGMS all steps", "CFG scale": 7}
    text = create_infotext("  p  ", "", params)
    # Only the whole text is stripped, so the prompt's trailing spaces stay.
    assert text == "p  \nSteps: 20, NGMS all steps, CFG scale: 7"
    assert create_infotext("", "", [("Steps", 1), ("Sampler", "Euler")]) == "Steps: 1, Sampler: Euler"
    assert quote(7.0) == "7.0" and quote("a:b") == '"a:b"' and quote("é,") == '"é,"'


def test_injected_default_types_and_order():
    parsed = parse_generation_parameters(f"p\n{PARAMS}")
    assert list(parsed) == ["Steps", "Sampler", "CFG scale", "Prompt", "Negative prompt", *INJECTED_ORDER]
    assert parsed["Hires resize-1"] == 0 and type(parsed["Hires resize-1"]) is int
    assert parsed["Masked area padding"] == 32 and type(parsed["Masked area padding"]) is int
    assert parsed["Schedule rho"] == 0 and type(parsed["Schedule rho"]) is int
    assert parsed["Refiner switch by sampling steps"] is False
    assert parsed["Hires sampler"] == "Use same sampler"
    assert parsed["Hires schedule type"] == "Use same scheduler"
    assert parsed["Hires checkpoint"] == "Use same checkpoint"


def test_cache_fp16_only_when_fp8_enabled():
    assert "Cache FP16 weight for LoRA" not in parse_generation_parameters(f"p\n{PARAMS}")
    parsed = parse_generation_parameters(f"p\n{PARAMS}, FP8 weight: Enable for SDXL")
    assert parsed["Cache FP16 weight for LoRA"] is False
    assert list(parsed).index("Cache FP16 weight for LoRA") == len(parsed) - 2  # before Refiner switch
    kept = parse_generation_parameters(f"p\n{PARAMS}, FP8 weight: Enable, Cache FP16 weight for LoRA: True")
    assert kept["Cache FP16 weight for LoRA"] == "True"


@pytest.mark.parametrize(
    "prompt, negative, expected",
    [
        ("a (cat:1.2)", "", True),
        ("a (cat:1.0)", "", False),
        ("a (cat: 1.0 )", "", False),
        ("a (cat)", "", True),  # 1.1
        ("a [cat]", "", True),  # 1/1.1
        ("a [(cat)]", "", False),  # 1.1 * (1/1.1) == 1.0 exactly
        ("((cat:1.0))", "", True),  # 1.0 * 1.1
        ("(unbalanced", "", True),
        ("\\(cat\\) \\[dog\\]", "", False),  # escaped brackets are literal text
        ("a BREAK b", "", False),
        ("(a BREAK b)", "", True),
        ("plain", "(bad:1.3)", True),  # the negative counts too
        ("(cat:1.2.3", "", True),  # unbalanced "(" still weights 1.1; A1111 would crash here
    ],
)
def test_emphasis_injection(prompt, negative, expected):
    text = create_infotext(prompt, negative, {"Steps": 20, "Sampler": "Euler", "Seed": 1})
    parsed = parse_generation_parameters(text)
    assert ("Emphasis" in parsed) is expected
    if expected:
        assert parsed["Emphasis"] == "Original"
        assert list(parsed)[-2] == "Emphasis"  # right before "Refiner switch by sampling steps"


def test_explicit_emphasis_is_kept():
    parsed = parse_generation_parameters(f"(cat:1.5)\n{PARAMS}, Emphasis: No norm")
    assert parsed["Emphasis"] == "No norm"


def test_emphasis_ignores_hypernet_suffix():
    # The weight check runs on the prompt before "<hypernet:…:0.5>" is appended.
    parsed = parse_generation_parameters(f"cat\n{PARAMS}, Hypernet: anime, Hypernet strength: 0.5")
    assert parsed["Prompt"] == "cat<hypernet:anime:0.5>"
    assert "Emphasis" not in parsed


def test_hypernet_default_strength():
    parsed = parse_generation_parameters(f"cat\n{PARAMS}, Hypernet: anime")
    assert parsed["Prompt"] == "cat<hypernet:anime:1.0>"


def test_first_pass_size_restored():
    parsed = parse_generation_parameters(f"p\n{PARAMS}, Size: 1024x1024, First pass size: 512x512")
    assert (parsed["Size-1"], parsed["Size-2"]) == (512, 512)
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == (1024, 1024)
    assert all(type(parsed[k]) is int for k in ("Size-1", "Size-2", "Hires resize-1", "Hires resize-2"))


def test_first_pass_size_zero_uses_old_algorithm():
    # sqrt(512²/(1024·768)) = 0.5774; ceil(0.5774·1024/64)·64 = 640, ceil(0.5774·768/64)·64 = 448
    parsed = parse_generation_parameters(f"p\n{PARAMS}, Size: 1024x768, First pass size: 0x0")
    assert (parsed["Size-1"], parsed["Size-2"]) == (640, 448)
    assert (parsed["Hires resize-1"], parsed["Hires resize-2"]) == (1024, 768)


def test_first_pass_size_garbage_does_not_raise():
    text = f"p\n{PARAMS}, Size: 1024x768, First pass size-1: x, First pass size-2: 5"
    parsed = parse_generation_parameters(text)
    assert parsed["Size-1"] == "1024"


DOWNCAST = {"Downcast alphas_cumprod": True}


@pytest.mark.parametrize(
    "version, expected",
    [
        ("v1.5.1", {"Old prompt editing timelines": True, "Pad conds v0": True, **DOWNCAST}),
        ("v1.6.0", DOWNCAST),
        ("v1.7.0", DOWNCAST),
        ("v1.7.0-224-gabcdef0", DOWNCAST),
        ("v1.7.0-225-gabcdef0", {}),
        ("v1.10.1", {}),
        ("v1.10.1-5-g1234567", {}),
        ("1.10.1", {}),
        ("f2.0.1v1.10.1-previous-669-gdfdcbab6", {}),  # Forge: not a PEP 440 version
        (None, {}),
    ],
)
def test_version_backcompat(version, expected):
    extra = "" if version is None else f", Version: {version}"
    parsed = parse_generation_parameters(f"a [b:c:5]\nSteps: 20, Sampler: DDIM, CFG scale: 7{extra}")
    keys = ("Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod")
    flags = {k: parsed[k] for k in keys if k in parsed}
    assert flags == expected


def test_version_backcompat_refiner_switch():
    old = parse_generation_parameters(f"p\n{PARAMS}, Refiner: sdxl_refiner, Version: v1.7.0")
    assert old["Refiner switch by sampling steps"] is True
    new = parse_generation_parameters(f"p\n{PARAMS}, Refiner: sdxl_refiner, Version: v1.8.0")
    assert new["Refiner switch by sampling steps"] is False
    off = parse_generation_parameters(
        f"p\n{PARAMS}, Refiner: sdxl_refiner, Version: v1.7.0", auto_backcompat=False
    )
    assert off["Refiner switch by sampling steps"] is False and "Downcast alphas_cumprod" not in off


def test_version_ordering_matches_packaging():
    version = pytest.importorskip("packaging.version")
    samples = [
        "v1.10.1", "1.10.1", "v1.7.0-225", "v1.7.0-224", "1.7.0", "1.6.0-RC", "1.6.0rc1", "1.6.0a1",
        "1.6.0b2", "1.6.0.dev1", "1.6.0.post1.dev2", "1.6.0a1.dev1", "1.6", "1.6.0.0", "1!0.1",
        "1.0+abc.5", "1.0+abc.a", "1.0+5", "1.0", "0", "0.0.1", "1.8.0-139", "1.8.0-140", "1.0-r2",
        "1.0.rev", "1.0-pre3", "1.0preview2", "1.0c1", "not a version", "f2.0.1v1.10.1",
    ]

    def reference(text):
        try:
            return version.Version(text)
        except version.InvalidVersion:
            return None

    ours = {s: infotext_module._parse_version(s) for s in samples}
    for s in samples:
        assert (ours[s] is None) == (reference(s) is None), s
    valid = [s for s in samples if ours[s] is not None]
    for a, b in itertools.product(valid, valid):
        assert (ours[a] < ours[b]) == (reference(a) < reference(b)), (a, b)
        assert (ours[a] == ours[b]) == (reference(a) == reference(b)), (a, b)


def test_hires_prompt_equal_to_prompt_is_blanked_and_order():
    params = {"Steps": 20, "Sampler": "Euler", "Seed": 1, "Hires prompt": "a fox"}
    text = create_infotext("a fox", "bad", params)
    parsed = parse_generation_parameters(text)
    assert parsed["Hires prompt"] == ""
    assert parsed["Hires negative prompt"] == ""
    # The styles block adds "Hires negative prompt" before "Prompt" is set (A1111 v1.10 order).
    keys = list(parsed)
    assert keys.index("Hires negative prompt") < keys.index("Prompt")


def test_hires_prompt_that_differs_is_kept():
    params = {"Steps": 20, "Sampler": "Euler", "Hires prompt": "a fox, detailed"}
    text = create_infotext("a fox", "bad", params)
    assert parse_generation_parameters(text)["Hires prompt"] == "a fox, detailed"


def test_hires_prompt_not_normalised_for_old_versions():
    text = "a fox\nSteps: 20, Sampler: Euler, Hires prompt: a fox, Version: v1.8.0-100"
    assert parse_generation_parameters(text)["Hires prompt"] == "a fox"


def test_skip_fields():
    parsed = parse_generation_parameters(f"p\n{PARAMS}, Seed: 5", skip_fields=["Seed", "RNG", "absent"])
    assert "Seed" not in parsed and "RNG" not in parsed and parsed["Steps"] == "20"


def test_empty_text():
    parsed = parse_generation_parameters("")
    assert parsed["Prompt"] == "" and parsed["Negative prompt"] == ""


# --------------------------------------------------------------------------------------------------
# Sampler / scheduler resolution
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler, scheduler, expected, expected_raw",
    [
        ("DPM++ 2M Karras", "Automatic", ("DPM++ 2M", "Automatic"), ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE Karras", None, ("DPM++ 2M SDE", "Karras"), ("DPM++ 2M SDE", "Karras")),
        ("DPM++ 2M SDE Exponential", None, ("DPM++ 2M SDE", "Automatic"), ("DPM++ 2M SDE", "Exponential")),
        ("LMS Karras", None, ("LMS", "Karras"), ("LMS", "Karras")),
        ("Euler a", "Automatic", ("Euler a", "Automatic"), ("Euler a", "Automatic")),
        ("Euler a", "karras", ("Euler a", "Karras"), ("Euler a", "Karras")),  # by name
        ("Euler SGMUniform", None, ("Euler", "SGM Uniform"), ("Euler", "SGM Uniform")),  # by alias
        ("DPM++ 2M", "Karras", ("DPM++ 2M", "Automatic"), ("DPM++ 2M", "Karras")),
        ("Euler", "Nonsense", ("Euler", "Automatic"), ("Euler", "Automatic")),
        (None, None, ("DPM++ 2M", "Automatic"), ("DPM++ 2M", "Automatic")),
        ("DEIS", "Karras", ("DEIS", "Karras"), ("DEIS", "Karras")),  # unknown sampler kept
    ],
)
def test_resolve_sampler_and_scheduler(sampler, scheduler, expected, expected_raw):
    assert resolve_sampler_and_scheduler(sampler, scheduler) == expected
    assert resolve_sampler_and_scheduler(sampler, scheduler, convert_automatic=False) == expected_raw


def test_resolve_with_server_lists_matches_builtin_tables():
    samplers = fixture("a1111-samplers-v1.10.1.json")
    schedulers = fixture("a1111-schedulers-v1.10.1.json")
    assert [s["name"] for s in samplers] == [name for name, _ in DEFAULT_SAMPLERS]
    for sampler in [s["name"] for s in samplers] + ["DPM++ 2M Karras", "DPM2 a Karras", "Euler Uniform"]:
        for scheduler in [None] + [s["label"] for s in schedulers]:
            assert resolve_sampler_and_scheduler(
                sampler, scheduler, samplers=samplers, schedulers=schedulers
            ) == resolve_sampler_and_scheduler(sampler, scheduler)


# --------------------------------------------------------------------------------------------------
# infotext_to_payload
# --------------------------------------------------------------------------------------------------


def test_payload_from_fixture_exact():
    parsed = parse_generation_parameters(fixture("a1111-png-info-response.json")["info"])
    payload = infotext_to_payload(parsed)
    assert payload == {
        "prompt": "a watercolor painting of a red fox in an autumn forest",
        "negative_prompt": "blurry, lowres",
        "steps": 20,
        "sampler_name": "Euler a",
        "scheduler": "Automatic",
        "cfg_scale": 7.0,
        "seed": 1234567890,
        "width": 64,
        "height": 64,
        "enable_hr": False,
        "hr_resize_x": 0,
        "hr_resize_y": 0,
        "hr_prompt": "",
        "hr_negative_prompt": "",
    }
    assert type(payload["cfg_scale"]) is float and type(payload["steps"]) is int


def test_payload_never_contains_use_same_sentinels():
    for text in (
        fixture("a1111-png-info-response.json")["info"],
        "p\nSteps: 20, Sampler: DPM++ 2M Karras, Denoising strength: 0.5, Hires upscale: 2",
        "p\nSteps: 20, Sampler: Euler, Schedule type: Karras, Denoising strength: 0.5, "
        "Hires upscaler: Latent",
    ):
        payload = infotext_to_payload(parse_generation_parameters(text))
        assert payload.get("hr_sampler_name") is None
        assert payload.get("hr_scheduler") is None
        assert "hr_checkpoint_name" not in payload
        assert not any(isinstance(v, str) and v.startswith("Use same") for v in payload.values())


def test_enable_hr_rule():
    def payload(params):
        return infotext_to_payload(parse_generation_parameters(f"p\n{PARAMS}{params}"))

    assert payload("")["enable_hr"] is False
    # Denoising strength alone enables hires, because "Hires resize-1" is always injected.
    assert payload(", Denoising strength: 0.75")["enable_hr"] is True
    # Without the injected key, A1111's rule needs a hires key.
    raw = {"Prompt": "p", "Denoising strength": "0.5"}
    assert infotext_to_payload(raw)["enable_hr"] is False
    assert infotext_to_payload({**raw, "Hires upscaler": "Latent"})["enable_hr"] is True
    assert infotext_to_payload({"Prompt": "p", "Hires upscale": "2"})["enable_hr"] is False


def test_payload_hires_fields_and_types():
    text = (
        "p\nSteps: 25, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, Size: 512x768, "
        "Denoising strength: 0.45, Hires upscale: 1.5, Hires steps: 10, Hires upscaler: R-ESRGAN 4x+, "
        "Hires resize: 1024x1536, Hires checkpoint: other_model, Hires sampler: DPM++ 2M, "
        "Hires schedule type: Exponential, Hires prompt: \"p, detailed\", Hires negative prompt: bad"
    )
    payload = infotext_to_payload(parse_generation_parameters(text))
    assert payload["enable_hr"] is True
    assert payload["denoising_strength"] == 0.45
    assert payload["hr_scale"] == 1.5
    assert payload["hr_second_pass_steps"] == 10
    assert payload["hr_upscaler"] == "R-ESRGAN 4x+"
    assert (payload["hr_resize_x"], payload["hr_resize_y"]) == (1024, 1536)
    assert payload["hr_checkpoint_name"] == "other_model"
    assert payload["hr_sampler_name"] == "DPM++ 2M"
    assert payload["hr_scheduler"] == "Exponential"
    assert payload["hr_prompt"] == "p, detailed"
    assert payload["hr_negative_prompt"] == "bad"
    assert payload["cfg_scale"] == 7.0 and type(payload["cfg_scale"]) is float
    assert (payload["width"], payload["height"]) == (512, 768)


def test_payload_hires_sampler_equal_to_main_is_omitted():
    text = "p\nSteps: 20, Sampler: DPM++ 2M Karras, Hires sampler: DPM++ 2M, Denoising strength: 0.5"
    payload = infotext_to_payload(parse_generation_parameters(text))
    assert payload["sampler_name"] == "DPM++ 2M"
    assert "hr_sampler_name" not in payload


def test_payload_seed_resize_maps_width_first():
    # The writer stores "Seed resize from: {w}x{h}"; -1 is the width.
    text = (
        "p\nSteps: 20, Seed: 7, Variation seed: 99, Variation seed strength: 0.3, "
        "Seed resize from: 640x512"
    )
    payload = infotext_to_payload(parse_generation_parameters(text))
    assert (payload["seed_resize_from_w"], payload["seed_resize_from_h"]) == (640, 512)
    assert payload["subseed"] == 99 and payload["subseed_strength"] == 0.3


def test_payload_clip_skip_override():
    two = infotext_to_payload(parse_generation_parameters(f"p\n{PARAMS}, Clip skip: 2"))
    assert two["override_settings"] == {"CLIP_stop_at_last_layers": 2}
    one = infotext_to_payload(parse_generation_parameters(f"p\n{PARAMS}"))
    assert "override_settings" not in one


def test_payload_skips_unconvertible_numbers_and_keeps_big_ints():
    payload = infotext_to_payload(
        parse_generation_parameters(
            "p\nSteps: abc, Sampler: Euler, CFG scale: nan, Seed: 18446744073709551615"
        )
    )
    assert "steps" not in payload and "cfg_scale" not in payload
    assert payload["seed"] == 18446744073709551615
    assert infotext_to_payload({"Steps": "20.0"})["steps"] == 20
    assert "steps" not in infotext_to_payload({"Steps": "20.5"})


def test_payload_refiner():
    payload = infotext_to_payload(
        parse_generation_parameters(f"p\n{PARAMS}, Refiner: sd_xl_refiner_1.0, Refiner switch at: 0.8")
    )
    assert payload["refiner_checkpoint"] == "sd_xl_refiner_1.0"
    assert payload["refiner_switch_at"] == 0.8


def test_payload_round_trip_from_writer():
    request = {
        "prompt": "一只猫 (cat:1.2), 🐱",
        "negative_prompt": "blurry,\nlowres",
        "steps": 28,
        "sampler_name": "DPM++ SDE",
        "scheduler": "Exponential",
        "cfg_scale": 5.5,
        "seed": 3141592653,
        "width": 832,
        "height": 1216,
    }
    text = create_infotext(
        request["prompt"],
        request["negative_prompt"],
        {
            "Steps": request["steps"],
            "Sampler": request["sampler_name"],
            "Schedule type": request["scheduler"],
            "CFG scale": request["cfg_scale"],
            "Seed": request["seed"],
            "Size": f"{request['width']}x{request['height']}",
            "Clip skip": 2,
            "Version": "v1.10.1",
        },
    )
    payload = infotext_to_payload(parse_generation_parameters(text))
    for key, value in request.items():
        assert payload[key] == value, key
    assert payload["override_settings"] == {"CLIP_stop_at_last_layers": 2}
    assert payload["enable_hr"] is False
