"""The layering: ``morelia_trio.core`` (the rules and the wire format) runs without trio."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import morelia_trio.core

CORE_MODULES = sorted(
    f"morelia_trio.core.{info.name}" for info in pkgutil.iter_modules(morelia_trio.core.__path__)
)
IO_MODULES = ("trio", "trio_websocket", "wsproto", "outcome")


def test_core_has_the_rules_and_the_wire_format() -> None:
    for name in ("commands", "queries", "state", "protocol", "replies", "journal_format"):
        assert f"morelia_trio.core.{name}" in CORE_MODULES


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_trio(module: str) -> None:
    """Each module alone, in a fresh interpreter: none may bring in trio or a socket layer."""
    check = (
        f"import sys, {module}\n"
        f"found = sorted(set({IO_MODULES!r}) & set(sys.modules))\n"
        "print(','.join(found))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"
