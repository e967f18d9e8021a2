"""Key groups (``[providers.NAME] key_groups``): keys of one project or organisation share each limit.

The pool tests run once per state, in process (`LocalPoolState`) and shared through the real Redis
on 127.0.0.1:6379 (`RedisPoolState`, a namespace per test, `tests/pool_states.py`), against the
stand-in enforcing the provider's limit per group of keys (`StandIn.set_group_limit`), so what the
stand-in counts is what a provider that counts per project would count. The configuration, `hfs
check`, `hfs providers` and `hfs models` are tested last, the CLI as a subprocess.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from agno.models.groq import Groq
from agno.models.message import Message
from conftest import fake_key, keys_of, provider_env
from pool_states import RedisStates
from services import REDIS_URL, needs_redis, redis_namespace
from test_cli import clean_env, hfs

from hfs_core import NoAvailableKeyError, Registry, catalog
from hfs_core.call import ClientCache, build_model
from hfs_core.config import Config, ConfigError, KeyRange, ProviderConfig, StateConfig, parse_config
from hfs_core.plugin import ProviderSpec
from hfs_core.pool import CallOptions, KeyPool, Lease, LocalPoolState, PoolState
from hfs_core.pool.shared import RedisPoolState
from hfs_core.testing.standin import StandIn

GEMINI: ProviderSpec = importlib.import_module("hfs_provider_gemini").SPEC
GROQ: ProviderSpec = importlib.import_module("hfs_provider_groq").SPEC
FLASH = "gemini-2.5-flash"  # the plugin's table: 5 requests a minute, 20 a day (per project)
GPT = "openai/gpt-oss-20b"  # keycycle's groq table: 30 requests a minute
PER_MINUTE = 4
LIMITS = {FLASH: {"rpm": PER_MINUTE, "rpd": 1000}}
"""A project's budget in these tests: 4 requests a minute."""

States = Callable[..., PoolState]


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def states(kind: str) -> Iterator[States]:
    """Builds pool states of the kind under test: ``states(spec, model, keys, budgets, limits)``."""
    shared = RedisStates(GEMINI, FLASH) if kind == "redis" else None
    made: list[PoolState] = []

    def build(spec: ProviderSpec, model: str, keys: Sequence[str], budgets: Sequence[int],
              limits: dict[str, dict[str, int]] | None = None) -> PoolState:
        local = LocalPoolState.build(spec, keys, model, limits, budgets)
        state: PoolState = local if shared is None else RedisPoolState(local, shared.link(), spec.name, keys)
        made.append(state)
        return state

    yield build
    for state in made:
        state.close()
    if shared is not None:
        shared.close()


@pytest.fixture
def state_config(kind: str) -> Iterator[StateConfig]:
    """Where a registry keeps its pools: in process, or in a fresh Redis namespace deleted afterwards."""
    if kind == "local":
        yield StateConfig()
        return
    with redis_namespace() as namespace:
        yield StateConfig(url=REDIS_URL, namespace=namespace)


def hi() -> list[Message]:
    return [Message(role="user", content="hi")]


def gemini_registry(make_registry: Callable[..., Registry], standin: StandIn, state: StateConfig,
                    groups: tuple[tuple[KeyRange, ...], ...], count: int = 6) -> tuple[Registry, list[str]]:
    env = provider_env({"gemini": count})
    config = Config(providers={"gemini": ProviderConfig(base_url=standin.url, default_model=FLASH, models=LIMITS,
                                                        key_groups=groups)},
                    state=state, track_usage=False)
    return make_registry(env=env, config=config, plugins=["gemini"]), keys_of(env, "gemini")


def call_all(model: Any, calls: int, threads: int) -> tuple[int, int]:
    """Make `calls` calls from `threads` threads: (answered, refused by the pool)."""
    def one(_: int) -> bool:
        try:
            return bool(model.response(messages=hi()).content)
        except NoAvailableKeyError:
            return False

    with ThreadPoolExecutor(threads) as workers:
        results = list(workers.map(one, range(calls)))
    return sum(results), results.count(False)


def accepted(standin: StandIn, keys: Sequence[str]) -> int:
    return sum(standin.requests_for(key, 200) for key in keys)


TWO_PROJECTS = ((KeyRange(1, 3),), (KeyRange(4, 4), KeyRange(5, 6)))


# ---------------------------------------------------------------------- counting per group


def test_a_groups_requests_never_exceed_its_limit(make_registry: Callable[..., Registry], standin: StandIn,
                                                  state_config: StateConfig) -> None:
    registry, keys = gemini_registry(make_registry, standin, state_config, TWO_PROJECTS)
    standin.set_group_limit(keys[:3], PER_MINUTE)
    standin.set_group_limit(keys[3:], PER_MINUTE)
    answered, refused = call_all(registry.get_model("gemini", timeout=3), 16, threads=8)
    assert (accepted(standin, keys[:3]), accepted(standin, keys[3:])) == (PER_MINUTE, PER_MINUTE)
    assert standin.count(429) == 0  # the pool never sent what a project could not take
    assert (answered, refused) == (2 * PER_MINUTE, 16 - 2 * PER_MINUTE)
    assert registry.pool("gemini").status().in_flight == 0


def test_without_groups_the_pool_sends_what_the_projects_cannot_take(
        make_registry: Callable[..., Registry], standin: StandIn, state_config: StateConfig) -> None:
    registry, keys = gemini_registry(make_registry, standin, state_config, ())
    standin.set_group_limit(keys[:3], PER_MINUTE)
    standin.set_group_limit(keys[3:], PER_MINUTE)
    call_all(registry.get_model("gemini", timeout=3, max_retries=1), 16, threads=8)
    assert standin.count(429) > 0  # each key believed it had 4 a minute of its own
    assert accepted(standin, keys[:3]) <= PER_MINUTE and accepted(standin, keys[3:]) <= PER_MINUTE
    assert standin.stats()["replayed"] == {}  # the refusals were the group's, not a queued replay


def test_the_standin_answers_a_full_group_on_gemini_with_the_recorded_quota_reply(standin: StandIn) -> None:
    from google import genai
    from google.genai import errors

    keys = [fake_key("gemini") for _ in range(2)]
    standin.set_group_limit(keys, 1)
    clients = [genai.Client(api_key=key, http_options={"base_url": standin.url, "retry_options": {"attempts": 1}})
               for key in keys]
    assert clients[0].models.generate_content(model=FLASH, contents="hi").text
    with pytest.raises(errors.ClientError) as refused:
        clients[1].models.generate_content(model=FLASH, contents="hi")
    error = refused.value.details["error"]
    assert (refused.value.code, error["status"]) == (429, "RESOURCE_EXHAUSTED")
    kinds = [detail["@type"].rpartition(".")[2] for detail in error["details"]]
    assert kinds == ["QuotaFailure", "Help", "RetryInfo"]
    assert 55 <= int(error["details"][2]["retryDelay"].rstrip("s")) <= 60  # until the group's call leaves the minute
    standin.set_group_limit(keys[1:], None)  # out of the group: its own (unlimited) budget again
    assert clients[1].models.generate_content(model=FLASH, contents="hi").text


# ---------------------------------------------------------------------- what stays a key's own


def lease_all(state: PoolState, model: str, tries: int = 20) -> list[int]:
    """Take and settle leases one by one until none is free: the keys that served, in order."""
    served = []
    for _ in range(tries):
        got = state.try_acquire(model, 10)
        if not isinstance(got, Lease):
            assert 0 < got <= 61  # free again once the group's first call leaves the minute
            return served
        state.settle(got, 10)
        served.append(got.index)
    raise AssertionError(f"more than {tries} leases: the group's limit did not bind ({served})")


@pytest.mark.parametrize("mishap", ["dead", "cooling"])
def test_a_keys_dead_flag_or_cooldown_does_not_spread_to_its_group(states: States, mishap: str) -> None:
    keys = [fake_key("gemini") for _ in range(4)]
    state = states(GEMINI, FLASH, keys, [0, 0, 0, 3], LIMITS)
    if mishap == "dead":
        state.mark_dead(0)
    else:
        state.cool_down(0, 300)
    served = lease_all(state, FLASH)
    group = [index for index in served if index < 3]
    assert len(group) == PER_MINUTE and set(group) <= {1, 2}  # the group's budget, on its other keys
    assert served.count(3) == PER_MINUTE  # the key in no group has a budget of its own
    status = state.status()
    assert (status.dead, status.cooling) == ((1, 0) if mishap == "dead" else (0, 1))


def test_calls_in_flight_on_one_key_count_against_its_group(states: States) -> None:
    keys = [fake_key("gemini") for _ in range(3)]
    state = states(GEMINI, FLASH, keys, [0, 0, 0], LIMITS)
    first = state.try_acquire(FLASH, 10)
    assert isinstance(first, Lease)
    state.settle(first, 10)  # every key proven in turn, so each may hold several leases at once
    leases = []
    for _ in range(PER_MINUTE - 1):
        got = state.try_acquire(FLASH, 10)
        assert isinstance(got, Lease)
        leases.append(got)
    assert not isinstance(state.try_acquire(FLASH, 10), Lease)  # three in flight and one done: the group is full
    assert state.status().in_flight == PER_MINUTE - 1
    for lease in leases:
        state.settle(lease, None)  # released unused: the budget is back
    assert isinstance(state.try_acquire(FLASH, 10), Lease)


def test_a_budget_is_named_by_the_first_key_of_its_group_in_the_pool() -> None:
    groups = ((1, 2, 3), (4, 5, 6), (6, 7))  # 6 in two groups: they count as one
    assert catalog.budgets(groups, [1, 2, 3, 4, 5, 6, 7, 8]) == (0, 0, 0, 3, 3, 3, 3, 7)
    assert catalog.budgets(groups, [2, 3, 5, 9]) == (0, 0, 2, 3)  # keys 1 and 4 skipped (unusable)
    assert catalog.budgets((), [1, 2]) == (0, 1)


def test_key_numbers_survive_a_skipped_key(make_registry: Callable[..., Registry], standin: StandIn) -> None:
    env = provider_env({"gemini": 4})
    env["GEMINI_API_KEY_1"] = "your-key-here"  # a placeholder: skipped, so key 2 is the pool's first
    config = Config(providers={"gemini": ProviderConfig(base_url=standin.url, key_groups=((KeyRange(2, 3),),))})
    registry = make_registry(env=env, config=config, plugins=["gemini"])
    state = registry.pool("gemini").state
    assert isinstance(state, LocalPoolState) and state.budgets == (0, 0, 2)


# ---------------------------------------------------------------------- learning from refusals


def test_a_learned_cap_lands_on_the_group(standin: StandIn, states: States, kind: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    keys = [fake_key("groq") for _ in range(4)]
    standin.set_group_limit(keys[:3], 3)  # the organisation allows 3 a minute; the table says 30 a key
    state = states(GROQ, GPT, keys, [0, 0, 0, 3])
    pool = KeyPool(GROQ, keys, state, None, budgets=[0, 0, 0, 3])
    clients = ClientCache(keys, Groq)
    model = build_model(pool, clients, GPT, CallOptions(timeout=2), GROQ.sdk_options(standin.url))
    try:
        with caplog.at_level("INFO", logger="hfs_core.pool"):
            while standin.count(429) == 0:
                assert model.response(messages=hi()).content  # a refused call moves to key 4
                assert standin.total < 40, "the stand-in never refused: the group limit was not enforced"
            for _ in range(8):
                assert model.response(messages=hi()).content
        assert standin.count(429) == 1  # one lesson, for every key of the group
        assert accepted(standin, keys[:3]) == 3 and accepted(standin, keys[3:]) == standin.accepted - 3
        said = ("its group of 3 keys now takes at most 3 a minute, in every process" if kind == "redis" else
                "its group (GROQ_API_KEY_1, GROQ_API_KEY_2, GROQ_API_KEY_3) now takes at most 3 a minute")
        assert said in caplog.text
    finally:
        clients.close()
        pool.close()


# ---------------------------------------------------------------------- configuration and the CLI


def parse_groups(value: Any) -> Any:
    return parse_config({"providers": {"gemini": {"key_groups": value}}}, Path("hfs.toml")).provider("gemini")


def test_key_groups_parse_numbers_and_ranges() -> None:
    found = parse_groups([[1, 2, 3], ["4-6", 8], [" 9 - 10 "]])
    assert [[str(item) for item in group] for group in found.key_groups] == [["1", "2", "3"], ["4-6", "8"], ["9-10"]]
    assert found.key_group_numbers == ((1, 2, 3), (4, 5, 6, 8), (9, 10))


@pytest.mark.parametrize("value", [[1, 2], [[]], [[0]], [["6-4"]], [[True]], [["1-"]], [[1.5]], "1-3"])
def test_a_malformed_key_group_names_the_file_and_the_setting(value: Any) -> None:
    with pytest.raises(ConfigError) as failed:
        parse_groups(value)
    assert str(failed.value).startswith("hfs.toml: [providers.gemini] key_groups")


GROUPS_TOML = """[providers.gemini]
key_groups = {groups}
"""


def run_hfs(tmp_path: Path, groups: str, *args: str) -> Any:
    (tmp_path / "hfs.toml").write_text(GROUPS_TOML.format(groups=groups), encoding="utf-8")
    env = clean_env(tmp_path, {**provider_env({"gemini": 6}), "HFS_PLUGINS": "gemini"})
    return hfs(*args, env=env, cwd=tmp_path)


def test_hfs_check_finds_unknown_numbers_shared_keys_and_overlapping_ranges(tmp_path: Path) -> None:
    run = run_hfs(tmp_path, '[["1-3", "3"], ["3-5", 9]]', "check", "--json", "--skip-db")
    assert run.code == 1, run.out + run.err
    findings = [f for f in json.loads(run.out)["findings"] if "key_groups" in f["variable"]]
    messages = sorted(f["message"] for f in findings)
    assert all(f["severity"] == "error" and f["variable"].endswith("hfs.toml [providers.gemini] key_groups")
               for f in findings), findings
    assert messages == sorted([
        'key 3 is in key_groups[0] ("1-3") and key_groups[1] ("3-5"); a key belongs to one group',
        'key 3 is in key_groups[0] ("3") and key_groups[1] ("3-5"); a key belongs to one group',
        'key_groups[0] has overlapping ranges "1-3" and "3" (key 3)',
        "key_groups[1] names key 9, beyond NUM_GEMINI=6; there is no such key",
    ]), messages


def test_hfs_check_is_clean_for_well_formed_groups(tmp_path: Path) -> None:
    run = run_hfs(tmp_path, '[["1-3"], [4, 5, 6]]', "check", "--json", "--skip-db")
    assert [f for f in json.loads(run.out)["findings"] if "key_groups" in f["variable"]] == []


def test_hfs_providers_and_models_show_the_groups(tmp_path: Path) -> None:
    groups = '[["1-3"], [4, 5, 6]]'
    shown = run_hfs(tmp_path, groups, "providers")
    assert "Key groups (the keys of a group share each limit as one budget" in shown.out
    assert "  gemini: 1-3; 4,5,6" in shown.out
    listed = json.loads(run_hfs(tmp_path, groups, "providers", "--json").out)
    assert listed["providers"][0]["key_groups"] == [["1-3"], ["4", "5", "6"]]
    models = run_hfs(tmp_path, groups, "models", "gemini")
    assert "(limits per key group (1-3; 4,5,6), other keys per key; * the default model)" in models.out
    assert json.loads(run_hfs(tmp_path, groups, "models", "gemini", "--json").out)["key_groups"] == \
        [["1-3"], ["4", "5", "6"]]
    plain = run_hfs(tmp_path, "[]", "models", "gemini")
    assert "(limits per key; * the default model)" in plain.out
