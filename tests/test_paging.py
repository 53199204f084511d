"""Paging of all_messages, get_update and all_flow (206): the pure rule, for any times at all."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from morelia_trio.core.paging import Bounds, take_page

# Times as the state hands them out: increasing, often many in one second.
times = st.lists(st.floats(0, 50, allow_nan=False), max_size=60).map(sorted)
caps = st.integers(1, 8)
NO_BYTE_CAP = 2**62


def pairs(found: list[float], since: float, size: int = 1) -> list[tuple[float, float, int]]:
    return [(t, t, size) for t in found if t >= since]


@given(times, caps, st.floats(0, 50))
def test_without_a_unit_a_page_is_the_first_cap_items(
    found: list[float], cap: int, since: float
) -> None:
    items = pairs(found, since)
    page, partial = take_page(items, since, Bounds(cap, NO_BYTE_CAP))
    assert page == [t for t, _, _ in items[:cap]]
    assert partial == (len(items) > cap)


@given(times, caps, st.integers(0, 50))
def test_with_a_unit_a_partial_page_ends_between_seconds_past_since(
    found: list[float], cap: int, since: int
) -> None:
    items = pairs(found, since)
    page, partial = take_page(items, since, Bounds(cap, NO_BYTE_CAP, 1.0))
    assert page == [t for t, _, _ in items[: len(page)]]  # a prefix, oldest first
    if not partial:
        assert len(page) == len(items)
        return
    assert len(page) >= cap
    following = items[len(page)][0]
    assert math.floor(following) != math.floor(page[-1])  # never inside a second
    assert math.floor(page[-1]) > since  # asking again from it moves on


@given(times, caps)
def test_a_list_dialect_client_paging_from_zero_sees_every_item(
    found: list[float], cap: int
) -> None:
    numbered = list(enumerate(found))  # items may share a time: tell them apart
    seen: list[int] = []
    since = 0
    for _ in range(len(found) + 1):
        page, partial = take_page(
            [(t, n, 1) for n, t in numbered if t >= since], since, Bounds(cap, NO_BYTE_CAP, 1.0)
        )
        seen += [n for n in page if n not in seen]
        if not partial:
            break
        since = math.floor(found[page[-1]])  # what the client was shown: whole seconds
    assert seen == list(range(len(found)))


sizes = st.lists(st.integers(1, 100), min_size=60, max_size=60)


@given(times, sizes, st.integers(1, 400), st.floats(0, 50))
def test_a_page_stops_before_the_byte_cap_but_holds_one_item_at_least(
    found: list[float], weights: list[int], byte_cap: int, since: float
) -> None:
    items = [(t, n, weights[n]) for n, t in enumerate(found) if t >= since]
    page, partial = take_page(items, since, Bounds(1000, byte_cap))
    assert page == [n for _, n, _ in items[: len(page)]]
    taken = sum(weights[n] for n in page)
    if len(page) > 1:
        assert taken <= byte_cap
    if partial:
        assert page, "a page always carries an item"
        assert taken + items[len(page)][2] > byte_cap  # the next one would not fit
    else:
        assert len(page) == len(items)


@given(times, sizes, st.integers(1, 400))
def test_paging_by_bytes_in_whole_seconds_sees_every_item(
    found: list[float], weights: list[int], byte_cap: int
) -> None:
    seen: list[int] = []
    since = 0
    for _ in range(len(found) + 1):
        items = [(t, n, weights[n]) for n, t in enumerate(found) if t >= since]
        page, partial = take_page(items, since, Bounds(1000, byte_cap, 1.0))
        seen += [n for n in page if n not in seen]
        if not partial:
            break
        ends = math.floor(found[page[-1]])
        assert ends > since  # the next page starts later
        assert math.floor(items[len(page)][0]) != ends  # never inside a second
        since = ends
    assert seen == list(range(len(found)))
