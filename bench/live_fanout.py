"""Live updates: what an owner turn costs with nobody subscribed, and a fan-out per subscriber.

    .venv/bin/python -m bench.live_fanout [--commands 20000] [--rounds 5]

Part one runs the owner's ``_carry_out`` for ``send_message`` commands against an event log
that does nothing, so only the owner's own work is timed; it runs on any checkout (with no
subscriber it never touches the publisher), so the same script measures the code before live
updates. Part two hands one message to N subscribers through ``Publisher.publish``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import outcome
import trio

from morelia_trio.core import commands
from morelia_trio.core.records import Credentials, MessageContent
from morelia_trio.core.state import State, apply, hash_token
from morelia_trio.store import Job, _carry_out


class _NullLog:
    """An event log that keeps nothing and answers nobody: the owner's work alone."""

    def __init__(self) -> None:
        self.appended = 0

    def append(self, event: object, *, probe: bool = False) -> int:
        self.appended += 1
        return self.appended

    def deliver(self, answer: Any, result: Any, seq: int) -> None:
        pass

    def take_probe(self) -> bool:
        return False


def _state() -> tuple[State, Credentials]:
    state = State()
    event = commands.bootstrap(state, 1.8e9)
    assert event is not None
    apply(state, event)
    registered = commands.register_user(
        state, "ann", "hash", None, None, hash_token("token"), 1.8e9
    )
    apply(state, registered)
    return state, Credentials(registered.user.id, "token")


async def _owner_turns(count: int) -> float:
    """Seconds per owner turn of one send_message (decide, append, apply, deliver)."""
    state, creds = _state()
    log = _NullLog()
    store: Any = type("S", (), {})()
    store.commands = store.queries = 0
    try:
        from morelia_trio.live import Publisher

        store.publisher = Publisher()
    except ImportError:  # the code before live updates
        pass
    content = MessageContent(text="hello everyone, a message of an ordinary length")
    jobs = []
    for _ in range(count):
        job: Job[Any] = Job(commands.send_message, (creds, 1, content, 1.8e9), rotate=False)
        job.abandoned = True  # nobody to wake: the answer is dropped
        jobs.append(job)
    start = time.perf_counter()
    for job in jobs:
        _carry_out(job, state, log, store)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / count


def _has_live() -> bool:
    try:
        import morelia_trio.live  # noqa: F401
    except ImportError:
        return False
    return True


def _fan_out(subscribers: int, rounds: int, dialects: int) -> float:
    """Seconds per subscriber to hand one public message to ``subscribers``."""
    from morelia_trio.core.frames import Dialect
    from morelia_trio.live import Publisher, Subscriber

    state, creds = _state()
    sent = commands.send_message(
        state, creds, 1, MessageContent(text="hello everyone, an ordinary message"), 1.8e9
    )
    apply(state, sent)
    publisher = Publisher()
    everyone = []
    for n in range(subscribers):
        subscriber = Subscriber()
        subscriber.active = True
        subscriber.user_id = 1000 + n
        subscriber.dialect = Dialect.LIST if dialects == 1 or n % 2 else Dialect.DOCUMENT
        publisher.by_user.setdefault(subscriber.user_id, set()).add(subscriber)
        everyone.append(subscriber)
    publisher.count = subscribers
    best = float("inf")
    for round_ in range(rounds):
        change = publisher.changed(state, sent, seq=10 + round_)
        assert change is not None
        start = time.perf_counter()
        publisher.publish(outcome.Value(change))
        best = min(best, time.perf_counter() - start)
        for subscriber in everyone:  # as if each connection sent it
            subscriber.frames.clear()
            subscriber.chars = 0
    return best / subscribers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    turns = [trio.run(_owner_turns, args.commands) for _ in range(args.rounds)]
    print(
        f"owner turn, send_message, no subscriber: best {min(turns) * 1e6:.2f} us, "
        f"median {sorted(turns)[len(turns) // 2] * 1e6:.2f} us"
    )
    if not _has_live():
        return
    for count in (1, 100, 1000, 10_000):
        for dialects in (1, 2):
            per = _fan_out(count, args.rounds, dialects)
            print(
                f"fan-out to {count:>6} subscribers, {dialects} dialect(s): "
                f"{per * 1e6:.3f} us per subscriber, {per * count * 1e3:.3f} ms in all"
            )


if __name__ == "__main__":
    main()
