"""The `optlab` command line. Each sub-command lives in its own module with `add_parser` and `main`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from optlab.errors import OptlabError

ORDER = ("run", "strategies", "sweep", "report", "bench")  # listed first in --help; others follow


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
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in command_modules():
        module = importlib.import_module(f"optlab.cli.{name}")
        module.add_parser(sub).set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except OptlabError as exc:
        print(f"optlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
