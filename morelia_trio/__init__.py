"""A MoreliaTalk server on trio: one task per connection, one task owning the state.

``serve`` and ``Running`` are imported on first use, so that importing the sans-IO
``morelia_trio.core`` never imports trio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config as Config
from .config import Limits as Limits

if TYPE_CHECKING:
    from .server import Running as Running
    from .server import serve as serve

__version__ = "0.1.0"
__all__ = ["Config", "Limits", "Running", "__version__", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Running", "serve"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
