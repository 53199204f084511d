"""The rules and the wire format: everything that runs without trio (sans-IO).

Records and events, the state with its commands, queries and paging, the wire format in and
out, the rate limiter, the journal's and the snapshot's file formats. Nothing here imports
trio or does network I/O, so every rule can be tested without a socket; a test enforces it.
Import the modules themselves (``from morelia_trio.core import commands``).
"""
