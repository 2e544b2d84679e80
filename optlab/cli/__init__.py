"""The `optlab` command line. Each sub-command lives in its own module with `add_parser` and `main`.

Every failure a user can cause (a bad value, a file, a permission, a full disk, an unreachable
tracking server) ends as one line `optlab: error: ...` naming the value or the path, exit status 2;
`--debug` (or OPTLAB_DEBUG=1) shows the full traceback instead. SIGINT, SIGTERM and SIGHUP
interrupt: a run in training is recorded KILLED, exit status 128 + the signal number.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys

from optlab.errors import OptlabError

ORDER = ("run", "strategies", "sweep", "report", "bench")  # listed first in --help; others follow
DEBUG_ENV = "OPTLAB_DEBUG"


def command_modules() -> list[str]:
    """Every module under optlab.cli is a sub-command: adding one is adding a module."""
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line naming it (no usage dump)."""

    def error(self, message):
        self.exit(2, f"optlab: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="optlab", description="Compare how optimizers learn; every run tracked in MLflow.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in command_modules():
        module = importlib.import_module(f"optlab.cli.{name}")
        command = module.add_parser(sub)
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error"
        )
        command.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    from optlab import interrupts

    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if debug:
        os.environ[DEBUG_ENV] = "1"  # worker processes and library logs follow
    try:
        with interrupts.stop_signals_interrupt():
            return args.handler(args) or 0
    except KeyboardInterrupt:
        signum = interrupts.received or signal.SIGINT
        print(f"optlab: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except OptlabError as exc:
        if debug:
            raise
        print(f"optlab: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the user gets one line; --debug shows the traceback
        if debug:
            raise
        print(f"optlab: error: {explain(exc)} (run with --debug for the traceback)", file=sys.stderr)
        return 2


def explain(exc: BaseException) -> str:
    """One line for an exception that is not an OptlabError: files, permissions, disk, the store."""
    from optlab.tracking.failures import describe
    from optlab.tracking.store import tracking_uri

    return one_line(describe(exc, tracking_uri()))


def one_line(text: str) -> str:
    from optlab.tracking.uri import mask_credentials

    return mask_credentials(" ".join(str(text).split()))


if __name__ == "__main__":
    sys.exit(main())
