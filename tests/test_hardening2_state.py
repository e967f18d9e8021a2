"""Hardening, second round (issue 21): the shared state's URL, its credentials, a Redis user the
ACL restricts, the ``[state]`` settings and an idle heartbeat, on the real Redis on 127.0.0.1:6379.

A scenario that needs a Redis without the function library (so that loading it is needed) or
whose command counts must be this test's alone runs a private ``redis-server`` of its own; the
shared one's library is never deleted or changed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import fake_key
from pool_states import RedisStates
from services import REDIS_URL, answers, free_port, needs_redis
from test_shared_state import MODEL, SPEC, ask, registry_on, requests_in_redis

from hfs_core.config import load_config
from hfs_core.errors import ConfigError

pytestmark = needs_redis

LIBRARY = (Path(__file__).parents[1] / "hfs_core" / "pool" / "shared.lua").read_text(encoding="utf-8")


def run_hfs(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_")) and "_API_KEY" not in k}
    return subprocess.run([sys.executable, "-m", "hfs_core.cli", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """One Groq key, only the groq plugin, no usage tracking, and `extra`."""
    config = tmp_path / "hfs.toml"
    if not config.exists():
        config.write_text("track_usage = false\n[providers.groq]\nexpected_keys = 1\n", encoding="utf-8")
    return {"NUM_GROQ": "1", "GROQ_API_KEY_1": fake_key("groq"), "HFS_PLUGINS": "groq", "HFS_CONFIG": str(config),
            "XDG_DATA_HOME": str(tmp_path / "data"), **extra}


def state_findings(tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, str]]]:
    """`hfs check --skip-db --json` with `cli_env`, and its findings about the shared state."""
    done = run_hfs("check", "--skip-db", "--json", env=cli_env(tmp_path, **extra), cwd=tmp_path)
    assert "internal error" not in done.stderr and "--debug" not in done.stderr, done.stderr
    findings = json.loads(done.stdout)["findings"]
    return done, [f for f in findings if f["scope"] == "state" or "STATE" in f["variable"]
                  or "[state]" in f["variable"]]


# ---------------------------------------------------------------------- a private Redis, ACL users


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server of this test's own on 127.0.0.1 (no function library loaded); its port."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is needed (.ci/services installs it in CI)")
    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not answers(("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()


def add_user_who_may_not_load(url: str) -> tuple[str, str]:
    """An ACL user of a unique name on the Redis at `url` that may run every command (FCALL, FCALL_RO
    and what the library calls among them) but FUNCTION LOAD; its name and password."""
    name, password = f"hfs-test-acl-{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    client.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", "&*", "+@all", "-function|load")
    client.close()
    return name, password


def delete_user(url: str, name: str) -> None:
    client = redis.Redis.from_url(url)
    client.execute_command("ACL", "DELUSER", name)
    client.close()


@pytest.fixture
def acl_user() -> Iterator[tuple[str, str]]:
    """A user of the shared Redis who may not run FUNCTION LOAD, the library loaded there first by
    the default user (as an admin would); the user is deleted at the end."""
    client = redis.Redis.from_url(REDIS_URL)
    client.function_load(LIBRARY, replace=True)
    client.close()
    name, password = add_user_who_may_not_load(REDIS_URL)
    yield name, password
    delete_user(REDIS_URL, name)


# ---------------------------------------------------------------------- 1. credentials in the query


def test_1_a_password_or_user_in_the_query_string_is_never_shown(
        tmp_path: Path, standin: Any, namespace: str, make_registry: Any, caplog: pytest.LogCaptureFixture) -> None:
    """redis-py takes ``?password=`` and ``?username=``: `hfs check`, `hfs providers --json` and the
    outage warning hide them as they hide a ``user:password@`` part."""
    user, password = f"user-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    down = f"redis://127.0.0.1:{free_port()}/0?username={user}&password={password}"
    for args in (("check", "--skip-db"), ("check", "--skip-db", "--json"), ("providers", "--json")):
        done = run_hfs(*args, env=cli_env(tmp_path, HFS_STATE_URL=down), cwd=tmp_path)
        text = done.stdout + done.stderr
        assert user not in text and password not in text, (args, text)
        assert "password=***" in text and "username=***" in text, (args, text)
    unix = f"unix:///tmp/{uuid.uuid4().hex}.sock?db=0&password={password}"
    listing = run_hfs("providers", "--json", env=cli_env(tmp_path, HFS_STATE_URL=unix), cwd=tmp_path)
    assert json.loads(listing.stdout)["state"]["url"].endswith("?db=0&password=***"), listing.stdout
    with caplog.at_level(logging.DEBUG):
        registry = registry_on(down, [fake_key("groq")], standin, namespace, tmp_path, make_registry)
        assert ask(registry.get_model("groq")).content
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "does not answer" in text and "password=***" in text
    assert user not in text and password not in text




# ---------------------------------------------------------------------- 2. a user who may not load


def test_2_a_user_who_may_not_load_functions_shares_the_library_an_admin_loaded(
        acl_user: tuple[str, str], tmp_path: Path, standin: Any, namespace: str, make_registry: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    name, password = acl_user
    url = f"redis://{name}:{password}@127.0.0.1:6379/0"
    with caplog.at_level(logging.INFO, logger="hfs_core"):
        registry = registry_on(url, [fake_key("groq") for _ in range(4)], standin, namespace, tmp_path,
                               make_registry)
        model = registry.get_model("groq", timeout=5)
        for _ in range(3):
            assert ask(model).content
        time.sleep(1.5)  # two heartbeats (lease_seconds = 2: one every 0.67 s)
        for _ in range(3):
            assert ask(model).content
        time.sleep(0.2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "hfs_core.pool"]
    assert requests_in_redis(namespace) == 6, warnings  # every call went through Redis
    assert registry.state_info()["up"] is True and not warnings, warnings
    _, [finding] = state_findings(tmp_path, HFS_STATE_URL=url)
    assert finding["severity"] == "ok" and "shared" in finding["message"], finding
    assert password not in json.dumps(finding)


def test_2_a_user_refused_function_load_is_told_so_and_hfs_check_says_the_pools_are_not_shared(
        private_redis: int, tmp_path: Path, standin: Any, make_registry: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    """On a Redis without the library, a user who may not load it: calls are served from the process,
    the log says "permission denied (ACL)" once (not "does not answer"), and `hfs check` fails."""
    admin = f"redis://127.0.0.1:{private_redis}/0"
    name, password = add_user_who_may_not_load(admin)
    url = f"redis://{name}:{password}@127.0.0.1:{private_redis}/0"
    with caplog.at_level(logging.INFO, logger="hfs_core"):
        registry = registry_on(url, [fake_key("groq")], standin, "hfs-test-acl", tmp_path, make_registry)
        for _ in range(3):
            assert ask(registry.get_model("groq")).content
        time.sleep(1.5)  # the link asks again every second: still refused, not said again
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    refused = [w for w in warnings if "permission denied (ACL)" in w]
    assert len(refused) == 1 and "function|load" in refused[0], warnings
    assert not any("does not answer" in w or "answers again" in w for w in warnings), warnings
    assert registry.state_info()["up"] is False and standin.accepted == 3
    done, [finding] = state_findings(tmp_path, HFS_STATE_URL=url)
    assert done.returncode == 1 and finding["severity"] == "error", finding
    assert "not shared" in finding["message"] and "permission denied (ACL)" in finding["message"], finding
    assert "FUNCTION LOAD" in finding["hint"] and password not in done.stdout, finding


# ---------------------------------------------------------------------- 3 and 13. unusable URLs and secret


UNUSABLE_URLS = {
    "port 65536": "redis://127.0.0.1:65536/0",
    "socket_timeout=abc": "redis://127.0.0.1:6379/0?socket_timeout=abc",
    "a 300-character host": f"redis://{'a' * 300}:6379/0",
    "an argument redis-py does not take": "redis://127.0.0.1:6379/0?colour=blue",
    "database abc (13)": "redis://127.0.0.1:6379/abc",
}


@pytest.mark.parametrize("url", UNUSABLE_URLS.values(), ids=UNUSABLE_URLS.keys())
def test_3_an_unusable_state_url_is_a_finding_naming_the_variable_not_a_crash(url: str, tmp_path: Path) -> None:
    done, findings = state_findings(tmp_path, HFS_STATE_URL=url)
    [error] = [f for f in findings if f["severity"] == "error"]
    assert error["variable"] == "HFS_STATE_URL" and "cannot be used" in error["message"], findings
    assert done.returncode == 1 and "a" * 64 not in done.stdout


@pytest.mark.parametrize("url", [UNUSABLE_URLS["port 65536"], UNUSABLE_URLS["database abc (13)"]],
                         ids=["port 65536", "database abc (13)"])
def test_3_an_unusable_state_url_in_the_file_is_a_finding_naming_the_file(url: str, tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(f'track_usage = false\n[providers.groq]\nexpected_keys = 1\n'
                                       f'[state]\nurl = "{url}"\n', encoding="utf-8")
    done, findings = state_findings(tmp_path)
    [error] = [f for f in findings if f["severity"] == "error"]
    assert error["variable"] == f"[state] url in {tmp_path / 'hfs.toml'}", findings
    assert "cannot be used" in error["message"] and done.returncode == 1, findings


def test_13_a_state_secret_that_is_not_text_is_a_finding_of_hfs_check(tmp_path: Path) -> None:
    """A secret holding bytes that are not UTF-8 (os.environ keeps them as surrogates) cannot key the
    hash that names API keys in Redis: `hfs check` says so, without the secret."""
    done, findings = state_findings(tmp_path, HFS_STATE_URL=REDIS_URL, HFS_STATE_SECRET="s3cr\udcffet-value")
    [error] = [f for f in findings if f["variable"] == "HFS_STATE_SECRET"]
    assert error["severity"] == "error" and done.returncode == 1, findings
    assert "s3cr" not in done.stdout and "et-value" not in done.stdout


# ---------------------------------------------------------------------- 8. [state] settings in range


@pytest.mark.parametrize(("setting", "name"), [
    ("lease_seconds = 0.001", "lease_seconds"), ("lease_seconds = 1e9", "lease_seconds"),
    ("timeout = 0.0001", "timeout"), ("timeout = 1e6", "timeout"), ("timeout = nan", "timeout"),
    ("lease_seconds = 1.0\ntimeout = 1.0", "lease_seconds")])
def test_8_state_settings_out_of_range_are_errors_naming_the_file(setting: str, name: str, tmp_path: Path) -> None:
    path = tmp_path / "hfs.toml"
    path.write_text(f'[state]\nurl = "{REDIS_URL}"\n{setting}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(env={"HFS_CONFIG": str(path)})
    assert str(path) in str(caught.value) and f"[state] {name} must be" in str(caught.value), caught.value


def test_8_hfs_check_refuses_a_lease_of_a_millisecond(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text(f'track_usage = false\n[state]\nurl = "{REDIS_URL}"\nlease_seconds = 0.001\n',
                                       encoding="utf-8")
    done = run_hfs("check", "--skip-db", env=cli_env(tmp_path), cwd=tmp_path)
    assert done.returncode == 1 and "lease_seconds must be" in done.stdout and str(tmp_path) in done.stdout


def test_8_an_idle_link_loads_the_library_once_and_beats_at_its_pace(private_redis: int) -> None:
    """With the shortest lease allowed (1 s: a heartbeat every 1/3 s), three idle seconds cost one
    FUNCTION LOAD and about one FCALL a heartbeat, not a load and a call in a tight loop."""
    url = f"redis://127.0.0.1:{private_redis}/0"
    states = RedisStates(SPEC, MODEL, url=url, lease_seconds=1.0)
    try:
        link = states.link()
        state = states([fake_key("groq")], link)
        time.sleep(0.5)  # connected, the first heartbeat made
        before = command_counts(url)
        idle = 3.0
        time.sleep(idle)
        after = command_counts(url)
        beats = idle / (link.lease_seconds / 3)
        assert after.get("function|load", 0) == 1, after  # at start only
        assert after.get("fcall", 0) - before.get("fcall", 0) <= beats + 2, (before, after)
        assert link.up, state
    finally:
        states.close()


def command_counts(url: str) -> dict[str, int]:
    """How many times each command ran on the Redis at `url` (this client's INFO not counted)."""
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
