"""``sslzoo train``: options generated from :class:`~trainers.config.TrainConfig` and each method's ``Config``."""

from __future__ import annotations

import argparse
import dataclasses
import os


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sslzoo train`` on the top-level parser."""
    from trainers.config import TrainConfig
    from trainers.methods import method_config, method_defaults, method_names
    from zoo.config import add_dataclass_arguments, field_default

    p = subparsers.add_parser(
        "train",
        help="train a self-supervised encoder (SimCLR, MoCo, BYOL, DINO, …)",
        description="Train a self-supervised encoder; the run folder gets checkpoints, metrics.jsonl, curves.png "
        "and encoder/ (zoo format). Distributed: torchrun --nproc-per-node N -m app.cli train ... SIGTERM "
        "(preemption) stops at the next step with its checkpoint written, exit status 143; --resume continues.",
    )
    shared = p.add_argument_group("training options")
    add_dataclass_arguments(shared, TrainConfig, skip=("method",))
    shared.add_argument(
        "--method",
        choices=method_names(),
        default=argparse.SUPPRESS,
        help="self-supervised method (required unless --recipe names one)",
    )
    seen = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in method_names():
        config = method_config(name)
        fields = [f.name for f in dataclasses.fields(config)]
        new = [f for f in fields if f not in seen]
        shared_with = sorted(set(fields) - set(new))
        # An option several methods share is listed once, under the first; each method keeps its own default,
        # which its group names.
        defaults = {f.name: field_default(f) for f in dataclasses.fields(config)}
        own = ", ".join(f"--{f.replace('_', '-')} {defaults[f]}" for f in shared_with)
        note = f"; also uses, with its defaults: {own}" if shared_with else ""
        changed = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in method_defaults(name).items())
        changed = f"; its defaults of shared options: {changed}" if changed else ""
        group = p.add_argument_group(f"{name} options", f"(--method {name}{note}{changed})")
        add_dataclass_arguments(group, config, skip=seen)
        seen.update(new)
    p.set_defaults(handler=_train)

    r = subparsers.add_parser(
        "recipes",
        help="list the papers' training recipes, or show one with the source of every value",
        description="Named recipes (sslzoo train --recipe NAME): a paper's settings as defaults; any option "
        "given to sslzoo train overrides them.",
    )
    r.add_argument("name", nargs="?", help="a recipe to show in full")
    r.set_defaults(handler=_recipes)


def _recipes(args: argparse.Namespace) -> int:
    from trainers.recipes import describe_recipe, list_recipes

    print(describe_recipe(args.name) if args.name else list_recipes())
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainers import train
    from zoo.errors import SslzooError

    # Only options given on the command line are in ``args`` (default=SUPPRESS): they override a recipe.
    options = {k: v for k, v in vars(args).items() if k not in ("handler", "command", "method")}
    if isinstance(options.get("arch_args"), list):
        options["arch_args"] = tuple(options["arch_args"])
    method = getattr(args, "method", None)
    if method is None and options.get("recipe") is None:
        raise SslzooError("sslzoo train needs --method METHOD or --recipe NAME (sslzoo recipes lists them).")
    run_dir = train(method, strict_resume=True, **options)  # --resume with nothing to continue is an error
    if os.environ.get("RANK", "0") == "0":  # under torchrun, say it once
        print(f"encoder saved to {run_dir / 'encoder'} (zoo.load({str(run_dir)!r}))")
    return 0
