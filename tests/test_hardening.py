"""Hardening: what a careless or hostile user found, each now handled at its root.

Each test names the finding it covers (the numbers of the hardening issue): unreadable
files, keys that cannot travel in a header, keys pasted where they get echoed, and
configuration that used to be ignored without a word. The figures go to docs/results.md.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import fake_key, provider_env

from hfs_core import ConfigError, HFSError, NoAvailableKeyError, Registry
from hfs_core.testing.standin import StandIn

Record = Callable[[str, object], None]


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "hfs_core.cli", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


# -- 6: a .env that is not UTF-8 ----------------------------------------------------------------


def test_dotenv_with_a_line_that_is_not_utf8_is_a_problem_naming_file_and_line(
        isolated: Path, make_registry: Any, record_property: Record) -> None:
    env = provider_env({"groq": 2})
    lines = [f"{k}={v}".encode() for k, v in env.items()]
    lines.insert(1, "# clé de l'équipe".encode("latin-1"))  # saved by an editor in Latin-1
    (isolated / ".env").write_bytes(b"\n".join(lines) + b"\n")
    registry = make_registry()  # reads .env from the working directory, as get_registry() does
    [problem] = [p for p in registry.problems if p.variable.endswith(".env")]
    assert problem.variable == str(isolated / ".env")
    assert "line 2 is not UTF-8 text" in problem.message and "UTF-8" in problem.hint
    assert registry.environment_status["groq"].keys_found == 2  # the other lines still count
    done = cli(isolated, {}, "providers", "--json")
    assert done.returncode == 0, done.stderr
    assert "UnicodeDecodeError" not in done.stderr + done.stdout
    record_property("groq_keys_read_beside_a_latin1_line", 2)


def test_dotenv_in_utf16_is_reported_not_raised(isolated: Path, make_registry: Any) -> None:
    (isolated / ".env").write_text("NUM_GROQ=1\nGROQ_API_KEY_1=" + fake_key("groq") + "\n", encoding="utf-16")
    registry = make_registry()
    [problem] = [p for p in registry.problems if p.variable.endswith(".env")]
    assert "not UTF-8 text" in problem.message
    assert registry.environment_status["groq"].keys_found == 0


# -- 7: a key that cannot travel in an HTTP header ---------------------------------------------------


def test_non_ascii_key_is_skipped_at_load_time_naming_the_variable(make_registry: Any) -> None:
    env = provider_env({"groq": 3})
    env["GROQ_API_KEY_2"] = "gsk_" + "a1B2" * 10 + "é" * 4
    registry = make_registry(env=env)
    report = registry.environment_status["groq"]
    assert report.keys_found == 2
    [problem] = [p for p in report.problems if p.variable == "GROQ_API_KEY_2"]
    assert "non-ASCII" in problem.message and "skipped" in problem.message
    assert registry.pool("groq").size == 2


# -- 8: a key pasted in the wrong place is never echoed ------------------------------------------------


def test_a_key_pasted_anywhere_is_masked_wherever_it_is_shown(
        isolated: Path, make_registry: Any, caplog: pytest.LogCaptureFixture, record_property: Record) -> None:
    env = provider_env(2)
    key = env["GEMINI_API_KEY_1"]  # 39 characters: under the old "longer than 40" cut-off
    shown: list[str] = []

    caplog.set_level(logging.DEBUG)
    env_pasted = dict(env, HFS_PLUGINS=f"groq,gemini,{key}")
    (isolated / "hfs.toml").write_text(f'[providers.groq]\ndefault_model = "{key}"\n', encoding="utf-8")
    registry = make_registry(env=env_pasted)
    shown += [str(p) for p in registry.problems]
    shown += [str(p) for r in registry.environment_status.values() for p in r.problems]
    with pytest.raises(HFSError) as caught:
        registry.get_model(key)
    shown.append(str(caught.value))

    for toml in (f'plugins = ["groq", "{key}"]\n', f'[providers."{key}"]\nenabled = true\n',
                 f'[providers.groq]\nbase_url = "{key}"\n', f'[providers.groq]\nexpected_keys = "{key}"\n',
                 f'[providers.groq]\n"{key}" = 1\n', '[tool]\nx = 1\n[providers.groq]\nplugin = 3\n'):
        (isolated / "hfs.toml").write_text(toml, encoding="utf-8")
        try:
            other = make_registry(env=env)
        except ConfigError as exc:
            shown.append(str(exc))
        else:
            shown += [str(p) for p in other.problems]
    (isolated / "hfs.toml").unlink()
    done = cli(isolated, env, "ask", "-p", key, "hi")
    shown += [done.stdout, done.stderr, caplog.text]
    everything = "\n".join(shown)
    assert "<a 39-character name>" in everything
    assert key not in everything and key[:20] not in everything
    record_property("places_checked", len(shown))


def test_plugin_exception_text_is_masked(isolated: Path, tmp_path: Path, make_registry: Any,
                                         monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    env = provider_env(2)
    key = env["GROQ_API_KEY_1"]
    site = tmp_path / "site"
    site.mkdir()
    (site / "hfs_leaky_plugin.py").write_text(
        "from hfs_core import hookimpl\n\n@hookimpl\ndef register_provider():\n"
        f"    raise RuntimeError('could not use {key} for the leaky provider')\n", encoding="utf-8")
    info = site / "hfs_leaky-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hfs-leaky\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[hfs.providers]\nleaky = hfs_leaky_plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    caplog.set_level(logging.DEBUG)
    registry = make_registry(env=env)
    [leaky] = [p for p in registry.plugins if p.name == "leaky"]
    assert leaky.state == "failed" and "…" + key[-4:] in str(leaky.error)
    assert key not in str(leaky.error) and key not in caplog.text
    assert key not in json.dumps([p.to_dict() for p in registry.plugins])


# -- 12: configuration that was silently ignored --------------------------------------------------------


def test_empty_variables_mean_unset(isolated: Path, make_registry: Any) -> None:
    registry = make_registry(env=provider_env(2, HFS_PLUGINS="", TIDB_DB_URL="", HFS_CONFIG=""))
    assert registry.available_providers == ["cerebras", "gemini", "groq", "openrouter"]
    assert registry.problems == []


def test_usage_db_url_that_is_not_a_url_is_an_error_naming_the_file(isolated: Path) -> None:
    (isolated / "hfs.toml").write_text('usage_db_url = "not a url"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hfs\.toml: usage_db_url must be a string holding a SQLAlchemy"):
        Registry(env=provider_env(1))


def test_tool_hfs_that_is_not_a_table_is_an_error(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text("[tool]\nhfs = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: \[tool\.hfs\] must be a table of settings, got 3"):
        Registry(env=provider_env(1))


def test_dotted_tool_hfs_keys_in_pyproject_are_read(isolated: Path, make_registry: Any) -> None:
    (isolated / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool]\nhfs.plugins = ["groq"]\n',
                                             encoding="utf-8")
    registry = make_registry(env=provider_env(2))
    assert registry.config.plugins == ("groq",)
    assert registry.available_providers == ["groq"]


def test_a_key_count_for_a_provider_with_no_plugin_gets_a_hint(make_registry: Any) -> None:
    registry = make_registry(env=provider_env(2, NUM_MISTRAL="3"))
    [problem] = registry.problems
    assert problem.variable == "NUM_MISTRAL" and "no installed plugin reads it" in problem.message
    assert "pip install ./plugins/mistral" in problem.hint


# -- 10: an estimate no key can ever take ----------------------------------------------------------------


def test_an_estimate_no_key_can_take_fails_at_once(make_registry: Any, standin: StandIn,
                                                   record_property: Record) -> None:
    registry = make_registry(env=provider_env({"groq": 2}))
    model = registry.get_model("groq", base_url=standin.url, estimated_tokens=10**9, timeout=30.0)
    started = time.monotonic()
    with pytest.raises(NoAvailableKeyError) as caught:
        model.response(messages=[Message(role="user", content="hi")])
    took = time.monotonic() - started
    assert "estimated_tokens=1000000000 is more than any key can ever take" in str(caught.value)
    assert "in flight" not in str(caught.value) and standin.total == 0
    assert took < 5, f"it waited {took:.1f}s of a 30 s budget for a key that can never come"
    record_property("seconds_to_error", round(took, 3))
    assert registry.get_model("groq", base_url=standin.url).response(
        messages=[Message(role="user", content="hi")]).content == "stand-in reply: hi"

