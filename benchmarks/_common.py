"""What the hot-path benchmarks share: a quiet process, the stand-in as its own process, keys,
keycycle-as-it-comes and the registry built side by side, and plain-text tables.

Import this module before anything else in a benchmark: it turns Agno's telemetry off, moves the
process into a scratch directory (keycycle's logging set-up would open ``app.log`` in the working
directory) and imports keycycle through ``hfs_core._keycycle``, which suppresses that set-up.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import logging
import os
import platform
import secrets
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ["AGNO_TELEMETRY"] = "false"
ORIGINAL_CWD = Path.cwd()
SCRATCH = Path(tempfile.mkdtemp(prefix="hfs-bench-"))
os.environ.setdefault("XDG_DATA_HOME", str(SCRATCH / "data"))
os.chdir(SCRATCH)

import keycycle  # noqa: E402
import keycycle.config.log_config  # noqa: E402

GROQ_MODEL = "openai/gpt-oss-120b"  # keycycle's table: 30 RPM, 1000 RPH/RPD, 8000 TPM per key
ALNUM = string.ascii_letters + string.digits


def quiet() -> None:
    """Silence the per-call log lines of Agno, keycycle and the registry (errors are counted instead)."""
    logging.getLogger().addHandler(logging.NullHandler())
    for name in ("agno", "keycycle", "hfs_core", "httpx"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    keycycle.config.log_config.default_logger.setLevel(logging.CRITICAL)
    # keycycle's wrapper forces its logger back to INFO when built; disabling it sticks.
    keycycle.config.log_config.default_logger.disabled = True


def groq_keys(n: int) -> list[str]:
    """`n` random keys with the shape of Groq keys."""
    return ["gsk_" + "".join(secrets.choice(ALNUM) for _ in range(52)) for _ in range(n)]


class StandInProcess:
    """``python -m hfs_core.testing.standin`` in its own process (its own GIL and core)."""

    def __init__(self, *, rpm: int | None = None, window: float = 60.0, latency: float = 0.0) -> None:
        args = [sys.executable, "-m", "hfs_core.testing.standin", "--port", "0", "--window", str(window),
                "--latency", str(latency)]
        if rpm is not None:
            args += ["--rpm", str(rpm)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True)
        atexit.register(self.close)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("STANDIN_URL="):
            self.close()
            raise RuntimeError(f"the stand-in did not start: {line!r}")
        self.url = line.removeprefix("STANDIN_URL=")
        import httpx

        self._http = httpx.Client(base_url=self.url, timeout=10)

    def stats(self) -> dict[str, Any]:
        """The stand-in's request statistics."""
        data: dict[str, Any] = self._http.get("/stats").json()
        return data

    def log(self) -> list[dict[str, Any]]:
        """Every request since the last reset: its time (s), key suffix and status (``GET /log``)."""
        requests: list[dict[str, Any]] = self._http.get("/log").json()["requests"]
        return requests

    def control(self, command: dict[str, Any]) -> None:
        """Change the stand-in's behaviour (``StandIn.control``: key states, replies, faults...)."""
        self._http.post("/control", json=command).raise_for_status()

    def reset(self) -> None:
        """Forget rate windows and statistics."""
        self.control({"reset": True})

    def close(self) -> None:
        """Stop the stand-in process (safe to call twice)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        with contextlib.suppress(Exception):
            self._http.close()

    def __enter__(self) -> StandInProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keycycle_wrapper(keys: Sequence[str], model_id: str = GROQ_MODEL) -> Any:
    """keycycle as it comes: its wrapper around Agno's Groq class, usage kept in memory only."""
    from agno.models.groq import Groq

    wrapper = keycycle.MultiProviderWrapper("groq", list(keys), model_id, model_class=Groq, track_usage=False)
    quiet()
    return wrapper


def keycycle_model(wrapper: Any, url: str, **kwargs: Any) -> Any:
    """``wrapper.get_model(...)`` pointed at the stand-in, with the SDK's defaults (its retries on)."""
    return wrapper.get_model(base_url=url, **kwargs)


REDIS_URL = "redis://127.0.0.1:6379/0"


def registry(keys: Sequence[str], url: str, *, track_usage: bool = False, state_url: str | None = None,
             namespace: str | None = None, telemetry: Any = None) -> Any:
    """A registry with only the Groq plugin, these keys and the stand-in as base URL; its pools
    on the Redis at `state_url` (in `namespace`) when given, its calls reporting to `telemetry`."""
    from hfs_core import Registry
    from hfs_core.config import Config, ProviderConfig, StateConfig

    env = {"NUM_GROQ": str(len(keys)), **{f"GROQ_API_KEY_{i}": k for i, k in enumerate(keys, 1)}}
    config = Config(
        track_usage=track_usage,
        usage_db_url=f"sqlite:///{SCRATCH / f'usage-{secrets.token_hex(4)}.sqlite3'}",
        providers={"groq": ProviderConfig(base_url=url, expected_keys=len(keys))},
        state=StateConfig(url=state_url, namespace=namespace or f"hfs-bench-{secrets.token_hex(4)}"),
    )
    made = Registry(env=env, config=config, plugins=["groq"], telemetry=telemetry)
    quiet()
    return made


def messages() -> list[Any]:
    """A fresh one-message conversation (Agno appends the answer to the list it is given)."""
    from agno.models.message import Message

    return [Message(role="user", content="hi")]


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""
    from importlib.metadata import version

    load = os.getloadavg()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_1m": round(load[0], 2),
        "versions": {p: version(p) for p in ("keycycle", "agno", "groq", "httpx")},
    }


def print_header(title: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Print the title, the machine and the run's settings; returns the machine facts."""
    facts = machine()
    print(f"# {title}")
    print(f"{facts['date']} | {facts['machine']} | Python {facts['python']} | load {facts['load_1m']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()))
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print()
    return facts


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table (pastes into docs/results.md as it is)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print()


def print_load_results(results: dict[str, Any], capacity: int, budget: float) -> None:
    """The side-by-side table of a load benchmark (saturation, processes)."""
    labels = {"keycycle": "keycycle as it comes", "registry": "registry"}
    rows = []
    for side, r in results.items():
        errors = ", ".join(f"{k} x{v}" for k, v in r["other_errors"].items()) or "none"
        rows.append([labels[side], f"{r['successes']} / {capacity}", f"{r['utilization']:.3f}",
                     r["upstream_429"], f"{r['worst_call_s']:.1f} s (budget {budget:g} s)", r["no_key_errors"],
                     errors])
    print_table(["side", "successes", "utilization", "upstream 429s", "longest call",
                 "NoAvailableKeyError", "other errors reaching the caller"], rows)


def save_json(path: str | None, data: dict[str, Any]) -> None:
    """Write the results as JSON when `--json PATH` was given."""
    if path:
        (ORIGINAL_CWD / path).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` leaves the elapsed seconds in ``t[0]``."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


class WorkerStats:
    """What a set of workers saw: answers, clear refusals, other errors, and the longest call."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.ok = 0
        self.ok_in_time = 0
        self.no_key = 0
        self.errors: dict[str, int] = {}
        self.worst_call = 0.0
        self.worst_no_key = 0.0
        self.calls = 0
        self.timeline: list[tuple[float, float, str]] = []
        """Each call: when it started (``time.monotonic``), how long it took, its outcome."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"calls": self.calls, "ok": self.ok, "ok_in_time": self.ok_in_time, "no_key": self.no_key,
                "errors": dict(self.errors), "worst_call_s": round(self.worst_call, 3),
                "worst_no_key_s": round(self.worst_no_key, 3)}


def run_workers(models: Sequence[Any], deadline: float, pause: float) -> WorkerStats:
    """One thread per model, each calling ``model.response`` until `deadline` (a ``time.monotonic``).

    A call that raises ``NoAvailableKeyError`` (keycycle's, which the registry's subclasses) is a
    clear refusal: the worker sleeps `pause` seconds and goes on. Any other exception is an error,
    counted by type (with its HTTP status when it has one). Calls started before the deadline
    run to their end; ``ok_in_time`` counts the answers that came back before the deadline.
    """
    import threading

    no_key_error = keycycle.NoAvailableKeyError
    stats = WorkerStats()

    def work(model: Any) -> None:
        while time.monotonic() < deadline:
            start = time.monotonic()
            kind = "ok"
            try:
                model.response(messages=messages())
            except no_key_error:
                kind = "no_key"
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                kind = f"{type(exc).__name__}({status})" if status else type(exc).__name__
            end = time.monotonic()
            with stats.lock:
                stats.calls += 1
                stats.timeline.append((start, end - start, kind))
                stats.worst_call = max(stats.worst_call, end - start)
                if kind == "ok":
                    stats.ok += 1
                    stats.ok_in_time += end <= deadline
                elif kind == "no_key":
                    stats.no_key += 1
                    stats.worst_no_key = max(stats.worst_no_key, end - start)
                else:
                    stats.errors[kind] = stats.errors.get(kind, 0) + 1
            if kind != "ok":
                time.sleep(pause)

    threads = [threading.Thread(target=work, args=(m,), daemon=True) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats


def redis_stats(url: str = REDIS_URL) -> dict[str, float]:
    """Redis's own count of script calls and their server time so far (``INFO commandstats``)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    found = {"calls": 0.0, "usec": 0.0}
    for name in ("cmdstat_fcall", "cmdstat_evalsha"):
        entry = stats.get(name, {})
        found["calls"] += float(entry.get("calls", 0))
        found["usec"] += float(entry.get("usec", 0))
    return found


def drop_namespace(namespace: str, url: str = REDIS_URL) -> None:
    """Delete what a benchmark wrote under `namespace`."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=f"{{{namespace}:*", count=1000))
        if names:
            client.delete(*names)
    finally:
        client.close()
