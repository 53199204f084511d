"""Persistence, the trio side: the event log port and its first implementation, local files.

The state owner (``store.py``) sees only the port (``port.EventLog``). ``local.LocalFiles``
implements it with a journal writer task (``journal_writer``, writing through
``journal_file``), snapshots and their schedule (``snapshots``), start-up recovery
(``recovery``) and the data directory's lock (``lock``).
The file formats themselves are pure and live in ``core``.
"""
