"""ChunkedById against a plain dict: the same records, in id order, and captures that stay put."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from morelia_trio.core.chunked import ChunkedById

# (op, n): 0 appends after n skipped ids, 1 replaces the n-th live id, 2 removes it, 3 captures
OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9)), max_size=120)


def flatten(chunks: list[tuple[str | None, ...]]) -> dict[int, str]:
    found: dict[int, str] = {}
    size = 0
    for chunk in chunks:
        for offset, record in enumerate(chunk):
            if record is not None:
                found[size + offset + 1] = record
        size += len(chunk)
    return found


@given(size=st.integers(1, 5), ops=OPS)
def test_chunks_hold_what_a_dict_holds_and_captures_do_not_change(
    size: int, ops: list[tuple[int, int]]
) -> None:
    table: ChunkedById[str] = ChunkedById(size)
    model: dict[int, str] = {}
    captures: list[tuple[list[tuple[str | None, ...]], dict[int, str]]] = []
    next_id = 1
    for step, (op, n) in enumerate(ops):
        if op == 0:
            next_id += n  # ids skipped: deleted before a snapshot, as a restart sees them
            table.append(next_id, f"r{step}")
            model[next_id] = f"r{step}"
            next_id += 1
        elif op in (1, 2) and model:
            id_ = sorted(model)[n % len(model)]
            if op == 1:
                table.replace(id_, f"r{step}")
                model[id_] = f"r{step}"
            else:
                table.replace(id_, None)
                del model[id_]
        elif op == 3:
            captures.append((table.chunks(), dict(model)))
        assert flatten(table.chunks()) == model
        assert dict(table.items()) == model and list(table) == sorted(model)
        assert len(table) == len(model)
        assert table.get(0) is None and table.get(next_id) is None and next_id not in table
    for chunks, seen in captures:
        assert flatten(chunks) == seen  # later changes built new tuples
    loaded = ChunkedById.of(size, sorted(model.items()))  # as a restart builds it
    assert flatten(loaded.chunks()) == model and len(loaded) == len(model)
    following = max(model, default=0) + 1
    loaded.append(following, "next")
    assert flatten(loaded.chunks()) == {**model, following: "next"}


def test_an_id_must_be_new_to_be_appended_and_known_to_be_replaced() -> None:
    table: ChunkedById[str] = ChunkedById(2)
    table.append(1, "a")
    with pytest.raises(ValueError, match="not new"):
        table.append(1, "again")
    with pytest.raises(KeyError):
        table.replace(2, "b")
    table.append(3, "c")  # id 2 stays empty
    assert table.chunks() == [("a", None), ("c",)]
    assert table.end == 3
    assert table[3] == "c" and 2 not in table
    with pytest.raises(KeyError):
        table[2]


def test_a_restart_takes_ids_in_rising_order_only() -> None:
    with pytest.raises(ValueError, match="not above"):
        ChunkedById.of(4, [(2, "b"), (2, "again")])
