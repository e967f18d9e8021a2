"""A retired key's way back: ``hfs keys revive PROVIDER SUFFIX`` over the shared state, and the dead
flag's lifetime in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from agno.models.message import Message
from conftest import fake_key, provider_env
from services import REDIS_URL, needs_redis, redis_namespace
from test_cli import clean_env, hfs

from hfs_core import Registry
from hfs_core.testing.standin import StandIn

HI = [Message(role="user", content="hi")]


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[str]:
    """A Redis namespace of this test's own, in the hfs.toml that ``HFS_CONFIG`` names; emptied after."""
    with redis_namespace() as name:
        (tmp_path / "hfs.toml").write_text(f'[state]\nnamespace = "{name}"\n')
        yield name


def shared_env(tmp_path: Path, keys: dict[str, str]) -> dict[str, str]:
    return {**keys, "HFS_STATE_URL": REDIS_URL, "HFS_CONFIG": str(tmp_path / "hfs.toml"),
            "TIDB_DB_URL": f"sqlite:///{tmp_path / 'usage.sqlite3'}"}


def call(model: object, times: int) -> None:
    for _ in range(times):
        model.response(messages=HI)  # type: ignore[attr-defined]


@needs_redis
def test_revive_puts_a_retired_key_back_for_every_process(tmp_path: Path, namespace: str,
                                                          standin: StandIn) -> None:
    keys = provider_env({"groq": 2})
    bad, good = keys["GROQ_API_KEY_1"], keys["GROQ_API_KEY_2"]
    standin.set_key(bad, 401)
    env = shared_env(tmp_path, keys)
    registry = Registry(env=env)
    try:
        model = registry.get_model("groq", base_url=standin.url)
        pool = registry.pool("groq")
        call(model, 6)
        assert standin.requests_for(bad[-4:], 401) == 1
        assert pool.status().dead == 1

        standin.set_key(bad, 200)  # the key works again (credits topped up, wrongly revoked...)
        call(model, 6)
        assert standin.requests_for(bad[-4:], 200) == 0, "a retired key stays out until revived"

        revived = hfs("keys", "revive", "groq", bad[-6:], env=clean_env(tmp_path, env), cwd=tmp_path)
        assert revived.code == 0, revived.err
        assert f"groq key …{bad[-4:]} is back in service" in revived.out

        call(model, 12)
        assert standin.requests_for(bad[-4:], 200) > 0
        assert standin.requests_for(good[-4:], 200) > 0
        assert pool.status().dead == 0

        again = hfs("keys", "revive", "groq", bad[-4:], env=clean_env(tmp_path, env), cwd=tmp_path)
        assert again.code == 0, again.err
        assert "is not retired" in again.out
    finally:
        registry.shutdown()


@needs_redis
def test_the_dead_flag_lasts_25_hours_in_redis(tmp_path: Path, namespace: str, standin: StandIn) -> None:
    keys = provider_env({"groq": 2})
    standin.set_key(keys["GROQ_API_KEY_1"], 401)
    registry = Registry(env=shared_env(tmp_path, keys))
    try:
        model = registry.get_model("groq", base_url=standin.url)
        call(model, 6)
        assert registry.pool("groq").status().dead == 1
    finally:
        registry.shutdown()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        [flags] = [name for name in client.scan_iter(match=f"{{{namespace}:groq}}:k:*")
                   if client.hexists(name, "dead")]
        assert 89_000 < client.ttl(flags) <= 90_000
    finally:
        client.close()


@needs_redis
def test_revive_names_one_key_by_its_suffix(tmp_path: Path, namespace: str) -> None:
    keys = {"NUM_GROQ": "2", "GROQ_API_KEY_1": fake_key("groq")[:-6] + "abc123",
            "GROQ_API_KEY_2": fake_key("groq")[:-6] + "xyz123"}
    env = clean_env(tmp_path, shared_env(tmp_path, keys))
    live = hfs("keys", "revive", "groq", "z123", env=env, cwd=tmp_path)
    assert live.code == 0 and "groq key …z123 is not retired" in live.out
    unknown = hfs("keys", "revive", "groq", "qqqq", env=env, cwd=tmp_path)
    assert unknown.code == 1 and "no groq key ends with 'qqqq'" in unknown.err and "…c123, …z123" in unknown.err
    short = hfs("keys", "revive", "groq", "123", env=env, cwd=tmp_path)
    assert short.code == 1 and "not a key suffix" in short.err
    other = hfs("keys", "revive", "nosuch", "abcd", env=env, cwd=tmp_path)
    assert other.code == 1 and "unknown provider 'nosuch'" in other.err


@needs_redis
def test_revive_refuses_a_suffix_two_keys_share(tmp_path: Path, namespace: str) -> None:
    keys = {"NUM_GROQ": "2", "GROQ_API_KEY_1": fake_key("groq")[:-4] + "7f3a",
            "GROQ_API_KEY_2": fake_key("groq")[:-4] + "7f3a"}
    done = hfs("keys", "revive", "groq", "7f3a", env=clean_env(tmp_path, shared_env(tmp_path, keys)), cwd=tmp_path)
    assert done.code == 1 and "2 groq keys end with '7f3a'" in done.err and "more of the key" in done.err


def test_without_shared_state_revive_says_a_restart_brings_the_key_back(tmp_path: Path) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    done = hfs("keys", "revive", "groq", "abcd", env=env, cwd=tmp_path)
    assert done.code == 1
    assert "no shared state" in done.err and "restarts" in done.err and "HFS_STATE_URL" in done.err
