"""Paging: how much of what a query found fits in one reply."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import msgspec

T = TypeVar("T")


class Bounds(msgspec.Struct, frozen=True):
    """How much one reply may hold: a page ends at whichever cap it reaches first."""

    items: int
    bytes: int
    unit: float | None = None  # the list dialect's whole seconds: a page ends between them


def take_page(
    found: Iterable[tuple[float, T, int]], since: float, bounds: Bounds
) -> tuple[list[T], bool]:
    """The first of ``found`` (time, item, size) that fit the bounds, and whether more remain.

    A page ends before the item that would take it past either cap, but always holds one
    item at least. With a ``unit`` (the list dialect's whole seconds) the client can only ask
    again from a time rounded down to it, so a partial page never ends inside a unit and
    always reaches past the unit of ``since``. Asking again from the last time received then
    always moves on, at the price of a page above the caps when a second is crowded.
    """
    page: list[T] = []
    taken = 0
    cap, byte_cap, unit = bounds.items, bounds.bytes, bounds.unit
    since_unit = last_unit = since // unit if unit else 0.0
    for time, item, size in found:
        if (
            page
            and (len(page) >= cap or taken + size > byte_cap)
            and (unit is None or (time // unit != last_unit and last_unit != since_unit))
        ):
            return page, True
        page.append(item)
        taken += size
        if unit:
            last_unit = time // unit
    return page, False
