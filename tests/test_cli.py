"""The ``hfs`` command, run as a user runs it: a subprocess with its own environment and directory.

Every run is checked for leaked keys: no stdout or stderr may hold a key used in its
environment, nor the 8-character suffix the usage database keeps (only 4 are shown).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import PROVIDERS, fake_key, keys_of, provider_env

from hfs_core.testing.standin import StandIn

HFS = [sys.executable, "-m", "hfs_core.cli"]
HEAVY_MODULES = ("agno", "keycycle", "groq", "cerebras", "google", "openai", "rich")
USAGE_TABLE = """CREATE TABLE usage_logs (
    id INTEGER PRIMARY KEY, provider VARCHAR(100), model VARCHAR(100), api_key_suffix VARCHAR(50),
    timestamp FLOAT, tokens INTEGER)"""
ALL_EXPECTED_3 = "".join(f"[providers.{p}]\nexpected_keys = 3\n" for p in PROVIDERS)


@dataclass
class Run:
    """One finished ``hfs`` process."""

    code: int
    out: str
    err: str
    seconds: float


def clean_env(tmp: Path, extra: Mapping[str, str] | None = None, *, drop: Iterable[str] = ()) -> dict[str, str]:
    """os.environ without keys or hfs settings, with its own data directory, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NUM_", "HFS_")) and "_API_KEY" not in k and k != "TIDB_DB_URL" and k not in drop}
    env["XDG_DATA_HOME"] = str(tmp / "data")
    env.update(extra or {})
    return env


def hfs(*args: str, env: Mapping[str, str], cwd: Path, stdin: str | None = None, timeout: float = 120) -> Run:
    """Run ``hfs ARGS`` and check that its output leaks no key."""
    start = time.monotonic()
    done = subprocess.run([*HFS, *args], env=dict(env), cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=timeout, check=False)
    run = Run(done.returncode, done.stdout, done.stderr, time.monotonic() - start)
    for name, value in env.items():
        if "_API_KEY" in name and len(value) >= 8:
            for stream in (run.out, run.err):
                assert value not in stream, f"{name} leaked in the output of hfs {' '.join(args)}"
                assert value[-8:] not in stream, f"{name}'s usage suffix shown in hfs {' '.join(args)}"
    return run


def usage_db(path: Path, rows: Iterable[tuple[str, str, str, float, int]] = (), *, table: bool = True) -> str:
    """A SQLite database shaped like keycycle's (provider, model, suffix, timestamp, tokens rows)."""
    with sqlite3.connect(path) as db:
        if table:
            db.execute(USAGE_TABLE)
            db.executemany("INSERT INTO usage_logs (provider, model, api_key_suffix, timestamp, tokens) "
                           "VALUES (?, ?, ?, ?, ?)", list(rows))
    return f"sqlite:///{path}"


def fill_token_windows(url_path: Path, env: Mapping[str, str], provider: str, model: str, *, free_in: float) -> None:
    """Use up every key's tokens-per-minute so that the first one frees up in about `free_in` seconds."""
    stamp = time.time() - 60 + free_in
    rows = [(provider, model, key[-8:], stamp, 7600) for key in keys_of(env, provider)]  # groq TPM is 8000
    with sqlite3.connect(url_path) as db:
        db.execute(USAGE_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        db.executemany("INSERT INTO usage_logs (provider, model, api_key_suffix, timestamp, tokens) "
                       "VALUES (?, ?, ?, ?, ?)", rows)


def one_line_error(run: Run) -> None:
    """The failure ends stderr as one `hfs: error:` line and a hint: exit 1, no traceback."""
    assert run.code == 1, run
    lines = run.err.strip().splitlines()
    assert len(lines) >= 2 and lines[-2].startswith("hfs: error: "), run.err
    assert lines[-1].startswith("  hint: "), run.err
    assert sum(line.startswith("hfs: error: ") for line in lines) == 1
    assert "Traceback" not in run.err


# -- help, version, start-up ------------------------------------------------------------------


def test_help_version_and_command_help(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    top = hfs("--help", env=env, cwd=tmp_path)
    assert top.code == 0
    for command in ("providers", "check", "models", "ask", "usage"):
        assert command in top.out
        sub = hfs(command, "--help", env=env, cwd=tmp_path)
        assert sub.code == 0 and "examples:" in sub.out and f"hfs {command}" in sub.out
    version = hfs("--version", env=env, cwd=tmp_path)
    assert version.code == 0 and re.match(r"hfs \d+\.\d+", version.out)
    script = subprocess.run([str(Path(sys.executable).parent / "hfs"), "--version"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert script.returncode == 0 and script.stdout == version.out


@pytest.mark.parametrize("args", [("--help",), ("providers",), ("providers", "--json"), ("check",), ("models", "groq")])
def test_listing_commands_import_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    env = clean_env(tmp_path, provider_env(3))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "hfs_core.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in imported if m.split(".")[0] in (*HEAVY_MODULES, "sqlalchemy"))
    assert heavy == [], f"hfs {' '.join(args)} imported {heavy[:10]}"


def test_hfs_alone_prints_help_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "hfs_core.cli"], env=clean_env(tmp_path, {}), cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: hfs") and "providers" in done.stdout


@pytest.mark.parametrize("args", [
    ("check", "--bogus"), ("ask",), ("ask", "-m", "groq", "hi"), ("ask", "-p", "groq", "-m", "groq:x", "hi"),
    ("usage", "--since", "3x"), ("ask", "--timeout", "soon", "hi"), ("frobnicate",),
])
def test_bad_usage_exits_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    run = hfs(*args, env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 2, run
    assert "usage: hfs" in run.err and "Traceback" not in run.err


def test_a_mistyped_command_is_refused_naming_every_command(tmp_path: Path) -> None:
    """A command line naming a command builds that command's parser alone; one naming none (a typo)
    gets the whole parser, whose refusal lists every command, and ``-v`` before a command still counts."""
    run = hfs("provders", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 2, run
    assert "invalid choice: 'provders'" in run.err
    for command in ("providers", "check", "models", "ask", "demo", "status", "usage", "keys"):
        assert f"'{command}'" in run.err
    verbose = hfs("-v", "providers", "--json", env=clean_env(tmp_path), cwd=tmp_path)
    assert verbose.code == 0 and verbose.out.lstrip().startswith("{"), verbose


# -- providers and check ------------------------------------------------------------------------


def test_providers_with_no_keys_says_what_to_set(tmp_path: Path) -> None:
    run = hfs("providers", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 0, run
    assert run.err == ""  # the registry's start-up warnings are not repeated
    for provider in PROVIDERS:
        row = next(line for line in run.out.splitlines() if line.startswith(provider + " "))
        assert f"hfs-provider-{provider}" in row and "no keys" in row
        assert f"NUM_{provider.upper()}=<count>" in run.out and f"{provider.upper()}_API_KEY_1" in run.out


def test_providers_json(tmp_path: Path) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 3}))
    run = hfs("providers", "--json", env=env, cwd=tmp_path)
    assert run.code == 0, run
    data = json.loads(run.out)
    entries = {p["name"]: p for p in data["providers"]}
    assert sorted(entries) == list(PROVIDERS)
    groq = entries["groq"]
    assert groq["distribution"] == "hfs-provider-groq" and groq["version"]
    assert groq["default_model"] == "openai/gpt-oss-120b"
    assert (groq["keys_found"], groq["expected_keys"], groq["healthy"]) == (3, 16, True)
    assert groq["status"] == "ok" and groq["problems"] == [] and "authors run 16 keys" in groq["notes"][0]
    assert entries["gemini"]["status"] == "no keys" and entries["gemini"]["key_variables"][0] == "NUM_GEMINI"
    assert data["failed_plugins"] == [] and data["config"] is None


def test_check_fails_with_empty_environment(tmp_path: Path) -> None:
    run = hfs("check", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 1, run
    assert run.err == ""
    for provider in PROVIDERS:
        assert f"NUM_{provider.upper()} is not set" in run.out
    assert run.out.strip().splitlines()[-1].startswith("FAILED: 4 errors")


def test_check_passes_when_all_configured(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(ALL_EXPECTED_3)
    env = clean_env(tmp_path, provider_env(3))
    run = hfs("check", "--strict", env=env, cwd=tmp_path)
    assert run.code == 0, run.out
    assert "OK: 0 errors, 0 warnings; 4/4 enabled providers healthy" in run.out
    data = json.loads(hfs("check", "--json", env=env, cwd=tmp_path).out)
    assert data["ok"] is True and data["summary"] == {"errors": 0, "warnings": 0, "healthy": 4, "enabled": 4}
    assert data["usage_db"]["reachable"] is True


def test_check_strict_fails_on_a_warning(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(ALL_EXPECTED_3.replace("= 3", "= 4"))
    env = clean_env(tmp_path, provider_env(3))  # 3 keys each, but hfs.toml expects 4: warnings
    assert hfs("check", env=env, cwd=tmp_path).code == 0
    strict = hfs("check", "--strict", env=env, cwd=tmp_path)
    assert strict.code == 1 and "FAILED (--strict: warnings fail)" in strict.out
    data = json.loads(hfs("check", "--strict", "--json", env=env, cwd=tmp_path).out)
    assert data["ok"] is False and data["exit_code"] == 1 and data["summary"]["warnings"] == 4


def test_check_disabled_provider_does_not_fail(tmp_path: Path) -> None:
    toml = "".join(f"[providers.{p}]\nexpected_keys = 3\n" + ("enabled = false\n" if p == "gemini" else "")
                   for p in PROVIDERS)
    (tmp_path / "hfs.toml").write_text(toml)
    env = clean_env(tmp_path, provider_env({"groq": 3, "cerebras": 3, "openrouter": 3}))
    run = hfs("check", env=env, cwd=tmp_path)
    assert run.code == 0, run.out
    assert "disabled" in run.out and "3/3 enabled providers healthy" in run.out


@pytest.fixture
def broken_plugin(tmp_path: Path) -> Path:
    """A directory for PYTHONPATH holding an installed plugin whose module raises on import."""
    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hfs.providers]\nbroken = broken_plugin_mod\n")
    (site / "broken_plugin_mod.py").write_text("raise RuntimeError('the broken plugin fails on import')\n")
    return site


def test_broken_plugin_is_listed_and_fails_check(tmp_path: Path, broken_plugin: Path) -> None:
    (tmp_path / "hfs.toml").write_text(ALL_EXPECTED_3)
    env = clean_env(tmp_path, {**provider_env(3), "PYTHONPATH": str(broken_plugin)})
    run = hfs("providers", env=env, cwd=tmp_path)
    assert run.code == 0, run
    row = next(line for line in run.out.splitlines() if line.startswith("broken "))
    assert "broken-plugin 0.1" in row and "failed" in row and "the broken plugin fails on import" in row
    for provider in PROVIDERS:
        assert re.search(rf"^{provider} .*hfs-provider-{provider}.* ok", run.out, re.MULTILINE), run.out
    assert re.search(r"^groq .*register_provider, validate_env", run.out, re.MULTILINE), run.out
    data = json.loads(hfs("providers", "--json", env=env, cwd=tmp_path).out)
    assert next(p for p in data["providers"] if p["name"] == "groq")["hooks"] == ["register_provider", "validate_env"]
    assert [p["name"] for p in data["failed_plugins"]] == ["broken"]
    assert "RuntimeError: the broken plugin fails on import" in data["failed_plugins"][0]["error"]
    assert len(data["providers"]) == 4
    check = hfs("check", env=env, cwd=tmp_path)
    assert check.code == 1 and "plugin broken" in check.out and "pip uninstall broken-plugin" in check.out
    assert "FAILED: 1 error, 0 warnings; 4/4" in check.out


def test_malformed_config(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text("[providers.groq]\nexpected_keys = 'many'\n")
    env = clean_env(tmp_path, provider_env(3))
    check = hfs("check", env=env, cwd=tmp_path)
    assert check.code == 1 and "hfs.toml" in check.out and "expected_keys must be a whole number" in check.out
    providers = hfs("providers", env=env, cwd=tmp_path)
    assert providers.code == 0 and "expected_keys must be a whole number" in providers.out
    one_line_error(hfs("models", "groq", env=env, cwd=tmp_path))


@pytest.mark.slow
def test_check_reports_unreachable_database_without_its_password(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(ALL_EXPECTED_3)
    url = "mysql+pymysql://hfsuser:s3cret-Passw0rd@127.0.0.1:1/usage"
    env = clean_env(tmp_path, provider_env(3, db_url=url))
    run = hfs("check", env=env, cwd=tmp_path, timeout=60)
    assert run.code == 1, run.out
    assert "s3cret-Passw0rd" not in run.out + run.err
    assert "mysql+pymysql://hfsuser:***@127.0.0.1:1/usage" in run.out and "unreachable" in run.out
    data = json.loads(hfs("check", "--json", env=env, cwd=tmp_path).out)
    assert data["usage_db"]["reachable"] is False and data["usage_db"]["source"] == "TIDB_DB_URL"
    assert hfs("check", "--skip-db", env=env, cwd=tmp_path).code == 0


# -- models ------------------------------------------------------------------------------------


def test_models_groq_marks_the_default(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    run = hfs("models", "groq", env=env, cwd=tmp_path)
    assert run.code == 0, run
    line = next(line for line in run.out.splitlines() if "openai/gpt-oss-120b" in line)
    assert line.startswith("*") and line.rstrip().endswith("plugin; keycycle: rph tph")
    assert re.search(r"openai/gpt-oss-120b\s+\d+\s+[\d,]+\s+[\d,]+", line)
    data = json.loads(hfs("models", "groq", "--json", env=env, cwd=tmp_path).out)
    assert data["default_model"] == "openai/gpt-oss-120b" and data["default_known"] is True
    default = [m for m in data["models"] if m["default"]]
    assert [m["model"] for m in default] == ["openai/gpt-oss-120b"]
    assert default[0]["limits"]["rpm"] == {"value": 30, "source": "plugin"}
    assert data["plugin_table"]["source"] == "https://console.groq.com/docs/rate-limits"
    every = json.loads(hfs("models", "--json", env=env, cwd=tmp_path).out)
    assert sorted(p["provider"] for p in every["providers"]) == list(PROVIDERS)


def test_models_json_names_each_limits_source(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text('[providers.groq.models."openai/gpt-oss-120b"]\nrpm = 3\n'
                                       '[providers.groq.models."my/own-model"]\ntpm = 100\n')
    data = json.loads(hfs("models", "groq", "--json", env=clean_env(tmp_path), cwd=tmp_path).out)
    models = {m["model"]: m for m in data["models"]}
    limits = models["openai/gpt-oss-120b"]["limits"]
    assert {name: limit["source"] for name, limit in limits.items()} == {
        "rpm": "config", "rph": "keycycle", "rpd": "plugin", "tpm": "plugin", "tph": "keycycle", "tpd": "plugin"}
    assert limits["rpm"]["value"] == 3 and limits["tpm"]["value"] == 8000
    own = models["my/own-model"]
    assert own["known"] is False and own["learned"] is None
    assert own["limits"] == {"rpm": {"value": 5, "source": "default"}, "rph": {"value": 100, "source": "default"},
                             "rpd": {"value": 100, "source": "default"}, "tpm": {"value": 100, "source": "config"},
                             "tph": {"value": None, "source": None}, "tpd": {"value": None, "source": None}}
    assert models["whisper-large-v3"]["limits"]["rpm"] == {"value": 20, "source": "keycycle"}
    assert data["default_limits"] == {"rpm": 5, "rph": 100, "rpd": 100}


def test_models_flags_an_unknown_configured_default(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text("[providers.groq]\ndefault_model = 'groq/not-a-model'\n")
    env = clean_env(tmp_path)
    run = hfs("models", "groq", env=env, cwd=tmp_path)
    assert run.code == 0 and "'groq/not-a-model'" in run.out and "is in no limit table" in run.out
    data = json.loads(hfs("models", "groq", "--json", env=env, cwd=tmp_path).out)
    assert data["default_known"] is False
    [shown] = [m for m in data["models"] if m["default"]]
    assert shown["model"] == "groq/not-a-model" and shown["limits"]["rpm"] == {"value": 5, "source": "default"}


def test_check_says_the_default_applies_to_a_model_no_table_knows(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text("[providers.groq]\ndefault_model = 'groq/not-a-model'\n")
    env = clean_env(tmp_path, {**provider_env({"groq": 16}), "HFS_PLUGINS": "groq"})
    run = hfs("check", "--skip-db", env=env, cwd=tmp_path)
    assert run.code == 0, run.out
    data = json.loads(hfs("check", "--skip-db", "--json", env=env, cwd=tmp_path).out)
    [found] = [f for f in data["findings"] if "groq/not-a-model" in f["message"] and f["severity"] == "warning"]
    assert found["scope"] == "groq"
    assert "in no limit table" in found["message"] and "conservative default of 5 requests a minute" in found["message"]
    assert '[providers.groq.models."groq/not-a-model"]' in found["hint"]


def test_models_unknown_provider(tmp_path: Path) -> None:
    run = hfs("models", "nosuch", env=clean_env(tmp_path), cwd=tmp_path)
    one_line_error(run)
    assert "nosuch" in run.err and "hfs providers" in run.err


# -- ask ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ask_streams_the_answer_and_records_usage(tmp_path: Path, standin: StandIn, sqlite_url: str) -> None:
    keys = provider_env({"groq": 2}, db_url=sqlite_url)
    env = clean_env(tmp_path, keys, drop=["AGNO_TELEMETRY"])
    run = hfs("ask", "-p", "groq", "--base-url", standin.url, "hello there", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert run.out == "stand-in reply: hello there\n"
    assert run.err == ""  # no library logs without -v
    assert standin.accepted == 1 and standin.stats()["streams"] == 1
    usage = hfs("usage", env=env, cwd=tmp_path)
    assert usage.code == 0, usage.err
    assert re.search(r"^groq\s+1\s+\d+", usage.out, re.MULTILINE), usage.out
    assert "openai/gpt-oss-120b" in usage.out
    used = next(k for k in keys_of(env, "groq") if f"…{k[-4:]}" in usage.out)
    variable = next(v for v, k in env.items() if k == used)
    assert re.search(rf"…{re.escape(used[-4:])}\s+{variable}\s+1", usage.out)
    data = json.loads(hfs("usage", "--json", env=env, cwd=tmp_path).out)
    assert data["status"] == "ok" and data["total"]["requests"] == 1
    assert data["database"] == sqlite_url
    (groq,) = data["providers"]
    assert groq["keys"] == [{"key": "…" + used[-4:], "variable": variable, "requests": 1,
                             "tokens": groq["tokens"]}]
    last = datetime.datetime.fromisoformat(groq["last"].replace("Z", "+00:00"))  # ISO 8601, UTC
    assert groq["last"].endswith("Z") and abs(time.time() - last.timestamp()) < 600


@pytest.mark.slow
def test_ask_without_streaming_uses_the_sqlite_default(tmp_path: Path, standin: StandIn) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    run = hfs("ask", "-p", "groq", "--no-stream", "--base-url", standin.url, "plain", "words", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert run.out == "stand-in reply: plain words\n" and standin.stats()["streams"] == 0
    assert (tmp_path / "data" / "hfs-providers" / "usage.sqlite3").is_file()
    data = json.loads(hfs("usage", "--json", "--provider", "groq", env=env, cwd=tmp_path).out)
    assert data["total"]["requests"] == 1 and data["database"].endswith("hfs-providers/usage.sqlite3")


@pytest.mark.slow
def test_ask_reads_the_prompt_from_stdin_on_the_first_available_provider(tmp_path: Path, standin: StandIn) -> None:
    env = clean_env(tmp_path, provider_env({"gemini": 2}))
    run = hfs("ask", "--base-url", standin.url, "-", env=env, cwd=tmp_path, stdin="from a pipe\n")
    assert run.code == 0, run.err
    assert run.out == "stand-in reply: from a pipe\n"
    assert any("generatecontent" in route.lower() for route in standin.stats()["by_route"])


def test_ask_on_a_provider_without_keys(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    run = hfs("ask", "-p", "groq", "hi", env=env, cwd=tmp_path)
    one_line_error(run)
    assert "NUM_GROQ" in run.err and "hfs check" in run.err
    debug = hfs("ask", "--debug", "-p", "groq", "hi", env=env, cwd=tmp_path)
    assert debug.code == 1 and "Traceback (most recent call last)" in debug.err
    assert "ProviderUnavailableError" in debug.err
    from_env = hfs("ask", "-p", "groq", "hi", env={**env, "HFS_DEBUG": "1"}, cwd=tmp_path)
    assert from_env.code == 1 and "Traceback (most recent call last)" in from_env.err
    nothing = hfs("ask", "hi", env=env, cwd=tmp_path)
    one_line_error(nothing)
    assert "no provider has usable keys" in nothing.err


@pytest.mark.slow
def test_ask_says_it_waits_for_a_key(tmp_path: Path, standin: StandIn, sqlite_url: str) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}, db_url=sqlite_url))
    # Long enough to outlast the start-up (agno's imports take seconds on a busy machine).
    fill_token_windows(tmp_path / "usage.sqlite3", env, "groq", "openai/gpt-oss-120b", free_in=15.0)
    run = hfs("ask", "-p", "groq", "--base-url", standin.url, "patience", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert run.out == "stand-in reply: patience\n"
    # One notice per call, logged by the pool on hfs_core.pool at INFO and shown by `hfs ask`.
    notice = r"^hfs: groq/openai/gpt-oss-120b: no key free; waiting up to [\d.]+s \(the next key frees in [\d.]+s\)$"
    assert len(re.findall(notice, run.err, re.MULTILINE)) == 1, run.err
    assert run.seconds >= 10


@pytest.mark.slow
def test_ask_with_a_tiny_wait_budget_fails_at_once(tmp_path: Path, standin: StandIn, sqlite_url: str) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}, db_url=sqlite_url))
    fill_token_windows(tmp_path / "usage.sqlite3", env, "groq", "openai/gpt-oss-120b", free_in=50.0)
    run = hfs("ask", "-p", "groq", "--timeout", "0.5", "--base-url", standin.url, "hurry", env=env, cwd=tmp_path)
    one_line_error(run)
    assert "groq" in run.err and "no key free" in run.err and "--timeout" in run.err
    assert standin.total == 0


@pytest.mark.slow
def test_ask_reports_rate_limits_on_stderr(tmp_path: Path, standin: StandIn) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    standin.fail_next(2, status=429, retry_after=0.5)
    run = hfs("ask", "-p", "groq", "--base-url", standin.url, "again", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert run.out == "stand-in reply: again\n"
    assert run.err.count("answered 429: per-minute limit") == 2 and "GROQ_API_KEY_" in run.err


@pytest.mark.slow
def test_ask_provider_error_is_one_line(tmp_path: Path, standin: StandIn) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    standin.fail_for(60, status=400, message="model does not exist")
    run = hfs("ask", "-m", "groq:no/such-model", "--base-url", standin.url, "x", env=env, cwd=tmp_path)
    one_line_error(run)
    assert "groq/no/such-model: model does not exist" in run.err
    assert "hfs: warning: groq: model 'no/such-model' is in no limit table" in run.err
    assert run.out == ""


@pytest.mark.slow
def test_ask_unreachable_provider_is_one_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    run = hfs("ask", "-p", "groq", "--timeout", "2", "--base-url", "http://127.0.0.1:1", "x", env=env, cwd=tmp_path)
    one_line_error(run)
    assert "cannot be reached" in run.err and run.out == ""


@pytest.mark.slow
def test_ask_verbose_shows_library_logs(tmp_path: Path, standin: StandIn) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    run = hfs("ask", "-v", "-p", "groq", "--base-url", standin.url, "loud", env=env, cwd=tmp_path)
    assert run.code == 0 and run.out == "stand-in reply: loud\n"
    assert "HTTP Request: POST" in run.err  # httpx at INFO


# -- tiers -----------------------------------------------------------------------------------

TIERS_TOML = """[tiers.fast]
models = ["groq:openai/gpt-oss-20b", "gorq:x", "cerebras", "gemini:gemini-2.5-fast"]

[tiers.spare]
models = ["cerebras", "openrouter"]
"""


@pytest.mark.slow
def test_ask_with_a_tier_answers_from_the_first_entry_that_can_serve(tmp_path: Path, standin: StandIn) -> None:
    (tmp_path / "hfs.toml").write_text(TIERS_TOML)
    env = clean_env(tmp_path, provider_env({"groq": 2, "gemini": 1}))
    for stream in ([], ["--no-stream"]):
        run = hfs("ask", "-t", "fast", *stream, "--base-url", standin.url, "hello", env=env, cwd=tmp_path)
        assert run.code == 0, run.err
        assert run.out == "stand-in reply: hello\n"
        assert run.err.splitlines()[-1] == "hfs: tier fast: answered by groq/openai/gpt-oss-20b", run.err
    for key in keys_of(env, "groq"):
        standin.set_key(key, 401)
    moved = hfs("ask", "-t", "fast", "--base-url", standin.url, "again", env=env, cwd=tmp_path)
    assert moved.code == 0 and moved.out == "stand-in reply: again\n", moved.err
    assert "hfs: tier fast: gemini/gemini-2.5-fast takes the call (groq/openai/gpt-oss-20b: all keys dead)" \
        in moved.err
    assert moved.err.splitlines()[-1] == "hfs: tier fast: answered by gemini/gemini-2.5-fast"
    unknown = hfs("ask", "-t", "slow", "hi", env=env, cwd=tmp_path)
    one_line_error(unknown)
    assert f"no tier 'slow'; tiers: fast, spare ({tmp_path / 'hfs.toml'})" in unknown.err
    empty = hfs("ask", "-t", "spare", "hi", env=env, cwd=tmp_path)
    one_line_error(empty)
    assert "tier 'spare'" in empty.err and "has no entry that can serve calls" in empty.err


def test_providers_lists_the_tiers_and_their_entries(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(TIERS_TOML)
    env = clean_env(tmp_path, provider_env({"groq": 2, "gemini": 1}))
    run = hfs("providers", env=env, cwd=tmp_path)
    assert run.code == 0, run
    assert f"Tiers ({tmp_path / 'hfs.toml'}), each entry in order of preference:" in run.out
    rows = [line.split() for line in run.out.splitlines()]
    assert ["fast", "1", "groq:openai/gpt-oss-20b", "ok"] in rows
    assert ["2", "gorq:x", "unusable", "unknown", "provider", "'gorq'"] in rows
    note = "no limit table knows the model: the conservative default applies"
    assert ["4", "gemini:gemini-2.5-fast", "ok", *note.split(" ")] in rows
    assert f"{tmp_path / 'hfs.toml'} [tiers.fast] entry 2 gorq:x: unknown provider 'gorq'" in run.out
    data = json.loads(hfs("providers", "--json", env=env, cwd=tmp_path).out)
    fast, spare = data["tiers"]
    assert (fast["name"], fast["source"], spare["name"]) == ("fast", str(tmp_path / "hfs.toml"), "spare")
    assert [(e["entry"], e["usable"], e["known_model"]) for e in fast["entries"]] == [
        ("groq:openai/gpt-oss-20b", True, True), ("gorq:x", False, None), ("cerebras", False, None),
        ("gemini:gemini-2.5-fast", True, False)]
    assert "NUM_CEREBRAS is not set" in fast["entries"][2]["problem"]
    (tmp_path / "none.toml").write_text("")
    env_without = clean_env(tmp_path, {**provider_env({"groq": 1}), "HFS_CONFIG": str(tmp_path / "none.toml")})
    default = json.loads(hfs("providers", "--json", env=env_without, cwd=tmp_path).out)
    assert [t["name"] for t in default["tiers"]] == ["reasoning", "general", "fast"]
    assert {t["source"] for t in default["tiers"]} == {"default"}
    assert [e["entry"] for e in default["tiers"][0]["entries"]] == [
        "cerebras:gpt-oss-120b", "groq:openai/gpt-oss-120b", "openrouter:openai/gpt-oss-120b:free",
        "gemini:gemini-2.5-flash", "groq:qwen/qwen3-32b", "openrouter:nvidia/nemotron-3-super-120b-a12b:free"]


def test_check_reports_a_tier_problem_naming_the_file_and_the_tier(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(TIERS_TOML + '\n[tiers.loaded]\nmodels = ["openrouter:x", "groq"]\n')
    env = clean_env(tmp_path, {**provider_env({"groq": 2, "gemini": 1, "openrouter": 1}), "HFS_PLUGINS": "groq,gemini"})
    run = hfs("check", "--skip-db", env=env, cwd=tmp_path)
    assert run.code == 1, run.out
    where = f"{tmp_path / 'hfs.toml'} [tiers."
    lines = {line.split(where, 1)[1] for line in run.out.splitlines() if where in line}
    assert "fast] entry 2 gorq:x: unknown provider 'gorq'; available: gemini, groq; tiers: fast, spare, loaded; " \
           "did you mean 'groq'?" in lines
    assert any(line.startswith("loaded] entry 1 openrouter:x: unknown provider 'openrouter'") and
               "it is installed but not loaded: add it to HFS_PLUGINS" in line for line in lines)
    assert "fast] entry 4 gemini:gemini-2.5-fast: the model is in no limit table (the gemini plugin's or " \
           "keycycle's), so it is held to the conservative default of 5 requests a minute, 100 an hour, " \
           "100 a day; did you mean 'gemini-2.5-flash'?" in lines
    assert "spare] has no entry that can serve calls" in lines
    assert re.search(r"^  error    tier spare\s", run.out, re.MULTILINE)
    assert re.search(r"^  ok       tier fast\s+2 of 4 entries can serve calls", run.out, re.MULTILINE)
    data = json.loads(hfs("check", "--skip-db", "--json", env=env, cwd=tmp_path).out)
    scopes = {(f["scope"], f["severity"]) for f in data["findings"]}
    assert {("tier fast", "error"), ("tier fast", "warning"), ("tier loaded", "warning"), ("tier spare", "error")
            } <= scopes  # gorq names no installed provider; openrouter is installed, not loaded


# -- usage -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_usage_summarises_rows(tmp_path: Path) -> None:
    env_keys = provider_env({"groq": 2, "gemini": 1})
    g1, g2 = keys_of(env_keys, "groq")
    (m1,) = keys_of(env_keys, "gemini")
    stranger = fake_key("groq")
    now = time.time()
    rows: list[tuple[str, str, str, float, int]] = [
        ("groq", "openai/gpt-oss-120b", g1[-8:], now - 60, 100),
        ("groq", "openai/gpt-oss-120b", g1[-8:], now - 120, 50),
        ("groq", "openai/gpt-oss-20b", g2[-8:], now - 3600, 10),
        ("groq", "openai/gpt-oss-20b", stranger[-8:], now - 300, 5),
        ("gemini", "gemini-2.5-flash", m1[-8:], now - 30, 7),
        ("gemini", "gemini-2.5-flash", m1[-8:], now - 3 * 86400, 1000),
    ]
    url = usage_db(tmp_path / "rows.sqlite3", rows)
    env = clean_env(tmp_path, {**env_keys, "TIDB_DB_URL": url})
    run = hfs("usage", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert re.search(r"^gemini\s+1\s+7\b", run.out, re.MULTILINE), run.out
    assert re.search(r"^groq\s+4\s+165\b", run.out, re.MULTILINE)
    assert re.search(r"^total\s+5\s+172\b", run.out, re.MULTILINE)
    assert re.search(rf"…{re.escape(g1[-4:])}\s+GROQ_API_KEY_1\s+2\s+150", run.out)
    assert re.search(rf"…{re.escape(stranger[-4:])}\s+-\s+1\s+5", run.out)
    assert re.search(r"openai/gpt-oss-20b\s+2\s+15", run.out)
    week = json.loads(hfs("usage", "--since", "7d", "--json", env=env, cwd=tmp_path).out)
    assert week["total"] == {"requests": 6, "tokens": 1172}
    recent = json.loads(hfs("usage", "--since", "30m", "--provider", "groq", "--json", env=env, cwd=tmp_path).out)
    assert [p["provider"] for p in recent["providers"]] == ["groq"] and recent["total"]["requests"] == 3
    assert all(len(k["key"]) == 5 for k in recent["providers"][0]["keys"])  # "…" and 4 characters
    old = hfs("usage", "--since", "10s", "--provider", "gemini", env=env, cwd=tmp_path)
    assert old.code == 0 and "No usage for gemini in the last 10s" in old.out


@pytest.mark.slow
@pytest.mark.parametrize("state", ["missing", "no_table", "empty"])
def test_usage_without_data(tmp_path: Path, state: str) -> None:
    path = tmp_path / "usage.sqlite3"
    if state != "missing":
        usage_db(path, table=state == "empty")
    env = clean_env(tmp_path, {"TIDB_DB_URL": f"sqlite:///{path}"})
    run = hfs("usage", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "no usage recorded yet" in run.out.lower()
    assert path.exists() == (state != "missing")  # reading never creates the database
    data = json.loads(hfs("usage", "--json", env=env, cwd=tmp_path).out)
    assert data["status"] == {"missing": "no_database", "no_table": "no_table", "empty": "no_data"}[state]
    assert data["providers"] == []


def test_usage_with_the_default_database_missing(tmp_path: Path) -> None:
    run = hfs("usage", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 0 and "no usage recorded yet" in run.out.lower()
    assert "hfs-providers/usage.sqlite3" in run.out


def test_usage_unreadable_database_is_one_line(tmp_path: Path) -> None:
    env = clean_env(tmp_path, {"TIDB_DB_URL": "mysql+pymysql://u:topsecretpw@127.0.0.1:1/db"})
    run = hfs("usage", env=env, cwd=tmp_path, timeout=60)
    one_line_error(run)
    assert "topsecretpw" not in run.err and "u:***@127.0.0.1" in run.err


@pytest.mark.slow
@pytest.mark.parametrize("stream", [True, False])
def test_ask_with_an_empty_answer_is_an_error(tmp_path: Path, standin: StandIn, stream: bool) -> None:
    standin.reply = ""
    env = clean_env(tmp_path, provider_env({"groq": 1}))
    run = hfs("ask", "-p", "groq", "--base-url", standin.url, *([] if stream else ["--no-stream"]), "hi",
              env=env, cwd=tmp_path)
    assert run.code == 1 and run.out == "", run
    assert "answered, but" in run.err and "hint:" in run.err


# ---------------------------------------------------------------------- demo


@pytest.mark.slow
def test_demo_shows_the_pool_at_work_without_keys(tmp_path: Path) -> None:
    """`hfs demo`, on a machine with no keys: an agent with a tool answers every run while the
    calls spread over four throwaway keys, a 429 is absorbed and a 401 retires a key; the summary
    agrees with what the runs showed, and no key is shown past its last 4 characters."""
    run = hfs("demo", env=clean_env(tmp_path), cwd=tmp_path)
    assert run.code == 0, run.err
    keys = re.findall(r"throwaway groq keys: ((?:…\w{4} ?){4})$", run.out, flags=re.MULTILINE)
    assert keys, run.out
    suffixes = [k.lstrip("…") for k in keys[0].split()]
    runs = re.findall(r"^  run +(\d+)  (.*?)   requests: (.*)$", run.out, flags=re.MULTILINE)
    assert len(runs) >= 6 and all(answer.endswith("[add -> 5]") for _, answer, _ in runs), run.out
    requests = [r.split() for _, _, line in runs for r in line.split(", ")]
    assert {key.lstrip("…") for key, _ in requests} == set(suffixes)  # every key served
    spread = [key for _, _, line in runs[:4] for key, status in (r.split() for r in line.split(", "))]
    assert len(set(spread)) >= 3, run.out  # the first runs already use most keys
    limited = [key for key, status in requests if status == "429"]
    revoked = [key for key, status in requests if status == "401"]
    assert len(limited) == 1 and len(revoked) == 1 and limited != revoked, run.out  # each met once
    assert f"{limited[0]} is cooling for 30 s" in run.out and f"{revoked[0]} answered 401 once" in run.out
    summary = {row.split()[0]: row.split() for row in run.out.splitlines() if re.match(r"…\w{4} +\d", row)}
    assert set(summary) == {f"…{s}" for s in suffixes}
    assert summary[limited[0]][3] == "1" and summary[revoked[0]][4] == "1"
    assert sum(int(row[1]) for row in summary.values()) == len(requests)
    assert f"{len(runs)} of {len(runs)} agent runs answered; 2 upstream errors absorbed by the pool, 0 reached " \
           "the agent. Pool: 4 keys, 1 retired, 1 cooling." in run.out
    assert not re.search(r"gsk_\w{8}", run.out + run.err)  # no key past its last 4 characters



# ---------------------------------------------------------------------- a terminal


def on_a_terminal(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run ``hfs ARGS`` with stdout and stderr on a pseudo-terminal; its exit status and all it wrote."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([*HFS, *args], env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout), b"".join(chunks).decode(errors="replace")


@pytest.fixture
def slow_database() -> Iterable[str]:
    """A MySQL URL whose server accepts connections and answers nothing for 2 s, then hangs up."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            stop.wait(2.0)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"mysql+pymysql://hfs:s3cretpass@127.0.0.1:{server.getsockname()[1]}/usage"
    stop.set()
    thread.join(timeout=5)
    server.close()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check", "usage"])
def test_a_spinner_shows_on_a_terminal_while_a_slow_database_answers(tmp_path: Path, slow_database: str,
                                                                    command: str) -> None:
    env = clean_env(tmp_path, {"HFS_USAGE_DB_URL": slow_database, **provider_env(1)})
    doing = "probing" if command == "check" else "reading"
    code, screen = on_a_terminal(command, env=env, cwd=tmp_path)
    assert code == 1, screen  # the database hung up: an error either way
    assert f"{doing} the usage database mysql+pymysql://hfs:***@127.0.0.1" in screen, screen
    assert "s3cretpass" not in screen
    piped = hfs(command, env=env, cwd=tmp_path)
    assert piped.code == 1 and doing not in piped.out + piped.err  # never in a pipe
    code, screen = on_a_terminal(command, "--json", env=env, cwd=tmp_path)
    assert doing not in screen and "s3cretpass" not in screen  # nor around JSON
