"""Create a dashboard login: ``python -m dashboard.users add NAME --role operator``.

Asks for the password twice (or reads one line from stdin with ``--password-stdin``, for
scripts), and prints the entry to paste: a TOML table for tickops.toml and the equivalent
environment variable. Nothing is written anywhere: where the settings live is the
operator's choice, and the entry holds only a salted scrypt hash, never the password.
The environment variable holds every operator of the dashboard; merge the printed one
into it when there are several.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from config import OPERATOR_NAME
from dashboard.passwords import WeakPassword, hash_password


def entry_text(name: str, role: str, password_hash: str) -> str:
    """The TOML table and the environment variable for one operator."""
    env = json.dumps({name: {"role": role, "password_hash": password_hash}}, separators=(",", ":"))
    return (f"# tickops.toml\n[dashboard.operators.{json.dumps(name)}]\nrole = {json.dumps(role)}\n"
            f"password_hash = {json.dumps(password_hash)}\n\n"
            f"# or the environment (every operator in one variable)\nTICKOPS_DASHBOARD__OPERATORS='{env}'\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboard.users",
                                     description="Dashboard logins (salted scrypt password entries).")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="print the settings entry for a new login (or a new password)")
    add.add_argument("name", help="the operator's login name (letters, digits, . _ @ -; at most 64)")
    add.add_argument("--role", choices=("viewer", "operator", "admin"), required=True,
                     help="viewer: read only; operator: start/stop symbols, acknowledge; admin: also settings")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    return parser


def _password(from_stdin: bool, stdin: TextIO) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise WeakPassword("the two passwords differ")
    return first


def main(argv: Sequence[str] | None = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    if not OPERATOR_NAME.fullmatch(args.name):
        print(f"error: {args.name!r} is not a login name: use 1-64 letters, digits or . _ @ -", file=sys.stderr)
        return 1
    try:
        password_hash = hash_password(_password(args.password_stdin, stdin))
    except WeakPassword as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out.write(entry_text(args.name, args.role, password_hash))
    return 0


if __name__ == "__main__":
    sys.exit(main())
