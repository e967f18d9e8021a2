"""Wheels built from a source tree and installed into fresh virtual environments, as a user installs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def uv() -> str:
    """The uv executable (the test is skipped where there is none)."""
    found = shutil.which("uv") or shutil.which("uv", path=os.path.expanduser("~/.local/bin"))
    if found is None:
        pytest.skip("uv is not on PATH")
    return found


def sh(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    """Run a command outside this workspace's virtual environment; its stdout (a failure fails the test)."""
    base = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def build_wheel(source: Path, out: Path) -> Path:
    """Build the wheel of the project in `source` into `out`; its path."""
    before = set(out.glob("*.whl"))
    sh(uv(), "build", "--wheel", "--quiet", "--out-dir", out, source)
    [made] = set(out.glob("*.whl")) - before
    return made


def fresh_venv(path: Path) -> Path:
    """A new virtual environment at `path` with this interpreter's Python; its python executable."""
    sh(uv(), "venv", "--quiet", path, "--python", sys.executable)
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
