from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, describe, load_dotenv_file, load_settings, split_credentials


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings({"DISCORD_TOKEN": "t", **env})
    return info.value.problems


def test_defaults_match_the_documented_table() -> None:
    s = load_settings({"DISCORD_TOKEN": "tok"})
    assert s.webui_url == "http://127.0.0.1:7860"
    assert s.webui_auth is None and s.guild_ids == ()
    assert s.data_dir == Path("data")
    assert (s.default_steps, s.default_sampler, s.default_scheduler) == (20, "DPM++ 2M", "Karras")
    assert (s.default_width, s.default_height, s.default_negative_prompt) == (512, 512, "")
    assert (s.max_steps, s.max_pixels, s.max_batch, s.log_level) == (50, 1048576, 4, "INFO")


def test_token_required_only_to_run() -> None:
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        load_settings({})
    assert load_settings({}, require_token=False).discord_token is None


def test_every_problem_is_reported_one_line_each() -> None:
    problems = problems_of({
        "WEBUI_URL": "ftp://x", "MAX_STEPS": "lots", "DEFAULT_WIDTH": "500", "LOG_LEVEL": "loud",
        "DISCORD_GUILD_IDS": "12,abc", "MAX_BATCH": "11", "DEFAULT_STEPS": "0",
    })
    joined = "\n".join(problems)
    for name in ("WEBUI_URL", "MAX_STEPS", "DEFAULT_WIDTH", "LOG_LEVEL", "DISCORD_GUILD_IDS", "MAX_BATCH",
                 "DEFAULT_STEPS"):
        assert sum(p.startswith(name + ":") for p in problems) == 1, (name, joined)
    assert "multiple of 8" in joined and "from 1 to 10" in joined


def test_default_beyond_limit_is_refused() -> None:
    problems = problems_of({"DEFAULT_STEPS": "60", "DEFAULT_WIDTH": "2048", "DEFAULT_HEIGHT": "2048"})
    assert any("DEFAULT_STEPS: expected at most MAX_STEPS (50)" in p for p in problems)
    assert any("MAX_PIXELS" in p for p in problems)


def test_secrets_are_never_echoed() -> None:
    problems = problems_of({"WEBUI_AUTH": "hunter2nocolon", "WEBUI_URL": "http://bob:s3cret@host:nope"})
    text = "\n".join(problems)
    assert "hunter2" not in text and "s3cret" not in text
    assert repr(load_settings({"DISCORD_TOKEN": "tok-SECRET", "WEBUI_AUTH": "u:pw-SECRET"})).count("SECRET") == 0
    s = load_settings({"DISCORD_TOKEN": "t", "WEBUI_URL": "http://u:pw-SECRET@h, http://h2"})
    assert "SECRET" not in repr(s) and "SECRET" not in repr(s.backends)


def test_credentials_in_url_mean_basic_auth() -> None:
    s = load_settings({"DISCORD_TOKEN": "t", "WEBUI_URL": "http://alice:p%40ss@gpu.lan:7860/"})
    assert s.backends[0].auth == ("alice", "p@ss") and s.webui_auth is None
    assert s.webui_display_url == "http://gpu.lan:7860"
    assert split_credentials("http://h:1/x") == ("http://h:1/x", None)
    s2 = load_settings({"DISCORD_TOKEN": "t", "WEBUI_AUTH": "bob:pw:with:colons"})
    assert s2.webui_auth == ("bob", "pw:with:colons")
    assert s2.backends[0].auth == ("bob", "pw:with:colons")


def test_several_backends_each_with_its_own_credentials() -> None:
    s = load_settings({"DISCORD_TOKEN": "t", "WEBUI_AUTH": "dflt:pw",
                       "WEBUI_URL": "http://a:b@gpu1:7860/, http://gpu2:7861 ,https://gpu3"})
    assert [(b.url, b.auth) for b in s.backends] == [
        ("http://gpu1:7860", ("a", "b")), ("http://gpu2:7861", ("dflt", "pw")), ("https://gpu3", ("dflt", "pw"))]
    assert s.webui_display_url == "http://gpu1:7860, http://gpu2:7861, https://gpu3"
    got = problems_of({"WEBUI_URL": "http://ok:1, gopher://u:secret@x"})
    assert got[0].startswith("WEBUI_URL:") and "secret" not in got[0]


def test_form_api_servers_mix_with_webuis() -> None:
    s = load_settings({"DISCORD_TOKEN": "t", "WEBUI_AUTH": "dflt:pw",
                       "WEBUI_URL": "http://gpu1:7860, form+http://u:p%40w@gpu2:8000/ ,FORM+https://gpu3"})
    assert [(b.url, b.auth) for b in s.backends] == [
        ("http://gpu1:7860", ("dflt", "pw")), ("form+http://gpu2:8000", ("u", "p@w")),
        ("form+https://gpu3", ("dflt", "pw"))]
    assert s.webui_display_url == "http://gpu1:7860, form+http://gpu2:8000, form+https://gpu3"
    for bad in ("form+ftp://x", "form+", "form://h", "form+http://u:secret@h:port"):
        got = problems_of({"WEBUI_URL": bad})
        assert got[0].startswith("WEBUI_URL:") and "secret" not in got[0], bad
    assert problems_of({"DISCORD_API_BASE": "form+http://h"})[0].startswith("DISCORD_API_BASE:")


def test_rate_limit_and_queue_cap() -> None:
    s = load_settings({"DISCORD_TOKEN": "t"})
    assert (s.rate_limit, s.max_queued_per_user, s.backend_wait_limit) == ((5, 60.0), 3, 600.0)
    s = load_settings({"DISCORD_TOKEN": "t", "RATE_LIMIT": " 10 / 30 ", "MAX_QUEUED_PER_USER": "5",
                       "BACKEND_WAIT_LIMIT": "90"})
    assert (s.rate_limit, s.max_queued_per_user, s.backend_wait_limit) == ((10, 30.0), 5, 90.0)
    for bad in ("5", "0/60", "5/0", "five/60"):
        assert problems_of({"RATE_LIMIT": bad})[0].startswith("RATE_LIMIT: expected jobs/seconds")
    assert problems_of({"MAX_QUEUED_PER_USER": "0"})[0].startswith("MAX_QUEUED_PER_USER:")


def test_daily_limit() -> None:
    assert load_settings({"DISCORD_TOKEN": "t"}).daily_limit == 0  # off unless set
    s = load_settings({"DISCORD_TOKEN": "t", "DAILY_LIMIT": "25"})
    assert s.daily_limit == 25 and "25 a day" in describe(s)["RATE_LIMIT"]
    for bad in ("-1", "ten", "1.5"):
        assert problems_of({"DAILY_LIMIT": bad})[0].startswith("DAILY_LIMIT:")


def test_guild_ids_and_values_are_parsed() -> None:
    s = load_settings({"DISCORD_TOKEN": "t", "DISCORD_GUILD_IDS": " 123, 456 ,", "MAX_PIXELS": "262144",
                       "DEFAULT_WIDTH": "256", "DEFAULT_HEIGHT": "512", "LOG_LEVEL": "debug"})
    assert s.guild_ids == (123, 456)
    assert (s.max_pixels, s.default_width, s.log_level) == (262144, 256, "DEBUG")


def test_dotenv_from_working_directory_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=from-dotenv\nMAX_STEPS=40\nDEFAULT_STEPS=30\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    for key in ("DISCORD_TOKEN", "MAX_STEPS", "DEFAULT_STEPS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MAX_STEPS", "45")
    assert load_dotenv_file() == tmp_path / ".env"
    s = load_settings()
    assert (s.discord_token, s.max_steps, s.default_steps) == ("from-dotenv", 45, 30)
    for key in ("DISCORD_TOKEN", "DEFAULT_STEPS"):
        os.environ.pop(key, None)


def test_settings_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().max_steps = 3  # type: ignore[misc]


def test_metrics_and_log_format_settings() -> None:
    from bot.config import ConfigError, load_settings

    plain = load_settings({"DISCORD_TOKEN": "t"})
    assert (plain.metrics_port, plain.metrics_host, plain.log_format) == (None, "127.0.0.1", "text")
    on = load_settings({"DISCORD_TOKEN": "t", "METRICS_PORT": "9100", "METRICS_HOST": "0.0.0.0", "LOG_FORMAT": "json"})
    assert (on.metrics_port, on.metrics_host, on.log_format) == (9100, "0.0.0.0", "json")
    try:
        load_settings({"DISCORD_TOKEN": "t", "METRICS_PORT": "x", "LOG_FORMAT": "xml"})
    except ConfigError as exc:
        assert exc.problems == ["METRICS_PORT: expected a whole number from 0 to 65535, got 'x'",
                                "LOG_FORMAT: expected text or json, got 'xml'"]
    else:
        raise AssertionError("bad settings accepted")


def test_scale_out_settings() -> None:
    s = load_settings({"DISCORD_TOKEN": "t", "DATABASE_URL": "postgresql://bot:pw@db:5432/sdcord",
                       "SHARD_COUNT": "4", "SHARD_IDS": "2,3", "LEASE_TTL": "10"})
    assert (s.database_url, s.shard_count, s.shard_ids, s.lease_ttl) == (
        "postgresql://bot:pw@db:5432/sdcord", 4, (2, 3), 10.0)
    assert not s.webui_given  # no WEBUI_URL: a gateway alone runs no backend
    assert "pw" not in repr(s)
    defaults = load_settings({"DISCORD_TOKEN": "t"})
    assert defaults.database_url is None and defaults.shard_count is None and defaults.lease_ttl == 15.0
    problems = problems_of({"DATABASE_URL": "mysql://u:secret@h/db", "SHARD_IDS": "5"})
    assert [p.split(":")[0] for p in problems] == ["DATABASE_URL", "SHARD_IDS"]
    assert not any("secret" in p for p in problems)
    assert problems_of({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"}) == [
        "SHARD_IDS: expected numbers from 0 to SHARD_COUNT - 1 (1), got 0,2"]
