"""``python -m morelia_trio serve``: the same as the ``morelia-trio`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
