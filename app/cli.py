"""The ``sslzoo`` console script.

Each package owns its subcommands in its own ``cli.py`` (``add_commands(subparsers)``); this module, at the top of
the import graph, only gathers them, runs the chosen handler, and turns a :class:`~zoo.errors.SslzooError` into one
line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from zoo import __version__
from zoo.errors import SslzooError

# Modules whose ``add_commands`` register subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "zoo.cli",
    "trainers.cli",
    "evaluators.cli",
    "app.publish_cli",
    "app.launch",
    "app.benchmark",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslzoo", description="Model zoo, trainers and evaluation for self-supervised image encoders."
    )
    parser.add_argument("--version", action="version", version=f"sslzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except SslzooError as exc:
        print(f"sslzoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sslzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
