"""The client's exceptions: one per error code the server answers, and a lost connection."""

from __future__ import annotations

from .results import Frame


class RequestFailed(Exception):
    """The server answered with an error code; the subclass names its kind."""

    def __init__(self, code: int, status: str, detail: str, reply: Frame) -> None:
        super().__init__(f"{code} {status}: {detail}")
        self.code = code
        self.status = status
        self.detail = detail
        self.reply = reply  # the whole reply, decoded as JSON


class BadRequest(RequestFailed):
    """400: the server could not make sense of the request."""


class Unauthorized(RequestFailed):
    """401: no session, a token the server does not know, or a wrong password."""


class Forbidden(RequestFailed):
    """403: not allowed (someone else's message or channel, too many flows)."""


class NotFound(RequestFailed):
    """404: no such login, flow, message or user (or one you may not see)."""


class Conflict(RequestFailed):
    """409: the login is taken."""


class TooLarge(RequestFailed):
    """413: a text or attachment above its cap, or the storage quota reached."""


class Invalid(RequestFailed):
    """415: a field of the wrong type, missing, or breaking the rules (the detail names it)."""


class RateLimited(RequestFailed):
    """429: too many requests, or too many users named in one."""


class ServerError(RequestFailed):
    """500: a bug in the server."""


class Unavailable(RequestFailed):
    """503: the server cannot store changes right now, or is too busy checking passwords."""


class VersionNotSupported(RequestFailed):
    """505: the server does not speak this protocol version."""


ERRORS: dict[int, type[RequestFailed]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    415: Invalid,
    429: RateLimited,
    500: ServerError,
    503: Unavailable,
    505: VersionNotSupported,
}


class ConnectionLost(Exception):
    """The connection dropped. ``maybe_applied``: a change was sent and its answer never came,
    so it may or may not have happened; it is never sent again by itself (look before
    repeating it). The next request connects again when the client reconnects."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
