"""The ``sslzoo`` console script.

Each package owns its subcommands in its own ``cli.py`` (``add_commands(subparsers)``); this module, at the top of
the import graph, only gathers them, runs the chosen handler, and turns a :class:`~zoo.errors.SslzooError` into one
line on stderr and a non-zero exit.

Building a command's options imports its package (torch, timm, the methods' configs): seconds. So ``sslzoo --help``
lists the commands from :data:`COMMANDS` alone, and only the chosen command's module builds its parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

try:
    from zoo import __version__
    from zoo.errors import SslzooError
except Exception as exc:  # `import zoo` checks that torch and torchvision are a pair (zoo/_torch_pair.py)
    if type(exc).__name__ != "SslzooError":
        raise
    raise SystemExit(f"sslzoo: error: {exc}") from None

from zoo._torch_pair import torchvision_import_error
from zoo.config import speaking_flags

DESCRIPTION = "Model zoo, trainers and evaluation for self-supervised image encoders."

# command → (module whose ``add_commands`` registers it, its line in ``sslzoo --help``), in the order listed.
# tests/app/test_cli.py checks each line is the help the module gives the command.
COMMANDS: dict[str, tuple[str, str]] = {
    "datasets": ("zoo.cli", "list datasets, or show one's splits and a sample grid"),
    "models": (
        "zoo.cli",
        "list the model zoo: method, architecture, dimension, licence, published numbers, cached or not",
    ),
    "embed": ("zoo.cli", "embed a dataset split with a model and save the features as .npy"),
    "train": ("trainers.cli", "train a self-supervised encoder (SimCLR, MoCo, BYOL, DINO, …)"),
    "recipes": (
        "trainers.cli",
        "list the papers' training recipes, or show one with the source of every value",
    ),
    "eval": (
        "evaluators.cli",
        "k-NN, linear probe and clustering scores of a model's frozen features; writes leaderboard records",
    ),
    "reproduce": (
        "evaluators.cli",
        "re-measure a registry model's published ImageNet numbers (k-NN, the paper's linear evaluation)",
    ),
    "leaderboard": (
        "evaluators.cli",
        "render the leaderboard (markdown + PNG), or re-run rows and check they reproduce",
    ),
    "export": (
        "app.publish_cli",
        "write a Hub-ready folder (weights, timm config, metadata, model card) and validate it",
    ),
    "push": ("app.publish_cli", "validate, then upload a run or Hub-ready folder to the Hugging Face Hub"),
    "card": ("app.publish_cli", "regenerate a model card from the leaderboard's records"),
    "app": (
        "app.launch",
        "launch the Gradio app: neighbours, attention maps, embedding map, leaderboard (CPU is fine)",
    ),
    "benchmark": (
        "app.benchmark",
        "the main job: train every method, evaluate with baselines and the mini-zoo, write cards and plots",
    ),
    "readme-leaderboard": (
        "app.benchmark",
        "write the leaderboard's Fashion-MNIST table into README.md between its markers",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``sslzoo`` parser: with ``command``, that command's full options; without, every command by name only.

    ``command="all"`` builds every command's options (for tests and documentation; slow).
    """
    parser = argparse.ArgumentParser(prog="sslzoo", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"sslzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = dict.fromkeys(module for module, _ in COMMANDS.values())
    if command == "all":
        for module in modules:
            importlib.import_module(module).add_commands(subparsers)
    elif command in COMMANDS:
        importlib.import_module(COMMANDS[command][0]).add_commands(subparsers)
    else:
        for name, (_, help_text) in COMMANDS.items():
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_command(argv))  # imports the command's package: torch, timm and torchvision
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return 2
        with speaking_flags():  # messages name options as typed: --knn-k, not knn_k (zoo.config.option)
            return int(args.handler(args) or 0)
    except SslzooError as exc:
        print(f"sslzoo: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # torchvision built for another torch build fails at its first operator
        error = torchvision_import_error(exc)
        if error is None:
            raise
        print(f"sslzoo: error: {error}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk met by a writer outside zoo.atomic (an append, a download)
        from zoo.disk_full import is_disk_full, raw_disk_full

        if not is_disk_full(exc):
            raise
        print(f"sslzoo: error: {raw_disk_full(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sslzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
