"""``python -m tests.crash``: run the crash test (see harness.py for the options)."""

from __future__ import annotations

import sys

from .harness import main

sys.exit(main())
