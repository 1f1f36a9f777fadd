"""Zoom out's canvas, /describe's suggestions and the daily quota, without Discord or a WebUI."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.core.describe import suggestions
from bot.core.limits import DAY, DailyLimit, DailyQuota, utc_day_start
from bot.core.zoom import canvas_size, outpaint_canvas
from bot.errors import Refused


def picture(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (10, 200, 30))
    image.putpixel((0, 0), (255, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_zoom_canvas_centres_the_picture_and_masks_only_the_border() -> None:
    made = outpaint_canvas(picture(512, 384), 2.0, 1024 * 1024)
    assert made.size == (1024, 768) and made.box == (256, 192, 768, 576)
    canvas = Image.open(io.BytesIO(made.canvas)).convert("RGB")
    mask = Image.open(io.BytesIO(made.mask)).convert("L")
    assert canvas.getpixel((256, 192)) == (255, 0, 0) and canvas.getpixel((600, 400)) == (10, 200, 30)
    assert mask.getpixel((0, 0)) == 255 and mask.getpixel((255, 400)) == 255  # the new border
    assert mask.getpixel((257, 400)) == 255  # a few pixels of the old picture, for the seam to blend
    assert mask.getpixel((512, 384)) == 0 and mask.getpixel((262, 198)) == 0  # the old picture is kept


@pytest.mark.parametrize(("size", "factor", "limit"), [((512, 512), 1.5, 1024 * 1024), ((1024, 1024), 2.0, 1024 * 1024),
                                                       ((1216, 832), 1.5, 2_000_000), ((2048, 512), 2.0, 4_000_000)])
def test_zoom_canvas_fits_max_pixels_and_the_side_limit_in_multiples_of_8(size: tuple[int, int], factor: float,
                                                                          limit: int) -> None:
    w, h = canvas_size(*size, factor, limit)
    assert w * h <= limit and max(w, h) <= 2048 and w % 8 == 0 and h % 8 == 0
    assert abs(w / h - size[0] / size[1]) / (size[0] / size[1]) < 0.02


def test_describe_suggestions() -> None:
    got = suggestions("arafed a painting of a lighthouse on a cliff, ", "scenery, lighthouse, no_humans, rating:safe")
    assert got[0] == "a painting of a lighthouse on a cliff"  # the captioner's made-up word is dropped
    assert got[1] == "a painting of a lighthouse on a cliff, scenery, lighthouse, no humans"
    assert got[2] == "scenery, lighthouse, no humans" and len(got) == 4 and len(set(got)) == 4
    assert len(suggestions("a cat")) == 4 and suggestions("", "") == []
    assert suggestions("", "1girl, solo") == ["1girl, solo"]


async def test_daily_quota_counts_the_store_once_then_in_memory_and_resets_at_utc_midnight() -> None:
    now = [utc_day_start(1_800_000_000.0) + 3600]
    asked: list[tuple[int, float, int | None]] = []

    async def count(user: int, since: float, guild: int | None) -> int:
        asked.append((user, since, guild))
        return 1 if guild is None else 0  # one job from before a restart, elsewhere

    quota = DailyQuota(count, clock=lambda: now[0])
    limits = [DailyLimit(3), DailyLimit(1, 55)]
    taken = await quota.take(7, limits)
    assert asked == [(7, utc_day_start(now[0]), None), (7, utc_day_start(now[0]), 55)]
    with pytest.raises(Refused) as info:  # the server's limit of 1
        await quota.take(7, limits)
    assert info.value.limit == "daily" and info.value.message.key == "refuse.daily_server"
    assert info.value.retry_in == pytest.approx(DAY - 3600)
    quota.give_back(taken, quota.day)  # that job was never stored
    await quota.take(7, limits)
    await quota.take(7, [DailyLimit(3)])
    with pytest.raises(Refused) as info:
        await quota.take(7, [DailyLimit(3)])  # 1 before the restart + 2 now
    assert info.value.message.key == "refuse.daily"
    assert len(asked) == 2  # the store was read once per key
    now[0] += DAY  # a new UTC day
    await quota.take(7, [DailyLimit(3)])
