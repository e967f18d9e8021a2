"""Reading the usage database back (hfs_core.usage.queries) on SQLite and MariaDB, with rows the store wrote."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from services import MARIADB_URL, free_port, needs_mariadb

from hfs_core.usage import UsageStore
from hfs_core.usage.queries import UsageQueryError, UsageRow, probe_db, read_usage, summarise


def _write(url: str, provider: str) -> None:
    """Four rows through the real store: two keys, two models."""
    store = UsageStore(url)
    store.record(provider, "model-a", "aaaa1111", 100)
    store.record(provider, "model-a", "aaaa1111", 50)
    store.record(provider, "model-b", "bbbb2222", 7)
    store.record("other-" + provider, "model-a", "cccc3333", 1)
    health = store.close()
    assert (health.written, health.lost) == (4, 0), health


def _check_round_trip(url: str, provider: str) -> list[UsageRow]:
    """Write rows with the store, read them back; returns the rows read."""
    _write(url, provider)
    assert probe_db(url).reachable
    found = read_usage(url, since=600, provider=provider)
    assert found.state == "ok" and found.total_rows >= 4
    assert all(isinstance(r, UsageRow) for r in found.rows)
    assert sorted(r[:5] for r in found.rows) == [(provider, "aaaa1111", "model-a", 2, 150),
                                                 (provider, "bbbb2222", "model-b", 1, 7)]
    (entry,) = summarise(found.rows, {"gsk_key_ending_aaaa1111": "GROQ_API_KEY_1"})
    assert (entry["provider"], entry["requests"], entry["tokens"]) == (provider, 3, 157)
    assert entry["keys"] == [
        {"key": "…1111", "variable": "GROQ_API_KEY_1", "requests": 2, "tokens": 150},
        {"key": "…2222", "variable": None, "requests": 1, "tokens": 7},
    ]
    assert [m["model"] for m in entry["models"]] == ["model-a", "model-b"]
    assert read_usage(url, since=600, provider="nobody-" + provider).rows == []
    return found.rows


def test_sqlite_round_trip(tmp_path: Path) -> None:
    rows = _check_round_trip(f"sqlite:///{tmp_path / 'usage.sqlite3'}", "groq")
    # On SQLite the latest call's time is exact (keycycle's FLOAT column rounds it on MySQL/MariaDB).
    assert all(0 <= time.time() - r.last < 60 for r in rows)


@pytest.mark.mariadb
@needs_mariadb
def test_mariadb_round_trip() -> None:
    provider = f"queries-{uuid.uuid4().hex[:8]}"  # the shared `test` database: only this test's rows
    try:
        _check_round_trip(MARIADB_URL, provider)
    finally:
        engine = sa.create_engine(MARIADB_URL)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM usage_logs WHERE provider IN (:a, :b)"),
                         {"a": provider, "b": "other-" + provider})
        engine.dispose()


def test_missing_sqlite_file_is_neither_created_nor_an_error(tmp_path: Path) -> None:
    path = tmp_path / "later.sqlite3"
    probe = probe_db(f"sqlite:///{path}")
    assert (probe.reachable, probe.exists) == (True, False)
    assert read_usage(f"sqlite:///{path}").state == "no_database"
    later = probe_db(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite3'}")  # the store creates folders
    assert (later.reachable, later.exists) == (True, False)
    (tmp_path / "blocked").write_text("")
    unwritable = probe_db(f"sqlite:///{tmp_path / 'blocked' / 'dir.sqlite3'}")
    assert not unwritable.reachable and unwritable.error and "is not a folder" in unwritable.error
    sa.create_engine(f"sqlite:///{path}").connect().close()
    assert read_usage(f"sqlite:///{path}").state == "no_table"
    assert not (tmp_path / "no").exists()


def test_unreachable_database_hides_the_password() -> None:
    port = free_port()
    url = f"mysql+pymysql://app:s3cretpass@127.0.0.1:{port}/usage"
    probe = probe_db(url, timeout=1)
    assert not probe.reachable and probe.url == f"mysql+pymysql://app:***@127.0.0.1:{port}/usage"
    assert probe.error and "s3cretpass" not in probe.detail
    with pytest.raises(UsageQueryError) as caught:
        read_usage(url, timeout=1)
    assert "s3cretpass" not in str(caught.value) and "app:***@127.0.0.1" in str(caught.value)
