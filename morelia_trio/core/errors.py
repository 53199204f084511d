"""Errors a client should hear about: each class carries the protocol's code and status.

MoreliaError
 ├── BadRequest            400  not JSON or not an object, binary frame, unknown type
 ├── Unauthorized          401  missing or wrong token, wrong password
 ├── Forbidden             403  authenticated but not allowed
 ├── NotFound              404  unknown login, flow, message or user, or one kept from you
 ├── Conflict              409  login already taken
 ├── PayloadTooLarge       413  a text or attachment above its limit
 ├── UnsupportedMediaType  415  the object fails validation (wrong type, missing field)
 ├── TooManyRequests       429  a limit tripped
 ├── InternalError         500  a bug (the traceback goes to the log, never to the client)
 ├── ServiceUnavailable    503  shutting down, or the store cannot keep up
 └── VersionNotSupported   505  jsonapi.version major is not 1

No module here may import trio: errors travel through the pure core as plain exceptions.
"""

from __future__ import annotations

from typing import ClassVar


class MoreliaError(Exception):
    """A request failed in a way the client should hear about.

    ``detail`` is a short sentence safe to show an end user: never a password, a token,
    a traceback or a library's internal message.
    """

    code: ClassVar[int] = 400
    status: ClassVar[str] = "Bad Request"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.status
        super().__init__(self.detail)


class BadRequest(MoreliaError):
    code = 400
    status = "Bad Request"


class Unauthorized(MoreliaError):
    code = 401
    status = "Unauthorized"


class Forbidden(MoreliaError):
    code = 403
    status = "Forbidden"


class NotFound(MoreliaError):
    code = 404
    status = "Not Found"


class Conflict(MoreliaError):
    code = 409
    status = "Conflict"


class PayloadTooLarge(MoreliaError):
    code = 413
    status = "Payload Too Large"


class UnsupportedMediaType(MoreliaError):
    code = 415
    status = "Unsupported Media Type"


class TooManyRequests(MoreliaError):
    code = 429
    status = "Too Many Requests"


class InternalError(MoreliaError):
    code = 500
    status = "Internal Server Error"


class ServiceUnavailable(MoreliaError):
    code = 503
    status = "Service Unavailable"


class VersionNotSupported(MoreliaError):
    code = 505
    status = "Version Not Supported"
