"""The ``simlabel`` command line. Each subcommand lives in its own module and registers itself here.

Every error a user can cause (a missing file, a malformed annotation file, a bad option, a value of the wrong
type) ends the program with exit status 2 and one line on stderr naming the problem, before any work starts
(``SIMLABEL_DEBUG=1`` shows the traceback instead). Ctrl-C (SIGINT) and SIGTERM stop a command in an orderly way:
one line, exit status 130 or 143, run directories left resumable. Warnings are one line each.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from ..experiment.workers import WorkerError
from . import compare, impute, kappa, plugins, predict, train


class UsageError(Exception):
    """A problem with the user's input; reported as one line with exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops the way Ctrl-C does."""


def _terminate(signum, frame) -> None:
    raise Terminated()


#: What each command says when it is stopped.
_RESUME = {"train": "rerun it with --resume to continue", "compare": "rerun the same command to resume the grid"}


class _Parser(argparse.ArgumentParser):
    """argparse with whole option names only (a dataset flag such as ``--missing`` must never be read as an
    abbreviation of ``--missing-rate``) and with its errors raised as :class:`UsageError` (one line, status 2)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    predict.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "accepts_extra", False):
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as exc:
        command = argv[0] if argv and not argv[0].startswith("-") else ""
        print(f"simlabel{' ' + command if command else ''}: error: {exc}", file=sys.stderr)
        return 2
    args.argv = argv
    command = args.command
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    previous_format = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: f"simlabel {command}: warning: {message}\n"
    try:
        return args.run(args, extra) if getattr(args, "accepts_extra", False) else args.run(args)
    except BrokenPipeError:  # the reader of stdout went away (`simlabel predict ... | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        advice = f"; {_RESUME[command]}" if command in _RESUME else ""
        print(f"simlabel {command}: {'stopped by SIGTERM' if terminated else 'interrupted'}{advice}",
              file=sys.stderr)
        return 143 if terminated else 130
    except (OSError, ValueError, TypeError, MemoryError, UsageError, WorkerError) as exc:
        if os.environ.get("SIMLABEL_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.strerror and exc.filename:
            message = f"{exc.strerror}: {exc.filename}"
        else:
            message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"simlabel {command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
        warnings.formatwarning = previous_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
