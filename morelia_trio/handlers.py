"""One coroutine per request type: typed request in, Answer out.

Handlers do the slow work (password hashing) in their own connection task, then ask the
state owner to check and commit; they never touch the state themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import assert_never

import msgspec

from .auth import Passwords, new_token
from .config import Limits, Timeouts
from .core import commands, queries
from .core.answers import OK, Answer, Sent, Token
from .core.errors import BadRequest, Forbidden, Unauthorized
from .core.frames import Dialect
from .core.paging import Bounds
from .core.requests import (
    AddFlow,
    AllFlow,
    AllMessages,
    Authentication,
    DeleteMessage,
    DeleteUser,
    EditMessage,
    GetUpdate,
    PingPong,
    RegisterUser,
    Request,
    SendMessage,
    Subscribe,
    Unsubscribe,
    UserInfo,
)
from .core.sizes import REPLY_ENVELOPE
from .core.state import State, hash_token
from .guard import Guard
from .live import Subscriber
from .metrics import Metrics
from .store import Store


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What every handler may use; one per server."""

    store: Store
    passwords: Passwords
    limits: Limits
    guard: Guard = msgspec.field(default_factory=lambda: Guard(None))
    timeouts: Timeouts = Timeouts()
    clock: Callable[[], float] = time.time
    metrics: Metrics = msgspec.field(default_factory=Metrics)


def _listed(listing: queries.Listing, *, viewer: int | None = None, single: bool = False) -> Answer:
    if listing.partial:
        return Answer(listing, code=206, status="Partial Content", viewer=viewer, single=single)
    return Answer(listing, viewer=viewer, single=single)


async def handle(
    request: Request, ctx: Context, address: str = "in-process", live: Subscriber | None = None
) -> Answer:
    """Carry out one request from the client at ``address``, on a connection whose live
    updates are ``live`` (None: a frame from no WebSocket, which cannot subscribe).

    Raises:
        MoreliaError: the request cannot be carried out; the client hears why.
    """
    store, body, guard = ctx.store, request.body, ctx.guard
    match body:
        case RegisterUser():
            guard.registration(address)
            password_hash = await ctx.passwords.hash(body.password)
            token = new_token()
            registered = await store.call(
                commands.register_user,
                body.login,
                password_hash,
                body.username,
                body.email,
                hash_token(token),
                ctx.clock(),
            )
            if request.dialect is Dialect.LIST:
                return Answer(Token(registered.user.id, token), code=201, status="Created")
            return Answer(Token(registered.user.id, token))
        case Authentication():
            guard.login_attempt(address)
            user_id, password_hash = await store.call(queries.find_login, body.login)
            await _check_password(ctx, address, user_id, password_hash, body.password)
            token = new_token()
            await store.call(
                commands.open_session, user_id, password_hash, hash_token(token), ctx.clock()
            )
            return Answer(Token(user_id, token))
        case UserInfo():
            listing = await store.call(queries.user_info, body.creds, body.others)
            return _listed(listing, viewer=body.creds.user_id, single=True)
        case SendMessage():
            guard.may_post(body.creds.user_id)
            sent = await store.call(
                commands.send_message,
                body.creds,
                body.flow_id,
                body.message,
                ctx.clock(),
                guard.storage_quota,
            )
            guard.posted(sent.message.author_id)
            return Answer(Sent(sent.message))
        case AllMessages():
            bounds = _bounds(ctx.limits, request.dialect)
            listing = await store.call(
                queries.all_messages, body.creds, body.flow_id, body.since, bounds
            )
            return _listed(listing)
        case GetUpdate():
            bounds = _bounds(ctx.limits, request.dialect)
            with_deletions = live is not None and live.subscribed
            listing = await store.call(
                queries.get_update, body.creds, body.flow_id, body.since, bounds, with_deletions
            )
            return _listed(listing, viewer=body.creds.user_id)
        case AllFlow():
            bounds = _bounds(ctx.limits, request.dialect)
            return _listed(await store.call(queries.all_flow, body.creds, body.since, bounds))
        case AddFlow():
            guard.may_add_flow(body.creds.user_id)
            added = await store.call(
                commands.add_flow,
                body.creds,
                body.type,
                body.title,
                body.info,
                body.users,
                ctx.clock(),
                guard.max_owned_flows,
            )
            guard.added_flow(added.flow.owner)
            return _listed(queries.Listing(flows=[added.flow]), single=True)
        case EditMessage():
            guard.may_post(body.creds.user_id)
            await store.call(
                commands.edit_message,
                body.creds,
                body.message_id,
                body.flow_id,
                body.text,
                ctx.clock(),
                guard.storage_quota,
            )
            guard.posted(body.creds.user_id)  # authenticated, or the edit would have failed
            return OK
        case DeleteMessage():
            await store.call(
                commands.delete_message, body.creds, body.message_id, body.flow_id, ctx.clock()
            )
            return OK
        case DeleteUser():
            guard.login_attempt(address)  # the password is checked: as costly as a login
            user_id, password_hash = await store.call(queries.find_login, body.login)
            if body.creds is not None:
                token_owner = await store.call(State.authenticate, body.creds)
                if token_owner != user_id:
                    raise Forbidden("You can only delete your own account.")
            await _check_password(ctx, address, user_id, password_hash, body.password)
            await store.call(commands.delete_user, user_id, password_hash, ctx.clock())
            return OK
        case PingPong():
            await store.call(queries.ping, body.creds)
            return OK
        case Subscribe():
            if live is None:
                raise BadRequest("Only a WebSocket connection can subscribe.")
            # Catch-up pages are cut inside the server: no unit, any time may end one.
            bounds = msgspec.structs.replace(_bounds(ctx.limits, request.dialect), unit=None)
            publisher, already = store.publisher, live.active
            try:
                await store.call(
                    publisher.subscribe, body.creds, body.since, bounds, live, request.dialect
                )
            except BaseException:
                # Registered, yet the client hears a failure (a full disk took back the
                # records before it): it must not hold a subscription it was told it lacks.
                if not already:
                    publisher.unsubscribe(live)
                raise
            return OK
        case Unsubscribe():
            await store.call(queries.ping, body.creds)
            if live is not None:
                store.publisher.unsubscribe(live)  # with whatever it had not sent yet
            return OK
        case _:
            assert_never(body)


def _bounds(limits: Limits, dialect: Dialect) -> Bounds:
    """A page's caps. The list dialect sends times in whole seconds: its pages must end
    between seconds."""
    return Bounds(
        items=limits.reply_cap,
        bytes=max(0, limits.max_reply_bytes - REPLY_ENVELOPE),
        unit=1.0 if dialect is Dialect.LIST else None,
    )


async def _check_password(
    ctx: Context, address: str, user_id: int, password_hash: str, password: str
) -> None:
    """Verify a password from ``address``, unless its account has had too many wrong ones
    lately, from that address or from all of them."""
    ctx.guard.account_may_try(user_id, address)
    if not await ctx.passwords.verify(password_hash, password):
        ctx.guard.wrong_password(user_id, address)
        raise Unauthorized("The password is wrong.")
