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


def _one_line_warnings(command: str):
    """Python warnings as one line each (no source line), each distinct message once.
    Returns the previous ``warnings.showwarning`` (restored when the command ends)."""
    import warnings

    old = warnings.showwarning
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        if text in seen:
            return
        seen.add(text)
        print(f"hdnnp {command}: warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show
    return old


def _os_error_line(exc: OSError) -> str:
    """An OSError (full disk, permissions, a directory given as a file) as one line."""
    import errno

    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = {errno.ENOSPC: "; free some space and rerun", errno.EDQUOT: "; free some space and rerun",
            errno.EACCES: "; check the permissions", errno.EROFS: "; write somewhere else"}.get(exc.errno, "")
    return f"{where}: {reason}{hint}" if where else f"{reason}{hint}"


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. User errors (``HDNNPError``, file-system errors, Ctrl-C) end with one
    line on stderr and a non-zero exit code; anything else is a bug and keeps its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import warnings

    old_showwarning = _one_line_warnings(args.command)
    try:
        rc = args.func(args)
    except HDNNPError as exc:
        print(f"hdnnp {args.command}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        print(f"hdnnp {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"hdnnp {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"hdnnp {args.command}: error: out of memory", file=sys.stderr)
        return 1
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"hdnnp {args.command}: internal error (a bug in hdnnp {__version__}, not in your input, unless "
              "the message above says otherwise): please report it with the command line and the traceback "
              "above", file=sys.stderr)
        return 3
    finally:
        warnings.showwarning = old_showwarning
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
