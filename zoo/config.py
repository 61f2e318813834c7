"""Config dataclasses are the one source of truth for options: the CLI is generated from them.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Demo:
...     epochs: int = 10
...     lr: float = field(default=0.1, metadata={"help": "base learning rate"})
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_dataclass_arguments(parser, Demo)
>>> dataclass_from_namespace(Demo, parser.parse_args(["--epochs", "3"]))
Demo(epochs=3, lr=0.1)
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import dataclasses
import types
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# Help texts several commands share, so an option means and says the same everywhere.
DEVICE_HELP = "cpu, cuda, cuda:1 or auto (CUDA when present)"
LEADERBOARD_HELP = (
    "folder of evaluation records (default: $SSLZOO_LEADERBOARD, else ~/.cache/sslzoo/leaderboard; the "
    "repository's own is leaderboard/ in the checkout, written only when named here)"
)


# Whether the one reading a message typed a command line (flags) or called Python (keyword arguments):
# app.cli.main speaks flags while it runs a command; the Python API speaks Python.
_SPEAKING_FLAGS = contextvars.ContextVar("sslzoo_speaking_flags", default=False)
_UNSET: Any = object()


@contextlib.contextmanager
def speaking_flags() -> Iterator[None]:
    """Inside, :func:`option` names options as flags (``--knn-k 5``): the command line is running."""
    token = _SPEAKING_FLAGS.set(True)
    try:
        yield
    finally:
        _SPEAKING_FLAGS.reset(token)


def option(name: str, value: Any = _UNSET) -> str:
    """An option as its user writes it: ``knn_k=5`` from Python, ``--knn-k 5`` on the command line.

    >>> option("knn_k", 5), option("resume", True), option("out")
    ('knn_k=5', 'resume=True', 'out')
    >>> with speaking_flags():
    ...     option("knn_k", 5), option("resume", True), option("centering", False), option("out")
    ('--knn-k 5', '--resume', '--no-centering', '--out')
    """
    if not _SPEAKING_FLAGS.get():
        return name if value is _UNSET else f"{name}={value!r}"
    flag = "--" + name.replace("_", "-")
    if value is _UNSET or value is True:
        return flag
    if value is False:
        return "--no-" + name.replace("_", "-")
    return f"{flag} {shown_default(value)}"


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default value (its ``default_factory()`` when it has one; ``None`` when it has neither)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def shown_default(value: Any) -> str:
    """A default as it is typed on the command line: ``none``, ``0.1 0.01`` (not ``(0.1, 0.01)``), ``true``.

    >>> shown_default((0.1, 0.01)), shown_default(None), shown_default(()), shown_default(False)
    ('0.1 0.01', 'none', 'none', 'false')
    """
    if value is None or (isinstance(value, tuple | list) and not value):
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return " ".join(shown_default(v) for v in value)
    return str(value)


def _with_default(help_text: str, default: Any) -> str:
    """``help_text`` and its default, once: a help that already describes its default is left as it is."""
    if "default:" in help_text:
        return help_text
    return f"{help_text} (default: {shown_default(default)})"


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: typing.Collection[str] = (),
    defaults: dict | None = None,
) -> None:
    """Add one ``--field-name`` option per dataclass field, typed and documented from the field.

    Booleans become ``--flag/--no-flag``; tuples and lists take several values; ``Optional[X]`` accepts ``none``.
    ``defaults`` overrides the dataclass defaults shown in ``--help`` (a method's own defaults, say).
    """
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        default = defaults.get(f.name, field_default(f))
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if tp is bool:
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                help=_with_default(help_text, default),
                **kwargs,
            )
            continue
        origin = typing.get_origin(tp)
        if origin in (tuple, list):
            inner = typing.get_args(tp)[0]
            kwargs.update(nargs="+", type=inner)
        elif "choices" in f.metadata:
            kwargs.update(choices=f.metadata["choices"], type=tp)
        else:
            base = tp if tp in (int, float, str) else str
            kwargs["type"] = (lambda v, b=base: None if v.lower() == "none" else b(v)) if optional else base
        parser.add_argument(flag, help=_with_default(help_text, default), metavar=f.name.upper(), **kwargs)


def dataclass_from_namespace(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from the options given on the command line (the rest keep their defaults)."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in vars(ns).items() if k in names}
    values.update(overrides)
    for f in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(typing.get_type_hints(cls)[f.name])
        if f.name in values and typing.get_origin(tp) is tuple and values[f.name] is not None:
            values[f.name] = tuple(values[f.name])
    return cls(**values)
