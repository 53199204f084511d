"""The crash test: SIGKILL (and simulated power loss) against the real server process.

``python -m tests.crash --kills 60 [--power-loss] [--broken-fsync] [--seed N]``; see harness.py.
``python -m tests.crash --nodes 3 --kills 60``: servers sharing a stream; see nodes.py.
"""
