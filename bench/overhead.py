"""Bot-side cost of a generation response, side by side with the naive way, in one run.

1. Per image, from the WebUI's response bytes to upload-ready bytes, for a 4-image 1024x1024 batch
   (real demo-WebUI PNGs of ~1-3 MB each):
   * sdcord: the client's decode (base64 sliced out of the body, orjson for the rest) + the engine's
     upload step (read the image's own `parameters` chunk, pass the bytes through, check the size);
   * naive: json.loads + base64 + Pillow decode + re-save as PNG with PngInfo (what peer bots do).
2. The longest event-loop stall while that batch goes through the real client and engine
   (DrawEngine.generate against a loopback server in another process replaying the response, as a real
   WebUI would), measured by a task that sleeps 1 ms in a loop; and, as the baseline, the same with the
   naive processing done on the loop.

Targets (issue #2): sdcord >= 20x faster than naive per image; no stall over 20 ms.
Run: python bench/overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings  # noqa: E402
from bot.demo import DemoConfig, DemoWebUI  # noqa: E402
from bot.core.engine import SWITCH_INTERVAL, DrawEngine, _prepare_uploads  # noqa: E402
from bot.core.payload import BuiltPayload  # noqa: E402
from bot.webui.client import WebUIClient, decode_generation_response  # noqa: E402

BATCH = 4
SIDE = 1024
LIMIT = 10 * 1024 * 1024  # Discord's default per-file upload limit


def sdcord_path(raw: bytes) -> list[bytes]:
    result = decode_generation_response(raw, 0.0)
    pairs = [(img, result.infotexts[i], result.seeds[i]) for i, img in enumerate(result.images)]
    return [o.data for o in _prepare_uploads(pairs, LIMIT, 1)]


def naive_path(raw: bytes) -> list[bytes]:
    body = json.loads(raw)
    infotexts = json.loads(body["info"])["infotexts"]
    out = []
    for i, b64 in enumerate(body["images"]):
        image = Image.open(io.BytesIO(base64.b64decode(b64)))
        image.load()
        meta = PngImagePlugin.PngInfo()
        meta.add_text("parameters", infotexts[i])
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=meta)
        out.append(buf.getvalue())
    return out


def timed(fn, raw: bytes, repeat: int) -> list[float]:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(raw)
        times.append((time.perf_counter() - t0) / BATCH)
    return times


async def capture_response() -> bytes:
    """A real 4 x 1024^2 txt2img response body from the demo WebUI."""
    async with DemoWebUI(DemoConfig(step_delay=0.0)) as demo, aiohttp.ClientSession() as session:
        body = {"prompt": "a lighthouse on a cliff at dusk, dramatic sky", "seed": 1234, "steps": 20,
                "width": SIDE, "height": SIDE, "batch_size": BATCH, "sampler_name": "DPM++ 2M", "scheduler": "Karras"}
        async with session.post(f"{demo.url}/sdapi/v1/txt2img", json=body,
                                headers={"Accept-Encoding": "identity"}) as resp:
            resp.raise_for_status()
            return await resp.read()


class StallMeter:
    """Measures how late a 1 ms sleep wakes up: the loop's longest stall."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - t0 - 0.001)

    def __enter__(self) -> StallMeter:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


REPLAY_SERVER = """
import sys
from aiohttp import web
raw = open(sys.argv[1], "rb").read()
async def txt2img(request):
    await request.read()
    return web.Response(body=raw, content_type="application/json")
app = web.Application()
app.router.add_post("/sdapi/v1/txt2img", txt2img)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""


@contextlib.asynccontextmanager
async def replay_server(raw: bytes) -> AsyncIterator[str]:
    """Serve `raw` as every txt2img answer from another process, as a real WebUI would."""
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "response.json"
        body.write_bytes(raw)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", REPLAY_SERVER, str(body), str(port))
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    try:
                        async with session.get(url):
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.05)
            yield url
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


async def stall_run(url: str, *, naive: bool) -> tuple[float, float]:
    """Generate through the client against `url`; returns (worst loop stall, wall time)."""
    built = BuiltPayload({"prompt": "x", "batch_size": BATCH, "n_iter": 1})
    with tempfile.TemporaryDirectory() as tmp:
        engine = DrawEngine(Settings(data_dir=Path(tmp)), [WebUIClient(url)])
        try:
            with StallMeter() as meter:
                await asyncio.sleep(0.05)
                t0 = time.perf_counter()
                if naive:
                    async with aiohttp.ClientSession() as s, s.post(f"{url}/sdapi/v1/txt2img",
                                                                   json=built.payload) as resp:
                        naive_path(await resp.read())  # on the loop, as a careless bot would
                else:
                    outcome = await engine.generate(built, filesize_limit=LIMIT)
                    assert len(outcome.images) == BATCH
                wall = time.perf_counter() - t0
                await asyncio.sleep(0.05)
            return meter.worst, wall
        finally:
            await engine.close()


def ms(x: float) -> str:
    return f"{x * 1000:8.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed repetitions (default 10)")
    args = parser.parse_args()

    raw = await capture_response()
    sizes = [len(o) for o in sdcord_path(raw)]
    print(f"Response: {len(raw) / 1e6:.1f} MB body, {BATCH} PNGs of {SIDE}x{SIDE}, "
          f"{min(sizes) / 1e6:.2f}-{max(sizes) / 1e6:.2f} MB each")
    assert sdcord_path(raw) == [base64.b64decode(b) for b in json.loads(raw)["images"]], "bytes must pass through"

    ours = timed(sdcord_path, raw, args.repeat)
    naive = timed(naive_path, raw, max(3, args.repeat // 3))
    print("\n1. Per image, response bytes -> upload-ready bytes (median; min)")
    print(f"   {'sdcord (slice + b64 + chunk check)':40s}{ms(statistics.median(ours))}  ({ms(min(ours)).strip()})")
    print(f"   {'naive (json + b64 + Pillow re-save)':40s}{ms(statistics.median(naive))}  ({ms(min(naive)).strip()})")
    ratio = statistics.median(naive) / statistics.median(ours)
    print(f"   speed-up: {ratio:.0f}x  (target >= 20x: {'met' if ratio >= 20 else 'NOT met'})")

    default_interval = sys.getswitchinterval()
    async with replay_server(raw) as url:
        default = [await stall_run(url, naive=False) for _ in range(args.repeat)]
        sys.setswitchinterval(SWITCH_INTERVAL)  # what `sdcord` sets at start (favour_event_loop_latency)
        runs = [await stall_run(url, naive=False) for _ in range(args.repeat)]
        base = [await stall_run(url, naive=True) for _ in range(2)]
        sys.setswitchinterval(default_interval)
    worst = max(r[0] for r in runs)
    print(f"\n2. Longest event-loop stall while a {BATCH} x {SIDE}^2 batch is processed (worst of {len(runs)} runs)")
    print(f"   {'sdcord (client + engine, threads)':40s}{ms(worst)}  (wall {ms(statistics.median(r[1] for r in runs)).strip()}; "
          f"GIL switch interval {SWITCH_INTERVAL * 1000:g} ms as sdcord sets it)")
    print(f"   {'  same, Python default switch interval':40s}{ms(max(r[0] for r in default))}  "
          f"({default_interval * 1000:g} ms interval)")
    print(f"   {'naive (same work on the loop)':40s}{ms(max(b[0] for b in base))}  (wall {ms(statistics.median(b[1] for b in base)).strip()})")
    print(f"   target <= 20 ms: {'met' if worst <= 0.020 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
