"""The MoreliaTalk client: typed results, one exception per error, paging, resuming, reconnecting.

async with open_client("ws://127.0.0.1:8000/ws") as client:
    session = await client.register("ann", "secret")  # save it: client.resume(session)
    general = (await client.flows())[0]
    await client.send(general.id, "Hello!")
    print([m.text for m in await client.messages(general.id)])

It speaks the list dialect, as every real client does, and decodes each reply with msgspec
into the Structs of ``results``. A reply with an error code raises the ``RequestFailed``
subclass of its code (``errors``). ``messages()``, ``flows()`` and ``updates()`` follow 206
replies to the end; ``pages()`` hands them over one page at a time (``session``).
``subscribe()`` yields live updates as they come (``subscription``).
"""

from __future__ import annotations

from .errors import ERRORS as ERRORS
from .errors import BadRequest as BadRequest
from .errors import Conflict as Conflict
from .errors import ConnectionLost as ConnectionLost
from .errors import Forbidden as Forbidden
from .errors import Invalid as Invalid
from .errors import NotFound as NotFound
from .errors import RateLimited as RateLimited
from .errors import RequestFailed as RequestFailed
from .errors import ServerError as ServerError
from .errors import TooLarge as TooLarge
from .errors import Unauthorized as Unauthorized
from .errors import Unavailable as Unavailable
from .errors import VersionNotSupported as VersionNotSupported
from .results import Attachment as Attachment
from .results import Deleted as Deleted
from .results import Flow as Flow
from .results import FlowType as FlowType
from .results import Frame as Frame
from .results import Message as Message
from .results import Page as Page
from .results import Profile as Profile
from .results import Sent as Sent
from .results import Session as Session
from .results import Update as Update
from .session import Backoff as Backoff
from .session import Client as Client
from .session import open_client as open_client
from .subscription import Subscription as Subscription
