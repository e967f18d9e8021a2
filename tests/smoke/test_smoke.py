"""Smoke suite: what a user gets from installing the wheels, against the stand-in on 127.0.0.1.

For each of the four plugins a plain, a streamed, an async call and a tool loop through an Agno
Agent; the tutorial plugin of docs/plugins.md passing its own check; ``hfs providers`` and ``hfs check``
run as commands. It runs in the locked workspace (with the rest of ``uv run pytest``) and in the fresh
virtual environments of ``.ci/fresh`` (the newest and the lowest versions our wheels allow), so it is
self-contained: it needs only pytest, pytest-asyncio, pytest-timeout and the wheels, never
tests/conftest.py. ``SMOKE_FROM_WHEELS=1`` (set by ``.ci/fresh``) says the wheels, and the tutorial
plugin's, are installed: the tests then check that they are what is imported.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agno.agent import Agent
from tutorial_page import write_tutorial

from hfs_core import Registry
from hfs_core.testing.standin import StandIn, ToolResult

PROVIDERS = ("cerebras", "gemini", "groq", "openrouter")
FROM_WHEELS = os.environ.get("SMOKE_FROM_WHEELS") == "1"
ROOT = Path(__file__).resolve().parents[2]
HFS = Path(sys.executable).parent / ("hfs.exe" if os.name == "nt" else "hfs")
#: How each provider's keys start and what follows: keys of the real shape, never "..." (refused).
KEY_SHAPES = {"groq": ("gsk_", 52), "cerebras": ("csk-", 48), "gemini": ("AIza", 35), "openrouter": ("sk-or-v1-", 64)}

pytestmark = pytest.mark.timeout(240)


def keys_env(*providers: str, count: int = 3) -> dict[str, str]:
    """NUM_<P> and <P>_API_KEY_<i> with random keys of each provider's real shape."""
    env: dict[str, str] = {}
    for provider in providers:
        prefix, length = KEY_SHAPES[provider]
        env[f"NUM_{provider.upper()}"] = str(count)
        for index in range(1, count + 1):
            tail = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(length))
            env[f"{provider.upper()}_API_KEY_{index}"] = prefix + tail
    return env


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in its own directory and data dir, with no keys or hfs settings from the real environment."""
    for var in list(os.environ):
        if var.startswith(("NUM_", "HFS_")) or "_API_KEY" in var or var == "TIDB_DB_URL":
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("AGNO_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def model(provider: str, standin: StandIn, tmp_path: Path) -> Iterator[Any]:
    """A rotating model over three keys of `provider`, its SDK pointed at the stand-in, usage in SQLite."""
    env = {**keys_env(provider), "TIDB_DB_URL": f"sqlite:///{tmp_path / 'usage.sqlite3'}"}
    registry = Registry(env=env, plugins=[provider])
    yield registry.get_model(provider, base_url=standin.url)
    registry.shutdown()


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def test_plain_call(model: Any, standin: StandIn) -> None:
    assert Agent(model=model, telemetry=False).run("hi").content == "stand-in reply: hi"
    assert standin.accepted == 1


def test_streamed_call(model: Any, standin: StandIn) -> None:
    events = Agent(model=model, telemetry=False).run("hi", stream=True)
    text = "".join(str(e.content) for e in events if getattr(e, "event", "") == "RunContent" and e.content)
    assert text == "stand-in reply: hi"
    assert standin.stats()["streams"] == 1


async def test_async_call(model: Any, standin: StandIn) -> None:
    out = await Agent(model=model, telemetry=False).arun("hi")
    assert out.content == "stand-in reply: hi"
    assert standin.accepted == 1


def test_tool_loop(model: Any, standin: StandIn) -> None:
    standin.script_tool_call("add", lambda text: dict(zip("ab", map(int, re.findall(r"\d+", text)[:2]), strict=True)))
    out = Agent(model=model, tools=[add], telemetry=False).run("add 20 and 22")
    assert out.content == "stand-in reply: add 20 and 22 [add -> 42]"
    assert standin.tool_results() == [ToolResult("add", "42")] and standin.accepted == 2


def hfs(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``hfs`` command, with three keys for each of the four providers (and only those loaded)."""
    env = {**os.environ, **keys_env(*PROVIDERS), "HFS_PLUGINS": ",".join(PROVIDERS),
           "TIDB_DB_URL": f"sqlite:///{tmp_path / 'usage.sqlite3'}"}
    return subprocess.run([str(HFS), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_hfs_providers_lists_the_four(tmp_path: Path) -> None:
    done = hfs("providers", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    listing = {p["name"]: p for p in json.loads(done.stdout)["providers"]}
    assert set(PROVIDERS) <= set(listing)
    for name in PROVIDERS:
        assert listing[name]["distribution"] == f"hfs-provider-{name}", listing[name]
        assert listing[name]["keys_found"] == 3 and listing[name]["healthy"], listing[name]


def test_hfs_check_passes(tmp_path: Path) -> None:
    done = hfs("check", "--json", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["summary"]["healthy"] == 4 and report["summary"]["errors"] == 0, report["summary"]
    assert report["usage_db"]["url"].startswith("sqlite:///") and report["usage_db"]["reachable"], report["usage_db"]


def test_the_tutorial_plugin_passes_its_check(tmp_path: Path) -> None:
    try:
        import hfs_provider_moonshot  # noqa: F401  (built from docs/plugins.md by .ci/fresh)
    except ImportError:
        if FROM_WHEELS:
            raise
        pytest.skip("the tutorial plugin is not installed here (tests/test_tutorial.py builds it in the workspace)")
    work = tmp_path / "work"
    write_tutorial(work)
    (work / ".git").mkdir()  # the project's root: hfs.toml is looked for here and no higher
    done = subprocess.run([sys.executable, "check_moonshot.py"], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "HFS_PLUGINS": ""}, timeout=200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "moonshot plugin: ok"


@pytest.mark.skipif(not FROM_WHEELS, reason="the workspace imports its sources")
def test_the_wheels_are_what_is_imported() -> None:
    import hfs_core

    names = ["hfs_core", *(f"hfs_provider_{p}" for p in (*PROVIDERS, "moonshot"))]
    found = subprocess.run([sys.executable, "-c", f"import {', '.join(names)}; print({', '.join(names)})"],
                           capture_output=True, text=True, check=True, cwd=Path(sys.prefix)).stdout
    assert str(ROOT) not in found + hfs_core.__file__ and found.count(sys.prefix) == len(names), found
