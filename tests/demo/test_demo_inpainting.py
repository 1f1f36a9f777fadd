"""img2img with a mask on the demo WebUI: outpainting keeps the old picture, paints the border, and writes
A1111 v1.10.1's mask keys in its order."""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageChops, ImageStat

from bot.demo import DemoWebUI, render_image
from tests.demo.wire import b64png, generate, params_line, request

SIZE, INNER, SEAM = 96, 48, 4
LEFT = (SIZE - INNER) // 2


def outpaint_inputs() -> tuple[Image.Image, Image.Image]:
    """A Zoom-out canvas (an old picture centred on its mean colour) and its mask (white: paint anew)."""
    picture = render_image(b"the old picture", INNER, INNER)
    mean = picture.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    canvas = Image.new("RGB", (SIZE, SIZE), mean)
    canvas.paste(picture, (LEFT, LEFT))
    mask = Image.new("L", (SIZE, SIZE), 255)
    mask.paste(0, (LEFT + SEAM, LEFT + SEAM, LEFT + INNER - SEAM, LEFT + INNER - SEAM))
    return canvas, mask


def body(canvas: Image.Image, mask_image: Image.Image | None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": "a forest around it", "seed": 11, "steps": 10, "width": SIZE, "height": SIZE,
                           "denoising_strength": 0.9, "init_images": [b64png(canvas)]}
    if mask_image is not None:
        out["mask"] = b64png(mask_image)
    return {**out, **fields}


def same(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> bool:
    return a.crop(box).tobytes() == b.crop(box).tobytes()


def mean_difference(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.crop(box), b.crop(box))).mean) / 3


CENTRE = (LEFT + SEAM + 14, LEFT + SEAM + 14, LEFT + INNER - SEAM - 14, LEFT + INNER - SEAM - 14)
BORDER = [(0, 0, SIZE, 16), (0, SIZE - 16, SIZE, SIZE), (0, 0, 16, SIZE), (SIZE - 16, 0, SIZE, SIZE)]


async def test_outpainting_keeps_the_centre_and_paints_the_border(demo_webui: DemoWebUI) -> None:
    canvas, mask = outpaint_inputs()
    request_body = body(canvas, mask, inpainting_fill=0, mask_blur=4, inpaint_full_res=False)
    image, info = await generate(demo_webui, "img2img", request_body)
    assert image.size == (SIZE, SIZE)
    assert same(image, canvas, CENTRE)  # the init pixels, exactly
    for box in BORDER:
        assert mean_difference(image, canvas, box) > 15  # newly generated
    line = params_line(info)
    assert "Denoising strength: 0.9, Mask blur: 4, Masked content: fill, Version: v1.10.1" in line
    assert "Inpaint area" not in line and "Mask mode" not in line
    assert info["extra_generation_params"] == {"Denoising strength": 0.9, "Mask blur": 4, "Masked content": "fill"}
    route, sent = demo_webui.received[-1]
    assert route == "img2img" and sent["mask"] == request_body["mask"]  # recorded like every other field
    assert demo_webui.responses[-1].parameters["mask"] is None  # include_init_images false: echoed as null


async def test_api_defaults_inpaint_only_masked_and_keep_the_init_size(demo_webui: DemoWebUI) -> None:
    canvas, mask = outpaint_inputs()
    image, info = await generate(demo_webui, "img2img", body(canvas, mask, width=64, height=64))
    assert "Mask blur: 4, Inpaint area: Only masked, Masked area padding: 0, Masked content: fill" in params_line(info)
    assert image.size == (SIZE, SIZE)  # the crop is pasted back into the init image, as A1111 does
    assert same(image, canvas, CENTRE)
    assert mean_difference(image, canvas, BORDER[0]) > 15
    whole, _ = await generate(demo_webui, "img2img", body(canvas, mask, width=64, height=64, inpaint_full_res=False))
    assert whole.size == (64, 64)  # "whole picture": the processing size
    _, info = await generate(demo_webui, "img2img", body(canvas, mask, inpaint_full_res_padding=32))
    assert "Inpaint area: Only masked, Masked area padding: 32" in params_line(info)


async def test_masked_content_mode_and_blur_keys(demo_webui: DemoWebUI) -> None:
    canvas, mask = outpaint_inputs()
    pictures = {}
    for fill, key in ((0, "Masked content: fill"), (1, None), (2, "Masked content: latent noise"),
                      (3, "Masked content: latent nothing")):
        image, info = await generate(demo_webui, "img2img", body(canvas, mask, inpainting_fill=fill,
                                                                 inpaint_full_res=False, denoising_strength=0.5))
        line = params_line(info)
        if key is None:
            assert "Masked content" not in line  # "original" is never written
        else:
            assert key in line
        pictures[fill] = image.tobytes()
    assert len(set(pictures.values())) == 4  # each mode starts the masked area differently

    image, info = await generate(demo_webui, "img2img", body(canvas, mask, inpainting_mask_invert=1, mask_blur=8,
                                                             inpaint_full_res=False))
    assert "Denoising strength: 0.9, Mask mode: Inpaint not masked, Mask blur: 8, Masked content: fill" in \
        params_line(info)
    assert mean_difference(image, canvas, CENTRE) > 15  # now the old picture is repainted...
    corner = (0, 0, 10, 10)
    assert same(image, canvas, corner)  # ...and the border kept

    _, info = await generate(demo_webui, "img2img", body(canvas, mask, mask_blur=0))
    assert "Mask blur" not in params_line(info) and "Mask blur" not in info["extra_generation_params"]
    _, info = await generate(demo_webui, "img2img", body(canvas, mask, mask_blur_x=2, mask_blur_y=6))
    assert "Mask blur" not in params_line(info)
    assert info["extra_generation_params"]["Mask blur"] is None  # A1111's property: None when x != y
    _, info = await generate(demo_webui, "img2img", body(canvas, mask, mask_blur=3, mask_blur_x=9))
    assert "Mask blur: 3," in params_line(info)  # `mask_blur` sets both


async def test_blurring_softens_the_seam(demo_webui: DemoWebUI) -> None:
    canvas, mask = outpaint_inputs()
    sharp, _ = await generate(demo_webui, "img2img", body(canvas, mask, mask_blur=0, inpaint_full_res=False))
    soft, _ = await generate(demo_webui, "img2img", body(canvas, mask, mask_blur=8, inpaint_full_res=False))
    row = LEFT + INNER // 2
    edge = LEFT + SEAM  # the mask's edge: a hard step without blur, a ramp with it
    steps_sharp = [abs(sharp.getpixel((x, row))[0] - sharp.getpixel((x + 1, row))[0]) for x in range(edge - 6, edge + 6)]
    assert max(steps_sharp) > 0
    inside = (edge + 2, row)
    assert sharp.getpixel(inside) == canvas.getpixel(inside)  # no blur: the init pixel right past the edge
    assert soft.getpixel(inside) != canvas.getpixel(inside)  # blurred: the new content reaches past it


async def test_blank_masks_and_odd_masks(demo_webui: DemoWebUI) -> None:
    canvas, mask = outpaint_inputs()
    plain, _ = await generate(demo_webui, "img2img", body(canvas, None))
    black = Image.new("L", (SIZE, SIZE), 0)
    image, info = await generate(demo_webui, "img2img", body(canvas, black))  # only masked: plain img2img
    line = params_line(info)
    assert "Mask blur: 4" in line and "Inpaint area" not in line and "Masked content" not in line
    assert image.tobytes() == plain.tobytes()
    image, info = await generate(demo_webui, "img2img", body(canvas, black, inpaint_full_res=False))
    assert image.tobytes() == canvas.tobytes()  # whole picture: every pixel kept
    assert "Masked content: fill" in params_line(info)
    image, info = await generate(demo_webui, "img2img", body(canvas, None, mask=""))  # `if mask:` in A1111
    assert "Mask blur" not in params_line(info) and image.tobytes() == plain.tobytes()

    small = mask.resize((SIZE // 2, SIZE // 2), Image.Resampling.NEAREST)  # resized to the image
    image, _ = await generate(demo_webui, "img2img", body(canvas, small, inpaint_full_res=False))
    assert same(image, canvas, CENTRE)
    assert mean_difference(image, canvas, BORDER[1]) > 15
    alpha = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))  # transparency: the alpha channel is the mask
    alpha.putalpha(mask)
    from_alpha, _ = await generate(demo_webui, "img2img", body(canvas, alpha, inpaint_full_res=False))
    from_grey, _ = await generate(demo_webui, "img2img", body(canvas, mask, inpaint_full_res=False))
    assert from_alpha.tobytes() == from_grey.tobytes()


async def test_undecodable_mask_is_the_invalid_image_error(demo_webui: DemoWebUI) -> None:
    canvas, _ = outpaint_inputs()
    status, raw = await request(demo_webui, "POST", "img2img", body(canvas, None, mask="not an image"))
    assert (status, raw) == (500, b'{"error":"HTTPException","detail":"Invalid encoded image","body":"","errors":""}')
    assert demo_webui.received[-1][1]["mask"] == "not an image"


async def test_other_dialects_composite_too(demo_webui_factory: Any) -> None:
    canvas, mask = outpaint_inputs()
    for dialect in ("forge", "sdnext"):  # SD.Next's request has no mask_blur_x/_y or mask_round
        demo = await demo_webui_factory(dialect=dialect)
        image, _ = await generate(demo, "img2img", body(canvas, mask, inpaint_full_res=False))
        assert same(image, canvas, CENTRE) and mean_difference(image, canvas, BORDER[2]) > 15, dialect
