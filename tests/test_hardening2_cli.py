"""The second hardening round (issue 21), environment and CLI: each test failed before its fix.

Every ``hfs`` run is a subprocess with its own environment and directory, as in tests/test_cli.py.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import fake_key, provider_env
from test_cli import HFS, clean_env, hfs

from hfs_core.testing.standin import StandIn

DIGITS = "7" * 5000
"""More digits than Python turns into an int (its limit is 4300)."""

HOSTILE = {
    # the variable: (the environment, what `hfs check` says of it)
    "NUM_GROQ": ({"NUM_GROQ": DIGITS}, "NUM_GROQ must be at most 10000, got a 5000-character value"),
    "GROQ_API_KEY_<digits>": ({"NUM_GROQ": "1", "GROQ_API_KEY_1": fake_key("groq"), f"GROQ_API_KEY_{DIGITS}": "x"},
                              "GROQ_API_KEY_<a 5000-digit number> ignored: beyond NUM_GROQ=1"),
    "HFS_CONFIG": ({"HFS_CONFIG": str(Path("/tmp") / ("h" * 5000))},
                   "HFS_CONFIG is a 5005-character path that cannot be opened (File name too long)"),
}


# -- 4. one hostile environment value takes the whole registry down ---------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_variable_is_its_own_problem(tmp_path: Path, name: str) -> None:
    hostile, said = HOSTILE[name]
    env = clean_env(tmp_path, {**provider_env({"cerebras": 2}), **hostile})
    listing = hfs("providers", env=env, cwd=tmp_path)
    assert listing.code == 0, listing.err[-500:]
    assert re.search(r"^cerebras .* 2 +ok", listing.out, re.MULTILINE), listing.out  # fewer keys than its plugin's
    check = hfs("check", "--skip-db", env=env, cwd=tmp_path)
    assert check.code == 1 and said in check.out, check.out  # an error (the other providers have no keys)
    for run in (listing, check):
        assert "Traceback" not in run.err and "raised" not in run.out, run  # nor does a plugin trip on it
        assert "7" * 30 not in run.out + run.err and "h" * 30 not in run.out + run.err


@pytest.mark.slow
def test_another_provider_answers_beside_hostile_groq_variables(tmp_path: Path, standin: StandIn) -> None:
    hostile = {**HOSTILE["GROQ_API_KEY_<digits>"][0], **HOSTILE["NUM_GROQ"][0]}
    env = clean_env(tmp_path, {**provider_env({"cerebras": 2}), **hostile})
    asked = hfs("ask", "-p", "cerebras", "--no-stream", "--base-url", standin.url, "still here", env=env, cwd=tmp_path)
    assert asked.code == 0 and asked.out == "stand-in reply: still here\n", asked.err
    assert "7" * 30 not in asked.err


# -- 9. options before the command -------------------------------------------------------------


@pytest.fixture
def chatty_plugin(tmp_path: Path) -> Path:
    """A directory for PYTHONPATH holding an installed plugin that logs, as a library does, a warning
    and a debug line when it is imported."""
    site = tmp_path / "site"
    info = site / "chatty_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chatty-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hfs.providers]\nchatty = chatty_plugin_mod\n")
    (site / "chatty_plugin_mod.py").write_text(
        "import logging\nlogging.getLogger('chatty').warning('a library warning')\n"
        "logging.getLogger('chatty').debug('a library detail')\n")
    return site


@pytest.mark.parametrize("args", [("--debug", "check"), ("check", "--debug"), ("-vv", "check"), ("check", "-vv"),
                                  ("-v", "check", "-v")])
def test_options_count_before_and_after_the_command(tmp_path: Path, chatty_plugin: Path,
                                                    args: tuple[str, ...]) -> None:
    env = clean_env(tmp_path, {**provider_env(1), "PYTHONPATH": str(chatty_plugin)})
    quiet = hfs("check", "--skip-db", env=env, cwd=tmp_path)
    assert "a library" not in quiet.err, quiet.err
    run = hfs(*args, "--skip-db", env=env, cwd=tmp_path)
    assert "chatty: WARNING: a library warning" in run.err, run.err
    assert ("chatty: DEBUG: a library detail" in run.err) == ("--debug" not in args), run.err


# -- 12. a hung plugin hook ------------------------------------------------------------------------

HUNG_VALIDATE_ENV = """
import time
from functools import partial

from hfs_core import ProviderSpec, hookimpl, openai_style_options

@hookimpl
def register_provider():
    return ProviderSpec(name="sleeper", default_model="m", expected_keys=1, model_class="agno.models.groq:Groq",
                        key_prefix="tw_", sdk_options=partial(openai_style_options, sdk="groq"))

@hookimpl
def validate_env(spec, env):
    time.sleep(60)
    return []
"""


def test_a_hung_validate_env_costs_a_listing_at_most_the_default_limit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "sleeper_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sleeper-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hfs.providers]\nsleeper = sleeper_plugin_mod\n")
    (site / "sleeper_plugin_mod.py").write_text(HUNG_VALIDATE_ENV)
    env = clean_env(tmp_path, {**provider_env(1), "NUM_SLEEPER": "1", "SLEEPER_API_KEY_1": "tw_" + "s" * 30,
                               "PYTHONPATH": str(site)})
    run = hfs("providers", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "validate_env did not finish within 2s" in run.out, run.out
    assert run.seconds < 6, f"hfs providers took {run.seconds:.1f}s with a hung plugin (default limit: 2 s)"


# -- 15. Ctrl-C --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_exits_130_and_keeps_the_answered_calls_rows(tmp_path: Path, standin: StandIn) -> None:
    """Ctrl-C while `hfs ask` writes the usage row of the call it answered (the SQLite file is locked
    by another writer, as a busy database would hold it): the row is still written, then exit 130."""
    database = tmp_path / "usage.sqlite3"
    env = clean_env(tmp_path, {**provider_env({"groq": 2}), "HFS_USAGE_DB_URL": f"sqlite:///{database}"})
    first = hfs("ask", "-p", "groq", "--base-url", standin.url, "first", env=env, cwd=tmp_path)
    assert first.code == 0, first.err
    standin.configure(latency=1.0)
    other_writer = sqlite3.connect(database, isolation_level=None)
    asking = subprocess.Popen([*HFS, "ask", "-p", "groq", "--base-url", standin.url, "second"], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while standin.total < 2 and time.monotonic() < deadline and asking.poll() is None:
            time.sleep(0.01)
        other_writer.execute("BEGIN EXCLUSIVE")  # the call is in flight: its row will wait for the lock
        assert asking.stdout is not None
        answer = asking.stdout.readline()
        time.sleep(0.3)
        asking.send_signal(signal.SIGINT)
        time.sleep(0.5)
    finally:
        if other_writer.in_transaction:
            other_writer.execute("COMMIT")
        other_writer.close()
    _, err = asking.communicate(timeout=60)
    assert answer == b"stand-in reply: second\n", (answer, err)
    assert asking.returncode == 130, err
    assert err.decode().strip() == "hfs: interrupted", err  # one line, no traceback
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT COUNT(*) FROM usage_logs WHERE provider = 'groq'").fetchone()[0]
    assert rows == 2, "the answered call's usage row was lost to the Ctrl-C"
