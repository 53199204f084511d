"""The hashing workers: a worker process reuses argon2's memory from one hash to the next."""

from __future__ import annotations

import ctypes
import resource
import subprocess
import sys

import pytest

from morelia_trio.config import Argon2Params

# Runs in a fresh process, as a worker does: three hashes after a first one, and the page
# faults (ru_minflt) they took. The server's own memory cost (64 MiB): glibc's mmap
# threshold adapts to freed blocks up to 32 MiB, so a smaller size would come from the heap
# anyway. One pass, as the passes do not change what is allocated.
_FAULTS_PER_HASH = """
import resource, sys
from morelia_trio import auth
from morelia_trio.config import Argon2Params

params = Argon2Params(time_cost=1)
if sys.argv[1] == "worker":
    hash_once = lambda: auth.hash_password(params, "pw")
else:  # the same hash, without the worker's settings
    hash_once = lambda: auth._hasher(params).hash("pw")
hash_once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    hash_once()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""
PAGES = Argon2Params().memory_cost * 1024 // resource.getpagesize()


def faults_per_hash(how: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS_PER_HASH, how], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallopt"),
    reason="glibc's mallopt decides where argon2's memory comes from",
)
def test_a_worker_hash_faults_in_none_of_its_memory_again() -> None:
    # Without the worker's settings, every hash maps its memory afresh and faults it all in.
    assert faults_per_hash("plain") >= PAGES
    assert faults_per_hash("worker") < PAGES // 20
