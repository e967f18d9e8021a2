"""CI's licence gate (.ci/licences) passes our wheels' runtime closure and fails it when keycycle is
0.5.4, whose licence is PolyForm Strict (classifier ``License :: Other/Proprietary License``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from venvs import fresh_venv, sh, uv

ROOT = Path(__file__).resolve().parent.parent
GATE = ROOT / ".ci" / "licences"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("dist")
    sh(uv(), "build", "--all-packages", "--wheel", "--quiet", "--out-dir", out, cwd=ROOT)
    return sorted(out.glob("*.whl"))


def closure(wheels: list[Path], venv: Path, *overrides: str) -> Path:
    """A fresh venv holding the wheels and their runtime dependencies (`overrides` replacing some)."""
    python = fresh_venv(venv)
    pinned = venv.parent / "overrides.txt"
    pinned.write_text("\n".join(overrides) + "\n", encoding="utf-8")
    sh(uv(), "pip", "install", "--quiet", "--python", python, "--no-sources", "--override", pinned, *wheels)
    return python


def gate(python: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    return subprocess.run(["bash", str(GATE), str(python)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_gate_passes_our_closure(wheels: list[Path], tmp_path: Path) -> None:
    result = gate(closure(wheels, tmp_path / "venv"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^ keycycle +0\.5\.1 +MIT License", result.stdout, re.MULTILINE), result.stdout
    assert "licences: ok" in result.stdout


def test_the_gate_fails_on_keycycle_0_5_4_and_names_it(wheels: list[Path], tmp_path: Path) -> None:
    result = gate(closure(wheels, tmp_path / "venv", "keycycle==0.5.4"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Other/Proprietary License not in allow-only licenses was found for package keycycle:0.5.4" in result.stderr
    assert "licences: FAILED" in result.stderr
