"""The plugin tutorial (docs/plugins.md) is true: its files, taken from the page as written, build a
plugin that installs beside the core in a fresh virtual environment and passes the page's own check
script against the stand-in (sync, streamed and async calls through an Agno Agent, a key with no
balance retired, an overloaded engine waited out, the limit from the page's ``hfs.toml``), and its
failures script: the stand-in's documented scripting (a revoked key, a recorded 429, streams broken
before and after content) for the page's provider, and the default limit of a model no table knows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smoke.tutorial_page import FILES, PAGE, tutorial_files
from venvs import build_wheel, fresh_venv, sh, uv

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_page_holds_each_file_once_and_documents_the_contract() -> None:
    text = PAGE.read_text(encoding="utf-8")
    files = tutorial_files(text)
    assert sorted(files) == sorted(FILES)
    assert "hfs-core>=0.1,<0.2" in files["pyproject.toml"]
    for documented in ("sdk_options(base_url, timeouts)", "max_retries", "base_url=", "error_rules",
                       "[providers.moonshot.models.",
                       "placeholder", "secrets.token_hex", "## Your provider's tiers", "DEFAULT_LIMITS",
                       "set_key(key, status)", "stream_fail_after(chunks"):
        assert documented in text, documented


def test_the_tutorial_plugin_builds_installs_and_passes_its_check(tmp_path: Path) -> None:
    files = tutorial_files(PAGE.read_text(encoding="utf-8"))
    source = tmp_path / "hfs-provider-moonshot"
    (source / "hfs_provider_moonshot").mkdir(parents=True)
    (source / "hfs_provider_moonshot" / "py.typed").touch()
    for name in ("hfs_provider_moonshot/__init__.py", "pyproject.toml"):
        (source / name).write_text(files[name], encoding="utf-8")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    core = build_wheel(ROOT, wheels)
    plugin = build_wheel(source, wheels)

    python = fresh_venv(tmp_path / "venv")
    sh(uv(), "pip", "install", "--quiet", "--python", python, core, plugin)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".git").mkdir()  # the project's root: hfs.toml is looked for here and no higher
    for name in ("hfs.toml", "check_moonshot.py", "failures_moonshot.py"):
        (work / name).write_text(files[name], encoding="utf-8")
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "AGNO_TELEMETRY": "false", "HFS_PLUGINS": ""}

    located = sh(python, "-c", "import hfs_core, hfs_provider_moonshot as p; print(hfs_core.__file__, p.__file__)",
                 cwd=work, env=env)
    assert str(ROOT) not in located and located.count(str(tmp_path / "venv")) == 2  # the wheels' copies

    listing = json.loads(sh(python, "-m", "hfs_core.cli", "providers", "--json", cwd=work, env=env))
    [moonshot] = listing["providers"]
    assert moonshot["name"] == "moonshot" and moonshot["distribution"] == "hfs-provider-moonshot"
    assert moonshot["hooks"] == ["register_provider", "validate_env"] and moonshot["expected_keys"] == 3

    out = sh(python, "check_moonshot.py", cwd=work, env=env, timeout=240)
    assert out.strip().splitlines()[-1] == "moonshot plugin: ok"

    models = json.loads(sh(python, "-m", "hfs_core.cli", "models", "moonshot", "--json", cwd=work, env=env))
    assert models["default_limits"] == {"rpm": 5, "rph": 100, "rpd": 100}
    out = sh(python, "failures_moonshot.py", cwd=work, env=env, timeout=240)
    assert out.strip().splitlines()[-1] == "moonshot failures: ok"
