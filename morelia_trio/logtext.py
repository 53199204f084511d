"""How text a client sent appears in a log line: escaped and cut short.

A log line is read by people and parsed by tools one line at a time, so a value from the
wire must never start a line of its own (a newline in a request ``type`` could forge a whole
INFO line) nor fill the disk (a megabyte ``type`` once went into every error line).
"""

from __future__ import annotations

from typing import Final

SHOWN_CHARS: Final = 64  # of any one value from a client, in a log line


def for_log(value: str, limit: int = SHOWN_CHARS) -> str:
    """``value`` cut to ``limit`` characters, with everything unprintable escaped.

    Unprintable means control, format (bidirectional overrides, zero-width characters),
    line and paragraph separators, surrogates, private and unassigned code points. A
    backslash is escaped too, so an escape in the log always means the server wrote it.
    """
    cut = value[:limit]
    if cut.isprintable() and "\\" not in cut:
        shown = cut
    else:
        shown = "".join(_escaped(char) for char in cut)
    if len(value) > limit:
        shown += f"... ({len(value)} characters)"
    return shown


def _escaped(char: str) -> str:
    if char.isprintable() and char != "\\":
        return char
    return ascii(char)[1:-1]  # \\, \n, \x1b, \u2028, \U000e0001
