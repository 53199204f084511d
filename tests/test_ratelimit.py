"""Token buckets, the pure part of the abuse limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from morelia_trio.config import Rate
from morelia_trio.core.ratelimit import Bucket, Buckets

steps = st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=200)


@given(steps, st.integers(1, 20), st.floats(1, 600))
def test_no_key_gets_more_than_burst_plus_refill(
    gaps: list[float], burst: int, rate: float
) -> None:
    buckets = Buckets[str](Rate(burst, rate))
    now, taken = 0.0, 0
    for gap in gaps:
        now += gap
        taken += buckets.take("k", now)
    assert taken <= burst + now * rate / 60 + 1e-9


@given(steps, st.integers(1, 20), st.floats(1, 600))
def test_one_bucket_and_many_agree(gaps: list[float], burst: int, rate: float) -> None:
    one, many = Bucket(Rate(burst, rate), 0.0), Buckets[str](Rate(burst, rate))
    now = 0.0
    for gap in gaps:
        now += gap
        assert one.take(now) == many.take("k", now)


def test_a_burst_then_the_rate() -> None:
    buckets = Buckets[str](Rate(3, 60))  # one a second
    assert [buckets.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert buckets.take("b", 0.0)  # keys are apart
    assert not buckets.take("a", 0.5)
    assert buckets.take("a", 1.0)
    assert buckets.allows("a", 2.0) and buckets.allows("a", 2.0)  # allows() takes nothing


def test_charge_takes_even_from_an_empty_bucket_without_going_below_zero() -> None:
    buckets = Buckets[int](Rate(2, 60))
    for _ in range(5):
        buckets.charge(7, 0.0)
    assert buckets.tokens(7, 0.0) == 0.0
    assert buckets.tokens(7, 1.0) == 1.0


@given(st.lists(st.integers(0, 10_000), max_size=3000))
def test_memory_stays_bounded_whatever_the_keys(keys: list[int]) -> None:
    buckets = Buckets[int](Rate(5, 1), max_keys=100)
    for n, key in enumerate(keys):
        buckets.take(key, n * 0.001)
        assert len(buckets) <= 100


def test_full_buckets_are_forgotten_first_then_the_least_recently_used() -> None:
    buckets = Buckets[int](Rate(1, 60), max_keys=4)
    buckets.take(1, 0.0)  # will have refilled by t=10
    for key in (2, 3, 4):
        buckets.take(key, 9.5)
    buckets.take(5, 10.0)  # over the cap: 1 (full) goes, then 2 (oldest), down to 3/4 of it
    assert len(buckets) == 3
    assert [buckets.allows(key, 10.0) for key in (3, 4, 5)] == [False] * 3
    assert buckets.allows(2, 10.0)  # forgetting errs towards letting a request through


def test_spend_owes_beyond_the_burst_up_to_a_bound_and_the_rate_pays_it_back() -> None:
    buckets = Buckets[str](Rate(2, 60))  # one a second
    assert [buckets.spend("a", 0.0, most_owed=3) for _ in range(7)] == [1, 0, -1, -2, -3, -3, -3]
    assert buckets.spend("a", 3.5, most_owed=3) == -0.5  # 3.5 paid back, one more spent
    assert buckets.spend("a", 5.0, most_owed=3) == 0.0
    assert buckets.spend("b", 5.0, most_owed=3) == 1.0  # keys are apart
