"""``morelia-trio admin``: the operator's tool, on a live server or a stopped one's directory.

With a server running on the data directory, each command goes over its admin socket
(``admin_socket.py``); with none, the tool takes the directory's lock and does the same
work itself (``admin.run_offline``). Users and statistics print as JSON, one line each;
an export prints JSON Lines; a refusal prints its reason on stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import BinaryIO

import trio

from . import admin_protocol as proto
from .admin import SharedState, run_offline
from .admin_socket import connect, request
from .config import Config
from .core.journal_format import DataDamaged
from .persistence.lock import DirectoryInUse


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = commands.add_parser(
        "admin",
        help="administer a server: live over its admin socket, or a stopped one's directory",
    )
    admin.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"the server's data directory (MORELIA_DATA_DIR, else {Config().data_dir})",
    )
    actions = admin.add_subparsers(dest="admin_command", required=True)
    actions.add_parser("users", help="list every user (JSON, one a line)")
    find = actions.add_parser("find", help="users whose login or username holds TEXT")
    find.add_argument("text")
    for name, helped in (
        ("make-admin", "make USER a server admin"),
        ("unmake-admin", "make USER a member again"),
        ("suspend", "suspend USER: its sessions end, it cannot log in"),
        ("restore", "lift USER's suspension: it can log in again"),
        ("delete-user", "delete USER's account (its messages stay)"),
    ):
        action = actions.add_parser(name, help=helped)
        action.add_argument("user", help="a login, or a user id")
    delete = actions.add_parser("delete-message", help="delete a message by its id")
    delete.add_argument("message_id", type=int)
    actions.add_parser("stats", help="counts of users, flows, messages (JSON)")
    backup = actions.add_parser(
        "backup", help="write a consistent snapshot into TARGET (new or empty): serve it to restore"
    )
    backup.add_argument("target", type=Path)
    export = actions.add_parser(
        "export", help="every user (without secrets), flow and message as JSON Lines"
    )
    export.add_argument("--output", type=Path, default=None, help="a file (default: stdout)")


def _request(args: argparse.Namespace) -> proto.AnyAdminRequest:
    command = args.admin_command
    match command:
        case "users":
            return proto.ListUsers()
        case "find":
            return proto.FindUsers(text=args.text)
        case "make-admin" | "unmake-admin":
            return proto.SetAdmin(user=args.user, admin=command == "make-admin")
        case "suspend" | "restore":
            return proto.SetSuspended(user=args.user, suspended=command == "suspend")
        case "delete-user":
            return proto.DeleteUser(user=args.user)
        case "delete-message":
            return proto.DeleteMessage(message_id=args.message_id)
        case "stats":
            return proto.Stats()
        case "backup":  # the server resolves a relative path from its own directory: not ours
            return proto.Backup(target=str(args.target.absolute()))
    return proto.Export()


def main(args: argparse.Namespace) -> int:
    directory = args.data_dir or Path(os.environ.get("MORELIA_DATA_DIR") or Config().data_dir)
    if not directory.is_dir():
        print(f"morelia-trio: {directory}: not a directory", file=sys.stderr)
        return 1
    if getattr(args, "output", None) is None:
        return _run(directory, _request(args), sys.stdout.buffer)
    with args.output.open("wb") as output:
        return _run(directory, _request(args), output)


def _run(directory: Path, req: proto.AnyAdminRequest, out: BinaryIO) -> int:
    try:
        sock = connect(directory)
    except OSError as exc:  # such as another user's 0600 socket: run as the server's user
        print(
            f"morelia-trio: cannot reach the admin socket: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    if sock is not None:
        with sock:
            reply = None
            for item in request(sock, req):
                if isinstance(item, proto.Reply):
                    reply = item
                else:
                    out.write(proto.encode_line(item))
        assert reply is not None
        return _report(reply, out)

    async def emit(line: bytes) -> None:
        out.write(line)

    # No server answers: do it here, logging the action as the server would.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        reply = trio.run(run_offline, directory, req, emit)
    except (DirectoryInUse, DataDamaged, SharedState) as exc:
        print(f"morelia-trio: cannot administer: {exc}", file=sys.stderr)
        return 1
    return _report(reply, out)


def _report(reply: proto.Reply, out: BinaryIO) -> int:
    if not reply.ok:
        print(f"morelia-trio: {reply.detail}", file=sys.stderr)
        return 1
    for user in reply.users or ():
        out.write(proto.encode_line(user))
    if reply.statistics is not None:
        out.write(proto.encode_line(reply.statistics))
    if reply.detail:
        print(reply.detail, file=sys.stderr)
    return 0
