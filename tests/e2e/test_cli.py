"""The `sdcord` command as a user runs it: a real process, configured from the environment."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.images import png
from tests.support.processes import clean_env, free_port, sdcord

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("kind", ["webui", "form"])
async def test_demo_bot_draws_and_stops_cleanly_on_sigterm(fake_discord: Any, tmp_path: Path, kind: str) -> None:
    fake = fake_discord
    env = clean_env(tmp_path, DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base,
                    DISCORD_GATEWAY_URL=fake.gateway_url, DISCORD_GUILD_IDS=str(fake.guild.id))
    proc = await sdcord("--demo", "--kind", kind, "--step-delay", "0", env=env, cwd=tmp_path)
    try:
        await fake.wait_for_commands({"draw"}, guild_id=fake.guild.id, timeout=30)
        ix = None
        for _ in range(100):  # the gateway session may still be starting
            ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a lighthouse", "seed": 3})
            try:
                await ix.wait_ack(timeout=0.5)
                break
            except Exception:  # noqa: BLE001 - not connected yet
                continue
        assert ix is not None
        await ix.wait_for(lambda i: i.original is not None and bool(i.original.attachments), timeout=30)
        att = ix.original.attachments[0]
        assert att.filename == "00001-3.png" and "a lighthouse" in (png.read_parameters(att.data) or "")
        assert ("Server: form" in (png.read_parameters(att.data) or "")) == (kind == "form")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "sdcord stopped" in text
    assert "Unclosed" not in text and "Traceback" not in text  # everything was shut down, nothing cut off
    assert fake.token not in text  # the token is never logged
    assert "PyNaCl" not in text and "davey" not in text  # no voice, so no warnings about voice libraries


async def doctor(tmp_path: Path, **env: str) -> tuple[int, str]:
    """Run `sdcord doctor` with a clean environment plus `env`; its exit code and what it printed."""
    proc = await sdcord("doctor", env=clean_env(tmp_path, **env), cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


async def test_invalid_configuration_stops_startup_with_one_line_per_problem(tmp_path: Path) -> None:
    env = clean_env(tmp_path, MAX_STEPS="many", WEBUI_URL="gopher://x")
    proc = await sdcord(env=env, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 2
    for name in ("DISCORD_TOKEN:", "WEBUI_URL:", "MAX_STEPS:"):
        assert sum(line.strip().startswith(name) for line in text.splitlines()) == 1, text


async def test_dotenv_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_STEPS=many\n")
    code, text = await doctor(tmp_path)
    assert code == 1 and "MAX_STEPS" in text


async def test_demo_webui_command_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    proc = await sdcord("demo-webui", "--port", str(port), env=clean_env(tmp_path), cwd=tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/sdapi/v1/samplers") as resp:
                        samplers = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("demo WebUI did not start")
        assert "DPM++ 2M" in [s["name"] for s in samplers]
    finally:
        # SIGTERM, not SIGINT: a shell starts background jobs with SIGINT ignored, and `serve` handles both
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 5)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text


async def test_doctor_reports_a_healthy_setup(demo_webui: Any, tmp_path: Path) -> None:
    code, text = await doctor(tmp_path, DISCORD_TOKEN="x", WEBUI_URL=demo_webui.url)
    assert code == 0, text
    assert "WebUI reachable" in text and "DEFAULT_SAMPLER" in text and "All checks passed" in text
    assert "WebUI ADetailer" in text and "not installed: /draw fix_faces is refused" in text  # a warning only
    token = [line.split(maxsplit=2) for line in text.splitlines() if line.startswith("DISCORD_TOKEN")]
    assert len(token) == 1 and token[0][1] == "ok" and token[0][2].startswith("set"), text


async def test_doctor_fails_when_the_webui_is_unreachable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, text = await doctor(tmp_path, WEBUI_URL=url)
    assert code == 1
    assert "FAIL" in text and "can't reach http" in text
    assert "DISCORD_TOKEN" in text  # missing token is reported too


async def test_doctor_reports_a_missing_token_as_one_failure(demo_webui: Any, tmp_path: Path) -> None:
    for extra, problems in (({"WEBUI_URL": demo_webui.url}, 1), ({"MAX_STEPS": "many"}, 2)):
        code, text = await doctor(tmp_path, **extra)
        assert code == 1, text  # the bot can't start without a token
        token = [line.split(maxsplit=2) for line in text.splitlines() if "DISCORD_TOKEN" in line]
        assert len(token) == 1, text
        assert token[0][:2] == ["DISCORD_TOKEN", "FAIL"] and token[0][2].startswith("not set"), text
        assert f"{problems} problem(s) found." in text, text


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "discord.invalid"])
async def test_no_network_at_start_is_one_clear_line_and_a_failure(tmp_path: Path, host: str) -> None:
    """Discord can't be reached at login (connection refused, DNS failure): one line, no traceback."""
    base = f"http://{host.format(port=free_port())}"
    env = clean_env(tmp_path, DISCORD_TOKEN="x.y.z", DISCORD_API_BASE=f"{base}/api/v10",
                    DISCORD_GATEWAY_URL=f"ws://{host.format(port=free_port())}", DISCORD_GUILD_IDS="1",
                    WEBUI_URL=f"http://127.0.0.1:{free_port()}")
    proc = await sdcord(env=env, cwd=tmp_path)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 1, text
    lines = [line for line in text.splitlines() if "Discord" in line and "ERROR" in line]
    assert len(lines) == 1, text
    assert f"Cannot reach Discord ({base}): " in lines[0] and lines[0].endswith("; check the network"), text
    assert ("refused" if host.startswith("127.") else "DNS lookup of discord.invalid failed") in lines[0], text
    assert "Traceback" not in text and "Unclosed" not in text and "Error" not in text.replace(lines[0], ""), text
    assert "PyNaCl" not in text and "davey" not in text, text


async def test_doctor_checks_every_backend(demo_webui: Any, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    code, text = await doctor(tmp_path, DISCORD_TOKEN="x", WEBUI_URL=f"{demo_webui.url},{down}")
    assert code == 1, text
    lines = text.splitlines()
    assert any(line.startswith("WebUI #1 reachable") and " ok " in line for line in lines), text
    assert any(line.startswith("WebUI #2 reachable") and "FAIL" in line for line in lines), text


def reachable_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if " reachable " in line]


async def test_doctor_names_each_backends_kind_flavour_and_version(demo_webui_factory: Any, tmp_path: Path) -> None:
    a1111 = await demo_webui_factory()
    forge = await demo_webui_factory(dialect="forge")
    sdnext = await demo_webui_factory(dialect="sdnext")
    urls = f"{a1111.url},{forge.url},{sdnext.url}"
    code, text = await doctor(tmp_path, DISCORD_TOKEN="x", WEBUI_URL=urls)
    assert code == 0, text
    rows = reachable_rows(text)
    assert rows[0].split() == ["WebUI", "#1", "reachable", "ok", a1111.url, "(webui,", "a1111)"], text
    assert rows[1].split() == ["WebUI", "#2", "reachable", "ok", forge.url, "(webui,", "forge)"], text
    assert rows[2].split() == ["WebUI", "#3", "reachable", "ok", sdnext.url, "(webui,", "sdnext", "2025-03-02)"], text
    # SD.Next has no /schedulers: the doctor lists the schedule types sdcord applies there, and checks the default
    lines = text.splitlines()
    assert any(line.startswith("WebUI #3 schedulers") and "4 available: Automatic, Karras, Exponential" in line
               for line in lines), text
    assert any(line.startswith("WebUI #3 DEFAULT_SCHEDULER") and " ok " in line for line in lines), text
    assert any(line.startswith("WebUI #3 DEFAULT_SAMPLER") and " ok " in line for line in lines), text


async def test_doctor_asks_a_form_server_only_what_it_can_answer(demo_form_server: Any, tmp_path: Path) -> None:
    code, text = await doctor(tmp_path, DISCORD_TOKEN="x", WEBUI_URL=demo_form_server.backend_url)
    assert code == 0, text
    rows = reachable_rows(text)
    assert len(rows) == 1 and " ok " in rows[0] and "(form, form" in rows[0], text
    assert not any(word in text for word in ("WebUI models", "WebUI samplers", "WebUI schedulers",
                                             "WebUI DEFAULT_SAMPLER")), text


async def test_json_logs_and_prometheus_metrics_of_a_running_bot(fake_discord: Any, tmp_path: Path) -> None:
    """LOG_FORMAT=json: every log line is one JSON object. METRICS_PORT: /metrics counts the job that ran,
    the queue and the backend, in Prometheus text format."""
    import orjson

    fake = fake_discord
    port = free_port()
    env = clean_env(tmp_path, DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base,
                    DISCORD_GATEWAY_URL=fake.gateway_url, DISCORD_GUILD_IDS=str(fake.guild.id),
                    LOG_FORMAT="json", METRICS_PORT=str(port))
    proc = await sdcord("--demo", "--step-delay", "0", env=env, cwd=tmp_path)
    try:
        await fake.wait_for_commands({"draw"}, guild_id=fake.guild.id, timeout=30)
        for _ in range(100):
            ix = await fake.invoke(fake.alice, fake.channel, "draw", {"prompt": "a lighthouse"})
            try:
                await ix.wait_ack(timeout=0.5)
                break
            except Exception:  # noqa: BLE001 - not connected yet
                continue
        await ix.wait_for(lambda i: i.original is not None and bool(i.original.attachments), timeout=30)
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert 'sdcord_jobs_total{kind="txt2img",outcome="done"} 1.0' in text
    assert 'sdcord_job_run_seconds_count{kind="txt2img"} 1.0' in text and "sdcord_queue_length 0.0" in text
    assert 'sdcord_backend_up{backend="http://127.0.0.1:' in text
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines and proc.returncode == 0
    records = [orjson.loads(line) for line in lines]  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "sdcord stopped" for r in records)


async def test_doctor_sees_the_adetailer_extension(demo_webui_factory: Any, tmp_path: Path) -> None:
    demo = await demo_webui_factory(extensions=("adetailer",))
    code, text = await doctor(tmp_path, DISCORD_TOKEN="x", WEBUI_URL=demo.url)
    assert code == 0 and "installed: /draw fix_faces works" in text, text
