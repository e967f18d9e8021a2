"""Hardening, second round (issue 21): usage rows and cooldowns.

A row the database refuses, or a spool row that cannot be read, is set aside in the spool's
dead-letter table and never holds up the rows behind it; values are fitted to keycycle's table
first. A cooldown row is checked on read: one that is not a number, or ends past any daily reset,
is skipped and said, the rest kept (on the real Redis too). A spool file that is not a SQLite
database is a finding of ``hfs check``. Each test runs the real store against SQLite and, where
marked, the MariaDB server on 127.0.0.1:3306 (strict mode) and the Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from agno.models.message import Message
from conftest import keys_of, provider_env
from services import MARIADB_URL, REDIS_URL, needs_mariadb, needs_redis
from test_cli import clean_env, hfs

from hfs_core import Registry
from hfs_core.testing.standin import StandIn
from hfs_core.usage import Spool, UsageStore

MODEL = "openai/gpt-oss-20b"
BACKENDS = [pytest.param("sqlite"), pytest.param("mariadb", marks=[pytest.mark.mariadb, needs_mariadb])]


def ask(model: Any) -> Any:
    return model.response(messages=[Message(role="user", content="hi")])


def spool_path(isolated: Path) -> Path:
    return isolated / "data" / "hfs-providers" / "spool.sqlite3"


@pytest.fixture
def database(request: pytest.FixtureRequest, isolated: Path) -> Iterator[str]:
    """A usage database of this test's own: a SQLite file, or a MariaDB database created for it."""
    if request.param == "sqlite":
        yield f"sqlite:///{isolated / 'usage.sqlite3'}"
        return
    name = f"hfs_h2u_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(MARIADB_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield MARIADB_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()


def refusing_table(url: str) -> None:
    """keycycle's ``usage_logs``, made by hand with a CHECK that refuses a row of 13 tokens."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE usage_logs (id INTEGER PRIMARY KEY AUTO_INCREMENT, provider VARCHAR(100), "
            "model VARCHAR(100), api_key_suffix VARCHAR(50), timestamp FLOAT, tokens INTEGER, "
            "CHECK (tokens <> 13))".replace("AUTO_INCREMENT", "" if url.startswith("sqlite") else "AUTO_INCREMENT")))
    engine.dispose()


def count_rows(url: str, where: str = "1=1") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM usage_logs WHERE {where}")).scalar_one())
    finally:
        engine.dispose()


def dead_letters(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        query = "SELECT provider, model, api_key_suffix, tokens, reason FROM rejected_rows"
        return [tuple(r) for r in db.execute(query)]


def cli_env(isolated: Path, url: str) -> dict[str, str]:
    return clean_env(isolated, {"TIDB_DB_URL": url, "HFS_PLUGINS": "groq", "NUM_GROQ": "0"})


# -- 5: one row the database rejects -----------------------------------------------------------


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_a_model_id_longer_than_the_column_is_fitted(database: str, make_registry: Callable[..., Registry],
                                                      standin: StandIn, isolated: Path) -> None:
    """12 calls on a model whose id is 150 characters: 12 rows, each model cut to the column with a marker."""
    long_model = "org/" + "x" * 146
    env = provider_env({"groq": 3}, db_url=database)
    registry = make_registry(env=env)
    model = registry.get_model("groq", long_model, base_url=standin.url)
    for _ in range(12):
        assert ask(model).content
    store = registry.usage_store()
    assert store is not None and store.flush(10.0)
    health = store.health()
    assert (health.written, health.pending, health.lost) == (12, 0, 0), health
    assert health.rejected == 0
    engine = sa.create_engine(database)
    with engine.connect() as conn:
        models = {str(m) for (m,) in conn.execute(sa.text("SELECT DISTINCT model FROM usage_logs"))}
    engine.dispose()
    [stored] = models
    assert len(stored) <= 100 and stored.startswith("org/xxx") and stored != long_model[:100]


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_a_row_the_database_refuses_is_set_aside_and_the_rest_written(database: str, isolated: Path) -> None:
    """12 rows, the 2nd refused by the database: 11 written, one in the dead-letter table, none stuck;
    later rows are written at once; `hfs usage` and `hfs check` count it."""
    refusing_table(database)
    spool = Spool(spool_path(isolated), database)
    store = UsageStore(database, spool=spool, retry_seconds=0.2)
    try:
        for tokens in [5, 13, *range(20, 30)]:
            store.record("groq", MODEL, "abcd1234", tokens)
        assert store.flush(10.0)
        health = store.health()
        assert (health.written, health.pending, health.lost) == (11, 0, 0), health
        assert health.rejected == 1
        for _ in range(5):
            store.record("groq", MODEL, "abcd1234", 7)
        assert store.flush(10.0) and store.health().written == 16
    finally:
        store.close()
    assert count_rows(database) == 16
    [(provider, model, suffix, tokens, reason)] = dead_letters(spool.path)
    assert (provider, model, suffix, int(tokens)) == ("groq", MODEL, "abcd1234", 13) and reason
    assert spool.count() == 0
    env = cli_env(isolated, database)
    usage = json.loads(hfs("usage", "--json", env=env, cwd=isolated).out)
    assert usage["spool"]["rejected"] == 1 and usage["spool"]["waiting"] == 0
    text = hfs("usage", env=env, cwd=isolated).out
    assert "1 row refused by the database" in text and str(spool.path) in text
    check = json.loads(hfs("check", "--json", env=env, cwd=isolated).out)
    [finding] = [f for f in check["findings"] if f["scope"] == "usage spool"]
    assert finding["severity"] == "warning" and "1 row" in finding["message"], finding


def test_a_malformed_spool_row_is_set_aside_and_the_rest_written(isolated: Path, sqlite_url: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """51 spooled rows, one of them unreadable: 50 written, it set aside, no warning every 2 s."""
    spool = Spool(spool_path(isolated), sqlite_url)
    spool.add([("groq", MODEL, "abcd1234", time.time(), 10)] * 25)
    with sqlite3.connect(spool.path) as db:
        db.execute("INSERT INTO spooled_rows (target, session, provider, model, api_key_suffix, timestamp, tokens) "
                   "VALUES (?, 'earlier', 'groq', ?, 'abcd1234', 'not a time', 10)", (spool.key, MODEL))
    spool.add([("groq", MODEL, "abcd1234", time.time(), 10)] * 25)
    caplog.set_level(logging.INFO, "hfs_core.usage")
    store = UsageStore(sqlite_url, spool=Spool(spool.path, sqlite_url), retry_seconds=0.2)
    try:
        assert store.flush(10.0)
        time.sleep(1.0)  # five retry periods: a row stuck in the spool would be tried (and said) again
        health = store.health()
    finally:
        store.close()
    assert health.replayed == 50 and health.pending == 0, health
    assert count_rows(sqlite_url) == 50 and spool.count() == 0 and spool.rejected() == 1
    [row] = dead_letters(spool.path)
    assert row[:3] == ("groq", MODEL, "abcd1234") and "timestamp" in row[4]
    assert not [r for r in caplog.records if "cannot be read" in r.getMessage()]
    env = cli_env(isolated, sqlite_url)
    assert json.loads(hfs("usage", "--json", env=env, cwd=isolated).out)["spool"]["rejected"] == 1


# -- 13: a corrupt spool file ------------------------------------------------------------------


def test_a_corrupt_spool_file_is_a_finding_of_hfs_check(isolated: Path, sqlite_url: str) -> None:
    path = spool_path(isolated)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a SQLite database\n" * 200)
    env = cli_env(isolated, sqlite_url)
    run = hfs("check", "--json", env=env, cwd=isolated)
    check = json.loads(run.out)
    [finding] = [f for f in check["findings"] if f["scope"] == "usage spool"]
    assert finding["severity"] == "error" and str(path) in finding["variable"] + finding["message"], finding
    assert "move it aside" in finding["hint"] and run.code == 1
    text = hfs("check", env=env, cwd=isolated).out
    assert "usage spool" in text and str(path) in text
    usage = json.loads(hfs("usage", "--json", env=env, cwd=isolated).out)
    assert usage["spool"]["error"]


# -- 6: the cooldown table ---------------------------------------------------------------------


def cooldown_rows(url: str, rows: list[tuple[str, Any]]) -> None:
    """Put (suffix, until) rows for groq in the cooldown table, `until` written as given (text included)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS hfs_key_cooldowns (provider VARCHAR(100) NOT NULL, "
                             "api_key_suffix VARCHAR(50) NOT NULL, until DOUBLE NOT NULL, "
                             "PRIMARY KEY (provider, api_key_suffix))"))
        for suffix, until in rows:
            conn.execute(sa.text("INSERT INTO hfs_key_cooldowns VALUES ('groq', :s, :u)"), {"s": suffix, "u": until})
    engine.dispose()


def calls_per_key(model: Any, standin: StandIn, keys: list[str], calls: int) -> list[int]:
    for _ in range(calls):
        assert ask(model).content
    return [standin.requests_for(key) for key in keys]


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_cooldown_rows_are_checked_on_read(database: str, make_registry: Callable[..., Registry], standin: StandIn,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """An hour's cooldown is kept; 50 years, and (SQLite) a text `until`, are skipped and said."""
    env = provider_env({"groq": 4}, db_url=database)
    keys = keys_of(env, "groq")
    rows: list[tuple[str, Any]] = [(keys[0][-8:], time.time() + 3600), (keys[1][-8:], time.time() + 50 * 365 * 86400)]
    if database.startswith("sqlite"):
        rows.append((keys[2][-8:], "soon"))
    cooldown_rows(database, rows)
    caplog.set_level(logging.INFO)
    registry = make_registry(env=env)
    model = registry.get_model("groq", MODEL, base_url=standin.url)
    assert registry.pool("groq").status().cooling == 1
    served = calls_per_key(model, standin, keys, 12)
    assert served[0] == 0 and all(served[1:]), served
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in said if "unreachable" in m], said
    skipped = [m for m in said if "hfs_key_cooldowns" in m]
    assert len(skipped) == len(rows) - 1, said
    assert all(key[-8:] not in " ".join(said) for key in keys)  # keys shown by their last 4 characters only
    assert any(f"…{keys[1][-4:]}" in m and "past any daily reset" in m for m in skipped), skipped




@needs_redis
def test_cooldown_rows_past_any_reset_never_reach_redis(make_registry: Callable[..., Registry], standin: StandIn,
                                                         sqlite_url: str, isolated: Path, namespace: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """`until` of infinity, 1e308 and 50 years are skipped; the hour's cooldown is shared through Redis."""
    config = isolated / "hfs.toml"  # found in the working directory
    config.write_text(f'[state]\nnamespace = "{namespace}"\n', encoding="utf-8")
    env = provider_env({"groq": 4}, db_url=sqlite_url, HFS_STATE_URL=REDIS_URL)
    keys = keys_of(env, "groq")
    cooldown_rows(sqlite_url, [(keys[0][-8:], time.time() + 3600), (keys[1][-8:], math.inf),
                               (keys[2][-8:], 1e308), (keys[3][-8:], time.time() + 50 * 365 * 86400)])
    caplog.set_level(logging.INFO)
    registry = make_registry(env=env)
    model = registry.get_model("groq", MODEL, base_url=standin.url)
    served = calls_per_key(model, standin, keys, 12)
    assert registry.resources.state_up is True
    assert served[0] == 0 and all(served[1:]), served
    assert registry.pool("groq").status().cooling == 1
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in said if "hfs_key_cooldowns" in m]) == 3, said
    assert not [m for m in said if "redis" in m.lower() or "state" in m.lower()], said
    # a second process on the same Redis sees the one cooldown in force
    other = make_registry(env={**env, "TIDB_DB_URL": f"sqlite:///{isolated / 'other.sqlite3'}"})
    again = other.get_model("groq", MODEL, base_url=standin.url)
    assert calls_per_key(again, standin, keys, 6)[0] == 0
