"""``python -m hfs_core.cli``: the same as the ``hfs`` command."""

from hfs_core.cli import run

run()
