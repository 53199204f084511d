"""An independent model of a MoreliaTalk server, for tests/test_model.py.

Written from the contract (CONTRACT.md §4-§6) and the README, never from morelia_trio.core:
it imports nothing from the server. It knows users, their passwords and live tokens, flows,
messages and who may see what, and predicts for every request either a refusal (the code)
or what a successful reply holds. Ids are not predicted (the server assigns them); the model
learns each one from the reply that created it and checks that it is fresh.

Times are not predicted either, only their order: every change gets a later time than the
one before (the test checks this of every time it learns), so "changed at or after time T"
is "changed at or after the event that happened at T". The model counts events (``order``)
and learns an item's exact time from the first reply that shows it as a float (the document
dialect), which the test then sends back as ``data.time``.

Where the contract names no order between two faults of one request, the test sends only
one fault at a time, except for the natural order: a frame's shape (415, 413, 429) before
its token (401), the token before what it may see (404), what it may see before what it
may do (403). One more order is the model's own choice: a chat's members are checked for
its shape (403 if you are not among them, 400 if more than two) before any is looked up
(404 for one that does not exist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

FlowType: TypeAlias = Literal["chat", "group", "channel"]
MAX_TEXT = 10_000  # CONTRACT §6 / README: text above 10,000 characters is 413
MAX_LOGIN = 64  # README's limits: a login above 64 characters is 413
MAX_NAMED_USERS = 100  # README: a request naming more than 100 users is 429
EVERYTHING = -math.inf  # a "since" that every change passes (time 0, or no time)
NOTHING = math.inf  # a "since" in the future


class Refused(Exception):
    """What the model says the server must answer instead of success."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(f"{code}: {why}")
        self.code = code
        self.why = why


@dataclass
class User:
    id: int
    login: str
    password: str
    username: str
    email: str | None
    order: int  # when it registered
    tokens: list[str] = field(default_factory=list)

    def profile(self, viewer: int | None) -> Profile:
        """What user_info and get_update show: the email only to its owner."""
        email = self.email if self.id == viewer else None
        return Profile(self.id, self.login, self.username, email)


@dataclass(frozen=True)
class Profile:
    id: int
    login: str
    username: str
    email: str | None


@dataclass
class Flow:
    id: int
    type: FlowType
    title: str
    info: str | None
    owner: int | None
    users: tuple[int, ...]
    order: int  # when it was created
    time: float | None = None  # exact, once a reply showed it

    def shape(self) -> FlowShape:
        return FlowShape(self.id, self.type, self.title, self.info, self.owner, self.users)


@dataclass(frozen=True)
class FlowShape:
    id: int
    type: str
    title: str
    info: str | None
    owner: int | None
    users: tuple[int, ...]


@dataclass
class Message:
    id: int
    flow_id: int
    author_id: int
    text: str | None
    picture: str | None
    reply_to: int | None
    client_id: str | None
    order: int  # when it was sent
    changed: int  # when it was sent or last edited
    edited: bool = False
    time: float | None = None  # exact send time, once a reply showed it

    def shape(self) -> MessageShape:
        return MessageShape(
            self.id,
            self.flow_id,
            self.author_id,
            self.text,
            self.picture,
            self.reply_to,
            self.client_id,
            self.edited,
        )


@dataclass(frozen=True)
class MessageShape:
    id: int
    flow_id: int
    author_id: int
    text: str | None
    picture: str | None
    reply_to: int | None
    client_id: str | None
    edited: bool


@dataclass(frozen=True)
class Update:
    users: frozenset[Profile]
    flows: frozenset[FlowShape]
    messages: frozenset[MessageShape]


class Model:
    """The whole server as the contract describes it."""

    def __init__(self) -> None:
        self.order = 0  # events so far
        self.users: dict[int, User] = {}
        self.gone_users: dict[int, User] = {}  # deleted: their ids, logins and stale tokens
        self.flows: dict[int, Flow] = {}
        self.messages: dict[int, Message] = {}
        self.gone_messages: dict[int, Message] = {}
        self.user_ids: set[int] = set()  # every id ever handed out, never to come again
        self.flow_ids: set[int] = set()
        self.message_ids: set[int] = set()

    def tick(self) -> int:
        self.order += 1
        return self.order

    # --- looking things up ---------------------------------------------------------------

    def by_login(self, login: str) -> User | None:
        return next((u for u in self.users.values() if u.login == login), None)

    def authenticate(self, user_id: int | None, token: str | None) -> User:
        """§4: a token is the user's id plus one of its live auth_ids; otherwise 401."""
        if user_id is None or not token:
            raise Refused(401, "no token")
        user = self.users.get(user_id)
        if user is None or token not in user.tokens:
            raise Refused(401, "not a live token of this user")
        return user

    @staticmethod
    def may_see(flow: Flow, user: User) -> bool:
        """§5: groups and channels are public; a chat only for its members."""
        return flow.type != "chat" or user.id in flow.users

    def visible_flow(self, flow_id: int, user: User) -> Flow:
        flow = self.flows.get(flow_id)
        if flow is None or not self.may_see(flow, user):
            raise Refused(404, "no such flow, or one kept from you")
        return flow

    def visible_flows(self, user: User) -> list[Flow]:
        return [f for f in self.flows.values() if self.may_see(f, user)]

    def visible_message(self, message_id: int, user: User) -> Message:
        message = self.messages.get(message_id)
        if message is None or not self.may_see(self.flows[message.flow_id], user):
            raise Refused(404, "no such message, or one kept from you")
        return message

    def author_name(self, author_id: int) -> str | None:
        """The username messages are credited to; None for a deleted user (§4: its messages
        stay, credited to a deleted user, whatever name the server gives one)."""
        user = self.users.get(author_id)
        return user.username if user else None

    # --- accounts ------------------------------------------------------------------------

    def check_register(self, login: str) -> None:
        if self.by_login(login) is not None:
            raise Refused(409, "login taken")

    def registered(
        self,
        user_id: int,
        token: str,
        login: str,
        password: str,
        username: str | None,
        email: str | None,
    ) -> User:
        assert user_id not in self.user_ids, f"user id {user_id} handed out twice"
        user = User(user_id, login, password, username or login, email, self.tick(), [token])
        self.users[user_id] = user
        self.user_ids.add(user_id)
        return user

    def check_login(self, login: str, password: str) -> User:
        user = self.by_login(login)
        if user is None:
            raise Refused(404, "unknown login")
        if user.password != password:
            raise Refused(401, "wrong password")
        return user

    def logged_in(self, user: User, token: str) -> None:
        assert all(token not in u.tokens for u in self.users.values()), "token handed out twice"
        user.tokens.append(token)
        self.tick()

    def check_delete_user(
        self, login: str, password: str, creds: tuple[int | None, str | None] | None
    ) -> User:
        """§4/§5: the password is the proof; a token, if sent, must be the same user's."""
        user = self.by_login(login)
        if user is None:
            raise Refused(404, "unknown login")
        if creds is not None:
            holder = self.authenticate(*creds)
            if holder.id != user.id:
                raise Refused(403, "someone else's account")
        if user.password != password:
            raise Refused(401, "wrong password")
        return user

    def delete_user(self, user: User) -> None:
        del self.users[user.id]
        self.gone_users[user.id] = user
        self.tick()

    def user_info(self, me: User, others: list[int]) -> list[Profile]:
        found = [me.profile(me.id)]
        for other in others:
            user = self.users.get(other)
            if user is None:
                raise Refused(404, f"no user {other}")
            found.append(user.profile(me.id))
        return found

    # --- flows ---------------------------------------------------------------------------

    def check_add_flow(self, me: User, flow_type: FlowType, members: list[int]) -> tuple[int, ...]:
        """The flow's members: the owner and everyone named (a chat: you and at most one)."""
        users = tuple(sorted({me.id, *members}))
        if flow_type == "chat":
            if members and me.id not in members:
                raise Refused(403, "a chat you would not be in")
            if len(users) > 2:
                raise Refused(400, "a chat of more than two")
        for user_id in users:
            if user_id not in self.users:
                raise Refused(404, f"no user {user_id}")
        return users

    def added_flow(
        self,
        flow_id: int,
        owner: int | None,
        flow_type: FlowType,
        title: str,
        info: str | None,
        users: tuple[int, ...],
    ) -> Flow:
        assert flow_id not in self.flow_ids, f"flow id {flow_id} handed out twice"
        flow = Flow(flow_id, flow_type, title, info, owner, users, self.tick())
        self.flows[flow_id] = flow
        self.flow_ids.add(flow_id)
        return flow

    # --- messages ------------------------------------------------------------------------

    def check_send(self, me: User, flow_id: int, reply_to: int | None) -> Flow:
        flow = self.visible_flow(flow_id, me)
        if flow.type == "channel" and flow.owner != me.id:
            raise Refused(403, "someone else's channel")
        if reply_to is not None:
            quoted = self.messages.get(reply_to)
            if quoted is None or quoted.flow_id != flow_id:
                raise Refused(404, "reply to a message not in this flow")
        return flow

    def sent(
        self,
        message_id: int,
        flow: Flow,
        me: User,
        text: str | None,
        picture: str | None,
        reply_to: int | None,
        client_id: str | None,
    ) -> Message:
        assert message_id not in self.message_ids, f"message id {message_id} handed out twice"
        order = self.tick()
        message = Message(
            message_id, flow.id, me.id, text, picture, reply_to, client_id, order, order
        )
        self.messages[message_id] = message
        self.message_ids.add(message_id)
        return message

    def check_own_message(self, me: User, message_id: int, flow_id: int | None) -> Message:
        """§5: only a message's author edits it (or deletes it, save §8.5); one you cannot see
        is 404."""
        message = self.visible_message(message_id, me)
        if flow_id is not None and flow_id != message.flow_id:
            raise Refused(404, "the message is not in that flow")
        if message.author_id != me.id:
            raise Refused(403, "someone else's message")
        return message

    def check_may_delete(self, me: User, message_id: int, flow_id: int | None) -> Message:
        """§8.5: the author deletes a message, and so does the owner of the group or channel
        it is in (the model has no server admins: only the operator's tool makes them)."""
        try:
            return self.check_own_message(me, message_id, flow_id)
        except Refused as refused:
            if refused.code != 403:
                raise
            flow = self.flows[self.messages[message_id].flow_id]
            if flow.type != "chat" and flow.owner == me.id:
                return self.messages[message_id]
            raise

    def edited(self, message: Message, text: str) -> None:
        message.text = text
        message.edited = True
        message.changed = self.tick()

    def deleted(self, message: Message) -> None:
        del self.messages[message.id]
        self.gone_messages[message.id] = message
        self.tick()

    # --- queries -------------------------------------------------------------------------

    def all_flow(self, me: User) -> frozenset[FlowShape]:
        return frozenset(f.shape() for f in self.visible_flows(me))

    def all_messages(self, me: User, flow_id: int | None, since: float) -> list[Message]:
        """Messages sent at or after ``since`` (an event order), oldest first."""
        flows = (
            {self.visible_flow(flow_id, me).id}
            if flow_id is not None
            else {f.id for f in self.visible_flows(me)}
        )
        found = [m for m in self.messages.values() if m.flow_id in flows and m.order >= since]
        return sorted(found, key=lambda m: m.order)

    def get_update(self, me: User, flow_id: int | None, since: float) -> Update:
        """Everything visible that changed at or after ``since``: new and edited messages,
        new flows, new users (no users when narrowed to one flow)."""
        if flow_id is not None:
            flows = [self.visible_flow(flow_id, me)]
            users: list[User] = []
        else:
            flows = self.visible_flows(me)
            users = [u for u in self.users.values() if u.order >= since]
        ids = {f.id for f in flows}
        return Update(
            users=frozenset(u.profile(me.id) for u in users),
            flows=frozenset(f.shape() for f in flows if f.order >= since),
            messages=frozenset(
                m.shape() for m in self.messages.values() if m.flow_id in ids and m.changed >= since
            ),
        )

    # --- times ---------------------------------------------------------------------------

    def anchors(self) -> list[tuple[float, int]]:
        """(exact time, event order) of every flow and message whose time a reply showed."""
        items: list[Flow | Message] = [
            *self.flows.values(),
            *self.messages.values(),
            *self.gone_messages.values(),
        ]
        return sorted((item.time, item.order) for item in items if item.time is not None)
