"""Live updates (CONTRACT §8.2): who has subscribed, and the frames each one is owed.

The state owner tells the Publisher of a change only while someone has subscribed
(``changed``, in the owner's turn: it picks the changed items, it renders nothing), and the
event log calls ``publish`` once that change is durable, in commit order. ``publish`` renders
the ``update`` frame once per dialect among the subscribers who may see it (not once per
subscriber) and hands the same text to each of them. A hand-over never blocks: a subscriber
that does not read keeps a bounded backlog, and beyond it owes one ``resync`` instead, so it
can neither grow the server's memory nor hold up the owner or anyone else.

Everything here runs in the trio thread, between checkpoints: no locks are needed.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Final

import outcome
import trio
from trio_websocket import WebSocketConnection

from .core import queries
from .core.answers import Answer
from .core.errors import TooManyRequests
from .core.events import (
    AdminChanged,
    AnyEvent,
    FlowAdded,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    SessionOpened,
    SuspensionChanged,
    UserDeleted,
    UserRegistered,
)
from .core.frames import Dialect
from .core.paging import Bounds
from .core.queries import Listing
from .core.records import Credentials, Deletion, Flow, Message
from .core.replies import render
from .core.state import State, hash_token

log = logging.getLogger(__name__)

UPDATE: Final = "update"
RESYNC: Final = "resync"
SUCCESS_DETAIL: Final = "successfully"
RESYNC_DETAIL: Final = "Updates were dropped: call get_update from data.time."
MAX_BACKLOG_FRAMES: Final = 256  # update frames one subscriber may have waiting ...
MAX_BACKLOG_CHARS: Final = 4 * 1024 * 1024  # ... and their characters, in all
MAX_PER_USER: Final = 32  # subscribed connections of one user
CATCH_UP_PAGES: Final = 8  # pages of catch-up one subscribe computes; beyond: a resync

# errors.id in the document dialect: unique and increasing, across restarts too. Replies
# and updates share it.
reply_ids: Iterator[int] = itertools.count(time.time_ns() // 1000)


def render_update(listing: Listing, dialect: Dialect, changed_at: float) -> str:
    """An ``update`` frame: a get_update reply's shape, ``data.time`` the latest change."""
    answer = Answer(listing)
    return render(UPDATE, dialect, answer, SUCCESS_DETAIL, now=changed_at, reply_id=next(reply_ids))


def render_resync(dialect: Dialect, since: float) -> str:
    """A ``resync`` frame: updates from ``since`` on were dropped; get_update has them."""
    answer = Answer(Listing())
    return render(RESYNC, dialect, answer, RESYNC_DETAIL, now=since, reply_id=next(reply_ids))


class Subscriber:
    """One connection's side of live updates: made with the connection, active once it
    subscribes. The connection sends what is pending between its replies (``next_out``)."""

    __slots__ = (
        "_waiting",
        "active",
        "catch_up",
        "chars",
        "dialect",
        "frames",
        "lost_since",
        "seq",
        "subscribed",
        "token_hash",
        "user_id",
    )

    def __init__(self) -> None:
        self.active = False
        self.subscribed = False  # ever: its get_update replies then carry deletion items
        self.user_id = 0
        self.token_hash = b""  # the session it subscribed with: it ends with that session
        self.dialect = Dialect.DOCUMENT
        self.seq = 0  # it hears of records after this one only: catch-up covers the rest
        # Lists, not deques: every connection has a Subscriber, and an empty deque weighs
        # ten times an empty list; a backlog is short enough for pop(0).
        self.catch_up: list[Listing] = []  # rendered as they are sent, not before
        self.frames: list[tuple[float, str]] = []  # (time of the change, frame)
        self.chars = 0
        self.lost_since: float | None = None  # a resync is owed, from this time
        self._waiting: trio.CancelScope | None = None  # while the connection awaits a frame

    def hand(self, changed_at: float, frame: str) -> bool:
        """Queue ``frame``, never blocking; on overflow drop the backlog and owe a resync.
        True when this hand-over made it owe a resync it did not owe yet."""
        owed = self.lost_since is not None
        frames = self.frames
        if len(frames) >= MAX_BACKLOG_FRAMES or self.chars + len(frame) > MAX_BACKLOG_CHARS:
            first_lost = frames[0][0] if frames else changed_at
            if self.lost_since is None or first_lost < self.lost_since:
                self.lost_since = first_lost
            frames.clear()
            self.chars = 0
        if len(frame) <= MAX_BACKLOG_CHARS:
            frames.append((changed_at, frame))
            self.chars += len(frame)
        elif self.lost_since is None:
            self.lost_since = changed_at
        if self._waiting is not None:
            self._waiting.cancel()
        return not owed and self.lost_since is not None

    def next_out(self) -> str | None:
        """The next frame to send: catch-up first, then a resync if owed, then the backlog."""
        if self.catch_up:
            page = self.catch_up.pop(0)
            return render_update(page, self.dialect, page.last_change())
        if self.lost_since is not None:
            since, self.lost_since = self.lost_since, None
            return render_resync(self.dialect, since)
        if self.frames:
            _, frame = self.frames.pop(0)
            self.chars -= len(frame)
            return frame
        return None

    async def next_frame(self, ws: WebSocketConnection) -> str | bytes | None:
        """The peer's next frame, or None as soon as an update is handed over first.

        Cancelling the wait loses nothing: trio-websocket keeps the frames that came in.
        """
        with trio.CancelScope() as self._waiting:
            try:
                return await ws.get_message()
            finally:
                self._waiting = None
        return None

    def end(self) -> None:
        """No more updates, and none of those still waiting."""
        self.active = False
        self.catch_up.clear()
        self.frames.clear()
        self.chars = 0
        self.lost_since = None


class Change:
    """A durable-to-be change, as the subscribers who may see it will hear of it."""

    __slots__ = ("audience", "changed_at", "listing", "seq")

    def __init__(
        self, seq: int, changed_at: float, listing: Listing, audience: tuple[int, ...] | None
    ) -> None:
        self.seq = seq
        self.changed_at = changed_at
        self.listing = listing
        self.audience = audience  # the user ids who may see it; None: everyone


class Publisher:
    """The subscribers, by user; the owner's hook (``changed``) and the log's (``publish``)."""

    def __init__(self) -> None:
        self.by_user: dict[int, set[Subscriber]] = {}
        self.count = 0  # subscribers: the owner's hot path looks at this and nothing else
        # For the metrics, read when scraped: one addition per fan-out, not per subscriber.
        self.handed = 0  # update frames handed to subscribers
        self.resyncs = 0  # resyncs owed: backlogs that overflowed, catch-ups cut short

    # --- in the owner's turn ------------------------------------------------------------

    def subscribe(
        self,
        state: State,
        creds: Credentials,
        since: float,
        bounds: Bounds,
        subscriber: Subscriber,
        dialect: Dialect,
    ) -> None:
        """Register ``subscriber`` at the current record and queue its catch-up, in one
        owner turn: nothing between the two is missed, and nothing is heard twice."""
        user_id = state.authenticate(creds)
        if subscriber.active:  # a second subscribe changes nothing
            return
        mine = self.by_user.setdefault(user_id, set())
        if len(mine) >= MAX_PER_USER:
            raise TooManyRequests("Too many subscribed connections for this user.")
        subscriber.user_id, subscriber.dialect, subscriber.seq = user_id, dialect, state.seq
        subscriber.token_hash = hash_token(creds.token or "")
        subscriber.active = subscriber.subscribed = True
        mine.add(subscriber)
        self.count += 1
        if since > 0:
            self._catch_up(state, creds, since, bounds, subscriber)

    def _catch_up(
        self, state: State, creds: Credentials, since: float, bounds: Bounds, subscriber: Subscriber
    ) -> None:
        for _ in range(CATCH_UP_PAGES):
            page = queries.get_update(state, creds, None, since, bounds, True)
            if page.users or page.flows or page.messages or page.deletions:
                subscriber.catch_up.append(page)
            if not page.partial:
                return
            # Every change has a time of its own: the next page starts just after this one.
            since = math.nextafter(page.last_change(), math.inf)
        subscriber.lost_since = since  # the rest: get_update has it
        self.resyncs += 1

    def changed(self, state: State, event: AnyEvent, seq: int) -> Change | None:
        """What subscribers will hear of ``event``, just applied as record ``seq``."""
        match event:
            case MessageSent(message=message):
                return _message_change(state, message, seq, event.time)
            case MessageEdited(message_id=message_id):
                return _message_change(state, state.messages[message_id], seq, event.time)
            case MessageDeleted(message_id=message_id):
                flow = state.flows[state.deleted_flows[message_id]]
                deletion = Deletion(message_id, flow.id, event.time)
                listing = queries.items(state, deletions=[deletion])
                return Change(seq, event.time, listing, _audience(flow))
            case FlowAdded(flow=flow):
                return Change(seq, event.time, Listing(flows=[flow]), _audience(flow))
            case UserRegistered(user=user):  # the profile: rendered with no viewer, no email
                return Change(seq, event.time, Listing(users=[user]), None)
            case UserDeleted(user_id=user_id):
                self._end(user_id, ended=lambda subscriber: True)
                return None
            case SessionOpened(user_id=user_id):  # it may have ended the user's oldest session
                sessions = state.sessions
                self._end(user_id, ended=lambda subscriber: subscriber.token_hash not in sessions)
                return None
            case SuspensionChanged(user_id=user_id, suspended=True):  # its sessions ended
                self._end(user_id, ended=lambda subscriber: True)
                return None
            case SuspensionChanged() | AdminChanged():  # nothing anyone sees changed
                return None

    # --- after durability, and as connections come and go ---------------------------------

    def publish(self, result: outcome.Outcome[Change]) -> None:
        """Hand a durable change to every subscriber who may see it (the event log calls
        this in commit order). A change the log lost is never heard of."""
        if not isinstance(result, outcome.Value):
            return
        try:
            self._fan_out(result.value)
        except Exception:  # the log calls this among other answers: a bug stays here
            log.exception("Bug while handing out a live update")

    def _fan_out(self, change: Change) -> None:
        rendered: dict[Dialect, str] = {}
        handed = resyncs = 0
        for subscriber in self._audience_of(change):
            if subscriber.seq >= change.seq:  # subscribed after it: its catch-up had it
                continue
            frame = rendered.get(subscriber.dialect)
            if frame is None:
                frame = render_update(change.listing, subscriber.dialect, change.changed_at)
                rendered[subscriber.dialect] = frame
            handed += 1
            if subscriber.hand(change.changed_at, frame):
                resyncs += 1
        self.handed += handed
        self.resyncs += resyncs

    def backlog(self) -> tuple[int, int]:
        """(update frames waiting in all backlogs, in the longest one): at scrape time only."""
        total = largest = 0
        for subscribers in self.by_user.values():
            for subscriber in subscribers:
                waiting = len(subscriber.frames)
                total += waiting
                largest = max(largest, waiting)
        return total, largest

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if not subscriber.active:
            return
        mine = self.by_user.get(subscriber.user_id)
        if mine is not None and subscriber in mine:
            mine.discard(subscriber)
            self.count -= 1
            if not mine:
                del self.by_user[subscriber.user_id]
        subscriber.end()

    def _audience_of(self, change: Change) -> Iterator[Subscriber]:
        if change.audience is None:
            for subscribers in self.by_user.values():
                yield from subscribers
        else:
            for user_id in change.audience:
                yield from self.by_user.get(user_id, ())

    def _end(self, user_id: int, ended: Callable[[Subscriber], bool]) -> None:
        for subscriber in [s for s in self.by_user.get(user_id, ()) if ended(s)]:
            self.unsubscribe(subscriber)


def _message_change(state: State, message: Message, seq: int, changed_at: float) -> Change:
    listing = queries.items(state, messages=[message])
    return Change(seq, changed_at, listing, _audience(state.flows[message.flow_id]))


def _audience(flow: Flow) -> tuple[int, ...] | None:
    return flow.users if flow.type == "chat" else None
