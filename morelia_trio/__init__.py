"""A MoreliaTalk server on trio: one task per connection, one task owning the state."""

from __future__ import annotations

from .config import Config as Config
from .config import Limits as Limits
from .server import Running as Running
from .server import serve as serve

__version__ = "0.1.0"
__all__ = ["Config", "Limits", "Running", "__version__", "serve"]
