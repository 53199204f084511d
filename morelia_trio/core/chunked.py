"""Records by consecutive id, in fixed chunks that a snapshot shares instead of copying.

A snapshot's capture runs in the state owner's turn, so it must not copy one reference per
record: with a large state that alone paused the owner for long (a cache miss per message,
on cold memory, to count the reference). Here a capture copies one reference per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

T = TypeVar("T")


class ChunkedById(Mapping[int, T]):
    """Records by id (1, 2, 3, ...) in chunks of ``size`` ids: a read-only mapping of the ids
    that have a record, changed only through ``append`` and ``replace``.

    An id's place is arithmetic, so no index is kept beside the chunks. A full chunk is a
    tuple, shared by every capture taken since it filled. Changing a record in it builds a
    new tuple (``size`` references), so a capture already taken keeps what it saw. Ids only
    grow, as the state hands them out.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.end = 0  # the highest id with a place, its record deleted or not
        self._live = 0  # ids with a record
        self._full: list[tuple[T | None, ...]] = []
        self._open: list[T | None] = []

    @classmethod
    def of(cls, size: int, records: Iterable[tuple[int, T]]) -> ChunkedById[T]:
        """A table of ``records``, (id, record) in rising id order, at once: what a restart
        loads. The ids skipped stay without a record."""
        table = cls(size)
        flat: list[T | None] = []
        for id_, record in records:
            if id_ <= len(flat):
                raise ValueError(f"id {id_} is not above the id before it ({len(flat)})")
            flat.extend([None] * (id_ - 1 - len(flat)))
            flat.append(record)
            table._live += 1
        whole = len(flat) - len(flat) % size
        table._full = [tuple(flat[at : at + size]) for at in range(0, whole, size)]
        table._open = flat[whole:]
        table.end = len(flat)
        return table

    # --- reading: a Mapping[int, T] of the live records ---

    def get(self, id_: int, default: T | None = None) -> T | None:  # type: ignore[override]
        # Not Mapping's get (a KeyError per miss): every lookup of a message comes here.
        chunk, offset = divmod(id_ - 1, self.size)
        if 0 <= chunk < len(self._full):
            found = self._full[chunk][offset]
        elif chunk == len(self._full) and 0 <= offset < len(self._open):
            found = self._open[offset]
        else:
            return default
        return default if found is None else found

    def __getitem__(self, id_: int) -> T:
        found = self.get(id_)
        if found is None:
            raise KeyError(id_)
        return found

    def __iter__(self) -> Iterator[int]:
        """The ids with a record, rising."""
        for index, record in enumerate(self._records(), start=1):
            if record is not None:
                yield index

    def __len__(self) -> int:
        return self._live

    def chunks(self) -> list[tuple[T | None, ...]]:
        """Every record in id order, None where an id has none: safe to read while this changes."""
        return [*self._full, tuple(self._open)]

    def _records(self) -> Iterator[T | None]:
        for chunk in self._full:
            yield from chunk
        yield from self._open

    # --- changing ---

    def append(self, id_: int, record: T) -> None:
        """Place the record of a new id; the ids skipped on the way stay without one."""
        if id_ <= self.end:
            raise ValueError(f"id {id_} is not new: ids up to {self.end} have places")
        for _ in range(id_ - 1 - self.end):  # gaps: ids deleted before a snapshot
            self._put(None)
        self._put(record)
        self._live += 1

    def replace(self, id_: int, record: T | None) -> None:
        """Change (or, with None, remove) the record of an id that has a place."""
        if not 0 < id_ <= self.end:
            raise KeyError(id_)
        chunk, offset = divmod(id_ - 1, self.size)
        if chunk == len(self._full):
            before = self._open[offset]
            self._open[offset] = record
        else:
            changed = list(self._full[chunk])
            before, changed[offset] = changed[offset], record
            self._full[chunk] = tuple(changed)
        self._live += (record is not None) - (before is not None)

    def _put(self, record: T | None) -> None:
        self.end += 1
        self._open.append(record)
        if len(self._open) == self.size:
            self._full.append(tuple(self._open))
            self._open = []
