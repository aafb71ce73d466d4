"""The ``hdnnp`` command: one entry point, one subcommand per task (like n2p2's programs).

Each subcommand module under ``hdnnp.interfaces.commands`` defines ``add_parser(subparsers)``
which registers the subcommand and sets ``func`` to a callable taking the parsed args.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hdnnp import __version__
from hdnnp.errors import HDNNPError

#: subcommand modules, in the order of the pipeline
COMMAND_MODULES = [
    "hdnnp.interfaces.commands.sample",
    "hdnnp.interfaces.commands.symfunctions",
    "hdnnp.interfaces.commands.scale",
    "hdnnp.interfaces.commands.train",
    "hdnnp.interfaces.commands.predict",
    "hdnnp.interfaces.commands.md",
    "hdnnp.interfaces.commands.export",
    "hdnnp.interfaces.commands.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hdnnp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hdnnp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not built (yet)
                continue
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except HDNNPError as exc:
        print(f"hdnnp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hdnnp {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
