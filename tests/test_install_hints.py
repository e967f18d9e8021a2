"""Every install command the project prints works as printed, from the root of a checkout.

The packages are not on PyPI yet, so ``pip install hfs-provider-groq`` would fail: the README,
the plugins' READMEs and every hint the core prints (`hfs_core.install`) give the checkout's
folders instead. Each command is resolved by the real installer in a fresh virtual environment
(``--dry-run``: resolved and built, nothing installed), after the core itself for the core's hints,
since the core is installed when it prints one (issue 19).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from venvs import fresh_venv, sh, uv

from hfs_core.install import CORE, FIRST_PLUGIN, install_command, plugin_command

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
COMMAND = re.compile(r"pip install (?:--force-reinstall )?((?:'[^']+'|\.\S*)(?: (?:'[^']+'|\./\S+))*)")
"""A ``pip install`` of paths in a checkout (``.``, ``./plugins/groq``, ``'.[redis]'``), as printed."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def commands_in(text: str) -> list[list[str]]:
    """The targets of each checkout-path ``pip install`` in `text`, split as a shell would."""
    return [shlex.split(found) for found in COMMAND.findall(text)]


def hints() -> list[str]:
    return [install_command(CORE, "redis"), FIRST_PLUGIN, *map(plugin_command, PROVIDERS),
            *(install_command(f"hfs-provider-{p}", reinstall=True) for p in PROVIDERS)]


def test_the_docs_print_no_install_from_the_index() -> None:
    docs = [ROOT / "README.md", *ROOT.glob("plugins/*/README.md"), *ROOT.glob("docs/*.md")]
    for doc in docs:
        for line in doc.read_text(encoding="utf-8").splitlines():
            assert not re.search(r"pip install ['\"]?hfs-(core|provider-)", line), f"{doc.name}: {line}"


def test_every_hint_names_where_it_runs_and_a_folder_that_exists() -> None:
    for hint in hints():
        assert "not on PyPI yet" in hint and "checkout" in hint, hint
        [targets] = commands_in(hint)
        for target in targets:
            assert (ROOT / target.split("[")[0]).is_dir(), hint


def test_the_printed_commands_install_from_a_checkout(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    documented = [cmd for doc in (ROOT / "README.md", *ROOT.glob("plugins/*/README.md"))
                  for cmd in commands_in(doc.read_text(encoding="utf-8"))]
    assert len(documented) >= 1 + len(PROVIDERS)
    for targets in documented:  # the docs' commands, on a machine with nothing installed
        sh(uv(), "pip", "install", "--dry-run", "--quiet", "--python", python, *targets, cwd=ROOT)
    sh(uv(), "pip", "install", "--quiet", "--python", python, ".", cwd=ROOT)
    for hint in hints():  # the core's hints, where the core is installed
        [targets] = commands_in(hint)
        sh(uv(), "pip", "install", "--dry-run", "--quiet", "--python", python, *targets, cwd=ROOT)
