"""Hardening of the usage database: an unusable data folder, SIGTERM, and rows waiting for a
database that is down (findings 1 to 3 of the usage part of the hardening issue).

The processes that get SIGTERM or SIGKILL are real children (`CHILD`, a script written by the
test) calling the provider stand-in run by the test; the rows are counted in the database
afterwards. A database that is down is MariaDB behind the cuttable `TcpProxy` of
tests/test_usage_db.py, or a SQLite file whose folder is blocked by a plain file. Rows are
told apart from other tests' rows by their random key suffixes.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import keys_of, provider_env
from services import MARIADB_URL, TcpProxy, needs_mariadb
from test_usage_db import call_many, delete_rows, rows_for, suffixes

from hfs_core.testing.standin import StandIn
from hfs_core.usage import UsageStore
from hfs_core.usage.spool import Spool

Record = Callable[[str, object], None]

CHILD = r'''
import logging, signal, sys, time
logging.basicConfig(level=logging.WARNING)
from agno.models.message import Message
from hfs_core import Registry

url, calls, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "app-handler":
    def on_term(signum, frame):
        print("APP-HANDLER", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
registry = Registry()
model = registry.get_model("groq", base_url=url)
for _ in range(calls):
    model.response(messages=[Message(role="user", content="count me")])
store = registry.usage_store()
if mode == "wait-spooled":  # every row is in the spool file, none in memory only
    while store.health().spooled < calls:
        time.sleep(0.02)
if mode == "replay":
    registry.shutdown()
    h = store.health()
    print(f"HEALTH {h.written} {h.pending} {h.lost} {h.replayed}", flush=True)
    sys.exit(0)
print("READY", flush=True)
time.sleep(120)
'''


class Child:
    """A child process running `CHILD`, its stdout read line by line on a thread."""

    def __init__(self, script: Path, env: dict[str, str], url: str, calls: int, mode: str) -> None:
        full = {k: v for k, v in os.environ.items()
                if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
        full.update(env)
        full["HFS_PLUGINS"] = "groq"
        self.proc = subprocess.Popen([sys.executable, str(script), url, str(calls), mode], env=full,
                                     cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for(self, word: str, seconds: float = 60.0) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if line.startswith(word):
                return line
        stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(f"child never printed {word!r}; stdout {self.seen}, stderr {stderr[-3000:]}")

    def end(self, sig: int | None = None, seconds: float = 30.0) -> int:
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(seconds)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return code

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def script(isolated: Path) -> Path:
    path = isolated / "child.py"
    path.write_text(CHILD)
    return path


@pytest.fixture
def mariadb() -> Iterator[sa.Engine]:
    engine = sa.create_engine(MARIADB_URL)
    yield engine
    engine.dispose()


def sqlite_count(path: Path, keys: list[str]) -> int:
    if not path.exists():
        return 0
    marks = ",".join("?" * len(keys))
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM usage_logs WHERE api_key_suffix IN ({marks})",
                              suffixes(keys)).fetchone()[0])


# -- 1: an unusable data folder ---------------------------------------------------------------


def test_unusable_data_folder_leaves_calls_going(isolated: Path, make_registry: Any, standin: StandIn,
                                                 monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                 record_property: Record) -> None:
    blocker = isolated / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    caplog.set_level(logging.INFO)
    registry = make_registry(env=provider_env({"groq": 3, "cerebras": 2}))
    model = registry.get_model("groq", base_url=standin.url)  # raised NotADirectoryError before
    n = call_many(model, 20)
    registry.get_model("cerebras", base_url=standin.url)
    assert registry.available_providers == ["cerebras", "groq"]
    store = registry.usage_store()
    assert store is not None
    folder = str(blocker / "hfs-providers")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and (r.name == "hfs_core.usage" or str(blocker) in r.getMessage() or "pool" in r.getMessage())]
    assert len(warnings) == 1, warnings
    [warning] = warnings
    assert folder in warning
    assert all(word in warning for word in ("TIDB_DB_URL", "usage_db_url", "track_usage = false", "XDG_DATA_HOME"))
    health = store.health()
    assert not health.connected and health.pending == 20 and health.spooled == 0
    health = store.close(timeout=0.5)
    assert (health.written, health.pending, health.lost) == (0, 0, 20)
    assert "20 rows could not be written before shutdown" in caplog.text
    record_property("calls", n)
    record_property("providers_available", len(registry.available_providers))
    record_property("warnings", len(warnings))
    record_property("lost_reported", health.lost)


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "hfs_core.cli", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


def test_unusable_data_folder_is_a_finding_of_check_and_said_by_usage(isolated: Path,
                                                                     record_property: Record) -> None:
    blocker = isolated / "not-a-folder"
    blocker.write_text("")
    env = {**provider_env({"groq": 2}), "XDG_DATA_HOME": str(blocker)}
    check = cli(isolated, env, "check", "--json")
    assert "Traceback" not in check.stderr, check.stderr
    import json

    report = json.loads(check.stdout)
    [finding] = [f for f in report["findings"] if f["scope"] == "usage db"]
    assert finding["severity"] == "error" and str(blocker) in finding["message"]
    assert "XDG_DATA_HOME" in finding["hint"] and "TIDB_DB_URL" in finding["hint"]
    assert "track_usage = false" in finding["hint"]
    assert check.returncode == 1 and report["providers"]["groq"]["healthy"]
    plain = cli(isolated, env, "check")
    assert "Traceback" not in plain.stderr and str(blocker) in plain.stdout

    usage = cli(isolated, env, "usage")
    assert "Traceback" not in usage.stderr, usage.stderr
    said = usage.stdout + usage.stderr
    assert usage.returncode == 1 and str(blocker) in said and "XDG_DATA_HOME" in said and "TIDB_DB_URL" in said
    assert "does not exist yet" not in said
    usage_json = cli(isolated, env, "usage", "--json")
    assert usage_json.returncode == 1 and "Traceback" not in usage_json.stderr
    record_property("check_exit_code", check.returncode)
    record_property("usage_exit_code", usage.returncode)


# -- 2: SIGTERM ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_keeps_every_row_sqlite(isolated: Path, script: Path, standin: StandIn,
                                        record_property: Record) -> None:
    env = provider_env({"groq": 10})
    child = Child(script, env, standin.url, 200, "plain")
    child.wait_for("READY")
    code = child.end(signal.SIGTERM)
    assert code == -signal.SIGTERM, child.stderr()  # the default action still ends the process
    rows = sqlite_count(isolated / "data" / "hfs-providers" / "usage.sqlite3", keys_of(env, "groq"))
    assert rows == 200
    record_property("calls", 200)
    record_property("rows", rows)


@pytest.mark.slow
@pytest.mark.mariadb
@needs_mariadb
def test_sigterm_keeps_every_row_mariadb(script: Path, standin: StandIn, mariadb: sa.Engine,
                                         record_property: Record) -> None:
    env = provider_env({"groq": 10}, db_url=MARIADB_URL)
    keys = keys_of(env, "groq")
    try:
        child = Child(script, env, standin.url, 200, "plain")
        child.wait_for("READY")
        assert child.end(signal.SIGTERM) == -signal.SIGTERM, child.stderr()
        rows = len(rows_for(mariadb, suffixes(keys)))
        assert rows == 200
        record_property("calls", 200)
        record_property("rows", rows)
    finally:
        delete_rows(mariadb, suffixes(keys))


@pytest.mark.slow
def test_sigterm_flushes_then_calls_the_applications_handler(isolated: Path, script: Path, standin: StandIn,
                                                             record_property: Record) -> None:
    env = provider_env({"groq": 10})
    child = Child(script, env, standin.url, 100, "app-handler")
    child.wait_for("READY")
    child.proc.send_signal(signal.SIGTERM)
    child.wait_for("APP-HANDLER")
    assert child.end() == 0  # the application's handler decided how the process ends
    rows = sqlite_count(isolated / "data" / "hfs-providers" / "usage.sqlite3", keys_of(env, "groq"))
    assert rows == 100
    record_property("rows", rows)


def test_sigterm_handler_is_installed_only_where_allowed(isolated: Path) -> None:
    code = r'''
import signal, threading
from hfs_core import Registry

signal.signal(signal.SIGTERM, signal.SIG_IGN)
Registry(env={})
print("ignored", signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
t = threading.Thread(target=lambda: Registry(env={}))
t.start(); t.join()
print("thread", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
Registry(env={})
print("main", callable(signal.getsignal(signal.SIGTERM)))
'''
    done = subprocess.run([sys.executable, "-c", code], cwd=isolated, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["ignored", "True", "thread", "True", "main", "True"], done.stderr


# -- 3: rows waiting for a database that is down -----------------------------------------------


class Outage:
    """A usage database that can be taken down and brought back: MariaDB behind a proxy, or a
    SQLite file whose folder is blocked by a plain file."""

    def __init__(self, backend: str, isolated: Path) -> None:
        self.backend = backend
        self.proxy: TcpProxy | None = None
        self.engine: sa.Engine | None = None
        if backend == "mariadb":
            self.proxy = TcpProxy(("127.0.0.1", 3306))
            self.url = self.proxy.url()
            self.engine = sa.create_engine(MARIADB_URL)
        else:
            self.blocker = isolated / "db"
            self.url = f"sqlite:///{self.blocker / 'usage.sqlite3'}"

    def cut(self) -> None:
        if self.proxy is not None:
            self.proxy.cut()
        else:
            self.blocker.write_text("")

    def restore(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()
        else:
            self.blocker.unlink()

    def count(self, keys: list[str]) -> int:
        if self.engine is not None:
            return len(rows_for(self.engine, suffixes(keys)))
        return sqlite_count(self.blocker / "usage.sqlite3", keys)

    def close(self, keys: list[str]) -> None:
        if self.engine is not None:
            delete_rows(self.engine, suffixes(keys))
            self.engine.dispose()
        if self.proxy is not None:
            self.proxy.close()


BACKENDS = [pytest.param("sqlite"),
            pytest.param("mariadb", marks=[pytest.mark.mariadb, needs_mariadb])]


def spool_rows(isolated: Path) -> int:
    path = isolated / "data" / "hfs-providers" / "spool.sqlite3"
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM spooled_rows").fetchone()[0])


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_database_down_at_sigterm_rows_are_written_by_the_next_start(
        backend: str, isolated: Path, script: Path, standin: StandIn, record_property: Record) -> None:
    outage = Outage(backend, isolated)
    env = provider_env({"groq": 10}, db_url=outage.url)
    keys = keys_of(env, "groq")
    try:
        outage.cut()
        first = Child(script, env, standin.url, 150, "plain")
        first.wait_for("READY")
        assert first.end(signal.SIGTERM) == -signal.SIGTERM
        stderr = first.stderr()
        assert "lost" not in stderr and "spool" in stderr, stderr
        spooled = spool_rows(isolated)
        assert spooled == 150
        outage.restore()
        assert outage.count(keys) == 0
        second = Child(script, env, standin.url, 0, "replay")
        health = second.wait_for("HEALTH").split()[1:]
        assert second.end() == 0
        assert health == ["0", "0", "0", "150"]  # written, pending, lost by itself; replayed from the spool
        assert outage.count(keys) == 150
        assert spool_rows(isolated) == 0
        record_property("calls", 150)
        record_property("spooled_at_sigterm", spooled)
        record_property("rows_after_next_start", outage.count(keys))
    finally:
        outage.close(keys)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_crash_while_database_down_loses_nothing_spooled(
        backend: str, isolated: Path, script: Path, standin: StandIn, record_property: Record) -> None:
    outage = Outage(backend, isolated)
    env = provider_env({"groq": 10}, db_url=outage.url)
    keys = keys_of(env, "groq")
    try:
        outage.cut()
        first = Child(script, env, standin.url, 120, "wait-spooled")
        first.wait_for("READY")
        assert first.end(signal.SIGKILL) == -signal.SIGKILL
        outage.restore()
        second = Child(script, env, standin.url, 30, "replay")
        health = second.wait_for("HEALTH").split()[1:]
        assert second.end() == 0
        assert health == ["30", "0", "0", "120"]
        assert outage.count(keys) == 150
        record_property("rows_spooled_before_kill", 120)
        record_property("rows_after_next_start", outage.count(keys))
    finally:
        outage.close(keys)


def test_rows_are_spooled_only_when_the_database_is_down(isolated: Path, sqlite_url: str) -> None:
    """The hot path never touches the spool: with the database up, nothing is spooled."""
    spool_path = isolated / "spool.sqlite3"
    store = UsageStore(sqlite_url, spool=Spool(spool_path, sqlite_url))
    for _ in range(300):
        store.record("groq", "m", "abcdefgh", 5)
    health = store.close()
    assert (health.written, health.spooled, health.lost) == (300, 0, 0)
    assert not spool_path.exists()


def test_unwritable_spool_falls_back_to_memory_and_counts(isolated: Path, caplog: pytest.LogCaptureFixture,
                                                          record_property: Record) -> None:
    blocker = isolated / "blocked"
    blocker.write_text("")
    url = "mysql+pymysql://root:pw-spool-9@127.0.0.1:1/test"
    store = UsageStore(url, spool=Spool(blocker / "spool.sqlite3", url), retry_seconds=0.2)
    for _ in range(40):
        store.record("groq", "m", "abcdefgh", 5)
    time.sleep(0.6)
    health = store.health()
    assert (health.pending, health.spooled, health.lost) == (40, 0, 0)
    spool_warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("usage spool")
                      and r.levelno >= logging.WARNING]
    assert len(spool_warnings) == 1 and str(blocker) in spool_warnings[0]
    health = store.close(timeout=0.5)
    assert (health.written, health.pending, health.lost) == (0, 0, 40)
    assert "40 rows could not be written" in caplog.text
    assert "pw-spool-9" not in caplog.text
    record_property("lost_reported", health.lost)


def test_spool_is_keyed_by_a_hash_never_the_password(isolated: Path) -> None:
    url = "mysql+pymysql://root:pw-hash-7@127.0.0.1:1/test"
    spool = Spool(isolated / "spool.sqlite3", url)
    spool.add([("groq", "m", "abcdefgh", 1.0, 5)])
    raw = (isolated / "spool.sqlite3").read_bytes()
    assert b"pw-hash-7" not in raw and b"127.0.0.1" not in raw
    assert Spool(isolated / "spool.sqlite3", url.replace("pw-hash-7", "other")).key == spool.key
    assert Spool(isolated / "spool.sqlite3", url.replace("/test", "/prod")).key != spool.key
