"""End to end against an SD.Next-like demo WebUI (`dialect="sdnext"`): /draw with hires and a schedule type runs
(no JSON null for SD.Next's plain-str fields), the schedule goes through its sigma option and the summary says
what SD.Next used; a schedule it can't apply to the sampler is refused when asked, and never claimed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.images.infotext import parse_generation_parameters
from tests.support.harness import bot_settings, has_images, running_bot

pytestmark = pytest.mark.timeout(60)


async def test_draw_on_sdnext(fake_discord: Any, demo_webui_factory: Any, tmp_path: Path) -> None:
    fake = fake_discord
    demo = await demo_webui_factory(dialect="sdnext")
    async with running_bot(fake, bot_settings(fake, demo.url, tmp_path, rate_limit=(20, 60.0))) as bot:
        await bot.engine.catalogue.get()
        choices = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x", "scheduler": ""},
                                          focused="scheduler")
        assert [c["value"] for c in choices] == ["Automatic", "Karras", "Exponential", "Beta"]

        ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a lighthouse", "hires": 2.0,
                                                                  "scheduler": "Karras", "seed": 5})
        await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        route, body = demo.received[-1]
        assert route == "txt2img" and None not in body.values() and "scheduler" not in body
        assert body["override_settings"] == {"schedulers_sigma": "karras"}
        assert (body["enable_hr"], body["hr_resize_mode"], body["hr_upscaler"]) == (True, 1, "Latent Bilinear")
        infotext = demo.responses[-1].infotexts[0]
        assert "Sampler sigma: karras" in infotext and "Hires size: 1024x1024" in infotext
        assert "DPM++ 2M Karras" in ix.original.content  # what SD.Next wrote

        refused = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "x", "sampler": "Euler a",
                                                                       "scheduler": "Karras"})
        await refused.wait_for(lambda i: i.original is not None, timeout=10)
        assert refused.ephemeral
        assert refused.original.content.startswith("None of the image servers can do this: `"), refused.original.content
        assert len(demo.received) == 1  # it reached no WebUI

        plain = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a boat", "sampler": "Euler a"})
        await plain.wait_for(lambda i: has_images(i.original), timeout=30)
        assert demo.received[-1][1]["override_settings"] == {"schedulers_sigma": "default"}
        params = parse_generation_parameters(demo.responses[-1].infotexts[0], auto_backcompat=False)
        assert "Sampler sigma" not in params
        assert "Karras" not in plain.original.content  # the bot's default schedule wasn't used: not claimed
        assert "Euler a" in plain.original.content
