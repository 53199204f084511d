"""An asyncio loop on a thread of its own, for nats-py (an asyncio library) under trio.

Measured against running nats-py on trio's own loop through trio-asyncio, a separate
thread is several times faster: nats-py's internals run at asyncio's speed, and a crossing
costs one wake-up, which the log spreads over a batch of records. Trio tasks park and are
woken once with their result (``run``); no worker thread is held per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import outcome
import trio

T = TypeVar("T")

log = logging.getLogger(__name__)


def _logging_failures(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("Bug in a call from the event log's thread")


class AsyncioThread:
    """The loop and its thread; ``start`` from trio, ``close`` when done."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.trio_token: trio.lowlevel.TrioToken | None = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # Closed: let whatever was still running finish its cancellation.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def start(self) -> None:
        self.trio_token = trio.lowlevel.current_trio_token()
        self._thread.start()

    def close(self) -> None:
        """Stop the loop (its tasks are cancelled) and wait for the thread (a blocking call:
        run it with ``trio.to_thread.run_sync``)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()

    def post(self, fn: Callable[..., object], *args: object) -> None:
        """Call ``fn(*args)`` on the loop's thread, soon; from any thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def to_trio(self, fn: Callable[..., object], *args: object) -> None:
        """Call ``fn(*args)`` on the trio thread, soon (from the loop's thread).

        An exception ``fn`` raises is logged: raised there, it would end trio's run.
        """
        assert self.trio_token is not None
        with contextlib.suppress(trio.RunFinishedError):  # trio is gone: nobody waits
            self.trio_token.run_sync_soon(_logging_failures, fn, *args)

    async def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """From trio: run ``make()`` on the loop and return (or raise) what it did.

        Cancelling the caller cancels the coroutine too.
        """
        task = trio.lowlevel.current_task()
        future: Future[T] = asyncio.run_coroutine_threadsafe(make(), self.loop)
        waiting = True

        def wake(done: Future[T]) -> None:
            if waiting:
                trio.lowlevel.reschedule(task, outcome.capture(done.result))

        def done(finished: Future[T]) -> None:  # on the loop's thread
            self.to_trio(wake, finished)

        def abort(_: object) -> trio.lowlevel.Abort:
            nonlocal waiting
            waiting = False
            future.cancel()
            return trio.lowlevel.Abort.SUCCEEDED

        future.add_done_callback(done)
        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result
