"""Public names that load on first use (PEP 562), so importing a package costs none of its heavy dependencies.

>>> __getattr__, __dir__ = lazy_attributes(__name__, {"load": "zoo._loader"})  # in a package's __init__.py
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from zoo._torch_pair import torchvision_import_error


def lazy_attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` that import ``names[attr]`` (a module path) when ``attr`` is read.

    The value is then stored in the package's namespace, so later look-ups are plain attribute reads.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(names[name])
        except RuntimeError as exc:  # a torchvision of another torch build: one line (zoo/_torch_pair.py)
            error = torchvision_import_error(exc)
            if error is None:
                raise
            raise error from exc
        value = getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
