"""The docs name only repository paths that exist (the check `.ci/run` runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_repository_path_named_in_the_docs_exists() -> None:
    result = subprocess.run([sys.executable, str(ROOT / ".ci" / "doc-paths")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
