"""The wire-level client the benchmarks drive the server with (the tests' own, dicts in and out)."""

from tests.wire import Client, Frame, RequestFailed, open_client

__all__ = ["Client", "Frame", "RequestFailed", "open_client"]
