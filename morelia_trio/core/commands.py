"""The commands: check a request against the state, then return the event that records it.

Decide-then-apply: a command raises a MoreliaError, before any change, when the request is
not allowed; otherwise the owner journals the event it returns and ``state.apply`` carries it
out. The journal stores the same events, so replay runs exactly the code that ran live.
Times and token digests come in as arguments.
"""

from __future__ import annotations

from .accounts import canonical_login
from .errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from .events import (
    AdminChanged,
    FlowAdded,
    MessageDeleted,
    MessageEdited,
    MessageSent,
    SessionOpened,
    SuspensionChanged,
    UserDeleted,
    UserRegistered,
)
from .records import Credentials, Flow, FlowType, Message, MessageContent, SessionProof, User
from .sizes import json_size, message_content
from .state import State

GENERAL_TITLE = "General"
MAX_ISSUED_ID = 2**31 - 1  # ids the server hands out (a client's schema may hold them in 32 bits)
SUSPENDED = "this account is suspended"  # CONTRACT §8.5's words


def bootstrap(state: State, now: float) -> FlowAdded | None:
    """A brand-new server gets one public group, so clients that expect a flow find one."""
    if state.seq or state.flows:
        return None
    time = state.now(now)
    general = Flow(
        id=state.next_flow_id,
        type="group",
        title=GENERAL_TITLE,
        time=time,
        info="Everyone can read and write here.",
    )
    return FlowAdded(time=time, flow=general)


def register_user(
    state: State,
    login: str,
    password_hash: str,
    username: str | None,
    email: str | None,
    token_hash: bytes,
    now: float,
) -> UserRegistered:
    canonical = canonical_login(login)  # every login registered is indexed by its form
    if canonical in state.canonical_logins or canonical in state.shared_logins:
        raise Conflict("The login in the field user.login is taken already.")
    if state.next_user_id > MAX_ISSUED_ID:
        raise Conflict("This server cannot hold more users.")
    time = state.now(now)
    user = User(
        id=state.next_user_id,
        login=login,
        password_hash=password_hash,
        username=username or login,
        email=email,
        time=time,
    )
    return UserRegistered(time=time, user=user, token_hash=token_hash)


def open_session(
    state: State, user_id: int, password_hash: str, token_hash: bytes, now: float
) -> SessionOpened:
    _check_unchanged(state, user_id, password_hash)
    if user_id in state.suspended:  # after the password check: no one else learns of it
        raise Forbidden(SUSPENDED)
    return SessionOpened(time=state.now(now), user_id=user_id, token_hash=token_hash)


def delete_user(state: State, user_id: int, password_hash: str, now: float) -> UserDeleted:
    _check_unchanged(state, user_id, password_hash)
    return UserDeleted(time=state.now(now), user_id=user_id)


def _check_unchanged(state: State, user_id: int, password_hash: str) -> None:
    # The password was verified outside the owner; make sure the account it was verified
    # against is still the same one (it may have been deleted, and its login taken again).
    user = state.users.get(user_id)
    if user is None or user.password_hash != password_hash:
        raise NotFound("This user does not exist any more.")


def add_flow(
    state: State,
    creds: Credentials | SessionProof,
    flow_type: FlowType,
    title: str,
    info: str | None,
    members: list[int],
    now: float,
    max_owned: int | None = None,
) -> FlowAdded:
    owner = state.authenticate(creds)
    if max_owned is not None and state.owned_flows.get(owner, 0) >= max_owned:
        raise Forbidden(f"You have created {max_owned} flows, the most one user may.")
    users = sorted({owner, *members})
    if flow_type == "chat":
        if owner not in members and members:
            raise Forbidden("You can only create a chat that you are a member of.")
        if len(users) > 2:
            raise BadRequest("A chat has at most two members; create a group instead.")
    for user_id in users:
        if user_id not in state.users:
            raise NotFound("The field flow.users names a user that does not exist.")
    if state.next_flow_id > MAX_ISSUED_ID:
        raise Conflict("This server cannot hold more flows.")
    time = state.now(now)
    flow = Flow(
        id=state.next_flow_id,
        type=flow_type,
        title=title,
        info=info,
        owner=owner,
        users=tuple(users),
        time=time,
    )
    return FlowAdded(time=time, flow=flow)


def send_message(
    state: State,
    creds: Credentials | SessionProof,
    flow_id: int,
    new: MessageContent,
    now: float,
    quota: int | None = None,
) -> MessageSent:
    author = state.authenticate(creds)
    flow = state.visible_flow(flow_id, author)
    if flow.type == "channel" and flow.owner != author:
        raise Forbidden("Only the owner of a channel writes to it.")
    if new.reply_to is not None:
        quoted = state.messages.get(new.reply_to)
        if quoted is None or quoted.flow_id != flow_id:
            raise NotFound("The field message.reply_to names no message in this flow.")
    if state.next_message_id > MAX_ISSUED_ID:
        raise Conflict("This server cannot hold more messages.")
    time = state.now(now)
    message = Message(
        id=state.next_message_id,
        flow_id=flow_id,
        author_id=author,
        time=time,
        # Spelled out: building from asdict(new) cost several times as much per message.
        text=new.text,
        picture=new.picture,
        video=new.video,
        audio=new.audio,
        document=new.document,
        emoji=new.emoji,
        reply_to=new.reply_to,
        client_id=new.client_id,
    )
    if quota is not None:
        _check_quota(state, author, message_content(message), quota)
    return MessageSent(time=time, message=message)


def _check_quota(state: State, author: int, more: int, quota: int) -> None:
    if more > 0 and state.stored_bytes.get(author, 0) + more > quota:
        raise PayloadTooLarge("The storage quota is reached: delete messages to make room.")


def _visible_message(
    state: State, creds: Credentials | SessionProof, message_id: int, flow_id: int | None
) -> tuple[int, Message]:
    user_id = state.authenticate(creds)
    message = state.visible_message(message_id, user_id)
    if flow_id is not None and message.flow_id != flow_id:
        raise NotFound("The field message.id names no message in the flow of flow.id.")
    return user_id, message


def _own_message(
    state: State, creds: Credentials | SessionProof, message_id: int, flow_id: int | None
) -> Message:
    user_id, message = _visible_message(state, creds, message_id, flow_id)
    if message.author_id != user_id:
        raise Forbidden("Only the author of a message may change it.")
    return message


def edit_message(
    state: State,
    creds: Credentials | SessionProof,
    message_id: int,
    flow_id: int | None,
    text: str,
    now: float,
    quota: int | None = None,
) -> MessageEdited:
    message = _own_message(state, creds, message_id, flow_id)
    if quota is not None:
        _check_quota(state, message.author_id, json_size(text) - json_size(message.text), quota)
    return MessageEdited(time=state.now(now), message_id=message.id, text=text)


def delete_message(
    state: State,
    creds: Credentials | SessionProof,
    message_id: int,
    flow_id: int | None,
    now: float,
) -> MessageDeleted:
    user_id, message = _visible_message(state, creds, message_id, flow_id)
    if not may_moderate(state, user_id, message):
        raise Forbidden(
            "Only the author of a message, the owner of its group or channel, "
            "or a server admin may delete it."
        )
    return MessageDeleted(time=state.now(now), message_id=message.id)


def may_moderate(state: State, user_id: int, message: Message) -> bool:
    """Who may delete a message they can see (CONTRACT §8.5): its author, the owner of the
    group or channel it is in (not of a chat: a chat's members are equals), a server admin."""
    if message.author_id == user_id or user_id in state.admins:
        return True
    flow = state.flows[message.flow_id]
    return flow.type != "chat" and flow.owner == user_id


# --- the operator's: the admin tool's commands, never a client's request -----------------


def _existing_user(state: State, user_id: int) -> int:
    if user_id not in state.users:
        raise NotFound("No user has this id.")
    return user_id


def set_admin(state: State, user_id: int, admin: bool, now: float) -> AdminChanged:
    _existing_user(state, user_id)
    if (user_id in state.admins) == admin:
        raise Conflict(
            "This user is a server admin already." if admin else "This user is no server admin."
        )
    return AdminChanged(time=state.now(now), user_id=user_id, admin=admin)


def set_suspended(state: State, user_id: int, suspended: bool, now: float) -> SuspensionChanged:
    _existing_user(state, user_id)
    if (user_id in state.suspended) == suspended:
        raise Conflict(
            "This account is suspended already." if suspended else "This account is not suspended."
        )
    return SuspensionChanged(time=state.now(now), user_id=user_id, suspended=suspended)


def remove_user(state: State, user_id: int, now: float) -> UserDeleted:
    """Delete an account without its password; its messages stay, as for ``delete_user``."""
    return UserDeleted(time=state.now(now), user_id=_existing_user(state, user_id))


def remove_message(state: State, message_id: int, now: float) -> MessageDeleted:
    if state.messages.get(message_id) is None:
        raise NotFound("No message has this id.")
    return MessageDeleted(time=state.now(now), message_id=message_id)
