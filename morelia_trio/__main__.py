"""``python -m morelia_trio serve``: the same as the ``morelia-trio`` command."""

from __future__ import annotations

import sys

from .cli import main

# Guarded: the hashing workers start by importing the main module (multiprocessing spawn).
if __name__ == "__main__":
    sys.exit(main())
