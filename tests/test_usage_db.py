"""The usage database keeps what it promised: one row per successful call, nothing lost
silently, nothing doubled, on SQLite and on the real MariaDB server on 127.0.0.1:3306.

A database that goes away mid-run is simulated with a small TCP proxy on 127.0.0.1 in
front of MariaDB (`TcpProxy`): cutting it drops every open connection and refuses new
ones at once, as a database host that went down would; restoring it lets them through
again. The shared MariaDB server itself is never stopped. Rows are told apart from other
tests' rows by their key suffixes, which are random per test.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
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
from agno.models.message import Message
from conftest import keys_of, provider_env
from services import MARIADB, MARIADB_URL, TcpProxy, free_port, needs_mariadb

from hfs_core import Registry
from hfs_core.testing.standin import StandIn
from hfs_core.usage import UsageStore, database_link

Record = Callable[[str, object], None]


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = TcpProxy(MARIADB)
    yield server
    server.close()


@pytest.fixture
def mariadb() -> Iterator[sa.Engine]:
    engine = sa.create_engine(MARIADB_URL)
    yield engine
    engine.dispose()


def rows_for(engine: sa.Engine, suffixes: list[str]) -> list[tuple[Any, ...]]:
    marks = ", ".join(f":s{i}" for i in range(len(suffixes)))
    query = sa.text(f"SELECT provider, model, api_key_suffix, tokens FROM usage_logs "
                    f"WHERE api_key_suffix IN ({marks})")
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query, {f"s{i}": s for i, s in enumerate(suffixes)})]


def delete_rows(engine: sa.Engine, suffixes: list[str]) -> None:
    marks = ", ".join(f":s{i}" for i in range(len(suffixes)))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM usage_logs WHERE api_key_suffix IN ({marks})"),
                     {f"s{i}": s for i, s in enumerate(suffixes)})


def suffixes(keys: list[str]) -> list[str]:
    return [k[-8:] for k in keys]


def call_many(model: Any, count: int, workers: int = 8) -> int:
    """`count` calls on `workers` threads; the number that succeeded (all must)."""
    done: list[int] = []
    errors: list[BaseException] = []

    def worker(share: int) -> None:
        for _ in range(share):
            try:
                model.response(messages=[Message(role="user", content="count me")])
                done.append(1)
            except Exception as exc:
                errors.append(exc)

    shares = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    threads = [threading.Thread(target=worker, args=(n,)) for n in shares if n]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, f"{len(errors)} calls failed, first: {errors[0]!r}"
    return len(done)


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def groq_registry(make_registry: Callable[..., Registry], standin: StandIn, keys: int,
                  db_url: str | None) -> tuple[Registry, Any, list[str]]:
    env = provider_env({"groq": keys}, db_url=db_url)
    registry = make_registry(env=env)
    return registry, registry.get_model("groq", base_url=standin.url), keys_of(env, "groq")


# ---------------------------------------------------------------------- exactly N rows


def test_sqlite_default_keeps_exactly_n_rows(make_registry: Any, standin: StandIn, isolated: Path,
                                             record_property: Record) -> None:
    registry, model, keys = groq_registry(make_registry, standin, 4, None)
    assert registry.usage_url() == f"sqlite:///{isolated / 'data' / 'hfs-providers' / 'usage.sqlite3'}"
    n = call_many(model, 100)
    registry.shutdown()
    health = registry.usage_health()
    assert health is not None and (health.written, health.pending, health.lost) == (100, 0, 0)
    with sqlite3.connect(isolated / "data" / "hfs-providers" / "usage.sqlite3") as db:
        rows = db.execute("SELECT provider, model, api_key_suffix, tokens FROM usage_logs").fetchall()
    assert len(rows) == n == 100
    assert {r[2] for r in rows} <= set(suffixes(keys))
    assert all(r[0] == "groq" and r[1] == "openai/gpt-oss-120b" and r[3] > 0 for r in rows)
    record_property("calls", n)
    record_property("rows", len(rows))


@pytest.mark.mariadb
@needs_mariadb
def test_mariadb_keeps_exactly_n_rows(make_registry: Any, standin: StandIn, mariadb: sa.Engine,
                                      record_property: Record) -> None:
    registry, model, keys = groq_registry(make_registry, standin, 4, MARIADB_URL)
    try:
        n = call_many(model, 100)
        registry.shutdown()
        health = registry.usage_health()
        assert health is not None and (health.written, health.pending, health.lost) == (100, 0, 0)
        rows = rows_for(mariadb, suffixes(keys))
        assert len(rows) == n == 100
        assert all(r[0] == "groq" and r[1] == "openai/gpt-oss-120b" and r[3] > 0 for r in rows)
        record_property("calls", n)
        record_property("rows", len(rows))
    finally:
        delete_rows(mariadb, suffixes(keys))


def test_rows_are_replayed_into_the_windows_of_the_next_process(make_registry: Any, standin: StandIn,
                                                                sqlite_url: str) -> None:
    """Rows kept are rows used: a restarted registry knows the key already spent its minute."""
    env = provider_env({"groq": 1}, db_url=sqlite_url)
    first = make_registry(env=env)
    model = first.get_model("groq", base_url=standin.url)
    call_many(model, 30, workers=1)  # keycycle's table: 30 calls per minute for this model
    first.shutdown()
    second = make_registry(env=env)
    again = second.get_model("groq", base_url=standin.url, wait=False)
    with pytest.raises(Exception, match="no key free"):
        again.response(messages=[Message(role="user", content="one more")])
    assert standin.total == 30


# ---------------------------------------------------------------------- unreachable at start


@pytest.mark.slow
def test_database_unreachable_at_start(make_registry: Any, standin: StandIn, isolated: Path,
                                       caplog: pytest.LogCaptureFixture, record_property: Record) -> None:
    port = free_port()
    url = f"mysql+pymysql://root:secret-pw-123@127.0.0.1:{port}/test"
    shown = f"mysql+pymysql://root:***@127.0.0.1:{port}/test"
    caplog.set_level(logging.DEBUG)
    registry, model, _ = groq_registry(make_registry, standin, 3, url)
    started = time.monotonic()
    n = call_many(model, 20)
    elapsed = time.monotonic() - started
    assert n == 20
    health = registry.usage_health()
    assert health is not None and not health.connected and health.url == shown
    assert health.pending == 20 and health.last_error and "Connection refused" in health.last_error
    warnings = [r.getMessage() for r in caplog.records if r.name == "hfs_core.usage" and r.levelno >= logging.WARNING]
    assert any(shown in w and "unreachable" in w for w in warnings), warnings
    assert "secret-pw-123" not in caplog.text

    # `hfs check` reports the database (as the operator would run it next to the process).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "GROQ_", "TIDB_"))}
    env.update(provider_env({"groq": 1}, db_url=url))
    done = subprocess.run([sys.executable, "-m", "hfs_core.cli", "check", "--json"], cwd=isolated, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "secret-pw-123" not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["usage_db"]["reachable"] is False
    assert report["usage_db"]["url"] == shown
    plain = subprocess.run([sys.executable, "-m", "hfs_core.cli", "check"], cwd=isolated, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown in plain.stdout and "unreachable" in plain.stdout

    # At shutdown the rows that never found the database wait in the spool of the data folder
    # for the next process, and it is said (the store is closed with a short timeout first:
    # registry.shutdown() would give it 5 s).
    caplog.clear()
    store = registry.usage_store()
    assert store is not None
    store.close(timeout=0.5)
    registry.shutdown()
    health = registry.usage_health()
    assert health is not None and (health.written, health.pending, health.spooled, health.lost) == (0, 20, 20, 0)
    spool = isolated / "data" / "hfs-providers" / "spool.sqlite3"
    assert any("20 rows wait in the spool" in r.getMessage() and shown in r.getMessage() and str(spool) in
               r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT COUNT(*) FROM spooled_rows").fetchone() == (20,)
    assert "secret-pw-123" not in caplog.text
    assert b"secret-pw-123" not in spool.read_bytes()
    record_property("calls", n)
    record_property("call_seconds", round(elapsed, 2))
    record_property("spooled_reported", health.spooled)


# ---------------------------------------------------------------------- going away mid-run


@pytest.mark.mariadb
@needs_mariadb
def test_mariadb_goes_away_and_comes_back(make_registry: Any, standin: StandIn, proxy: TcpProxy,
                                          mariadb: sa.Engine, caplog: pytest.LogCaptureFixture,
                                          record_property: Record) -> None:
    caplog.set_level(logging.INFO, logger="hfs_core.usage")
    registry, model, keys = groq_registry(make_registry, standin, 4, proxy.url())
    store = registry.usage_store()
    assert store is not None
    store.retry_seconds = 0.5  # the writer retries every 2 s by default; 0.5 s keeps the test short
    try:
        call_many(model, 20)
        assert store.flush(5.0) and len(rows_for(mariadb, suffixes(keys))) == 20

        proxy.cut()
        cut_at = started = time.monotonic()
        call_many(model, 30)
        assert time.monotonic() - started < 5.0, "calls waited on the database"
        assert wait_for(lambda: not store.health().connected, 5.0), "the outage went unnoticed"
        time.sleep(1.2)  # long enough for the writer to try again (every 0.5 s here) and fail again
        health = store.health()
        assert not health.connected and health.pending == 30 and health.written == 20 and health.lost == 0
        assert any("unreachable" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

        proxy.restore()
        outage = time.monotonic() - cut_at
        assert wait_for(lambda: store.health().written == 50, 8.0), store.health()
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        call_many(model, 10)
        registry.shutdown()
        health = store.health()
        assert (health.written, health.pending, health.lost) == (60, 0, 0)
        rows = rows_for(mariadb, suffixes(keys))
        assert len(rows) == 60, f"{len(rows)} rows for 60 calls"
        record_property("calls", 60)
        record_property("calls_during_outage", 30)
        record_property("outage_seconds", round(outage, 1))
        record_property("rows", len(rows))
        record_property("lost", health.lost)
    finally:
        delete_rows(mariadb, suffixes(keys))


@pytest.mark.mariadb
@needs_mariadb
def test_mariadb_gone_at_shutdown_spools_and_reports_the_rest(make_registry: Any, standin: StandIn,
                                                              proxy: TcpProxy, mariadb: sa.Engine,
                                                              caplog: pytest.LogCaptureFixture,
                                                              record_property: Record) -> None:
    registry, model, keys = groq_registry(make_registry, standin, 4, proxy.url())
    store = registry.usage_store()
    assert store is not None
    try:
        call_many(model, 10)
        assert store.flush(5.0)
        proxy.cut()
        call_many(model, 15)
        started = time.monotonic()
        registry.shutdown()
        took = time.monotonic() - started
        health = store.health()
        assert (health.written, health.pending, health.spooled, health.lost) == (10, 15, 15, 0)
        assert any("15 rows wait in the spool" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.WARNING)
        assert took < 12.0
        assert len(rows_for(mariadb, suffixes(keys))) == 10
        record_property("written", health.written)
        record_property("spooled_reported", health.spooled)
        record_property("shutdown_seconds", round(took, 2))
    finally:
        delete_rows(mariadb, suffixes(keys))


# ---------------------------------------------------------------------- the store on its own


def test_store_accounts_for_every_row(sqlite_url: str) -> None:
    store = UsageStore(sqlite_url)
    threads = [threading.Thread(target=lambda: [store.record("groq", "m", "abcdefgh", 5) for _ in range(250)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    health = store.close()
    assert (health.written, health.pending, health.lost) == (2000, 0, 0)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        assert db.execute("SELECT COUNT(*) FROM usage_logs").fetchone() == (2000,)


def test_sqlite_store_writes_in_wal_mode(sqlite_url: str) -> None:
    """The store's SQLite connections use WAL with synchronous=NORMAL (commits skip the fsync)."""
    store = UsageStore(sqlite_url)
    try:
        for _ in range(3):
            store.record("groq", "m", "abcdefgh", 5)
        assert store.flush()
        with store._database.db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        assert store.close().written == 3
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT COUNT(*) FROM usage_logs").fetchone() == (3,)


def test_row_recorded_after_shutdown_is_counted_lost(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = UsageStore(sqlite_url)
    store.record("groq", "m", "abcdefgh", 5)
    store.close()
    store.record("groq", "m", "abcdefgh", 5)  # a call that ended after shutdown
    health = store.health()
    assert (health.written, health.pending, health.lost) == (1, 0, 1)
    assert "after shutdown is lost" in caplog.text
    assert store.close() == health  # closing twice is harmless


def test_full_queue_counts_loss(caplog: pytest.LogCaptureFixture) -> None:
    url = f"mysql+pymysql://root:pw@127.0.0.1:{free_port()}/test"
    store = UsageStore(url, max_pending=5, retry_seconds=60)
    for _ in range(8):
        store.record("groq", "m", "abcdefgh", 1)
    health = store.health()
    assert (health.pending, health.lost) == (5, 3)
    assert "3 rows lost" in caplog.text or "1 rows lost" in caplog.text
    health = store.close(timeout=0.5)
    assert (health.written, health.pending, health.lost) == (0, 0, 8)
    assert ":pw@" not in caplog.text


def test_mysql_urls_get_timeouts_and_keep_their_own() -> None:
    from hfs_core.usage.database_link import with_timeouts

    url = with_timeouts("mysql+pymysql://u:p%40ss@db.example:4000/x")
    assert "connect_timeout=5" in url and "read_timeout=15" in url and "u:p%40ss@" in url
    assert "connect_timeout=1" in with_timeouts("mysql+pymysql://u@h/x?connect_timeout=1")
    assert "connect_timeout=5" not in with_timeouts("mysql+pymysql://u@h/x?connect_timeout=1")
    assert with_timeouts("sqlite:///x.db") == "sqlite:///x.db"
    assert with_timeouts("not a url") == "not a url"


def test_database_that_never_answers_does_not_hold_up_calls(make_registry: Any, standin: StandIn,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture,
                                                            record_property: Record) -> None:
    """A host that accepts the TCP connection and then says nothing (a hung server, a firewall
    black hole): the first get_model waits for the usage history at most HISTORY_WAIT (3 s by
    default, 1 s here), and the calls that follow never wait on the database."""
    monkeypatch.setattr(database_link, "HISTORY_WAIT", 1.0)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # never accepted: the handshake completes, no greeting ever comes
    try:
        url = f"mysql+pymysql://root:pw@127.0.0.1:{hole.getsockname()[1]}/test"
        for module in ("agno.models.groq", "hfs_core._keycycle", "pymysql"):  # time the wait, not first imports
            importlib.import_module(module)
        started = time.monotonic()
        registry, model, _ = groq_registry(make_registry, standin, 3, url)
        first = time.monotonic() - started
        started = time.monotonic()
        call_many(model, 20)
        calls = time.monotonic() - started
        assert first < 2.5, f"get_model waited {first:.1f}s on the database (HISTORY_WAIT is 1 s here, 3 s by default)"
        assert calls < 2.0
        assert "did not answer within 1s: groq starts with empty rate windows" in caplog.text
        health = registry.usage_health()
        assert health is not None and not health.connected and health.pending == 20
        store = registry.usage_store()
        assert store is not None
        closed = store.close(timeout=0.5)
        # Each row is either kept in the spool (the writer may have reached it on a loaded machine) or
        # counted as lost: none vanishes.
        assert closed.lost + closed.spooled == 20
        record_property("first_get_model_seconds", round(first, 2))
        record_property("seconds_for_20_calls", round(calls, 2))
    finally:
        hole.close()
