"""Entry point of ``python -m hfs_core.testing.standin``."""

import sys

from hfs_core.testing.standin.cli import main

sys.exit(main())
