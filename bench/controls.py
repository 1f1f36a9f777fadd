"""Event-loop cost of the checks issue 12 adds to every job start, side by side with a baseline, in one run.

1. The blocklist check of one prompt (1,500 characters of Latin and CJK text) against a server's list of
   200 words and phrases (a few CJK ones): `moderation.blocked` (one compiled pattern per list, cached)
   next to the first way it was written (a pattern compiled and searched per word).
2. Admission with a daily limit on the local store (SQLite): `Engine.admit` + `release` with DAILY_LIMIT
   set (the count read from the store once per user and day, then kept in memory) next to DAILY_LIMIT=0.
3. Zoom out's canvas and mask for a 1024x1024 result (in a worker thread in the bot): the time to build
   them, for scale.

Target: each check well under 1 ms on the event loop (a job start already costs a few ms of Discord I/O).
Run: python bench/controls.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import re
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings  # noqa: E402
from bot.core.engine import Engine  # noqa: E402
from bot.core.moderation import _CJK, blocked, normalise  # noqa: E402
from bot.core.zoom import outpaint_canvas  # noqa: E402


def per_word(text: str, words: list[str]) -> bool:
    """The baseline: a pattern per word, compiled on every check."""
    haystack = normalise(text)
    spaced = _CJK.sub(" ", haystack)
    for word in (normalise(w) for w in words):
        if not word:
            continue
        if _CJK.search(word):
            pattern = re.compile(re.escape(word).replace(r"\ ", r"\s*"))
            if pattern.search(haystack):
                return True
        else:
            inner = r"\s+".join(re.escape(w) for w in word.split(" "))
            if re.compile(rf"(?<!\w){inner}(?!\w)").search(spaced):
                return True
    return False


def timed(fn, repeat: int) -> float:  # noqa: ANN001
    """Median milliseconds of one call."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def words_and_prompt() -> tuple[list[str], str]:
    rng = random.Random(12)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))) for _ in range(180)]
    words += [f"{a} {b}" for a, b in zip(words[:12], words[12:24], strict=True)]
    words += ["猫耳", "고양이", "裸体", "ねこ", "血", "刀", "枪", "毒"]
    chunks = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(220)]
    prompt = (", ".join(chunks) + ", 一只可爱的小狗, 벚꽃 아래의 소녀")[:1500]
    return words, prompt


async def admission(daily: int, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(discord_token="t", data_dir=Path(tmp), daily_limit=daily, rate_limit=(10**6, 1.0),
                            max_queued_per_user=100, webui_url="http://127.0.0.1:9")  # admission asks no WebUI
        engine = Engine(settings)
        await engine.start()
        try:
            samples = []
            for n in range(repeat):
                started = time.perf_counter()
                ticket = await engine.admit(1000 + n % 50, 42)
                engine.release(ticket)
                samples.append((time.perf_counter() - started) * 1000)
        finally:
            await engine.close()
    return statistics.median(samples[50:] or samples)  # the first admission of each user reads the store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    words, prompt = words_and_prompt()
    assert blocked(prompt, words) == per_word(prompt, words)
    blocked(prompt, words)  # the list's pattern is compiled once, at its first check
    now = timed(lambda: blocked(prompt, words), args.repeat)
    before = timed(lambda: per_word(prompt, words), args.repeat)
    print(f"blocklist check, 200 words, 1500-char prompt: sdcord {now:.3f} ms   baseline (per word) {before:.3f} ms"
          f"   ({before / now:.0f}x)")

    with_limit = asyncio.run(admission(1_000_000, args.repeat))
    without = asyncio.run(admission(0, args.repeat))
    print(f"admit + release (SQLite store):        DAILY_LIMIT set {with_limit:.3f} ms   DAILY_LIMIT=0 {without:.3f} ms")

    out = io.BytesIO()
    Image.effect_noise((1024, 1024), 40).convert("RGB").save(out, format="PNG")
    data = out.getvalue()
    zoom = timed(lambda: outpaint_canvas(data, 2.0, 1024 * 1024), max(5, args.repeat // 30))
    print(f"zoom-out canvas + mask, 1024x1024 -> 2x within 1 MP (worker thread): {zoom:.1f} ms")


if __name__ == "__main__":
    main()
