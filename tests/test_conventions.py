"""The conventions users already have: one ``GROQ_API_KEY``, a generic usage-database variable,
Agno's quiet recovery (see test_provider_errors), installable packages (see test_packaging)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import fake_key, provider_env

from hfs_core import ConfigError, NoAvailableKeyError, load_config
from hfs_core.testing.standin import StandIn


def test_a_single_groq_api_key_serves_as_a_pool_of_one(make_registry: Any, standin: StandIn) -> None:
    key = fake_key("groq")
    registry = make_registry(env={"GROQ_API_KEY": key})
    report = registry.environment_status["groq"]
    assert report.keys_found == 1 and report.healthy
    assert any("a pool of one key" in p.message for p in report.problems)
    standin.accept_any_key = False
    standin.set_key(key, 200)
    model = registry.get_model("groq", base_url=standin.url)
    assert model.response(messages=[Message(role="user", content="hi")]).content == "stand-in reply: hi"


def test_hfs_usage_db_url_names_the_usage_database(make_registry: Any, tmp_path: Path, isolated: Path) -> None:
    mine, theirs = f"sqlite:///{tmp_path / 'mine.sqlite3'}", f"sqlite:///{tmp_path / 'theirs.sqlite3'}"
    registry = make_registry(env=provider_env(1, HFS_USAGE_DB_URL=mine, TIDB_DB_URL=theirs))
    assert registry.usage_url() == mine and registry.db_url_var() == "HFS_USAGE_DB_URL"
    assert make_registry(env=provider_env(1, HFS_USAGE_DB_URL=" ", TIDB_DB_URL=theirs)).usage_url() == theirs
    bad = make_registry(env=provider_env(1, HFS_USAGE_DB_URL="not a url"))
    assert [p.variable for p in bad.problems] == ["HFS_USAGE_DB_URL"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    env.update(provider_env(1, HFS_USAGE_DB_URL=mine))
    done = subprocess.run([sys.executable, "-m", "hfs_core.cli", "check", "--json"], cwd=isolated, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert '"HFS_USAGE_DB_URL"' in json.dumps(json.loads(done.stdout))


def test_hfs_check_fails_when_a_providers_sdk_or_agno_class_is_missing(isolated: Path, tmp_path: Path) -> None:
    """A plugin whose declared SDK, or whose Agno class's package, is not installed is an error in
    `hfs check` (checked without importing anything), not "healthy" followed by a failing call."""
    site = tmp_path / "site"
    site.mkdir()
    spec = ("from hfs_core import ProviderSpec, hookimpl\n\n@hookimpl\ndef register_provider():\n"
            "    return ProviderSpec(name={name!r}, default_model='m', expected_keys=1, model_class={cls!r})\n")
    for name, cls, requires in (("nosdk", "agno.models.groq:Groq", "hfs-no-such-sdk-xyz>=1"),
                                ("noclass", "hfs_no_such_package_xyz.models:Model", None)):
        (site / f"hfs_test_{name}.py").write_text(spec.format(name=name, cls=cls))
        info = site / f"hfs_test_{name}-0.1.dist-info"
        info.mkdir()
        meta = f"Metadata-Version: 2.1\nName: hfs-test-{name}\nVersion: 0.1\n"
        (info / "METADATA").write_text(meta + (f"Requires-Dist: {requires}\n" if requires else ""))
        (info / "entry_points.txt").write_text(f"[hfs.providers]\n{name} = hfs_test_{name}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    env.update(provider_env(1), NUM_NOSDK="1", NOSDK_API_KEY_1="tw_" + "n" * 30, NUM_NOCLASS="1",
               NOCLASS_API_KEY_1="tw_" + "c" * 30, PYTHONPATH=str(site))
    done = subprocess.run([sys.executable, "-m", "hfs_core.cli", "check", "--skip-db"], cwd=isolated, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "hfs-test-nosdk needs hfs-no-such-sdk-xyz, which is not installed" in done.stdout
    assert "hfs_no_such_package_xyz.models:Model cannot be imported" in done.stdout


def test_files_are_found_from_a_subdirectory_up_to_the_project_root(tmp_path: Path, monkeypatch: Any,
                                                                    make_registry: Any) -> None:
    """As pytest finds its rootdir and python-dotenv its .env: look upward, stop at the project's root."""
    above, root = tmp_path / "above", tmp_path / "above" / "project"
    deep = root / "src" / "agents"
    deep.mkdir(parents=True)
    (above / ".env").write_text("NUM_CEREBRAS=1\n")  # outside the project: never read
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n')
    (root / "hfs.toml").write_text('[providers.groq]\ndefault_model = "openai/gpt-oss-20b"\n')
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in provider_env({"groq": 2}).items()))
    monkeypatch.chdir(deep)
    registry = make_registry()
    assert registry.env_file == root / ".env" and registry.config.source == root / "hfs.toml"
    assert registry.environment_status["groq"].keys_found == 2
    assert registry.config.provider("groq").default_model == "openai/gpt-oss-20b"
    assert "NUM_CEREBRAS" not in registry.env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    done = subprocess.run([sys.executable, "-m", "hfs_core.cli", "check", "--skip-db", "--json"], cwd=deep, env=env,
                          capture_output=True, text=True, timeout=120)
    assert f"read {root / '.env'} and {root / 'hfs.toml'}" in done.stdout, done.stdout[-2000:]


def test_model_limits_from_the_configuration_bind(isolated: Path, make_registry: Any, standin: StandIn) -> None:
    """`[providers.NAME.models."MODEL"] rpm = ..` (LiteLLM's vocabulary) sets a model's limits, for
    a model no table knows too (which would otherwise get the conservative default)."""
    (isolated / "hfs.toml").write_text('[providers.groq.models."my/own-model"]\nrpm = 2\ntpm = 50000\n')
    registry = make_registry(env=provider_env({"groq": 1}))
    model = registry.get_model("groq", "my/own-model", base_url=standin.url, wait=False)
    for _ in range(2):
        assert model.response(messages=[Message(role="user", content="hi")]).content == "stand-in reply: hi"
    with pytest.raises(NoAvailableKeyError, match="no key free"):
        model.response(messages=[Message(role="user", content="hi")])
    assert standin.total == 2
    assert not any("my/own-model" in p.message for r in registry.environment_status.values() for p in r.problems)


@pytest.mark.parametrize(("toml", "says"), [
    ('[providers.groq.models."m/x"]\nrpm = 0\n', "rpm must be a whole number of at least 1"),
    ('[providers.groq.models."m/x"]\nrqm = 3\n', "unknown setting 'rqm'"),
    ("[providers.groq]\nmodels = 3\n", "models must be a table"),
])
def test_bad_model_limits_name_the_file(toml: str, says: str, isolated: Path) -> None:
    (isolated / "hfs.toml").write_text(toml)
    with pytest.raises(ConfigError, match=says):
        load_config(env={})
