"""The queries: what a request may read, as a Listing either dialect can render.

Sync, pure Python, read-only: a query never changes the state.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

import msgspec

from .accounts import canonical_login
from .errors import NotFound
from .paging import Bounds, take_page
from .records import Credentials, Deletion, Flow, FlowType, Message, User
from .sizes import MESSAGE_KEYS, flow_size, json_size, profile_size
from .state import DELETED, FLOW, MESSAGE, USER, State

DELETED_USERNAME = "Deleted user"
DELETION_SIZE = 160  # bytes of a deletion item in a reply, at most (ids of 18 digits)


class Listing(msgspec.Struct, kw_only=True):
    """What a query found, with what is needed to render it in either dialect."""

    users: list[User] = []
    flows: list[Flow] = []
    messages: list[Message] = []
    # Only for a connection that has subscribed (CONTRACT §8.2): no other reply has them.
    deletions: list[Deletion] = []
    usernames: dict[int, str] = {}  # author id -> username, for every message listed
    flow_types: dict[int, FlowType] = {}  # flow id -> type, for every message listed
    partial: bool = False  # more matched than the cap allowed

    def messages_in_time_order(self) -> Sequence[Message | Deletion]:
        """Messages and deletion items together, by the time each changed."""
        if not self.deletions:
            return self.messages
        both: list[Message | Deletion] = [*self.messages, *self.deletions]
        return sorted(both, key=_changed_at)

    def last_change(self) -> float:
        """The latest time any item listed changed at (0 for an empty listing)."""
        return max(
            itertools.chain(
                (user.time for user in self.users),
                (flow.time for flow in self.flows),
                map(_changed_at, self.messages),
                (deletion.time for deletion in self.deletions),
            ),
            default=0.0,
        )


def _changed_at(item: Message | Deletion) -> float:
    if isinstance(item, Deletion):
        return item.time
    return item.edited_time or item.time


def find_login(state: State, login: str) -> tuple[int, str]:
    """Return (user id, password hash) for a login, so the caller can verify off the owner.

    The login as registered wins; else its canonical form, if that names one user only.
    """
    user_id = state.logins.get(login)
    if user_id is None:
        user_id = state.canonical_logins.get(canonical_login(login))
    if user_id is None:
        raise NotFound("The field user.login names no user.")
    return user_id, state.users[user_id].password_hash


def ping(state: State, creds: Credentials) -> None:
    state.authenticate(creds)


def user_info(state: State, creds: Credentials, others: list[int]) -> Listing:
    """The requester's own profile first, then every other named user's."""
    me = state.authenticate(creds)
    found = [state.users[me]]
    for index, user_id in enumerate(others, start=1):
        user = state.users.get(user_id)
        if user is None:  # the index only: the id is a value the client sent
            raise NotFound(f"The field user[{index}] names no user.")
        found.append(user)
    return Listing(users=found)


def all_flow(state: State, creds: Credentials, since: float, bounds: Bounds) -> Listing:
    """Flows one may see created at or after ``since``, oldest first (ids follow times)."""
    user_id = state.authenticate(creds)
    flows = [state.flows[i] for i in state.visible_flow_ids(user_id)]
    start = bisect_left(flows, since, key=lambda flow: flow.time) if since > 0 else 0
    found, partial = take_page(
        ((flow.time, flow, flow_size(flow)) for flow in itertools.islice(flows, start, None)),
        since,
        bounds,
    )
    return Listing(flows=found, partial=partial)


def all_messages(
    state: State, creds: Credentials, flow_id: int | None, since: float, bounds: Bounds
) -> Listing:
    """Messages with time >= since, oldest first, in one flow or every flow one may read."""
    user_id = state.authenticate(creds)
    if flow_id is not None:
        flow_ids = [state.visible_flow(flow_id, user_id).id]
    else:
        flow_ids = state.visible_flow_ids(user_id)
    streams = [_messages_since(state, i, since) for i in flow_ids]
    merged = (
        heapq.merge(*streams, key=lambda m: (m.time, m.id))
        if len(streams) > 1
        else itertools.chain(*streams)
    )
    size = _MessageSize(state)
    found, partial = take_page(((m.time, m, size(m)) for m in merged), since, bounds)
    return _listing(state, messages=found, partial=partial)


class _MessageSize:
    """The reply size of a message: its keys, its content, and its author's name."""

    __slots__ = ("names", "sizes", "users")

    def __init__(self, state: State) -> None:
        self.sizes = state.message_sizes
        self.users = state.users
        self.names: dict[int, int] = {}  # author id -> bytes of their name, once per query

    def __call__(self, message: Message) -> int:
        name = self.names.get(message.author_id)
        if name is None:
            author = self.users.get(message.author_id)
            name = json_size(author.username if author else DELETED_USERNAME)
            self.names[message.author_id] = name
        return MESSAGE_KEYS + self.sizes[message.id - 1] + name


def _messages_since(state: State, flow_id: int, since: float) -> Iterator[Message]:
    ids = state.flow_messages[flow_id]
    messages = state.messages
    start = bisect_left(ids, since, key=lambda i: messages[i].time) if since > 0 else 0
    return (messages[i] for i in itertools.islice(ids, start, None))


def get_update(
    state: State,
    creds: Credentials,
    flow_id: int | None,
    since: float,
    bounds: Bounds,
    with_deletions: bool = False,
) -> Listing:
    """Everything visible that changed at or after ``since``, oldest change first; deleted
    messages too ``with_deletions`` (a connection that has subscribed)."""
    user_id = state.authenticate(creds)
    visible = set(state.visible_flow_ids(user_id))
    if flow_id is not None:
        visible = {state.visible_flow(flow_id, user_id).id}
    changes = _changes_since(state, since, visible, flow_id, with_deletions)
    found, partial = take_page(changes, since, bounds)
    return _listing(
        state,
        users=[item for item in found if isinstance(item, User)],
        flows=[item for item in found if isinstance(item, Flow)],
        messages=[item for item in found if isinstance(item, Message)],
        deletions=[item for item in found if isinstance(item, Deletion)],
        partial=partial,
    )


def _changes_since(
    state: State, since: float, visible: set[int], flow_id: int | None, with_deletions: bool
) -> Iterator[tuple[float, User | Flow | Message | Deletion, int]]:
    """(time, item, size) for each visible change at or after ``since``, oldest first."""
    times, keys = state.change_times, state.change_keys
    message_size = _MessageSize(state)
    for index in range(bisect_left(times, since), len(times)):
        time = times[index]
        item_id, kind = divmod(keys[index], 4)
        if kind == MESSAGE:
            message = state.messages.get(item_id)
            if (
                message is not None
                and message.flow_id in visible
                and (message.edited_time or message.time) == time
            ):
                yield time, message, message_size(message)
        elif kind == FLOW:
            if item_id in visible:
                flow = state.flows[item_id]
                yield time, flow, flow_size(flow)
        elif kind == USER:
            if flow_id is None and (user := state.users.get(item_id)) is not None:
                yield time, user, profile_size(user)
        elif (
            kind == DELETED
            and with_deletions
            and (deleted_from := state.deleted_flows.get(item_id)) in visible
        ):
            yield time, Deletion(item_id, deleted_from, time), DELETION_SIZE


def items(
    state: State, *, messages: Sequence[Message] = (), deletions: Sequence[Deletion] = ()
) -> Listing:
    """A listing of just these items, ready to render (a live update's)."""
    return _listing(state, messages=list(messages), deletions=deletions, partial=False)


def _listing(
    state: State,
    *,
    users: Iterable[User] = (),
    flows: Iterable[Flow] = (),
    messages: list[Message],
    deletions: Iterable[Deletion] = (),
    partial: bool,
) -> Listing:
    usernames: dict[int, str] = {}
    flow_types: dict[int, FlowType] = {}
    for message in messages:
        author = state.users.get(message.author_id)
        usernames[message.author_id] = author.username if author else DELETED_USERNAME
        flow_types[message.flow_id] = state.flows[message.flow_id].type
    deletions = list(deletions)
    for deletion in deletions:
        flow_types[deletion.flow_id] = state.flows[deletion.flow_id].type
    return Listing(
        users=list(users),
        flows=list(flows),
        messages=messages,
        deletions=list(deletions),
        usernames=usernames,
        flow_types=flow_types,
        partial=partial,
    )
