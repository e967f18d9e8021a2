"""Pools shared through the real Redis on 127.0.0.1:6379 (`RedisPoolState`): several processes
hold one limit together, a killed process's reservation ends with its lease, a Redis that goes
away or hangs costs callers nothing, learned limits spread, and no key reaches Redis.

Each test works in a namespace of its own and deletes it afterwards. A Redis that goes away is
a `TcpProxy` in front of the shared server, cut or stalled; the server itself is never stopped.
Worker processes are `tests/shared_worker.py`, configured as a user would: environment and an
``hfs.toml``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from agno.models.groq import Groq
from agno.models.message import Message
from conftest import Heartbeat, fake_key
from pool_states import RedisStates
from services import REDIS, REDIS_URL, TcpProxy, free_port, needs_redis

from hfs_core import NoAvailableKeyError, Registry
from hfs_core.call import ClientCache, build_model
from hfs_core.plugin import ProviderSpec
from hfs_core.pool import CallOptions, KeyPool, Lease
from hfs_core.pool.redis_link import PROBE_EVERY, RedisLink
from hfs_core.testing.standin import StandIn

pytestmark = needs_redis

MODEL = "openai/gpt-oss-20b"
SPEC: ProviderSpec = importlib.import_module("hfs_provider_groq").SPEC
WORKER = Path(__file__).with_name("shared_worker.py")


@pytest.fixture
def shared() -> Iterator[RedisStates]:
    states = RedisStates(SPEC, MODEL, lease_seconds=2.0)
    yield states
    states.close()




def ask(model: Any) -> Any:
    return model.response(messages=[Message(role="user", content="hi")])


def pool_on(state: Any, keys: list[str], standin: StandIn, **options: Any) -> tuple[KeyPool, Any]:
    pool = KeyPool(SPEC, keys, state, None)
    model = build_model(pool, ClientCache(keys, Groq), MODEL, CallOptions(**options), SPEC.sdk_options(standin.url))
    return pool, model


def write_config(path: Path, standin: StandIn, namespace: str, **model_limits: int) -> Path:
    limits = "".join(f"{name} = {value}\n" for name, value in model_limits.items())
    table = f'[providers.groq.models."{MODEL}"]\n{limits}' if limits else ""
    path.write_text(f"""track_usage = false

[providers.groq]
base_url = "{standin.url}"
default_model = "{MODEL}"
expected_keys = 4

{table}
[state]
namespace = "{namespace}"
lease_seconds = 2.0
""", encoding="utf-8")
    return path


def worker_env(keys: list[str], config: Path, state_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_")) and "_API_KEY" not in k}
    env.update({"NUM_GROQ": str(len(keys)), "HFS_PLUGINS": "groq", "HFS_CONFIG": str(config),
                **{f"GROQ_API_KEY_{i}": key for i, key in enumerate(keys, 1)}})
    if state_url:
        env["HFS_STATE_URL"] = state_url
    return env


def redis_dump(namespace: str) -> dict[bytes, Any]:
    """Every key of the namespace with its value."""
    client = redis.Redis.from_url(REDIS_URL)
    found: dict[bytes, Any] = {}
    for name in client.scan_iter(match=f"{{{namespace}:*", count=1000):
        kind = client.type(name)
        found[name] = (client.zrange(name, 0, -1, withscores=True) if kind == b"zset" else
                       client.hgetall(name) if kind == b"hash" else
                       client.lrange(name, 0, -1) if kind == b"list" else client.get(name))
    client.close()
    return found


# ---------------------------------------------------------------------- several processes


def start_together(procs: list[subprocess.Popen[str]], timeout: float = 60.0) -> None:
    """Wait until every worker says ``ready`` (agno imported, its pool built), then give them all
    one start time a moment ahead, so that they call in the same seconds."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        assert proc.stdout is not None
        answered, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if answered else ""
        if line.strip() != "ready":
            for each in procs:
                each.kill()
            errors = [each.communicate()[1][-2000:] for each in procs]
            pytest.fail(f"a worker was not ready within {timeout:.0f}s (said {line!r}): {errors}")
    start = time.time() + 0.3
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start}\n")
        proc.stdin.flush()  # communicate() closes it


@pytest.mark.slow
@pytest.mark.parametrize("state", ["redis", "in-process"])
def test_three_processes_hold_each_keys_limit_together(state: str, standin: StandIn, namespace: str,
                                                       tmp_path: Path, record_property: Any) -> None:
    """3 processes x 4 threads on 4 keys of 5 requests a minute. Through Redis the stand-in sees at
    most 5 per key, and every one of them served; each process on its own state sends more."""
    per_minute, keys = 5, [fake_key("groq") for _ in range(4)]
    standin.set_limit(per_minute, window=60.0)
    config = write_config(tmp_path / "hfs.toml", standin, namespace, rpm=per_minute)
    env = worker_env(keys, config, REDIS_URL if state == "redis" else None)
    procs = [subprocess.Popen([sys.executable, str(WORKER), "load", "3", "4"], env=env, cwd=tmp_path,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    start_together(procs)
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    counts = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    served = sum(c["ok"] for c in counts)
    per_key = [standin.requests_for(key, 200) for key in keys]
    record_property("answered_per_key", per_key)
    record_property("upstream_429", standin.count(429))
    if state == "redis":
        assert standin.count(429) == 0, (counts, [err[-3000:] for _, err in outputs])
        assert per_key == [per_minute] * 4 and served == 20, (per_key, counts)
        assert all(set(c) == {"ok", "no_key"} for c in counts), counts  # refusals only, no other error
    else:
        assert standin.count(429) > 0 and served == 20, (standin.count(429), counts)


@pytest.mark.slow
def test_a_process_killed_mid_call_gives_its_capacity_back_within_the_lease_time(
        standin: StandIn, namespace: str, shared: RedisStates, tmp_path: Path, record_property: Any) -> None:
    """A worker reserves 1000 of a key's 1500 tokens a minute and is killed (SIGKILL) mid-call: the
    reservation holds the key until its lease (2 s) runs out, then another process has the key."""
    keys = [fake_key("groq")]
    standin.latency = 30.0
    config = write_config(tmp_path / "hfs.toml", standin, namespace, tpm=1500)
    proc = subprocess.Popen([sys.executable, str(WORKER), "call"], env=worker_env(keys, config, REDIS_URL),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = redis.Redis.from_url(REDIS_URL)
        deadline = time.monotonic() + 60
        while standin.total == 0 and time.monotonic() < deadline:  # the worker's call is at the provider
            time.sleep(0.05)
        assert standin.total == 1 and client.keys(f"{{{namespace}:groq}}:f:*"), proc.stderr and proc.poll()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = time.monotonic()
    link = shared.link(namespace)
    state = shared(keys, link, {MODEL: {"tpm": 1500}})
    assert state.max_tokens(MODEL) == 1500
    held = state.try_acquire(MODEL, 1000)
    assert not isinstance(held, Lease), "the dead worker's reservation should still hold the key"
    while not isinstance(got := state.try_acquire(MODEL, 1000), Lease) and time.monotonic() - killed < 10:
        time.sleep(0.05)
    assert isinstance(got, Lease)
    record_property("capacity_back_after_s", round(time.monotonic() - killed, 2))
    assert time.monotonic() - killed <= link.lease_seconds + 1.0  # the lease, renewed at most once more
    state.settle(got, None)
    client.close()


# ---------------------------------------------------------------------- Redis away


def registry_on(url: str, keys: list[str], standin: StandIn, namespace: str, tmp_path: Path,
                make_registry: Any) -> Registry:
    config = write_config(tmp_path / f"hfs-{uuid.uuid4().hex[:6]}.toml", standin, namespace)
    from hfs_core.config import load_config

    env = {"NUM_GROQ": str(len(keys)), **{f"GROQ_API_KEY_{i}": k for i, k in enumerate(keys, 1)},
           "HFS_STATE_URL": url}
    registry: Registry = make_registry(env=env, config=load_config(env={"HFS_CONFIG": str(config)}),
                                       plugins=["groq"])
    return registry


def requests_in_redis(namespace: str) -> int:
    return sum(len(value) for name, value in redis_dump(namespace).items() if b"}:r:" in name)


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_calls_go_on_while_redis_is_away_and_sharing_resumes(
        fault: str, standin: StandIn, namespace: str, tmp_path: Path, make_registry: Any,
        caplog: pytest.LogCaptureFixture, record_property: Any) -> None:
    proxy = TcpProxy(REDIS)
    try:
        keys = [fake_key("groq") for _ in range(3)]
        registry = registry_on(f"redis://127.0.0.1:{proxy.port}/0", keys, standin, namespace, tmp_path,
                               make_registry)
        model = registry.get_model("groq", timeout=5)
        timeout = registry.config.state.timeout  # how long one Redis operation may take
        with caplog.at_level(logging.INFO, logger="hfs_core"):
            for _ in range(6):
                assert ask(model).content
            time.sleep(0.1)
            assert requests_in_redis(namespace) == 6
            getattr(proxy, fault)()
            took = []
            for _ in range(6):  # the first waits at most the state's timeout, the rest not at all
                start = time.monotonic()
                assert ask(model).content
                took.append(round(time.monotonic() - start, 3))
            record_property("calls_while_away_s", took)
            # A call that waited on Redis takes at least one timeout; these calls take milliseconds
            # at the stand-in, so the bounds leave about a timeout of room for a loaded machine.
            assert took[0] < 2 * timeout and max(took[1:]) < timeout, (took, timeout)
            assert requests_in_redis(namespace) == 6  # nothing got through
            proxy.restore()
            back = time.monotonic()
            deadline = back + 10
            while not registry.state_info()["up"] and time.monotonic() < deadline:  # asked again within 1 s
                time.sleep(0.05)
            again = time.monotonic() - back
            record_property("sharing_again_after_s", round(again, 2))
            # The next ask comes at most PROBE_EVERY after the last one started; one that was under way
            # when the line came back may first wait out its timeout; then a ping, the library check,
            # the clock and the settling each take a round trip (far less than a timeout each).
            assert again < PROBE_EVERY + 3 * timeout, (again, timeout)
            assert requests_in_redis(namespace) == 12  # the calls made meanwhile were settled into Redis
            for _ in range(3):
                assert ask(model).content
            assert requests_in_redis(namespace) == 15  # and new calls share again
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len([w for w in warnings if "does not answer" in w]) == 1, warnings
        assert any("answers again" in w for w in warnings), warnings
        assert standin.count(429) == 0 and standin.accepted == 15
    finally:
        proxy.close()


def test_an_async_call_never_blocks_the_event_loop_on_redis(standin: StandIn, shared: RedisStates) -> None:
    """With Redis stalled, the async call waits out the state's timeout with ``await``: a ticker on
    the same loop keeps ticking meanwhile."""
    proxy = TcpProxy(REDIS)
    try:
        link = RedisLink(f"redis://127.0.0.1:{proxy.port}/0", shown_url="redis://proxy", timeout=0.5,
                         namespace=f"hfs-test-{uuid.uuid4().hex[:10]}")
        shared.links.append(link)
        keys = [fake_key("groq") for _ in range(2)]
        _, model = pool_on(shared(keys, link), keys, standin)

        async def run() -> tuple[int, int]:
            await model.aresponse(messages=[Message(role="user", content="hi")])  # Redis answers: shared
            proxy.stall()
            async with Heartbeat() as beat:
                await model.aresponse(messages=[Message(role="user", content="hi")])
            return beat.ticks, link.outages

        ticks, outages = asyncio.run(run())
        assert outages == 1 and ticks >= 10  # ~0.5 s of waiting on Redis, the loop free all along
        link.outages = 0  # the one outage was this test's doing
    finally:
        proxy.close()


def test_redis_down_at_start_serves_and_says_so_once_without_the_password(
        standin: StandIn, namespace: str, tmp_path: Path, make_registry: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    keys = [fake_key("groq") for _ in range(2)]
    with caplog.at_level(logging.DEBUG):
        registry = registry_on(f"redis://:hunter2-secret@127.0.0.1:{port}/0", keys, standin, namespace, tmp_path,
                               make_registry)
        model = registry.get_model("groq")
        for _ in range(4):
            assert ask(model).content
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter2-secret" not in text
    down = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(down) == 1 and f"redis://:***@127.0.0.1:{port}/0" in down[0], down
    assert registry.state_info()["up"] is False and standin.accepted == 4


# ---------------------------------------------------------------------- what is shared


def test_a_limit_learned_in_one_process_binds_the_others(standin: StandIn, shared: RedisStates) -> None:
    keys = [fake_key("groq")]
    standin.set_key_limit(keys[0], 3)  # the provider allows 3 a minute, keycycle's table 30
    first = shared.link()
    pool_a, model_a = pool_on(shared(keys, first), keys, standin, timeout=0.2)
    pool_b, model_b = pool_on(shared(keys, shared.link(first.namespace)), keys, standin, timeout=0.2)
    for _ in range(3):
        assert ask(model_a).content
    with pytest.raises(NoAvailableKeyError):
        ask(model_a)  # a 429: the key is cooled and capped at the 3 its window holds
    sent = standin.total
    pool_b.state.cool_down(0, 0.0)
    time.sleep(1.2)  # the cooldown the 429 named has passed; the cap has not
    with pytest.raises(NoAvailableKeyError):
        ask(model_b)
    assert standin.total == sent  # the other process sent nothing more to a key known to be full
    pool_a.close()
    pool_b.close()


def test_dead_and_cooling_keys_are_seen_by_every_process(standin: StandIn, shared: RedisStates) -> None:
    keys = [fake_key("groq") for _ in range(3)]
    first = shared.link()
    _, model_a = pool_on(shared(keys, first), keys, standin, timeout=1)
    pool_b, model_b = pool_on(shared(keys, shared.link(first.namespace)), keys, standin, timeout=1)
    standin.set_key(keys[0], 401)
    standin.replay(keys[1], "groq.per_minute_requests", times=1, wait=30)
    for _ in range(30):
        if standin.requests_for(keys[0]) and standin.requests_for(keys[1]):
            break
        assert ask(model_a).content
    assert (standin.requests_for(keys[0]), standin.requests_for(keys[1])) == (1, 1)  # retired; cooled for 30 s
    for _ in range(6):
        assert ask(model_b).content
    assert (standin.requests_for(keys[0]), standin.requests_for(keys[1])) == (1, 1)  # the other process knew
    standin.set_key(keys[2], 401)
    with pytest.raises(NoAvailableKeyError) as caught:
        ask(model_b)
    assert caught.value.dead_keys == 2 and caught.value.cooling_down == 1, caught.value
    assert pool_b.status() == type(pool_b.status())(3, 2, 1, 0)


def test_no_key_prefix_or_suffix_reaches_redis(standin: StandIn, shared: RedisStates) -> None:
    keys = [fake_key("groq") for _ in range(3)]
    link = shared.link()
    pool, model = pool_on(shared(keys, link), keys, standin)
    standin.set_key(keys[0], 401)
    standin.replay(keys[1], "groq.per_minute_requests", times=1, wait=1)
    for _ in range(6):
        assert ask(model).content
    pool.state.load_history([(pool.suffix(2), MODEL, time.time() - 5, 10)])
    time.sleep(0.2)
    dump = redis_dump(link.namespace)
    assert any(b"}:k:" in name for name in dump)  # the flags of the dead and the cooled key are there
    text = repr(dump)
    for key in keys:
        for part in (key, key[:10], key[-8:], key[-6:]):
            assert part not in text
    pool.close()


# ---------------------------------------------------------------------- settings and the CLI


def test_hfs_state_url_wins_over_the_config_and_a_bad_one_is_an_error(isolated: Path, make_registry: Any) -> None:
    (isolated / "hfs.toml").write_text('[state]\nurl = "redis://from-config:6379/0"\n')
    keys = {"NUM_GROQ": "1", "GROQ_API_KEY_1": fake_key("groq")}
    from_file = make_registry(env=keys, plugins=["groq"])
    assert from_file.state_info()["source"] == f"[state] url in {isolated / 'hfs.toml'}"
    from_env = make_registry(env={**keys, "HFS_STATE_URL": "redis://:secret-pw@from-env:6379/1"}, plugins=["groq"])
    info = from_env.state_info()
    assert (info["kind"], info["url"], info["source"]) == ("redis", "redis://:***@from-env:6379/1", "HFS_STATE_URL")
    bad = make_registry(env={**keys, "HFS_STATE_URL": "http://cache:6379"}, plugins=["groq"])
    [problem] = [p for p in bad.problems if p.variable == "HFS_STATE_URL"]
    assert problem.severity == "error" and "redis://" in problem.message
    assert bad.state_info()["kind"] == "in-process"  # as the problem says (not silently the file's URL)


def run_hfs(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_")) and "_API_KEY" not in k}
    return subprocess.run([sys.executable, "-m", "hfs_core.cli", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_hfs_check_and_providers_say_which_state_is_in_use_and_whether_it_answers(tmp_path: Path) -> None:
    keys = {"NUM_GROQ": "2", "GROQ_API_KEY_1": fake_key("groq"), "GROQ_API_KEY_2": fake_key("groq"),
            "HFS_PLUGINS": "groq", "HFS_CONFIG": str(write_plain_config(tmp_path))}
    shared = {**keys, "HFS_STATE_URL": REDIS_URL}
    check = run_hfs("check", "--skip-db", "--json", env=shared, cwd=tmp_path)
    report = json.loads(check.stdout)
    [finding] = [f for f in report["findings"] if f["scope"] == "state"]
    assert finding["severity"] == "ok" and "answers in" in finding["message"], finding
    assert report["state"]["kind"] == "redis" and check.returncode == 0, check.stdout
    listing = json.loads(run_hfs("providers", "--json", env=shared, cwd=tmp_path).stdout)
    assert listing["state"] == {"kind": "redis", "url": REDIS_URL, "source": "HFS_STATE_URL", "namespace": "hfs",
                                "up": None}
    down = {**keys, "HFS_STATE_URL": f"redis://:pw-123456@127.0.0.1:{free_port()}/0"}
    check = run_hfs("check", "--skip-db", env=down, cwd=tmp_path)
    assert check.returncode == 1 and "pw-123456" not in check.stdout + check.stderr
    assert "error    state" in check.stdout and "does not answer" in check.stdout, check.stdout
    text = run_hfs("providers", env=keys, cwd=tmp_path).stdout
    assert "State: in this process" in text


def write_plain_config(tmp_path: Path) -> Path:
    path = tmp_path / "hfs.toml"
    path.write_text("track_usage = false\n[providers.groq]\nexpected_keys = 2\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_without_the_redis_client_the_pools_stay_in_process_and_hfs_check_says_what_to_install(
        tmp_path: Path, standin: StandIn) -> None:
    """A process where `import redis` fails (as when hfs-core was installed without its [redis] extra)."""
    script = f"""
import logging, sys
sys.modules["redis"] = None
logging.basicConfig(level=logging.WARNING)
from agno.models.message import Message
from hfs_core import Registry
registry = Registry(env={{"NUM_GROQ": "1", "GROQ_API_KEY_1": {fake_key("groq")!r},
                         "HFS_STATE_URL": {REDIS_URL!r}}}, plugins=["groq"])
print([p.message for p in registry.problems if "redis client" in p.message])
model = registry.get_model("groq", base_url={standin.url!r})
print(model.response(messages=[Message(role="user", content="hi")]).content)
print(type(registry.pool("groq").state).__name__)
registry.shutdown()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "AGNO_TELEMETRY": "false"})
    assert done.returncode == 0, done.stderr[-2000:]
    problems, answer, state = done.stdout.strip().splitlines()[-3:]
    assert "pip install" not in problems and "the redis client is not installed" in problems
    assert answer == "stand-in reply: hi" and state == "LocalPoolState"
    assert "pip install '.[redis]'" in done.stderr  # the log line says what to install


# ---------------------------------------------------------------------- Redis Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[int]]:
    """Three Redis Cluster primaries of this test's own on 127.0.0.1 (redis-server and redis-cli from
    the Redis packages), their 16384 slots split between them."""
    import shutil

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are needed (.ci/services installs them in CI)")
    ports = _cluster_ports(3)
    procs = []
    for port in ports:
        folder = tmp_path / str(port)
        folder.mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(folder / "nodes.conf"), "--save", "", "--appendonly", "no",
             "--dir", str(folder)], stdout=subprocess.DEVNULL))
    try:
        for port in ports:
            deadline = time.monotonic() + 10
            while not _answers(port) and time.monotonic() < deadline:
                time.sleep(0.05)
        made = subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                               "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=30)
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
        client = redis.Redis(port=ports[0])
        deadline = time.monotonic() + 20
        while client.cluster("info").get("cluster_state") != "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
        client.close()
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too, both below Linux's ephemeral
    range (32768 and up), so that no outgoing connection takes one meanwhile."""
    import random

    found: list[int] = []
    while len(found) < count:
        port = random.randrange(20000, 22700)
        if port not in found and not _answers(port) and not _answers(port + 10000):
            found.append(port)
    return found


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_the_function_runs_on_redis_cluster_every_pool_in_one_slot(cluster: list[int]) -> None:
    """The library loads on every primary, and each pool's operations touch only keys of its hash tag's
    slot: Redis Cluster refuses a function that reaches a key of another slot."""
    from redis.cluster import RedisCluster

    from hfs_core.pool.redis_connection import FUNCTION

    library = (Path(__file__).parents[1] / "hfs_core" / "pool" / "shared.lua").read_text(encoding="utf-8")
    client = RedisCluster(host="127.0.0.1", port=cluster[0])
    try:
        client.function_load(library, replace=True)
        slots = set()
        for provider in ("groq", "gemini", "cerebras", "openrouter"):
            prefix = f"{{hfs-test:{provider}}}:"
            slots.add(client.keyslot(prefix))
            kids = [f"{provider}{i:020d}" for i in range(3)]
            now = time.time()
            assert client.fcall(FUNCTION, 1, prefix, "ids", f"{now:.6f}", "d1", *kids) == 1
            limits = [2, 0, 100, 8000, 0, 0]  # 2 requests a minute a key
            for n in range(7):  # 3 keys x 2 a minute: six are served, the seventh is told to wait
                lease, sent = f"L{n}", f"{now + n / 100:.6f}"
                reply = client.fcall(FUNCTION, 1, prefix, "acquire", sent, lease, "30", "1:2", "m", 10, *limits, 0,
                                     "d1", kids[0], kids[1])
                if n == 6:
                    break
                assert reply[0] == 1, reply
                kid = kids[int(reply[1])]
                assert client.fcall(FUNCTION, 1, prefix, "settle", sent, kid, "m", lease, 10, sent, 7, "01100") == 1
            assert reply[0] == 0 and float(reply[1]) > 50  # every key full until its minute has passed
        assert len(slots) > 1  # the pools of several providers spread over the cluster's slots
    finally:
        client.close()
