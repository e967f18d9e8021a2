"""``hfs demo``: the main job, watched before you have keys.

A small Agno Agent with one tool runs on a rotating model whose pool holds throwaway keys, against
the project's provider stand-in (``python -m hfs_core.testing.standin``, started as a subprocess
on 127.0.0.1 and driven through its HTTP control API). Each agent run is shown as it happens,
with the requests the stand-in saw (key by its last 4 characters, HTTP status): calls spreading
over the keys, a rate limit absorbed by rotation, a revoked key retired; then a summary.
Nothing leaves the machine, and no usage row is written.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hfs_core.cli.common import CliError
from hfs_core.cli.output import LogFilter, out, remember_secrets, table
from hfs_core.env import SecretMask, mask_key
from hfs_core.install import FIRST_PLUGIN

KEYS = 4
PROMPT = "What is 2 + 3?"
RETRY_AFTER = 30
"""Seconds the rate-limited key is told to wait (it stays cooling for the rest of the demo)."""
_MAX_RUNS = 15
"""Runs at most in the last act, until the pool has tried the revoked key (it picks keys at random)."""


def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


class StandInProcess:
    """The stand-in as a subprocess on 127.0.0.1 and its HTTP API (``/control``, ``/log``, ``/stats``)."""

    def __init__(self) -> None:
        tool = json.dumps({"a": 2, "b": 3})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hfs_core.testing.standin", "--port", "0", "--latency", "0.05",
             "--tool-call", f"add={tool}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("STANDIN_URL="):
            self.close()
            raise CliError(f"the provider stand-in did not start ({line or 'no output'})",
                           "run `python -m hfs_core.testing.standin` to see why")
        self.url = line.removeprefix("STANDIN_URL=")
        self._seen = 0

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:  # 127.0.0.1 only
            return json.loads(reply.read())

    def control(self, **command: Any) -> None:
        """Change how the stand-in answers (see ``StandIn.control``)."""
        self._call("/control", command)

    def new_requests(self) -> list[dict[str, Any]]:
        """The requests seen since the last time this was asked: key suffix and status each."""
        requests: list[dict[str, Any]] = self._call(f"/log?since={self._seen}")["requests"]
        self._seen += len(requests)
        return requests

    def stats(self) -> dict[str, Any]:
        """The stand-in's statistics (keys by their last 4 characters)."""
        data: dict[str, Any] = self._call("/stats")
        return data

    def close(self) -> None:
        """Stop the subprocess."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def _standin() -> Iterator[StandInProcess]:
    server = StandInProcess()
    try:
        yield server
    finally:
        server.close()


def throwaway_keys(prefix: str, count: int) -> list[str]:
    """`count` random keys that start like the provider's real ones."""
    import secrets

    alphabet = string.ascii_lowercase + string.digits
    return [prefix + "".join(secrets.choice(alphabet) for _ in range(48)) for _ in range(count)]


def _pick_provider(requested: str | None, log_filter: LogFilter) -> tuple[str, str]:
    """The provider to show (groq when installed, else the first installed) and its key prefix."""
    from hfs_core.registry import Registry

    log_filter.muted = True  # a registry without keys: its complaints are not the demo's
    try:
        specs = Registry(env={}).specs
    finally:
        log_filter.muted = False
    if not specs:
        raise CliError("no provider plugins are installed", FIRST_PLUGIN)
    name = requested or ("groq" if "groq" in specs else sorted(specs)[0])
    if name not in specs:
        raise CliError(f"provider {name!r} is not installed", f"installed: {', '.join(sorted(specs))}")
    return name, specs[name].key_prefix or ""


def _requests_text(requests: list[dict[str, Any]]) -> str:
    return ", ".join(f"…{r['key']} {r['status']}" for r in requests) or "none"


def _run(agent: Any, number: int, server: StandInProcess) -> tuple[list[dict[str, Any]], bool]:
    """One agent run, printed as one line; the requests it made, and whether it was answered."""
    result = agent.run(PROMPT)
    requests = server.new_requests()
    content = str(getattr(result, "content", "") or "")
    status = str(getattr(getattr(result, "status", None), "value", "")).lower()
    answered = bool(content) and status != "error"
    shown = content if answered else f"ERROR: {content or 'no answer'}"
    out(f"  run {number:>2}  {shown}   requests: {_requests_text(requests)}")
    sys.stdout.flush()
    return requests, answered


def cmd_demo(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Show the pool at work on throwaway keys against the local stand-in."""
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    provider, prefix = _pick_provider(args.provider, log_filter)
    keys = throwaway_keys(prefix, KEYS)
    env = {f"NUM_{provider.upper()}": str(KEYS), **{f"{provider.upper()}_API_KEY_{i}": k
                                                     for i, k in enumerate(keys, 1)}}
    remember_secrets(SecretMask(env))
    from hfs_core.config import Config, ProviderConfig
    from hfs_core.registry import Registry

    with _standin() as server:
        config = Config(track_usage=False, providers={provider: ProviderConfig(base_url=server.url,
                                                                               expected_keys=KEYS)})
        log_filter.muted = True
        try:
            registry = Registry(env=env, config=config, plugins=[provider])
        finally:
            log_filter.muted = False
        remember_secrets(registry.mask)
        try:
            return _show(registry, provider, keys, server)
        finally:
            registry.shutdown()


def _show(registry: Any, provider: str, keys: list[str], server: StandInProcess) -> int:
    from agno.agent import Agent

    model = registry.get_model(provider)
    agent = Agent(model=model, tools=[add], telemetry=False)
    out(f"A provider stand-in on {server.url} (this machine only) and {KEYS} throwaway {provider} keys: "
        + " ".join(mask_key(k) for k in keys))
    out(f"An Agno Agent with one tool (add) on get_model({provider!r}), asked {PROMPT!r}: each run is two "
        "model calls, the tool call and the answer.")
    runs = answered = 0

    def run() -> list[dict[str, Any]]:
        nonlocal runs, answered
        runs += 1
        requests, ok = _run(agent, runs, server)
        answered += ok
        return requests

    out()
    out("1. Calls spread over the keys (each call takes the less busy of two keys picked at random)")
    for _ in range(4):
        run()

    out()
    out("2. A rate limit, absorbed by rotation: the provider answers the next request 429, "
        f"Retry-After {RETRY_AFTER} s")
    server.control(fail_next={"n": 1, "status": 429, "retry_after": RETRY_AFTER, "message": "Rate limit reached"})
    limited = next((r["key"] for r in run() if r["status"] == 429), None)
    if limited:
        out(f"     key …{limited} is cooling for {RETRY_AFTER} s; the call went on at once on another key, "
            "and the agent saw no error")

    victim = next(k for k in keys if k[-4:] != limited)
    out()
    out(f"3. A dead key, retired: the provider revokes key {mask_key(victim)} (401 from now on)")
    server.control(keys=[{"key": victim, "status": 401}])
    for _ in range(_MAX_RUNS):
        if any(r["status"] == 401 for r in run()):
            out(f"     key {mask_key(victim)} answered 401 once and is out of the pool for good; "
                "the call went on on another key")
            break
    else:
        out(f"     the pool did not pick key {mask_key(victim)} in {_MAX_RUNS} runs")

    _summary(registry.pool(provider).status(), server.stats(), keys, runs, answered)
    out()
    out(f"With real keys: set NUM_{provider.upper()} and {provider.upper()}_API_KEY_1.. "
        f"(`hfs providers` says what to set), then `hfs ask -p {provider} \"Say hi\"`.")
    return 0 if answered == runs else 1


def _summary(status: Any, stats: dict[str, Any], keys: list[str], runs: int, answered: int) -> None:
    out()
    out("Summary")
    rows = []
    for key in keys:
        counts = stats["by_key"].get(key[-4:], {})
        state = "retired (401)" if counts.get("401") else f"cooling (429, {RETRY_AFTER} s)" if counts.get("429") \
            else "live"
        rows.append([mask_key(key), str(counts.get("total", 0)), str(counts.get("200", 0)),
                     str(counts.get("429", 0)), str(counts.get("401", 0)), state])
    table(["key", "requests", "200", "429", "401", "now"], rows, right={1, 2, 3, 4})
    absorbed = stats["total"] - stats["accepted"]
    out(f"{answered} of {runs} agent runs answered; {absorbed} upstream errors absorbed by the pool, "
        f"{runs - answered} reached the agent. Pool: {status.total} keys, {status.dead} retired, "
        f"{status.cooling} cooling.")
