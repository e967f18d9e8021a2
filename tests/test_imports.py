"""What importing hfs_core costs, and the names it and the plugins export."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agno.agent import Agent
from conftest import PROVIDERS, provider_env

import hfs_core
import hfs_core.process as process_module
from hfs_core.testing.standin import StandIn

HEAVY = ("agno", "keycycle", "groq", "cerebras", "google.genai", "openai", "sqlalchemy", "httpx", "pydantic", "yaml")

PROBE = """
import json, sys
import hfs_core
status = hfs_core.get_registry().environment_status
print("STATUS=" + json.dumps({name: report.keys_found for name, report in status.items()}))
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def importtime_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_import_and_environment_check_load_no_heavy_package(isolated: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    env.update(provider_env(3))
    (isolated / ".env").write_text("HFS_FROM_DOTENV=1\n")  # python-dotenv is allowed; make it load
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        cwd=isolated, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert json.loads(lines["STATUS"]) == dict.fromkeys(PROVIDERS, 3)
    timed = importtime_modules(result.stderr)
    assert "hfs_core.registry" in timed and "pluggy" in timed and "dotenv" in timed  # the parse works
    loaded = set(json.loads(lines["MODULES"]))
    for package in HEAVY:
        assert not any(is_under(m, package) for m in timed), f"{package} imported: {sorted(timed)}"
        assert not any(is_under(m, package) for m in loaded), f"{package} in sys.modules"
    assert {f"hfs_provider_{p}" for p in PROVIDERS} <= loaded  # the plugins were loaded, cheaply


def test_pool_classes_are_loaded_on_first_use() -> None:
    from hfs_core import pool

    assert hfs_core.KeyPool is pool.KeyPool
    assert hfs_core.CallOptions is pool.CallOptions
    assert hfs_core.NoAvailableKeyError is pool.NoAvailableKeyError
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        hfs_core.nothing_here  # noqa: B018


def test_public_names() -> None:
    for name in hfs_core.__all__:
        assert getattr(hfs_core, name) is not None, name
    assert hfs_core.__version__ == "0.1.0"


@pytest.fixture
def singleton(monkeypatch: pytest.MonkeyPatch, make_registry, sqlite_url: str):
    registry = make_registry(env=provider_env(2, db_url=sqlite_url))
    monkeypatch.setattr(process_module, "_registry", registry)
    return registry


def test_get_provider_model_helpers_from_hfs_core(singleton, standin: StandIn) -> None:
    from hfs_core import get_groq_model

    assert get_groq_model.__name__ == "get_groq_model"
    model = get_groq_model("openai/gpt-oss-20b", base_url=standin.url)
    assert model.id == "openai/gpt-oss-20b"
    assert model.pool is singleton.pool("groq")
    assert Agent(model=model, telemetry=False).run("hi").content == "stand-in reply: hi"
    for provider in PROVIDERS:
        assert callable(getattr(hfs_core, f"get_{provider}_model"))
    with pytest.raises(AttributeError):
        hfs_core.get_mistral_model  # noqa: B018
    with pytest.raises(ImportError):
        from hfs_core import get_mistral_model  # noqa: F401


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_core_serves_each_plugins_helper(singleton, standin: StandIn, provider: str) -> None:
    module = importlib.import_module(f"hfs_provider_{provider}")
    assert not hasattr(module, f"get_{provider}_model")  # the core's helper is the one
    helper = getattr(hfs_core, f"get_{provider}_model")
    model = helper(base_url=standin.url)
    assert model.pool is singleton.pool(provider)
    assert model.id == module.SPEC.default_model
    assert Agent(model=model, telemetry=False).run("hi").content == "stand-in reply: hi"
