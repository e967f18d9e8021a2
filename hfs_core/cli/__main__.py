"""``python -m hfs_core.cli``: the same as the ``hfs`` command."""

import sys

from hfs_core.cli import main

sys.exit(main())
