"""The data files on their own: journal records, snapshot files and recovery, byte by byte.

Everything here is sync and needs no server: the events come from the same core commands a
live server runs, and the files are built with the same encoders it writes them with.
"""

from __future__ import annotations

import itertools
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morelia_trio.core import commands, queries, snapshot_format
from morelia_trio.core.events import AnyEvent
from morelia_trio.core.journal_format import (
    HEADER,
    DataDamaged,
    Scan,
    decode_event,
    encode_end,
    encode_record,
    journal_files,
    journal_name,
    scan,
)
from morelia_trio.core.paging import Bounds
from morelia_trio.core.records import Credentials, MessageContent
from morelia_trio.core.snapshot_format import SNAPSHOT_FORMAT
from morelia_trio.core.state import State, apply, capture, hash_token, restore
from morelia_trio.persistence import snapshots
from morelia_trio.persistence.files import write_atomic
from morelia_trio.persistence.recovery import recover

T0 = 1_700_000_000.25
JOURNAL = Path("/data/journal-0000000000000001.log")  # the name scan puts in its errors

bounded = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- a history of real events -----------------------------------------------------------------


def make_events(messages: int = 9) -> list[AnyEvent]:
    """A history using every kind of event, each made by the core command a server runs."""
    state = State()
    events: list[AnyEvent] = []
    clock = itertools.count()

    def now() -> float:
        return T0 + next(clock) * 0.5

    def run(event: AnyEvent | None) -> None:
        assert event is not None
        apply(state, event)
        state.seq += 1
        events.append(event)

    run(commands.bootstrap(state, now()))
    run(
        commands.register_user(
            state, "ann", "hash-ann", "Ann", "ann@example.org", hash_token("ann-1"), now()
        )
    )
    run(commands.register_user(state, "bob", "hash-bob", None, None, hash_token("bob-1"), now()))
    run(commands.open_session(state, 1, "hash-ann", hash_token("ann-2"), now()))
    ann, bob = Credentials(1, "ann-1"), Credentials(2, "bob-1")
    run(commands.add_flow(state, ann, "chat", "ann & bob", None, [1, 2], now()))
    run(commands.add_flow(state, bob, "group", "Bob's group", "about things", [], now()))
    for n in range(messages):
        author = ann if n % 2 == 0 else bob
        new = MessageContent(
            text=f"message {n}: привет ✓",
            picture=[n, 255, 0] if n % 3 == 0 else None,
            reply_to=n - 2 if n >= 3 else None,  # message n - 3, in the same flow
            client_id=f"c{n}",
        )
        run(commands.send_message(state, author, n % 3 + 1, new, now()))
    run(commands.edit_message(state, ann, 1, None, "message 0, edited", now()))
    run(commands.delete_message(state, bob, 2, None, now()))
    run(commands.register_user(state, "cid", "hash-cid", "Cid", None, hash_token("cid-1"), now()))
    run(commands.delete_user(state, 3, "hash-cid", now()))
    run(commands.open_session(state, 2, "hash-bob", hash_token("bob-2"), now()))
    return events


EVENTS = make_events()
PAYLOADS = [msgspec.msgpack.encode(event) for event in EVENTS]


def records(first_seq: int = 1, last_seq: int = len(EVENTS)) -> list[tuple[int, bytes]]:
    return [(seq, PAYLOADS[seq - 1]) for seq in range(first_seq, last_seq + 1)]


def journal_bytes(numbered: list[tuple[int, bytes]]) -> tuple[bytes, list[int]]:
    """A journal file's bytes, and where each record in it starts."""
    parts = [encode_record(seq, payload) for seq, payload in numbered]
    starts = list(itertools.accumulate((len(part) for part in parts), initial=0))
    return b"".join(parts), starts[:-1]


def live_state(last_seq: int) -> State:
    """The state a running server holds after the first ``last_seq`` events."""
    state = State()
    for seq, event in enumerate(EVENTS[:last_seq], start=1):
        apply(state, event)
        state.seq = seq
    return state


def summary(state: State) -> dict[str, Any]:
    """Everything in a state, indexes included, in a form == compares."""
    return {
        "seq": state.seq,
        "clock": state.clock,
        "next_ids": (state.next_user_id, state.next_flow_id, state.next_message_id),
        "users": state.users,
        "logins": state.logins,
        "sessions": state.sessions,
        "user_sessions": state.user_sessions,
        "flows": state.flows,
        "public_flows": state.public_flows,
        "user_chats": state.user_chats,
        "messages": state.messages,
        "flow_messages": state.flow_messages,
        "change_times": state.change_times.tolist(),
        "change_keys": state.change_keys.tolist(),
        # Derived counts: a deleted message weighs nothing, whether its place is kept or not.
        "message_sizes": dict(filter(lambda pair: pair[1], enumerate(state.message_sizes))),
        "stored_bytes": {user: size for user, size in state.stored_bytes.items() if size},
        "owned_flows": state.owned_flows,
    }


def write_snapshot(directory: Path, seq: int) -> Path:
    path = directory / snapshot_format.SNAPSHOT_NAME
    write_atomic(path, snapshot_format.encode(capture(live_state(seq)), T0 + 1000))
    return path


def write_journal(directory: Path, first_seq: int, last_seq: int) -> Path:
    path = directory / journal_name(first_seq)
    path.write_bytes(journal_bytes(records(first_seq, last_seq))[0])
    return path


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per hypothesis example (tmp_path is one per test)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def fresh(state: State) -> bool:
    return summary(state) == summary(State())


def test_the_history_is_what_it_claims() -> None:
    state = live_state(len(EVENTS))
    assert len(EVENTS) == 20
    assert sorted(state.users) == [1, 2]
    assert sorted(state.flows) == [1, 2, 3]
    assert sorted(state.messages) == [1, 3, 4, 5, 6, 7, 8, 9]
    assert state.messages[1].text == "message 0, edited"
    assert len(state.sessions) == 4
    assert state.user_chats == {1: [2], 2: [2]}


# --- scan: whole files ------------------------------------------------------------------------


def test_scan_returns_every_record() -> None:
    data, starts = journal_bytes(records())
    found = scan(data, JOURNAL)
    assert found == Scan(records(), len(data), None)
    assert [decode_event(payload) for _, payload in found.records] == EVENTS
    assert len(starts) == len(EVENTS) and starts[0] == 0


def test_scan_of_an_empty_file() -> None:
    assert scan(b"", JOURNAL) == Scan([], 0, None)


def test_records_may_start_at_any_sequence_number() -> None:
    numbered = [(seq + 2**40, payload) for seq, payload in records()]
    data, _ = journal_bytes(numbered)
    assert scan(data, JOURNAL) == Scan(numbered, len(data), None)


# --- scan: torn tails -------------------------------------------------------------------------


def expected_after_cut(starts: list[int], size: int, cut: int) -> tuple[int, int]:
    """(complete records, offset just past them) when a file of ``size`` is cut at ``cut``."""
    boundaries = [*starts[1:], size]
    whole = sum(1 for end in boundaries if end <= cut)
    return whole, ([0, *boundaries])[whole]


def test_a_cut_at_every_offset_leaves_exactly_the_complete_records() -> None:
    data, starts = journal_bytes(records())
    assert starts[-2] < starts[-1] < len(data)
    for cut in range(len(data) + 1):  # the last two records, and every other offset too
        whole, end = expected_after_cut(starts, len(data), cut)
        found = scan(data[:cut], JOURNAL)
        assert found.records == records()[:whole], cut
        assert found.end == end, cut
        assert (found.torn is None) == (cut == end), (cut, found.torn)


def test_trailing_zero_bytes_count_as_torn() -> None:
    data, _ = journal_bytes(records())
    for zeros in [*range(1, 2 * HEADER.size + 2), 4096, 5000]:
        found = scan(data + bytes(zeros), JOURNAL)
        assert found.records == records(), zeros
        assert found.end == len(data)
        assert found.torn is not None and str(zeros) in found.torn
    found = scan(bytes(4096), JOURNAL)
    assert found.records == [] and found.end == 0 and found.torn is not None


def test_a_last_record_whose_payload_never_reached_the_disk_is_torn() -> None:
    # The size grew but the data did not get written: the file ends in zeros instead.
    data, starts = journal_bytes(records())
    last_nonzero = max(i for i, byte in enumerate(data) if byte)
    for cut in range(starts[-1] + HEADER.size, last_nonzero + 1):  # zeros at the end anyway
        found = scan(data[:cut] + bytes(len(data) - cut), JOURNAL)
        assert found == Scan(records()[:-1], starts[-1], found.torn), cut
        assert found.torn is not None


def test_a_last_record_header_that_only_partly_reached_the_disk_is_torn() -> None:
    data, starts = journal_bytes(records())
    for cut in range(starts[-1] + 1, starts[-1] + HEADER.size):
        found = scan(data[:cut] + bytes(len(data) - cut), JOURNAL)
        assert found.records == records()[:-1], cut
        assert found.end == starts[-1] and found.torn is not None


# --- scan: damage ---------------------------------------------------------------------------


def record_at(starts: list[int], offset: int) -> int:
    return max(index for index, start in enumerate(starts) if start <= offset)


def scan_or_damage(data: bytes) -> Scan | DataDamaged:
    try:
        return scan(data, JOURNAL)
    except DataDamaged as exc:
        return exc


def check_flip(data: bytes, starts: list[int], offset: int, mask: int) -> None:
    """One byte changed: only a flip inside the last record may pass as a torn tail."""
    flipped = bytearray(data)
    flipped[offset] ^= mask
    damaged = record_at(starts, offset)
    found = scan_or_damage(bytes(flipped))
    if isinstance(found, DataDamaged):
        assert found.offset == starts[damaged], (offset, mask, found)
        assert found.path == JOURNAL and str(JOURNAL) in str(found)
        return
    assert damaged == len(starts) - 1, f"a flip at {offset} (mask {mask:#x}) passed: {found}"
    assert found.records == records()[:-1]
    assert found.end == starts[-1] and found.torn is not None


def test_every_flipped_byte_is_caught() -> None:
    data, starts = journal_bytes(records())
    for offset in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            check_flip(data, starts, offset, mask)


@bounded
@given(data=st.data(), mask=st.integers(1, 255))
def test_a_flipped_byte_anywhere_is_caught(data: st.DataObject, mask: int) -> None:
    contents, starts = journal_bytes(records())
    offset = data.draw(st.integers(0, len(contents) - 1))
    check_flip(contents, starts, offset, mask)


def test_a_damaged_header_raises_even_when_it_is_the_last() -> None:
    data, starts = journal_bytes(records())
    flipped = bytearray(data)
    flipped[starts[-1] + 4] ^= 0x10  # the sequence number
    with pytest.raises(DataDamaged, match="header fails its checksum") as info:
        scan(bytes(flipped), JOURNAL)
    assert info.value.offset == starts[-1]


def test_garbage_after_the_last_record_is_damage() -> None:
    data, _ = journal_bytes(records())
    # Not b"\x01" then zeros only: a header's first byte then zeros is what a torn write
    # leaves (see above); bytes after where a header would end cannot be.
    with pytest.raises(DataDamaged) as info:
        scan(data + b"\x01" + bytes(HEADER.size + 10) + b"\x01", JOURNAL)
    assert info.value.offset == len(data)


# --- snapshot files ---------------------------------------------------------------------------


def snapshot_bytes(seq: int = len(EVENTS)) -> bytes:
    return snapshot_format.encode(capture(live_state(seq)), T0 + 1000)


def test_a_snapshot_round_trips(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, len(EVENTS))
    snapshot = snapshots.read(path)
    assert snapshot is not None
    assert snapshot.format == SNAPSHOT_FORMAT and snapshot.seq == len(EVENTS)
    assert snapshot.time == T0 + 1000
    assert summary(restore(snapshot)) == summary(live_state(len(EVENTS)))
    assert not path.with_name(path.name + ".tmp").exists()


def test_a_missing_snapshot_is_none(tmp_path: Path) -> None:
    assert snapshots.read(tmp_path / snapshot_format.SNAPSHOT_NAME) is None


def assert_damaged_snapshot(data: bytes, path: Path) -> DataDamaged:
    with pytest.raises(DataDamaged) as info:
        snapshot_format.decode(data, path)
    assert info.value.path == path and str(path) in str(info.value)
    return info.value


def test_every_flipped_byte_of_a_snapshot_is_caught(tmp_path: Path) -> None:
    path = tmp_path / snapshot_format.SNAPSHOT_NAME
    data = snapshot_bytes()
    assert len(data) < 4096
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        assert_damaged_snapshot(bytes(flipped), path)
    # the same through the file, for a few of them
    for offset in (0, len(snapshot_format.MAGIC), len(snapshot_format.MAGIC) + 8, len(data) // 2):
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        path.write_bytes(flipped)
        with pytest.raises(DataDamaged) as info:
            snapshots.read(path)
        assert info.value.path == path


def test_every_truncated_snapshot_is_caught(tmp_path: Path) -> None:
    path = tmp_path / snapshot_format.SNAPSHOT_NAME
    data = snapshot_bytes()
    for cut in range(len(data)):
        assert_damaged_snapshot(data[:cut], path)
    assert_damaged_snapshot(data + b"\x00", path)


@pytest.mark.parametrize(
    "magic",
    [b"", b"MORELIA-TRIO SNAPSHOT v2\n", b"morelia-trio snapshot\n", b"\x00" * 22],
)
def test_a_snapshot_with_the_wrong_magic_is_caught(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / snapshot_format.SNAPSHOT_NAME
    data = magic + snapshot_bytes()[len(snapshot_format.MAGIC) :]
    exc = assert_damaged_snapshot(data, path)
    assert exc.offset == 0


def with_payload(payload: bytes) -> bytes:
    """A snapshot file around any payload, header and checksum right."""
    return (
        snapshot_format.MAGIC
        + snapshot_format.HEADER.pack(len(payload), zlib.crc32(payload))
        + payload
    )


def test_a_snapshot_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / snapshot_format.SNAPSHOT_NAME
    data = snapshot_bytes()
    root = msgspec.msgpack.decode(data[len(snapshot_format.MAGIC) + snapshot_format.HEADER.size :])
    assert root["format"] == SNAPSHOT_FORMAT
    assert snapshot_format.decode(with_payload(msgspec.msgpack.encode(root)), path).seq == len(
        EVENTS
    )
    for unknown in (SNAPSHOT_FORMAT + 1, 0, -1, "1", None):
        exc = assert_damaged_snapshot(
            with_payload(msgspec.msgpack.encode({**root, "format": unknown})), path
        )
        assert "format" in exc.reason
    del root["format"]
    assert_damaged_snapshot(with_payload(msgspec.msgpack.encode(root)), path)


def test_a_snapshot_that_checks_out_but_does_not_decode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / snapshot_format.SNAPSHOT_NAME
    for payload in ({"format": SNAPSHOT_FORMAT}, [1, 2, 3], "snapshot"):
        assert_damaged_snapshot(with_payload(msgspec.msgpack.encode(payload)), path)
    assert_damaged_snapshot(with_payload(b"\xc1"), path)  # not msgpack at all


# --- recover ----------------------------------------------------------------------------------


def test_recover_a_missing_directory_is_a_fresh_start(tmp_path: Path) -> None:
    missing = tmp_path / "never-made"
    state, report = recover(missing)
    assert fresh(state)
    assert report.snapshot_seq is None and report.journal_files == []
    assert report.replayed == 0 and report.torn == []
    assert not missing.exists()


def test_recover_an_empty_directory_is_a_fresh_start(tmp_path: Path) -> None:
    state, report = recover(tmp_path)
    assert fresh(state)
    assert report.snapshot_seq is None and report.journal_files == [] and report.torn == []
    assert list(tmp_path.iterdir()) == []


def test_recover_ignores_leftovers_that_are_not_data_files(tmp_path: Path) -> None:
    write_journal(tmp_path, 1, 5)
    (tmp_path / "snapshot.msgpack.tmp").write_bytes(b"half a snapshot")  # died mid-write
    (tmp_path / "journal-notes.log").write_text("not a journal")
    (tmp_path / "README").write_text("hello")
    state, report = recover(tmp_path)
    assert summary(state) == summary(live_state(5))
    assert report.journal_files == [journal_name(1)]


def test_recover_replays_a_journal_alone(tmp_path: Path) -> None:
    write_journal(tmp_path, 1, len(EVENTS))
    state, report = recover(tmp_path)
    assert summary(state) == summary(live_state(len(EVENTS)))
    assert report.snapshot_seq is None
    assert report.journal_records == report.replayed == len(EVENTS)


def as_written_before_end_markers(path: Path) -> None:
    """Rewrite a snapshot file as servers wrote it before they made the journal reach it."""
    data = path.read_bytes()
    root = msgspec.msgpack.decode(data[len(snapshot_format.MAGIC) + snapshot_format.HEADER.size :])
    del root["journal_reaches_seq"]
    payload = msgspec.msgpack.encode(root)
    path.write_bytes(
        snapshot_format.MAGIC
        + snapshot_format.HEADER.pack(len(payload), zlib.crc32(payload))
        + payload
    )


def test_recover_a_snapshot_alone(tmp_path: Path) -> None:
    # A snapshot alone is what older servers could leave; one written since says that the
    # journal reached it, so the journal file that followed it is missing (see below).
    as_written_before_end_markers(write_snapshot(tmp_path, len(EVENTS)))
    state, report = recover(tmp_path)
    assert summary(state) == summary(live_state(len(EVENTS)))
    assert report.snapshot_seq == len(EVENTS) and report.snapshot_time == T0 + 1000
    assert report.replayed == 0


@bounded
@given(
    snapshot_seq=st.integers(0, len(EVENTS)),
    rotations=st.sets(st.integers(2, len(EVENTS)), max_size=4),
    keep_covered=st.booleans(),
    snapshot_at_zero=st.booleans(),
)
def test_snapshot_and_journal_replay_give_the_live_state(
    snapshot_seq: int, rotations: set[int], keep_covered: bool, snapshot_at_zero: bool
) -> None:
    firsts = sorted({1, *rotations})
    spans = list(zip(firsts, [f - 1 for f in firsts[1:]] + [len(EVENTS)], strict=True))
    if not keep_covered:  # what remove_covered_journals leaves after the snapshot
        while len(spans) > 1 and spans[1][0] <= snapshot_seq + 1:
            spans.pop(0)
    with scratch() as directory:
        if snapshot_seq or snapshot_at_zero:
            write_snapshot(directory, snapshot_seq)
        for first, last in spans:
            write_journal(directory, first, last)
        state, report = recover(directory)
        assert summary(state) == summary(live_state(len(EVENTS)))
        assert report.replayed == len(EVENTS) - snapshot_seq
        assert report.journal_files == [journal_name(first) for first, _ in spans]
        assert report.torn == []
        # and the queries see the same
        ann = Credentials(1, "ann-1")
        live = live_state(len(EVENTS))
        bounds = Bounds(1000, 2**40)
        assert queries.get_update(state, ann, None, 0, bounds, True) == queries.get_update(
            live, ann, None, 0, bounds, True
        )
        assert queries.all_messages(state, ann, None, 0, bounds) == queries.all_messages(
            live, ann, None, 0, bounds
        )


@pytest.mark.parametrize(
    ("snapshot_seq", "files", "damaged", "at_record", "why"),
    [
        # record 7 missing from the middle of a file
        (0, [[(1, 6), (8, 20)]], 1, 8, "missing"),
        # a whole file missing between two others
        (0, [[(1, 6)], [(11, 20)]], 11, 11, "missing"),
        # the snapshot covers 5, the journal resumes at 8
        (5, [[(8, 20)]], 8, 8, "missing"),
        # a covered file, then a gap after the snapshot
        (5, [[(1, 5)], [(7, 20)]], 7, 7, "missing"),
        # a record repeated inside one file
        (0, [[(1, 6), (4, 9)]], 1, 4, "goes back"),
        # a second file that starts inside the first
        (0, [[(1, 6)], [(3, 9)]], 3, 3, "goes back"),
        # the same, with both files fully covered by the snapshot
        (9, [[(1, 6)], [(3, 9)]], 3, 3, "goes back"),
    ],
)
def test_sequence_numbers_out_of_order_are_damage(
    tmp_path: Path,
    snapshot_seq: int,
    files: list[list[tuple[int, int]]],
    damaged: int,
    at_record: int,
    why: str,
) -> None:
    if snapshot_seq:
        write_snapshot(tmp_path, snapshot_seq)
    offsets: dict[tuple[int, int], int] = {}  # (file's first seq, seq) -> offset of its last copy
    for spans in files:
        numbered = [record for span in spans for record in records(*span)]
        data, starts = journal_bytes(numbered)
        first = numbered[0][0]
        (tmp_path / journal_name(first)).write_bytes(data)
        offsets |= {(first, seq): start for (seq, _), start in zip(numbered, starts, strict=True)}
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(DataDamaged, match=why) as info:
        recover(tmp_path)
    assert info.value.path == tmp_path / journal_name(damaged)
    assert info.value.offset == offsets[(damaged, at_record)]
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_file_whose_first_record_is_not_its_name_is_damage(tmp_path: Path) -> None:
    path = tmp_path / journal_name(1)
    path.write_bytes(journal_bytes(records(2, 5))[0])
    with pytest.raises(DataDamaged) as info:
        recover(tmp_path)
    assert info.value.path == path and info.value.offset == 0


def test_a_record_that_is_not_an_event_is_damage(tmp_path: Path) -> None:
    path = tmp_path / journal_name(1)
    data, starts = journal_bytes([*records(1, 4), (5, msgspec.msgpack.encode({"a": 1}))])
    path.write_bytes(data + journal_bytes(records(6, 8))[0])
    with pytest.raises(DataDamaged, match="record 5") as info:
        recover(tmp_path)
    assert info.value.path == path and info.value.offset == starts[4]


def torn_directory(directory: Path, cut: int) -> tuple[Path, bytes, list[int]]:
    """Two journal files, the newest cut ``cut`` bytes into its last two records."""
    write_journal(directory, 1, 9)
    data, starts = journal_bytes(records(10, len(EVENTS)))
    newest = directory / journal_name(10)
    newest.write_bytes(data[: starts[-2] + cut])
    return newest, data, starts


@pytest.mark.parametrize("repair", [True, False])
def test_a_torn_tail_in_the_last_file_is_cut_only_with_repair(tmp_path: Path, repair: bool) -> None:
    newest, data, starts = torn_directory(tmp_path, 0)
    span = len(data) - starts[-2]
    for cut in range(span + 1):  # every offset inside the last two records
        newest.write_bytes(data[: starts[-2] + cut])
        whole, end = expected_after_cut(starts, len(data), starts[-2] + cut)
        last_seq = 9 + whole
        state, report = recover(tmp_path, repair=repair)
        assert summary(state) == summary(live_state(last_seq)), cut
        if starts[-2] + cut == end:
            assert report.torn == [], cut
            assert newest.stat().st_size == end
            continue
        assert len(report.torn) == 1 and report.torn[0].startswith(
            f"{newest.name} at offset {end}:"
        ), report.torn
        if repair:
            assert newest.read_bytes() == data[:end], cut
            again, report = recover(tmp_path, repair=repair)
            assert report.torn == [] and summary(again) == summary(state)
        else:
            assert newest.read_bytes() == data[: starts[-2] + cut], cut


def test_a_torn_tail_of_zeros_is_cut(tmp_path: Path) -> None:
    newest, data, _ = torn_directory(tmp_path, 0)
    newest.write_bytes(data + bytes(3000))
    state, report = recover(tmp_path)
    assert summary(state) == summary(live_state(len(EVENTS)))
    assert len(report.torn) == 1
    assert newest.read_bytes() == data


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size, HEADER.size + 3])
def test_a_torn_tail_in_an_older_file_is_damage(tmp_path: Path, cut: int) -> None:
    older_data, older_starts = journal_bytes(records(1, 9))
    older = tmp_path / journal_name(1)
    older.write_bytes(older_data + encode_record(10, PAYLOADS[9])[:cut])
    write_journal(tmp_path, 10, len(EVENTS))
    before = older.read_bytes()
    for repair in (True, False):
        with pytest.raises(DataDamaged) as info:
            recover(tmp_path, repair=repair)
        assert info.value.path == older
        assert info.value.offset == len(older_data)
        assert older.read_bytes() == before
    assert len(older_starts) == 9


def test_damage_in_a_covered_file_still_stops_recovery(tmp_path: Path) -> None:
    # A snapshot covers the file, but a damaged file means something is wrong with the disk.
    write_snapshot(tmp_path, 12)
    data, starts = journal_bytes(records(1, 12))
    flipped = bytearray(data)
    flipped[starts[3] + HEADER.size + 2] ^= 0x04
    (tmp_path / journal_name(1)).write_bytes(flipped)
    write_journal(tmp_path, 13, len(EVENTS))
    with pytest.raises(DataDamaged) as info:
        recover(tmp_path)
    assert info.value.path == tmp_path / journal_name(1) and info.value.offset == starts[3]


def test_a_damaged_snapshot_stops_recovery(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, 10)
    write_journal(tmp_path, 11, len(EVENTS))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(data)
    with pytest.raises(DataDamaged) as info:
        recover(tmp_path)
    assert info.value.path == path and str(path) in str(info.value)


def test_journal_files_are_listed_oldest_first(tmp_path: Path) -> None:
    for first in (100, 9, 10_000_000, 1):
        (tmp_path / journal_name(first)).touch()
    (tmp_path / "journal-x.log").touch()
    assert [first for first, _ in journal_files(tmp_path)] == [1, 9, 100, 10_000_000]


# --- a missing file: end-of-file markers and the snapshot's promise ---------------------------


def write_marked_journal(directory: Path, first_seq: int, last_seq: int, follows: int) -> Path:
    """A file the journal moved on from: its records, then the end-of-file marker."""
    path = write_journal(directory, first_seq, last_seq)
    path.write_bytes(path.read_bytes() + encode_end(follows))
    return path


def test_files_with_end_markers_replay_like_any_other(tmp_path: Path) -> None:
    write_marked_journal(tmp_path, 1, 6, 7)
    write_marked_journal(tmp_path, 7, 12, 13)
    write_journal(tmp_path, 13, len(EVENTS))
    state, report = recover(tmp_path)
    assert summary(state) == summary(live_state(len(EVENTS)))
    assert report.torn == [] and report.journal_records == len(EVENTS)


def test_a_newest_file_with_an_end_marker_means_the_next_is_missing(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 6)
    write_marked_journal(tmp_path, 1, 6, 7)
    write_marked_journal(tmp_path, 7, 12, 13)  # journal-13 (records 13 to 20) was deleted
    with pytest.raises(DataDamaged) as info:
        recover(tmp_path)
    assert info.value.path == tmp_path / journal_name(13) and info.value.offset is None
    assert str(info.value) == (
        f"{tmp_path / journal_name(13)}: missing: {journal_name(7)} ends saying this file "
        "follows it"
    )


def test_a_snapshot_whose_journal_file_is_missing_is_damage(tmp_path: Path) -> None:
    write_snapshot(tmp_path, 12)
    write_journal(tmp_path, 1, 9)  # journal-13 (and what 10 to 12 were in) were deleted
    with pytest.raises(DataDamaged) as info:
        recover(tmp_path)
    assert info.value.path == tmp_path / journal_name(13) and info.value.offset is None
    assert "the snapshot ends at record 12, the journal at 9" in str(info.value)
    (tmp_path / journal_name(1)).unlink()
    with pytest.raises(DataDamaged, match="there is no journal file"):
        recover(tmp_path)


def test_an_older_snapshot_need_not_be_reached_by_the_journal(tmp_path: Path) -> None:
    """Before the promise, a stop could snapshot changes the journal had not written yet."""
    as_written_before_end_markers(write_snapshot(tmp_path, 12))
    write_journal(tmp_path, 1, 9)
    state, report = recover(tmp_path)
    assert summary(state) == summary(live_state(12)) and report.replayed == 0
    # and a later run goes on in a new file, the gap between them covered by the snapshot
    write_marked_journal(tmp_path, 1, 9, 13)
    write_journal(tmp_path, 13, len(EVENTS))
    state, _ = recover(tmp_path)
    assert summary(state) == summary(live_state(len(EVENTS)))


def test_a_gap_the_snapshot_does_not_cover_is_damage_even_across_empty_files(
    tmp_path: Path,
) -> None:
    write_snapshot(tmp_path, 6)
    write_journal(tmp_path, 1, 6)
    (tmp_path / journal_name(9)).write_bytes(b"")  # 7 and 8 are nowhere
    with pytest.raises(DataDamaged, match="records 7 to 8 are missing") as info:
        recover(tmp_path)
    assert info.value.path == tmp_path / journal_name(9) and info.value.offset == 0


def test_bytes_after_an_end_marker_are_damage(tmp_path: Path) -> None:
    path = write_marked_journal(tmp_path, 1, 6, 7)
    end = path.stat().st_size
    path.write_bytes(path.read_bytes() + encode_record(7, PAYLOADS[6]))
    write_journal(tmp_path, 7, 9)
    with pytest.raises(DataDamaged, match="after the end-of-file marker") as info:
        recover(tmp_path)
    assert info.value.path == path and info.value.offset == end


@pytest.mark.parametrize("repair", [True, False])
def test_a_torn_end_marker_on_an_older_file_is_a_torn_tail(tmp_path: Path, repair: bool) -> None:
    """A power loss while the marker was written: the records before it are whole."""
    older_data, _ = journal_bytes(records(1, 9))
    older = tmp_path / journal_name(1)
    write_journal(tmp_path, 10, len(EVENTS))
    marker = encode_end(10)
    for cut in range(1, len(marker)):
        for tail in (marker[:cut], bytes(cut), marker[:cut] + bytes(len(marker) - cut)):
            older.write_bytes(older_data + tail)
            state, report = recover(tmp_path, repair=repair)
            assert summary(state) == summary(live_state(len(EVENTS)))
            assert len(report.torn) == 1 and report.torn[0].startswith(f"{older.name} at offset")
            assert older.read_bytes() == (older_data if repair else older_data + tail)
