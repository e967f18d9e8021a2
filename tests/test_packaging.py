"""The wheels: hfs-core and each plugin build, install into a fresh venv, and find each other by entry point."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from venvs import fresh_venv, sh, uv

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ("cerebras", "gemini", "groq", "openrouter")
PROBE = "import hfs_core; print(sorted(hfs_core.Registry(env={}).specs))"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    sh(uv(), "build", "--wheel", "--out-dir", out, ROOT)
    for name in PLUGINS:
        sh(uv(), "build", "--wheel", "--out-dir", out, ROOT / "plugins" / name)
    return out


def the_wheel(wheels: Path, dist: str) -> Path:
    [found] = wheels.glob(f"{dist.replace('-', '_')}-*.whl")
    return found


def test_wheels_hold_the_right_files(wheels: Path) -> None:
    core = zipfile.ZipFile(the_wheel(wheels, "hfs-core")).namelist()
    assert "hfs_core/__init__.py" in core and "hfs_core/registry.py" in core and "hfs_core/py.typed" in core
    assert "hfs_core/testing/standin/server.py" in core
    assert not any(n.startswith(("tests/", "plugins/", "hfs_provider_")) for n in core)
    for name in PLUGINS:
        wheel = zipfile.ZipFile(the_wheel(wheels, f"hfs-provider-{name}"))
        modules = [n for n in wheel.namelist() if ".dist-info/" not in n]
        assert sorted(modules) == [f"hfs_provider_{name}/__init__.py", f"hfs_provider_{name}/limits.toml",
                                   f"hfs_provider_{name}/py.typed"]
        [entry_points] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = wheel.read(entry_points).decode()
        assert "[hfs.providers]" in text and f"{name} = hfs_provider_{name}" in text
        [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        assert "Requires-Dist: hfs-core" in wheel.read(metadata).decode()


def test_installed_plugins_are_exactly_what_the_registry_finds(wheels: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = fresh_venv(venv)

    def install(*names: str) -> None:
        sh(uv(), "pip", "install", "--quiet", "--python", python, "--find-links", wheels, *names)

    install("hfs-core", "hfs-provider-groq")
    site = sh(python, "-c", "import hfs_core, os; print(os.path.dirname(hfs_core.__file__))", cwd=tmp_path)
    assert str(venv) in site and str(ROOT) not in site  # the wheel's copy, not the workspace
    assert sh(python, "-c", PROBE, cwd=tmp_path).strip() == "['groq']"

    install("hfs-provider-gemini")
    assert sh(python, "-c", PROBE, cwd=tmp_path).strip() == "['gemini', 'groq']"

    out = sh(python, "-c", "import hfs_core; r = hfs_core.Registry(env={'HFS_PLUGINS': 'groq'}); "
             "print([(p.name, p.state, p.distribution) for p in r.plugins])", cwd=tmp_path)
    assert out.strip() == "[('gemini', 'skipped', 'hfs-provider-gemini'), ('groq', 'loaded', 'hfs-provider-groq')]"
