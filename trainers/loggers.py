"""Optional experiment loggers: the rows of ``metrics.jsonl`` sent, as they are written, where a user already
watches runs (``--logger tensorboard``).

``metrics.jsonl`` and ``curves.png`` stay the run's record; a logger is a live view of the same rows. TensorBoard
gets one scalar per numeric key under ``train/`` (the k-NN monitor and pseudo-label NMI in percent under
``monitor/``, like the curves), at the row's global ``step``, in ``RUN/tensorboard/``::

    tensorboard --logdir runs/   # every run that logged, side by side

>>> logger = make_logger("tensorboard", "runs/demo")  # doctest: +SKIP
>>> logger.log({"step": 10, "epoch": 0.5, "loss": 4.2, "lr": 1e-3})  # doctest: +SKIP
>>> logger.close()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from zoo.errors import SslzooError

LOGGERS = ("none", "tensorboard")
TENSORBOARD_DIR = "tensorboard"
# Row keys that are scores in [0, 1], shown in percent like everywhere else (trainers.curves does the same).
MONITORS = {"knn_acc": "monitor/knn_top1_subset_pct", "nmi_true": "monitor/pseudo_label_nmi_pct"}
NOT_SCALARS = {"step"}


class RunLogger(Protocol):
    """What the engine calls: one :meth:`log` per ``metrics.jsonl`` row, :meth:`close` at the end."""

    def log(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class TensorBoardLogger:
    """Rows as TensorBoard scalars, through ``torch.utils.tensorboard`` (needs the ``tensorboard`` package)."""

    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SslzooError(
                "--logger tensorboard needs the tensorboard package: pip install tensorboard "
                "(or pip install 'sslzoo[tensorboard]'), or drop --logger."
            ) from None
        self.dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(self.dir))

    def log(self, row: dict[str, Any]) -> None:
        step = int(row.get("step", 0))
        for key, value in row.items():
            if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if key in MONITORS:
                self.writer.add_scalar(MONITORS[key], value * 100.0, step)
            else:
                self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()  # a user watching live sees each row as it is written

    def close(self) -> None:
        self.writer.close()


def make_logger(name: str, run_dir: str | Path) -> RunLogger | None:
    """The logger called ``name`` (see :data:`LOGGERS`) writing under ``run_dir``; None for ``"none"``.

    Raises:
        SslzooError: an unknown name, or the logger's package is not installed.
    """
    if name == "none":
        return None
    if name == "tensorboard":
        return TensorBoardLogger(run_dir)
    raise SslzooError(f"unknown --logger {name!r}; choose from {', '.join(LOGGERS)}.")
