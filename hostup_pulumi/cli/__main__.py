"""``python -m hostup_pulumi.cli``: the same as the ``hostup-pulumi`` command."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
