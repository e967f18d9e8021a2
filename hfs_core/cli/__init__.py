"""The ``hfs`` command: list providers, check a deployment, show models and usage, ask a model.

``hfs providers``, ``hfs check``, ``hfs models`` and ``hfs --help`` stay light: they import
neither agno, keycycle nor a provider SDK (nor rich, unless a table goes to a terminal, nor
SQLAlchemy, except to reach the usage database). ``hfs ask`` loads what a call needs.

Output rules: tables on stdout (rich on a terminal, aligned plain text otherwise, JSON with
``--json``); diagnostics on stderr. An error is one line plus a hint and exit status 1 (a
traceback with ``--debug`` or ``HFS_DEBUG=1``); bad usage exits 2. A key is never shown
beyond its last 4 characters.

One module per command (`providers`, `check`, `models`, `ask`, `usage`), `output` for what
is printed and logged, `common` for the registry and the error every command shares, and
`main` for the parser and error handling.
"""

from hfs_core.cli.main import main, run

__all__ = ["main", "run"]
