"""What the kernel says about a process (CPU time, resident memory) and about a disk."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    # The command name may hold spaces; the fields after it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` in ``/proc/PID/status``)."""
    return _status_kib(pid, "VmRSS")


def peak_kib(pid: int) -> int:
    """The most ``pid`` has been resident, in KiB (``VmHWM`` in ``/proc/PID/status``)."""
    return _status_kib(pid, "VmHWM")


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def disk_of(path: Path) -> str | None:
    """The ``/proc/diskstats`` name of the block device holding ``path``; None if it has none."""
    device = os.stat(path).st_dev
    with open("/proc/diskstats") as stats:
        for line in stats:
            fields = line.split()
            if (int(fields[0]), int(fields[1])) == (os.major(device), os.minor(device)):
                return fields[2]
    return None  # tmpfs, overlayfs and the like: no disk of their own


def disk_flushes(disk: str) -> tuple[int, int]:
    """Flush requests the disk has completed so far, and the milliseconds they took in all.

    A flush is what an fsync waits for at the end: the device's write cache emptied to
    stable storage. Kernels before 5.5 do not count them: (0, 0).
    """
    with open("/proc/diskstats") as stats:
        for line in stats:
            fields = line.split()
            if fields[2] == disk:
                return (int(fields[18]), int(fields[19])) if len(fields) >= 20 else (0, 0)
    raise RuntimeError(f"no disk {disk!r} in /proc/diskstats")
