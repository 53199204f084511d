"""Live updates for the client: ``Client.subscribe()``'s iterator of ``Update`` values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import trio

from .results import Update, _Listing

if TYPE_CHECKING:
    from .session import Client, Routed


class _PushedFrame(msgspec.Struct):
    type: str
    data: msgspec.Raw


class Subscription:
    """The updates of one subscription, in the server's order: ``async for update in it``.

    A ``resync`` (updates dropped while this was not read) is caught up with ``get_update``
    and yielded as one ``Update``. After a dropped connection a reconnecting client subscribes
    again from ``time``, the latest time seen: changes of that second may come again.
    """

    def __init__(self, client: Client, pushed: trio.MemoryReceiveChannel[Routed], since: int):
        self._client = client
        self._pushed = pushed
        self.time = since

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        while True:
            routed = await self._client._next_pushed(self._pushed)
            if isinstance(routed, BaseException):
                await self._client._subscribe_again(routed, self.time)
                continue
            frame = msgspec.json.decode(routed, type=_PushedFrame)
            listing = msgspec.json.decode(frame.data, type=_Listing)
            if frame.type == "resync":
                update = await self._client.updates(listing.time)
            else:
                messages, deleted = listing.messages()
                update = Update(
                    users=listing.user,
                    flows=listing.flow,
                    messages=messages,
                    deleted=deleted,
                    time=listing.time,
                )
            self.time = max(self.time, update.time)
            return update
