"""Procedural images and PNG handling for the demo WebUI (run these in worker threads).

Images are gradients and soft shapes from a hash of prompt + seed, plus fine noise so PNG sizes are
realistic; the same key always gives the same pixels. Only Pillow bulk operations are used.
"""

from __future__ import annotations

import base64
import colorsys
import io
import math
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, PngImagePlugin


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, max(0.0, min(1.0, s)), max(0.0, min(1.0, v)))
    return int(r * 255), int(g * 255), int(b * 255)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


_CANVAS = 160


def _soften(layer: Image.Image, radius: float) -> Image.Image:
    """Blur an RGBA layer premultiplied, so transparent black does not darken the edges."""
    return layer.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")


def _scene(key: bytes, width: int, height: int) -> Image.Image:
    """A small landscape-like painting (sky, glow, soft shapes, hills) determined by `key`."""
    rng = random.Random(key)
    scale = _CANVAS / max(width, height)
    cw, ch = max(16, round(width * scale)), max(16, round(height * scale))
    hue = rng.random()
    night = rng.random() < 0.3
    top = _rgb(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.45, 0.8), rng.uniform(0.12, 0.3) if night else rng.uniform(0.45, 0.7))
    horizon = _rgb(hue + rng.choice([0.08, -0.08, 0.5, 0.12]), rng.uniform(0.2, 0.6),
                   rng.uniform(0.4, 0.6) if night else rng.uniform(0.8, 1.0))
    grad = Image.linear_gradient("L").resize((cw, ch), Image.Resampling.BILINEAR)
    img = Image.composite(Image.new("RGB", (cw, ch), horizon), Image.new("RGB", (cw, ch), top), grad)

    layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # a glowing sun or moon
    sun_r = rng.uniform(0.07, 0.16) * max(cw, ch)
    sx, sy = rng.uniform(0.15, 0.85) * cw, rng.uniform(0.12, 0.45) * ch
    sun = _rgb(hue + 0.1, 0.15 if night else 0.45, 1.0)
    for i in range(6, 0, -1):
        r = sun_r * (1 + i * 0.45)
        draw.ellipse((sx - r, sy - r, sx + r, sy + r), fill=sun + (int(22 - i * 3),))
    draw.ellipse((sx - sun_r, sy - sun_r, sx + sun_r, sy + sun_r), fill=sun + (235,))
    # soft floating shapes (clouds, bokeh)
    for _ in range(rng.randint(4, 9)):
        r = rng.uniform(0.03, 0.14) * max(cw, ch)
        x, y = rng.uniform(0, cw), rng.uniform(0, ch * 0.6)
        colour = _mix(_rgb(hue + rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.5), 1.0), horizon, rng.random() * 0.5)
        draw.ellipse((x - r * 1.8, y - r, x + r * 1.8, y + r), fill=colour + (rng.randint(40, 110),))
    layer = _soften(layer, max(1.0, cw / 80))
    img = Image.alpha_composite(img.convert("RGBA"), layer)

    # layered hills, lighter (hazier) far away
    hills = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw = ImageDraw.Draw(hills)
    ground = _rgb(hue + rng.choice([0.3, 0.45, 0.55, -0.2]), rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.45))
    layers = rng.randint(2, 4)
    for j in range(layers):
        depth = j / max(1, layers - 1)
        base = ch * (0.5 + 0.35 * depth + rng.uniform(-0.05, 0.05))
        n = rng.randint(5, 11)
        pts = [(0.0, float(ch))]
        phase, amp = rng.uniform(0, 6.28), rng.uniform(0.03, 0.12) * ch
        for k in range(n + 1):
            x = cw * k / n
            pts.append((x, base - amp * math.sin(phase + k * rng.uniform(0.6, 1.4)) - rng.uniform(0, amp * 0.6)))
        pts.append((float(cw), float(ch)))
        colour = _mix(horizon, ground, 0.35 + 0.65 * depth)
        colour = _mix(colour, (0, 0, 0), 0.35 * depth if not night else 0.6 * depth)
        draw.polygon(pts, fill=colour + (255,))
    hills = _soften(hills, max(0.6, cw / 240))
    img = Image.alpha_composite(img, hills).convert("RGB")
    return img


def _noise(key: bytes, width: int, height: int, amplitude: int) -> Image.Image:
    rnd = random.Random(key + b"/grain")
    raw = Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))
    span = 2 * amplitude + 1
    return raw.point([v * span // 256 for v in range(256)] * 3)


def render_image(key: bytes, width: int, height: int, noise: int = 6) -> Image.Image:
    """The deterministic "generated" image for `key` at width x height (RGB)."""
    img = _scene(key, width, height).resize((width, height), Image.Resampling.BICUBIC)
    if noise > 0:
        img = ImageChops.add(img, _noise(key, width, height, noise), 1.0, -noise)
    return img


def latent_noise(key: bytes, width: int, height: int) -> Image.Image:
    """Coarse colourful noise: what a barely denoised latent decodes to."""
    rnd = random.Random(key + b"/latent")
    lw, lh = max(1, width // 8), max(1, height // 8)
    small = Image.frombytes("RGB", (lw, lh), rnd.randbytes(lw * lh * 3))
    return small.resize((width, height), Image.Resampling.BICUBIC)


def partial(final: Image.Image, key: bytes, fraction: float) -> Image.Image:
    """An image interrupted at `fraction` of its sampling steps."""
    if fraction >= 1.0:
        return final
    t = max(0.0, min(1.0, fraction)) ** 0.7
    return Image.blend(latent_noise(key, *final.size), final, t)


def grid(images: list[Image.Image], rows: int | None = None) -> Image.Image:
    """A1111's image grid: about sqrt(n) rows, filled row by row on black."""
    if rows is None:
        rows = max(1, round(math.sqrt(len(images))))
    rows = min(rows, len(images))
    cols = math.ceil(len(images) / rows)
    w, h = images[0].size
    sheet = Image.new("RGB", (cols * w, rows * h), (0, 0, 0))
    for i, im in enumerate(images):
        sheet.paste(im, (i % cols * w, i // cols * h))
    return sheet


def encode_png(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes the way A1111 writes them: every text item via `PngInfo.add_text` (tEXt, or iTXt when not Latin-1)."""
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def b64png(image: Image.Image, text: dict[str, str] | None = None) -> str:
    """`encode_png` as a base64 string."""
    return base64.b64encode(encode_png(image, text)).decode("ascii")


def decode_image(data: str) -> Image.Image:
    """A1111 `decode_base64_to_image` for data URIs and bare base64 (raises ValueError)."""
    if not isinstance(data, str):
        raise ValueError("not a string")  # noqa: TRY004 - every bad input is "Invalid encoded image"
    if data.startswith("data:image/"):
        data = data.split(";", 1)[1].split(",", 1)[1] if ";" in data and "," in data else ""
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
    except Exception as exc:  # any decoding failure is "Invalid encoded image"
        raise ValueError("Invalid encoded image") from exc
    return ImageOps.exif_transpose(image) or image



def finish(finals: list[Image.Image], keys: list[bytes], size: tuple[int, int] | None,
           fraction: float) -> list[Image.Image]:
    """The batch's output images: resized to `size` if given, partially denoised if interrupted."""
    out = []
    for image, key in zip(finals, keys, strict=True):
        if size is not None and image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        out.append(partial(image, key, fraction))
    return out


def render_preview(thumbs: list[Image.Image], keys: list[bytes], fraction: float) -> str:
    """The live preview (base64 PNG) of a batch at `fraction` of its steps: a grid for several images."""
    frames = [partial(t, k, fraction) for t, k in zip(thumbs, keys, strict=True)]
    image = grid(frames) if len(frames) > 1 else frames[0]
    return b64png(image)


def fit(image: Image.Image, width: int, height: int, resize_mode: int) -> Image.Image:
    """img2img resize modes: 0 just resize, 1 crop and resize, 2 resize and fill (3 latent = 0)."""
    image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
    if image.size == (width, height):
        return image
    if resize_mode == 1:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if resize_mode == 2:
        inner = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        canvas = inner.resize((width, height), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(8))
        canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
        return canvas
    return image.resize((width, height), Image.Resampling.LANCZOS)


def upscale_png(image: Image.Image, target: tuple[int, int], upscaler: str | None, crop: bool, text: str) -> str:
    """extras: `image` resized to `target` (base64 PNG), keeping its text chunks, `text` as `postprocessing`."""
    texts = {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    out = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
    if upscaler is not None and target != image.size:
        method = Image.Resampling.NEAREST if upscaler == "Nearest" else Image.Resampling.LANCZOS
        if crop:
            out = ImageOps.fit(out, target, method)
        else:
            out = out.resize(target, method)
        if upscaler not in ("Nearest", "Lanczos"):
            out = out.filter(ImageFilter.UnsharpMask(radius=2, percent=60, threshold=2))
    if text:
        texts["postprocessing"] = text
    return b64png(out, texts)
