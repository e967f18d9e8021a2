"""`Registry.status()` and ``hfs status``: every key's state and windows, in this process or the fleet's.

A groq pool of four keys meets the stand-in: one key's recorded 401 retires it, one's per-minute
429 cools it (and teaches a cap), one's per-day 429 keeps it out until its quota resets, one
answers. The view is checked on both states; over Redis, ``hfs status --json`` in another process
shows the same, and ``hfs status --watch`` runs on a pseudo-terminal until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import keys_of, provider_env
from services import REDIS_URL, needs_redis
from test_cli import HFS, clean_env, hfs

import hfs_core
from hfs_core import Registry
from hfs_core.testing.standin import StandIn

GPT = "openai/gpt-oss-20b"
SCENARIOS = {0: "groq.invalid_key", 1: "groq.per_minute_requests", 2: "groq.per_day_requests"}
WAITS = {1: 50.0, 2: 3600.0}
"""The waits the 429s name (Retry-After): long enough for another process to start and see them."""
EXPECTED = {0: "dead", 1: "cooling", 2: "quota", 3: "ready"}


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)




def setting(tmp_path: Path, kind: str, namespace: str) -> dict[str, str]:
    """Four groq keys, the groq plugin only, and for `kind` "redis" the shared state in `namespace`."""
    config = tmp_path / "hfs.toml"
    config.write_text(f'[providers.groq]\ndefault_model = "{GPT}"\n[state]\nnamespace = "{namespace}"\n')
    env = provider_env({"groq": 4}, HFS_PLUGINS="groq", HFS_CONFIG=str(config))
    if kind == "redis":
        env["HFS_STATE_URL"] = REDIS_URL
    return env


def troubles(registry: Registry, standin: StandIn) -> list[str]:
    """Replay a 401, a per-minute and a per-day 429 on keys 1-3 and call until each was hit; the keys."""
    keys = keys_of(registry.env, "groq")
    for index, scenario in SCENARIOS.items():
        standin.replay(keys[index], scenario, wait=WAITS.get(index))
    model = registry.get_model("groq", base_url=standin.url, timeout=10.0)
    for _ in range(60):
        if all(standin.requests_for(keys[i]) for i in SCENARIOS) and standin.requests_for(keys[3]):
            break
        assert model.response(messages=[Message(role="user", content="hi")]).content
    return keys


def settled(registry: Registry, wanted: dict[int, str]) -> dict[str, Any]:
    """`registry.status()` once the keys are in the `wanted` states (a shared state learns in the background)."""
    deadline = time.monotonic() + 20
    while True:
        status = registry.status()
        keys = status["providers"]["groq"]["keys"]
        learned = keys[1]["models"][GPT]["learned"]
        if (all(keys[i]["state"] == s for i, s in wanted.items()) and learned) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def check_view(status: dict[str, Any], keys: list[str], kind: str) -> None:
    text = json.dumps(status)
    assert all(key not in text and key[-8:] not in text for key in keys)  # only the last 4 characters
    assert status["state"]["kind"] == kind
    groq = status["providers"]["groq"]
    assert groq["healthy"] is True and groq["next_free"] is None  # key 4 is ready
    shown = groq["keys"]
    assert [k["key"] for k in shown] == [f"…{key[-4:]}" for key in keys]
    assert [k["state"] for k in shown] == [EXPECTED[i] for i in range(4)]
    assert all(k["group"] is None for k in shown)
    dead, cooling, quota, ready = shown
    assert "401" in dead["reason"] and dead["until"] is None
    assert "429" in cooling["reason"] and quota["reason"]
    now = time.time()
    for key, least, most in ((cooling, 20, 51), (quota, 3000, 3601)):
        left = datetime_of(key["until"]) - now
        assert least <= left <= most, (key, left)
    assert cooling["models"][GPT]["learned"]["rpm"] >= 1  # the 429 came below the table's 30 a minute
    assert ready["models"][GPT]["learned"] is None
    windows = ready["models"][GPT]
    assert windows["used"]["rpm"] >= 1 and windows["used"]["rpd"] >= 1 and windows["limits"]["rpm"] == 30
    assert set(windows["used"]) == set(windows["limits"]) == {"rpm", "rph", "rpd", "tpm", "tph", "tpd"}
    assert dead["models"][GPT]["used"]["rpd"] == 0 and windows["used"]["tpd"] >= 1  # counted, if nothing in them
    assert all(k["in_flight"] == 0 for k in shown)
    assert status["tiers"] and all(e["entry"].startswith("groq:") for t in status["tiers"].values() for e in t)


def datetime_of(text: str) -> float:
    import datetime

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert stamp.utcoffset() == datetime.timedelta(0)
    return stamp.timestamp()


def test_status_after_a_dead_key_a_cooldown_a_quota_and_a_learned_cap(
        kind: str, namespace: str, tmp_path: Path, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    env = setting(tmp_path, kind, namespace)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("hfs_core.process._registry", None)  # a process-wide registry of this setting
    registry = hfs_core.get_registry()
    try:
        keys = troubles(registry, standin)
        check_view(settled(registry, EXPECTED), keys, kind)
        assert hfs_core.status()["providers"]["groq"]["keys"][0]["state"] == "dead"
    finally:
        hfs_core.shutdown()


@needs_redis
def test_hfs_status_in_another_process_shows_the_fleets_keys(namespace: str, tmp_path: Path,
                                                              standin: StandIn) -> None:
    env = setting(tmp_path, "redis", namespace)
    registry = Registry(env=env)
    try:
        keys = troubles(registry, standin)
        settled(registry, EXPECTED)
        run = hfs("status", "--json", env=clean_env(tmp_path, env), cwd=tmp_path)
        assert run.code == 0, run.err
        check_view(json.loads(run.out), keys, "redis")
        table = hfs("status", "-p", "groq", env=clean_env(tmp_path, env), cwd=tmp_path)
        assert table.code == 0, table.err
        lines = [line for line in table.out.splitlines() if line.startswith("groq")]
        assert [line.split()[2] for line in lines] == ["dead", "cooling", "quota", "ready"]
        assert re.search(r"quota\s+(59m|1h00m)", table.out), table.out
    finally:
        registry.shutdown()


@needs_redis
def test_hfs_status_watch_redraws_on_a_terminal_until_ctrl_c(namespace: str, tmp_path: Path,
                                                              standin: StandIn) -> None:
    env = setting(tmp_path, "redis", namespace)
    registry = Registry(env=env)
    try:
        troubles(registry, standin)
        settled(registry, EXPECTED)
    finally:
        registry.shutdown()
    leader, follower = pty.openpty()
    child = subprocess.Popen([*HFS, "status", "--watch"], env={**clean_env(tmp_path, env), "COLUMNS": "160",
                                                                "LINES": "40", "TERM": "xterm"},
                             cwd=tmp_path, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while len(set(re.findall(rb"frame (\d+)", seen))) < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                seen += os.read(leader, 65536)
        assert {b"1", b"2"} <= set(re.findall(rb"frame (\d+)", seen)), seen[-2000:]
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=30)
        while select.select([leader], [], [], 0.2)[0]:
            try:
                seen += os.read(leader, 65536)
            except OSError:
                break
    finally:
        if child.poll() is None:
            child.kill()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "Traceback" not in text and "dead" in text and "quota" in text
    assert all(key not in text for key in keys_of(env, "groq"))
