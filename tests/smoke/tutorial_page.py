"""The plugin tutorial's files, taken from docs/plugins.md as written.

``python tests/smoke/tutorial_page.py DIR`` writes them to DIR: the ``hfs-provider-moonshot`` source
tree (its module, an empty ``py.typed`` and its ``pyproject.toml``), ready for ``uv build``, beside the
page's ``hfs.toml``, ``check_moonshot.py`` and ``failures_moonshot.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
FILES = ("hfs_provider_moonshot/__init__.py", "pyproject.toml", "hfs.toml", "check_moonshot.py", "failures_moonshot.py")


def tutorial_files(text: str) -> dict[str, str]:
    """Each fenced block of the page whose first line is a comment naming a file: {file name: text}."""
    blocks = re.findall(r"^```(?:python|toml)\n# ([\w./]+)\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    found: dict[str, str] = {}
    for name, body in blocks:
        assert name not in found, f"docs/plugins.md has two blocks for {name}"
        found[name] = f"# {name}\n{body}"
    return found


def write_tutorial(out: Path) -> None:
    """The page's files under `out`, as the page lays them out."""
    files = tutorial_files(PAGE.read_text(encoding="utf-8"))
    (out / "hfs_provider_moonshot").mkdir(parents=True)
    (out / "hfs_provider_moonshot" / "py.typed").touch()
    for name in FILES:
        (out / name).write_text(files[name], encoding="utf-8")


if __name__ == "__main__":
    write_tutorial(Path(sys.argv[1]))
