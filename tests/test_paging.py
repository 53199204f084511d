"""Paging of all_messages and get_update (206): the pure rule, for any times at all."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from morelia_trio.core import _page

# Times as the state hands them out: increasing, often many in one second.
times = st.lists(st.floats(0, 50, allow_nan=False), max_size=60).map(sorted)
caps = st.integers(1, 8)


def pairs(found: list[float], since: float) -> list[tuple[float, float]]:
    return [(t, t) for t in found if t >= since]


@given(times, caps, st.floats(0, 50))
def test_without_a_unit_a_page_is_the_first_cap_items(
    found: list[float], cap: int, since: float
) -> None:
    items = pairs(found, since)
    page, partial = _page(items, cap, since, None)
    assert page == [t for t, _ in items[:cap]]
    assert partial == (len(items) > cap)


@given(times, caps, st.integers(0, 50))
def test_with_a_unit_a_partial_page_ends_between_seconds_past_since(
    found: list[float], cap: int, since: int
) -> None:
    items = pairs(found, since)
    page, partial = _page(items, cap, since, 1.0)
    assert page == [t for t, _ in items[: len(page)]]  # a prefix, oldest first
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
        page, partial = _page([(t, n) for n, t in numbered if t >= since], cap, since, 1.0)
        seen += [n for n in page if n not in seen]
        if not partial:
            break
        since = math.floor(found[page[-1]])  # what the client was shown: whole seconds
    assert seen == list(range(len(found)))
