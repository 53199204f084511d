"""One coroutine per request type: typed request in, Answer out.

Handlers do the slow work (password hashing) in their own connection task, then ask the
state owner to check and commit; they never touch the state themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import assert_never

import msgspec

from . import core
from .auth import Passwords, new_token
from .config import Limits
from .errors import Forbidden, Unauthorized
from .protocol import (
    AddFlow,
    AllFlow,
    AllMessages,
    Authentication,
    DeleteMessage,
    DeleteUser,
    Dialect,
    EditMessage,
    GetUpdate,
    PingPong,
    RegisterUser,
    Request,
    SendMessage,
    UserInfo,
)
from .replies import OK, Answer, Sent, Token
from .store import Store


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What every handler may use; one per server."""

    store: Store
    passwords: Passwords
    limits: Limits
    clock: Callable[[], float] = time.time


def _listed(listing: core.Listing, *, viewer: int | None = None, single: bool = False) -> Answer:
    if listing.partial:
        return Answer(listing, code=206, status="Partial Content", viewer=viewer, single=single)
    return Answer(listing, viewer=viewer, single=single)


async def handle(request: Request, ctx: Context) -> Answer:
    """Carry out one request.

    Raises:
        MoreliaError: the request cannot be carried out; the client hears why.
    """
    store, body = ctx.store, request.body
    match body:
        case RegisterUser():
            password_hash = await ctx.passwords.hash(body.password)
            token = new_token()
            registered = await store.call(
                core.register_user,
                body.login,
                password_hash,
                body.username,
                body.email,
                token,
                ctx.clock(),
            )
            if request.dialect is Dialect.LIST:
                return Answer(Token(registered.user.id, token), code=201, status="Created")
            return Answer(Token(registered.user.id, token))
        case Authentication():
            user_id, password_hash = await store.call(core.find_login, body.login)
            if not await ctx.passwords.verify(password_hash, body.password):
                raise Unauthorized("The password is wrong.")
            token = new_token()
            await store.call(core.open_session, user_id, password_hash, token, ctx.clock())
            return Answer(Token(user_id, token))
        case UserInfo():
            listing = await store.call(core.user_info, body.creds, body.others)
            return _listed(listing, viewer=body.creds.user_id, single=True)
        case SendMessage():
            sent = await store.call(
                core.send_message, body.creds, body.flow_id, body.message, ctx.clock()
            )
            return Answer(Sent(sent.message))
        case AllMessages():
            listing = await store.call(
                core.all_messages,
                body.creds,
                body.flow_id,
                body.since,
                ctx.limits.reply_cap,
                _paging_unit(request.dialect),
            )
            return _listed(listing)
        case GetUpdate():
            listing = await store.call(
                core.get_update,
                body.creds,
                body.since,
                body.flow_id,
                ctx.limits.reply_cap,
                _paging_unit(request.dialect),
            )
            return _listed(listing, viewer=body.creds.user_id)
        case AllFlow():
            return _listed(await store.call(core.all_flow, body.creds))
        case AddFlow():
            added = await store.call(
                core.add_flow, body.creds, body.type, body.title, body.info, body.users, ctx.clock()
            )
            return _listed(core.Listing(flows=[added.flow]), single=True)
        case EditMessage():
            await store.call(
                core.edit_message, body.creds, body.message_id, body.flow_id, body.text, ctx.clock()
            )
            return OK
        case DeleteMessage():
            await store.call(
                core.delete_message, body.creds, body.message_id, body.flow_id, ctx.clock()
            )
            return OK
        case DeleteUser():
            user_id, password_hash = await store.call(core.find_login, body.login)
            if body.creds is not None:
                token_owner = await store.call(core.State.authenticate, body.creds)
                if token_owner != user_id:
                    raise Forbidden("You can only delete your own account.")
            if not await ctx.passwords.verify(password_hash, body.password):
                raise Unauthorized("The password is wrong.")
            await store.call(core.delete_user, user_id, password_hash, ctx.clock())
            return OK
        case PingPong():
            await store.call(core.ping, body.creds)
            return OK
        case _:
            assert_never(body)


def _paging_unit(dialect: Dialect) -> float | None:
    """The list dialect sends times in whole seconds: its pages must end between seconds."""
    return 1.0 if dialect is Dialect.LIST else None
