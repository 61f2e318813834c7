"""Published files (``sslzoo.json``, model cards, Hub folders) say nothing about the machine that wrote them.

A training config's ``out``, a command line's ``--out``/``folder:`` arguments and the like are local absolute paths,
often with a user name in them. :func:`scrub_local_paths` rewrites every absolute path inside a JSON-like value:
under a home folder it becomes ``~/...`` (the README's own commands write ``--out ~/.cache/...``), inside the
repository it becomes relative to it, and anywhere else only its last part is kept (``.../NAME``).

>>> scrub_local_paths({"out": "/home/alice/runs/simclr", "cmd": "sslzoo export /srv/x/run --out hub/a"})
{'out': '~/runs/simclr', 'cmd': 'sslzoo export .../run --out hub/a'}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# An absolute path: "/" then a non-"/" (so "https://..." is not one), at the start of a string or after a space,
# "=", a quote, "(" or "folder:"-style ":" (but not after "://" or inside a word such as "hf-hub:org/name").
_ABSOLUTE = re.compile(r"(?:(?<=^)|(?<=[\s=\"'(:]))(?<!://)/(?!/)[^\s\"';,)]+")
_HOME = re.compile(r"^/(?:home|Users)/[^/]+|^/root(?=/|$)")


def public_path(path: str) -> str:
    """One absolute path as a published file may show it (see the module docstring)."""
    home = str(Path.home())
    for root, shown in ((str(REPO_ROOT), None), (home, "~")):
        if root not in ("/", "") and (path == root or path.startswith(root + "/")):
            rest = path[len(root) :].lstrip("/")
            return (f"{shown}/{rest}" if rest else shown) if shown else (rest or ".")
    match = _HOME.match(path)
    if match:  # another user's home, or root's on a machine where we are someone else
        rest = path[match.end() :].lstrip("/")
        return f"~/{rest}" if rest else "~"
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f".../{name}" if name else "..."


def scrub_local_paths(value: Any) -> Any:
    """``value`` (dicts, lists, strings, numbers) with every absolute local path rewritten by :func:`public_path`."""
    if isinstance(value, str):
        return _ABSOLUTE.sub(lambda m: public_path(m.group(0)), value)
    if isinstance(value, dict):
        return {k: scrub_local_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_local_paths(v) for v in value)
    return value
