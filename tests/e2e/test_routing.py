"""End to end: a pool of two WebUIs with different models. A job runs only where its model is; one that
fits no backend is refused at once, privately, naming what is missing; autocomplete lists the union."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.demo import DemoConfig
from bot.demo.data import default_loras, default_models
from tests.support.harness import bot_settings, has_images, running_bot

pytestmark = pytest.mark.timeout(90)


async def test_a_two_backend_pool_with_different_models(fake_discord: Any, demo_webui_factory: Any,
                                                        tmp_path: Path) -> None:
    fake = fake_discord
    sd15, sdxl, _ = default_models()
    add_detail, pixel_art = default_loras()
    a = await demo_webui_factory(DemoConfig(models=[sd15], loras=[add_detail]))
    b = await demo_webui_factory(DemoConfig(models=[sdxl], loras=[pixel_art]))
    settings = bot_settings(fake, f"{a.url},{b.url}", tmp_path, rate_limit=(20, 60.0), max_queued_per_user=10)
    async with running_bot(fake, settings) as bot:
        await bot.engine.catalogue.get()
        choices = await fake.autocomplete(fake.alice, fake.channel, "draw", {"prompt": "x"}, focused="model")
        assert {c["value"] for c in choices} >= {sd15["title"], sdxl["title"]}  # the union
        for n in range(3):
            for model in ("sd_xl_base_1.0", "v1-5-pruned-emaonly"):
                ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": f"a boat {n}", "model": model})
                await ix.wait_for(lambda i: has_images(i.original), timeout=30)
        on_a = [body["override_settings"]["sd_model_checkpoint"] for _, body in a.received]
        on_b = [body["override_settings"]["sd_model_checkpoint"] for _, body in b.received]
        assert on_a == [sd15["title"]] * 3 and on_b == [sdxl["title"]] * 3  # never elsewhere
        lora_elsewhere = await fake.invoke(fake.alice, fake.channel, "draw",
                                           {"prompt": "a boat <lora:add_detail:0.7>", "model": "sd_xl_base_1.0"})
        await lora_elsewhere.wait_for(lambda i: i.original is not None, timeout=10)
        assert lora_elsewhere.ephemeral
        assert lora_elsewhere.original.content.startswith("None of the image servers can do this: `")
        assert len(a.received) + len(b.received) == 6  # the refused one reached no WebUI
