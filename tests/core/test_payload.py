from __future__ import annotations

import dataclasses

import pytest

from bot.config import Settings
from bot.core.catalogue import Catalogue
from bot.core.payload import DrawOptions, build_request
from bot.discord_app.catalog import english
from bot.errors import OptionError
from tests.support.fixtures import fixture

SETTINGS = Settings(discord_token="t")
EXPOSED = {"prompt", "negative_prompt", "seed", "sampler_name", "scheduler", "steps", "cfg_scale", "width",
           "height", "batch_size", "n_iter", "send_images", "save_images"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue(fixture("a1111-sd-models-v1.10.1.json"), fixture("a1111-samplers-v1.10.1.json"),
                     fixture("a1111-schedulers-v1.10.1.json"))


def problems(settings: Settings = SETTINGS, catalogue: Catalogue | None = None, **kw: object) -> list[str]:
    with pytest.raises(OptionError) as info:
        build_request(DrawOptions(**{"prompt": "a cat", **kw}), settings, catalogue)  # type: ignore[arg-type]
    return [english(p) for p in info.value.problems]  # what an English-speaking user reads


def test_defaults_are_the_documented_ones_not_the_api_defaults() -> None:
    built = build_request(DrawOptions("a cat"), SETTINGS)
    assert built.payload == {
        "prompt": "a cat", "negative_prompt": "", "seed": -1, "sampler_name": "DPM++ 2M", "scheduler": "Karras",
        "steps": 20, "cfg_scale": 7.0, "width": 512, "height": 512, "batch_size": 1, "n_iter": 1,
        "send_images": True, "save_images": False,
    }
    assert built.notes == [] and not built.names_checked


def test_configured_defaults_are_used() -> None:
    s = Settings(default_steps=30, default_sampler="Euler a", default_scheduler="Automatic", default_width=768,
                 default_height=512, default_negative_prompt="blurry", max_steps=60)
    p = build_request(DrawOptions("x"), s).payload
    assert (p["steps"], p["sampler_name"], p["scheduler"], p["width"], p["height"], p["negative_prompt"]) == (
        30, "Euler a", "Automatic", 768, 512, "blurry")


def test_explicit_options_map_to_api_fields() -> None:
    built = build_request(DrawOptions("  a dog  ", "ugly", "v1-5-pruned-emaonly", "Euler a", "Automatic", 12, 5.5,
                                      42, 640, 384, 3), SETTINGS)
    p = built.payload
    assert set(p) == EXPOSED | {"override_settings", "override_settings_restore_afterwards"}
    assert (p["prompt"], p["negative_prompt"], p["sampler_name"], p["scheduler"]) == ("a dog", "ugly", "Euler a",
                                                                                      "Automatic")
    assert (p["steps"], p["cfg_scale"], p["seed"], p["width"], p["height"], p["batch_size"]) == (12, 5.5, 42, 640,
                                                                                                  384, 3)
    assert p["override_settings"] == {"sd_model_checkpoint": "v1-5-pruned-emaonly"}
    assert p["override_settings_restore_afterwards"] is True


@pytest.mark.parametrize(("options", "expected"), [
    ({"steps": 0}, "`steps` must be between 1 and 50 (got 0)."),
    ({"steps": 51}, "`steps` must be between 1 and 50 (got 51)."),
    ({"cfg_scale": 0.5}, "`cfg_scale` must be between 1 and 30 (got 0.5)."),
    ({"cfg_scale": 31}, "`cfg_scale` must be between 1 and 30 (got 31)."),
    ({"seed": -2}, "`seed` must be between -1 (random) and 9007199254740991 (got -2)."),
    ({"seed": 2**53}, "`seed` must be between -1 (random) and 9007199254740991 (got 9007199254740992)."),
    ({"batch": 0}, "`batch` must be between 1 and 4 (got 0)."),
    ({"batch": 5}, "`batch` must be between 1 and 4 (got 5)."),
    ({"width": 63}, "`width` must be between 64 and 2048 (got 63)."),
    ({"height": 2049}, "`height` must be between 64 and 2048 (got 2049)."),
    ({"prompt": "   "}, "`prompt` can't be empty."),
    ({"prompt": "x" * 1501}, "`prompt` is too long: at most 1500 characters (got 1501)."),
    ({"negative_prompt": "y" * 1600}, "`negative_prompt` is too long: at most 1500 characters (got 1600)."),
])
def test_each_bad_option_is_named_with_its_range(options: dict, expected: str) -> None:
    assert problems(**options) == [expected]


def test_all_bad_options_are_reported_together() -> None:
    got = problems(steps=99, batch=9, cfg_scale=50)
    assert [g.split("`")[1] for g in got] == ["steps", "cfg_scale", "batch"]


def test_pixel_limit_counts_width_times_height() -> None:
    got = problems(width=1024, height=1032)
    assert got == ["`width` × `height` is 1024×1032 = 1,056,768 pixels; the limit is 1,048,576 pixels per image."]
    assert build_request(DrawOptions("x", width=1024, height=1024), SETTINGS).payload["width"] == 1024


def test_sizes_are_rounded_to_multiples_of_8_and_the_user_is_told() -> None:
    built = build_request(DrawOptions("x", width=500, height=515), SETTINGS)
    assert (built.payload["width"], built.payload["height"]) == (504, 512)
    assert [english(n) for n in built.notes] == ["width 500 rounded to 504 (multiples of 8)",
                                                  "height 515 rounded to 512 (multiples of 8)"]


def test_limits_follow_configuration() -> None:
    s = Settings(max_steps=30, max_batch=2, max_pixels=512 * 512)
    got = problems(s, steps=31, batch=3, width=512, height=520)
    assert got[0].endswith("between 1 and 30 (got 31).") and got[1].endswith("between 1 and 2 (got 3).")
    assert "limit is 262,144" in got[2]


def test_names_are_resolved_against_the_webui_catalogue(catalogue: Catalogue) -> None:
    built = build_request(DrawOptions("x", model="v1-5-pruned-emaonly.safetensors", sampler="k_euler_a",
                                      scheduler="karras"), SETTINGS, catalogue)
    p = built.payload
    assert p["override_settings"]["sd_model_checkpoint"] == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert (p["sampler_name"], p["scheduler"]) == ("Euler a", "Karras")
    assert built.names_checked
    for alias in ("6ce0161689", "V1-5-PRUNED-EMAONLY", "v1-5-pruned-emaonly.safetensors [6ce0161689]"):
        assert catalogue.resolve_model(alias) == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert catalogue.resolve_model("juggernautXL_v9") == "SDXL/juggernautXL_v9.safetensors"


def test_unknown_names_are_refused_instead_of_silently_replaced(catalogue: Catalogue) -> None:
    got = problems(catalogue=catalogue, model="nope", sampler="DPM++ 9000", scheduler="Wobbly")
    assert got == [
        "`model`: the WebUI has no “nope”; pick one from the list.",
        "`sampler`: the WebUI has no “DPM++ 9000”; pick one from the list.",
        "`scheduler`: the WebUI has no “Wobbly”; pick one from the list.",
    ]


def test_autocomplete_choices_are_substring_matches_capped_at_25(catalogue: Catalogue) -> None:
    assert [v for _, v in catalogue.choices("sampler", "sde")] == [
        "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]
    assert catalogue.choices("sampler", "euler")[0][1] == "Euler a"  # prefix matches first
    many = Catalogue(samplers=[{"name": f"S{i}", "aliases": []} for i in range(40)])
    assert len(many.choices("sampler", "")) == 25
    assert catalogue.choices("model", "jugg") == [("SDXL/juggernautXL_v9.safetensors",
                                                   "SDXL/juggernautXL_v9.safetensors")]


def test_a_form_servers_seed_above_2_to_the_32_can_be_run_again() -> None:
    built = build_request(DrawOptions("a cat", seed=3090352432285578), SETTINGS)
    assert built.payload["seed"] == 3090352432285578


RATIOS = {"1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4, "3:2": 1.5, "2:3": 2 / 3, "16:9": 16 / 9, "9:16": 9 / 16,
          "21:9": 21 / 9}


@pytest.mark.parametrize("model, area", [(None, 512 * 512), ("v1-5-pruned-emaonly", 512 * 512),
                                         ("sd_xl_base_1.0", 1024 * 1024), ("ponyDiffusionV6XL", 1024 * 1024)])
@pytest.mark.parametrize("ratio", list(RATIOS))
def test_aspect_ratio_sizes_are_multiples_of_64_near_the_native_area(ratio: str, model: str | None,
                                                                      area: int) -> None:
    built = build_request(DrawOptions("a cat", aspect=ratio, model=model), SETTINGS)
    w, h = built.payload["width"], built.payload["height"]
    assert w % 64 == 0 and h % 64 == 0
    assert abs(w / h - RATIOS[ratio]) / RATIOS[ratio] <= 0.05
    assert 0.8 <= w * h / area <= 1.2 and w * h <= SETTINGS.max_pixels
    assert "ar" not in built.asked and "aspect" not in built.asked  # the size it picked is what routing sees


def test_aspect_ratio_stays_under_max_pixels_and_explicit_sides_win() -> None:
    small = Settings(discord_token="t", max_pixels=300_000)
    built = build_request(DrawOptions("a cat", aspect="16:9", model="sd_xl_base_1.0"), small)
    assert built.payload["width"] * built.payload["height"] <= 300_000
    built = build_request(DrawOptions("a cat", aspect="16:9", width=1024), SETTINGS)
    assert (built.payload["width"], built.payload["height"]) == (1024, 576)  # the other side from the ratio
    built = build_request(DrawOptions("a cat", aspect="16:9", width=640, height=640), SETTINGS)
    assert (built.payload["width"], built.payload["height"]) == (640, 640)
    assert [english(n) for n in built.notes] and "ar" in english(built.notes[0])
    assert problems(aspect="5:1") == ["`ar` must be one of 1:1, 4:3, 3:4, 3:2, 2:3, 16:9, 9:16, 21:9 (got 5:1)."]


def test_clip_skip_tiling_and_fix_faces_reach_the_payload() -> None:
    built = build_request(DrawOptions("a cat", clip_skip=2, tiling=True, fix_faces=True, model="sd_xl_base_1.0"),
                          SETTINGS)
    p = built.payload
    assert p["override_settings"] == {"sd_model_checkpoint": "sd_xl_base_1.0", "CLIP_stop_at_last_layers": 2}
    assert p["override_settings_restore_afterwards"] is True and p["tiling"] is True
    assert p["alwayson_scripts"] == {"ADetailer": {"args": [True, False, {"ad_model": "face_yolov8n.pt"}]}}
    assert {"clip_skip", "tiling", "fix_faces"} <= built.asked
    plain = build_request(DrawOptions("a cat"), SETTINGS).payload
    assert not {"override_settings", "tiling", "alwayson_scripts"} & set(plain)
    assert problems(clip_skip=13) == ["`clip_skip` must be between 1 and 12 (got 13)."]


def test_a_stored_payload_gives_back_the_new_options() -> None:
    from bot.core.payload import options_from_payload

    built = build_request(DrawOptions("a cat", clip_skip=3, tiling=True, fix_faces=True), SETTINGS)
    again = options_from_payload(built.payload)
    assert (again.clip_skip, again.tiling, again.fix_faces) == (3, True, True)
    assert build_request(again, SETTINGS).payload == built.payload


def test_ar_on_an_input_image_crops_it_to_the_ratio_instead_of_stretching() -> None:
    img2img = build_request(DrawOptions("a cat", aspect="16:9", init_image=b"png", init_size=(512, 512)), SETTINGS)
    assert (img2img.payload["width"], img2img.payload["height"], img2img.payload["resize_mode"]) == (704, 384, 1)
    plain = build_request(DrawOptions("a cat", init_image=b"png", init_size=(512, 512)), SETTINGS)
    assert plain.payload["resize_mode"] == 0  # its own size: nothing to crop
    from bot.core.payload import options_from_payload

    again = dataclasses.replace(options_from_payload(img2img.payload), init_image=b"png", init_size=(512, 512))
    assert build_request(again, SETTINGS).payload["resize_mode"] == 1  # a rerun crops it the same way
