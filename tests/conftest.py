"""Shared fixtures: an isolated environment, fake keys, the provider stand-in, registries."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import string
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

os.environ["AGNO_TELEMETRY"] = "false"  # Agno would otherwise report runs over the internet

from services import redis_namespace

from hfs_core import Registry
from hfs_core.testing.standin import StandIn

PROVIDERS = ("cerebras", "gemini", "groq", "openrouter")
_ALNUM = string.ascii_letters + string.digits


def fake_key(provider: str) -> str:
    """A random key with the real shape of `provider`'s keys."""
    pick = secrets.SystemRandom().choice
    if provider == "groq":
        return "gsk_" + "".join(pick(_ALNUM) for _ in range(52))
    if provider == "cerebras":
        return "csk-" + "".join(pick(string.ascii_lowercase + string.digits) for _ in range(48))
    if provider == "gemini":
        return "AIza" + "".join(pick(_ALNUM + "_-") for _ in range(35))
    if provider == "openrouter":
        return "sk-or-v1-" + secrets.token_hex(32)
    return "key-" + secrets.token_hex(20)


def provider_env(
    counts: Mapping[str, int] | int = 3, *, db_url: str | None = None, **extra: str
) -> dict[str, str]:
    """NUM_<P> and <P>_API_KEY_<i> for each provider (3 keys each by default)."""
    wanted = dict.fromkeys(PROVIDERS, counts) if isinstance(counts, int) else dict(counts)
    env: dict[str, str] = {}
    for provider, count in wanted.items():
        env[f"NUM_{provider.upper()}"] = str(count)
        for index in range(1, count + 1):
            env[f"{provider.upper()}_API_KEY_{index}"] = fake_key(provider)
    if db_url is not None:
        env["TIDB_DB_URL"] = db_url
    env.update(extra)
    return env


def keys_of(env: Mapping[str, str], provider: str) -> list[str]:
    """The keys `provider_env` made for `provider`, in index order."""
    count = int(env[f"NUM_{provider.upper()}"])
    return [env[f"{provider.upper()}_API_KEY_{i}"] for i in range(1, count + 1)]


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh namespace of the shared Redis, deleted at the end."""
    with redis_namespace() as name:
        yield name


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test in its own directory, with its own data and cache dirs and no keys from the real environment."""
    for var in list(os.environ):
        if var.startswith(("NUM_", "HFS_")) or "_API_KEY" in var or var == "TIDB_DB_URL":
            monkeypatch.delenv(var)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AGNO_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """A provider stand-in on 127.0.0.1 that accepts any key."""
    with StandIn() as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite usage database for this test."""
    return f"sqlite:///{tmp_path / 'usage.sqlite3'}"


@pytest.fixture
def make_registry() -> Iterator[Callable[..., Registry]]:
    """Build registries that are shut down when the test ends."""
    made: list[Registry] = []

    def make(**kwargs: Any) -> Registry:
        registry = Registry(**kwargs)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.shutdown()


class Heartbeat:
    """Ticks on the running event loop every `interval` seconds while its ``async with`` block runs:
    `ticks` counts the ticks, `worst_gap` is the longest time between two (the block's start and end
    included), so anything that blocks the loop shows as few ticks and a long gap.

    ``async with Heartbeat() as beat: await ...`` then assert on ``beat.ticks`` or ``beat.worst_gap``.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.ticks = 0
        self.worst_gap = 0.0
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def _beat(self) -> None:
        now = time.monotonic()
        self.worst_gap = max(self.worst_gap, now - self._last)
        self._last = now

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.ticks += 1
            self._beat()

    async def __aenter__(self) -> Heartbeat:
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self._beat()  # a stall after the last tick counts too
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
