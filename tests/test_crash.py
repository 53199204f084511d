"""The crash test, short form: the real server killed with SIGKILL, with a simulated power loss,
and servers sharing a stream killed in turn.

The long forms are ``python -m tests.crash --kills 60 --power-loss`` and
``python -m tests.crash --nodes 3 --kills 60`` (see tests/crash/).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.crash.harness import Seen
from tests.crash.model import (
    FlowModel,
    MessageModel,
    SeenFlow,
    SeenMessage,
    SeenUser,
    Status,
    Tally,
    UserModel,
    UserProbe,
    judge_flows,
    judge_messages,
    judge_user,
    judge_user_list,
)
from tests.crash.nodes import differences, wipes
from tests.crash.process import PowerLoss
from tests.crash.server_wrapper import (
    BROKEN_FSYNC_ENV,
    FSYNC_LOG_ENV,
    install_cheap_argon2,
    install_hooks,
)

REPO = Path(__file__).resolve().parents[1]


def crash_test(tmp_path: Path, *options: str) -> tuple[dict[str, Any], str]:
    """Run the harness in its own process; return its counts and what it printed."""
    counts = tmp_path / "counts.json"
    command = [sys.executable, "-m", "tests.crash", *options]
    command += ["--workdir", str(tmp_path / "work"), "--json", str(counts)]
    # In a session of its own: a timeout ends the harness and whatever it started (its
    # nats-server among them) at once.
    with subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as harness:
        try:
            output, _ = harness.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(harness.pid, signal.SIGKILL)
            output, _ = harness.communicate()
            pytest.fail(f"the crash test took over 120 s:\n{output}")
    assert counts.exists(), output
    result: dict[str, Any] = json.loads(counts.read_text())
    assert harness.returncode == (0 if result["passed"] else 1), output
    return result, output


def test_acknowledged_changes_survive_kill_9_and_power_loss(tmp_path: Path) -> None:
    seed = secrets.randbits(32)  # in the output of a failure: rerun with the same --seed
    # Snapshots every 0.1 s: a server lives well under a second between kills, so with the
    # default 1 s it would hardly ever take one, and kills would never land around one.
    result, output = crash_test(
        tmp_path, "--kills", "8", "--power-loss", "--snapshot-interval", "0.1", "--seed", str(seed)
    )
    assert result["kills"] == 8, output
    assert result["aborted"] is None, output
    assert result["lost"] == 0, output
    assert result["phantom"] == 0, output
    assert result["unexpected"] == 0, output
    assert result["passed"], output
    assert result["acked"] > 100 and result["acked_checked"] == result["acked"], output
    assert result["in_flight"] > 0, output


NODE_KILLS = 6
WIPE_CHANCE = 0.4


def test_acknowledged_changes_survive_kill_9_of_nodes_sharing_a_stream(
    tmp_path: Path, nats_binary: str
) -> None:
    # A seed whose restarts include both kinds: from the node's own data directory (its
    # last local snapshot) and from an empty one (the stream's snapshot, its records purged).
    while True:
        seed = secrets.randbits(32)
        draws = list(itertools.islice(wipes(seed), NODE_KILLS))
        if any(d < WIPE_CHANCE for d in draws) and any(d >= WIPE_CHANCE for d in draws):
            break
    result, output = crash_test(
        tmp_path,
        *("--nodes", "3", "--kills", str(NODE_KILLS), "--kills-per-check", "3"),
        *("--wipe-chance", str(WIPE_CHANCE), "--snapshot-interval", "0.2"),
        *("--event-log-keep", "2000", "--cheap-argon2", "--writers", "12"),
        *("--nats-server", nats_binary, "--seed", str(seed)),
    )
    assert result["kills"] == NODE_KILLS, output
    assert result["aborted"] is None, output
    assert result["lost"] == 0, output
    assert result["phantom"] == 0, output
    assert result["diverged"] == 0, output
    assert result["unexpected"] == 0, output
    assert result["passed"], output
    assert 0 < result["wiped"] < NODE_KILLS, output
    assert result["acked"] > 100 and result["acked_checked"] == result["acked"], output
    assert result["in_flight"] > 0, output


def test_the_crash_test_catches_a_build_whose_fsync_does_nothing(tmp_path: Path) -> None:
    result, output = crash_test(
        tmp_path, "--kills", "3", "--power-loss", "--broken-fsync", "--seed", "1"
    )
    assert result["kills"] == 3, output
    assert result["lost"] > 0, output
    assert not result["passed"], output


# --- the judge and the power loss, on their own: each kind of failure is caught ---------------


def message(tag: str = "w00m0", *texts: str, status: Status = Status.LIVE) -> MessageModel:
    texts = texts or (f"{tag} v0 hello",)
    return MessageModel(
        tag=tag, author=7, flow=1, texts=list(texts), status=status, id=3, text=texts[-1]
    )


def seen(item: MessageModel, text: str, *, edited: bool | None = None) -> SeenMessage:
    if edited is None:
        edited = text != item.texts[0]
    return SeenMessage(id=3, text=text, author=7, flow=1, client_id=item.tag, edited=edited)


def judged(item: MessageModel, *shown: SeenMessage) -> Tally:
    tally = Tally()
    judge_messages({item.tag: item}, shown, tally)
    return tally


def test_the_judge_accepts_acknowledged_and_wholly_applied_changes() -> None:
    sent = message()
    assert judged(sent, seen(sent, sent.text)) == Tally(checked=1)

    edited = message("w00m1", "w00m1 v0", "w00m1 v1")
    edited.text, edited.edit_in_flight = "w00m1 v0", "w00m1 v1"
    tally = judged(edited, seen(edited, "w00m1 v1"))
    assert (tally.lost, tally.phantom, tally.applied) == ([], [], 1)
    assert edited.text == "w00m1 v1"  # the in-flight edit is acknowledged state from now on

    deleting = message("w00m2")
    deleting.delete_in_flight = True
    assert judged(deleting).applied == 1 and deleting.status is Status.DELETED

    pending = message("w00m3", status=Status.PENDING)
    pending.id = None
    tally = judged(pending)
    assert (tally.lost, tally.phantom, pending.status) == ([], [], Status.ABSENT)


def test_the_judge_reports_lost_acknowledged_changes() -> None:
    assert judged(message()).lost_kinds == {"message": 1}  # an acknowledged send is gone
    edited = message("w00m1", "w00m1 v0", "w00m1 v1")
    assert judged(edited, seen(edited, "w00m1 v0")).lost_kinds == {"edit": 1}
    deleted = message("w00m2", status=Status.DELETED)
    assert judged(deleted, seen(deleted, deleted.text)).lost_kinds == {"delete": 1}


def test_the_judge_reports_phantoms_and_half_done_changes() -> None:
    sent = message()
    stranger = SeenMessage(id=9, text="never sent", author=7, flow=1, client_id=None, edited=False)
    assert judged(sent, seen(sent, sent.text), stranger).phantom_kinds == {"message": 1}

    edited = message("w00m1", "w00m1 v0", "w00m1 v1")
    edited.text, edited.edit_in_flight = "w00m1 v0", "w00m1 v1"
    half = seen(edited, "w00m1 v1", edited=False)  # the new text without the edit mark
    assert judged(edited, half).phantom_kinds == {"message": 1}

    gone = message("w00m2", status=Status.ABSENT)  # in flight at a kill, then not there
    assert judged(gone, seen(gone, gone.text)).phantom_kinds == {"message": 1}

    wrong_author = message("w00m3")
    shown = SeenMessage(3, wrong_author.text, 8, 1, wrong_author.tag, False)
    assert judged(wrong_author, shown).phantom_kinds == {"message": 1}


def test_the_judge_of_flows_and_users() -> None:
    tally = Tally()
    flows = {
        "a": FlowModel(title="a", owner=7, info=None, status=Status.LIVE, id=2),
        "b": FlowModel(title="b", owner=7, info="x"),  # in flight
    }
    shown = [
        SeenFlow(1, "group", "General", "Everyone", None),
        SeenFlow(3, "group", "b", "x", 7),
        SeenFlow(4, "group", "nobody made this", None, 7),
    ]
    judge_flows(flows, 1, shown, tally)
    assert tally.lost_kinds == {"flow": 1} and tally.phantom_kinds == {"flow": 1}
    assert flows["b"].status is Status.LIVE and flows["b"].id == 3

    tally = Tally()
    live = UserModel("ann", "pw", None, None, status=Status.LIVE, id=1, token="t")
    judge_user(live, UserProbe(ping=401), tally)
    half = UserModel("bob", "pw", None, None)  # registration in flight
    judge_user(half, UserProbe(login=401), tally)
    judge_user_list({"ann": live}, [SeenUser(5, "zed")], tally)
    assert tally.lost_kinds == {"user": 1} and tally.phantom_kinds == {"user": 2}


def test_power_loss_drops_what_no_fsync_covered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    synced, never = data / "journal-0000000000000001.log", data / "journal-0000000000000009.log"
    synced.write_bytes(b"x" * 100)
    never.write_bytes(b"y" * 50)
    log = tmp_path / "fsync.tsv"
    real = os.path.realpath(synced)
    log.write_text(f"{real}\t40\t{synced.stat().st_ino}\n{real}\t70\t{synced.stat().st_ino}\n")
    power = PowerLoss(data, random.Random(1))
    power.absorb(log)
    assert power.cut() == 30 + 50
    assert synced.stat().st_size == 70 and never.stat().st_size == 0


def test_the_wrapper_records_each_fsync_or_breaks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "fsync.tsv"
    monkeypatch.setattr(os, "fsync", os.fsync)  # restored after the test
    monkeypatch.setenv(FSYNC_LOG_ENV, str(log))
    monkeypatch.delenv(BROKEN_FSYNC_ENV, raising=False)
    install_hooks()
    target = tmp_path / "journal-0000000000000001.log"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, b"12345")
        os.fsync(fd)
        monkeypatch.setenv(BROKEN_FSYNC_ENV, "1")
        install_hooks()
        os.write(fd, b"678")
        os.fsync(fd)
    finally:
        os.close(fd)
    assert log.read_text() == f"{os.path.realpath(target)}\t5\t{target.stat().st_ino}\n"


def test_nodes_that_differ_are_caught() -> None:
    user, flow = SeenUser(1, "ann"), SeenFlow(1, "group", "General", "Everyone", None)
    message = SeenMessage(id=3, text="w00m0 v0", author=1, flow=1, client_id="w00m0", edited=False)
    edited = SeenMessage(id=3, text="w00m0 v1", author=1, flow=1, client_id="w00m0", edited=True)
    reference = Seen([flow], [message], [user])
    assert differences(reference, Seen([flow], [message], [user])) == []
    found = differences(reference, Seen([flow], [edited], [user, SeenUser(2, "bob")]))
    assert [line.split(":")[0] for line in found] == [
        "has more 1 user(s)",
        "lacks 1 message(s)",
        "has more 1 message(s)",
    ]
    assert "'w00m0 v1'" in found[2]


def test_the_wrapper_makes_argon2_cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    from morelia_trio import cli

    made = vars(cli)["Config"]
    monkeypatch.setitem(vars(cli), "Config", made)  # restored after the test
    install_cheap_argon2()
    config = msgspec.convert({}, vars(cli)["Config"])
    assert (config.argon2.time_cost, config.argon2.memory_cost) == (1, 8)
