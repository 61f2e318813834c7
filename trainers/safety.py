"""What keeps a run honest and whole: finite weights only, one writer per run folder, options checked up front, and
a damaged checkpoint named in one line.

* :func:`check_finite` — NaN/±inf in parameters *and* buffers (a BatchNorm running variance can overflow while the
  loss still looks finite), so no checkpoint or export of such weights is written and the last finite one stays.
* :class:`RunLock` — ``fcntl.flock`` on ``RUN/.lock``, which names its holder (``pid PID on HOST``): a second
  ``sslzoo train --out RUN`` stops in one line naming the holder instead of interleaving its metrics with the
  first one's. The kernel drops the lock when the holder dies, so a killed run's lock is never stuck: the next
  run takes it over and says whose it was. The file is removed when the run ends.
* :func:`validate_train_options` — every numeric option in range before any data is read or any step is taken.
* :func:`load_checkpoint` — a truncated or foreign ``last.pt`` is one line naming the file.
"""

from __future__ import annotations

import dataclasses
import fcntl
import math
import os
import pickle
import socket
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import SslzooError
from zoo.export import nonfinite_tensors

__all__ = ["RunLock", "check_finite", "load_checkpoint", "validate_train_options"]


def check_finite(state: nn.Module | dict[str, Any]) -> list[str]:
    """Names of the floating-point parameters and buffers of ``state`` (module or state dict) with NaN or ±inf.

    >>> check_finite(nn.BatchNorm1d(2))
    []
    """
    return nonfinite_tensors(state)


class RunLock:
    """Hold an exclusive lock on ``RUN/.lock`` for the life of a training run (a context manager).

    >>> with RunLock("/tmp/sslzoo-doctest-run"):
    ...     pass
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._file: Any = None
        self._created = False

    def __enter__(self) -> RunLock:
        self._created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The lock file is removed when a run ends; holding a lock on a file already unlinked is no lock.
            if os.fstat(self._file.fileno()).st_ino != os.stat(self.path).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            self._file.seek(0)
            holder = self._file.read().strip()
            self._file.close()
            self._file = None
            self._created = False
            raise SslzooError(
                f"{self.path.parent} is in use by another training run{f' ({holder})' if holder else ''}; "
                "wait for it to finish or choose another --out."
            ) from None
        self._file.seek(0)
        left = self._file.read().strip()  # a holder that ended cleanly removed the file: this one was killed
        if left:
            print(
                f"sslzoo: took over {self.path} from a run that is no longer running ({left})",
                file=sys.stderr,
            )
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._file.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            # Unlinked while still held (see __enter__); a run that stopped before writing anything leaves no
            # folder behind (it was ours: we created it).
            self.path.unlink(missing_ok=True)
            if self._created and not any(self.path.parent.iterdir()):
                self.path.parent.rmdir()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _at_least(name: str, value: Any, low: float, *, strict: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = _number(value) and math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        bound = f"more than {low:g}" if strict else f"at least {low:g}"
        finite = " (a finite number)" if isinstance(value, float) else ""
        raise SslzooError(f"--{name.replace('_', '-')} must be {bound}{finite}, got {value!r}.")


def _fraction(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not (_number(value) and 0 <= value <= 1):
        raise SslzooError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value!r}.")


# Method options by what they are: positive temperatures, fractions (momenta, crop scales, jitter), counts.
_TEMPERATURES = ("temperature", "student_temp", "teacher_temp", "warmup_teacher_temp")
_FRACTIONS = ("momentum", "momentum_end", "center_momentum", "crop_min_scale", "global_crop_min_scale")
_FRACTIONS += ("local_crop_max_scale", "jitter")
_ZERO_OR_MORE = (
    "n_local_crops",
    "warmup_teacher_temp_epochs",
    "freeze_last_layer_epochs",
    "lam",
    "param_grad_clip",
)


def validate_train_options(cfg: Any, method_cfg: Any) -> None:
    """Check a :class:`~trainers.config.TrainConfig` and a method's ``Config`` before any data is read.

    Raises:
        SslzooError: the first option out of range, in one line naming it.
    """
    _at_least("lr", cfg.lr, 0, strict=True)
    from trainers.loggers import check_logger

    check_logger(cfg.logger)
    _at_least("min_lr", cfg.min_lr, 0)
    _at_least("warmup_epochs", cfg.warmup_epochs, 0)
    _at_least("weight_decay", cfg.weight_decay, 0)
    _at_least("weight_decay_end", cfg.weight_decay_end, 0, optional=True)
    _fraction("sgd_momentum", cfg.sgd_momentum)
    _at_least("grad_clip", cfg.grad_clip, 0, strict=True, optional=True)
    _at_least("dist_timeout", cfg.dist_timeout, 0, strict=True)
    _at_least("seed", cfg.seed, 0)
    for name in ("epochs", "batch_size", "log_every", "knn_k", "knn_max_train", "knn_max_test"):
        _at_least(name, getattr(cfg, name), 1)
    for name in ("checkpoint_every", "knn_every"):
        _at_least(name, getattr(cfg, name), 0)
    _at_least(
        "image_size", cfg.image_size, 8, optional=True
    )  # two 4-px patches: the smallest our models take
    if cfg.knn_max_train < cfg.knn_k:
        raise SslzooError(
            f"--knn-max-train {cfg.knn_max_train} is below --knn-k {cfg.knn_k}: the k-NN monitor needs at least k "
            "train images."
        )
    if (
        cfg.out is not None
        and Path(cfg.out).expanduser().exists()
        and not Path(cfg.out).expanduser().is_dir()
    ):
        raise SslzooError(
            f"--out {cfg.out} is a file; give a run folder (new, or an earlier run with --resume)."
        )
    for item in cfg.arch_args:
        key = str(item).partition("=")[0]
        if key in ("checkpoint_path", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay"):
            raise SslzooError(
                f"--arch-args {key}= is not accepted: training starts from the seeded initialisation and loads no "
                "files; drop it (to continue a run use --resume)."
            )
    for f in dataclasses.fields(method_cfg):
        value = getattr(method_cfg, f.name)
        if f.name in _TEMPERATURES:
            _at_least(f.name, value, 0, strict=True)
        elif f.name in _FRACTIONS:
            _fraction(f.name, value, optional=True)
        elif f.name in _ZERO_OR_MORE:
            _at_least(f.name, value, 0)
        elif _number(value):  # sizes, counts, iterations, cluster numbers
            _at_least(f.name, value, 1)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, with a damaged or foreign file named in one line.

    Raises:
        SslzooError: truncated/corrupt (say to delete it or start another ``--out``), or holding Python objects
        ``weights_only`` refuses (never unpickled: it could run code).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SslzooError(
            f"{path} holds Python objects other than tensors and was not loaded (it could run code: {first}); "
            "remove it and train again, or use a checkpoint sslzoo wrote."
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SslzooError(
            f"{path} is damaged (truncated or corrupt: {first}); delete it to start the run over, or restore a "
            "copy."
        ) from None
    if not isinstance(state, dict) or "method" not in state:
        raise SslzooError(f"{path} is not an sslzoo checkpoint (no 'method' state); choose another --out.")
    return state
