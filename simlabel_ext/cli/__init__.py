"""The ``simlabel`` command line. Each subcommand lives in its own module and registers itself here.

Every error a user can cause (a missing file, a malformed annotation file, a bad option) ends the program with
exit status 2 and one line on stderr naming the problem, before any work starts.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import compare, impute, kappa, plugins, train


class UsageError(Exception):
    """A problem with the user's input; reported as one line with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simlabel",
        description="Multi-annotator learning with missing labels (SimLabel).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kappa.register(commands)
    plugins.register(commands)
    train.register(commands)
    compare.register(commands)
    impute.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args, extra) if getattr(args, "accepts_extra", False) else args.run(args)
    except (OSError, ValueError, UsageError) as exc:
        message = str(exc) if not isinstance(exc, OSError) else f"{exc.strerror}: {exc.filename}"
        print(f"simlabel {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
