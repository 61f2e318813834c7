"""Optional experiment loggers: the rows of ``metrics.jsonl`` sent, as they are written, where a user already
watches runs (``--logger tensorboard`` or ``--logger trackio``).

``metrics.jsonl`` and ``curves.png`` stay the run's record; a logger is a live view of the same rows. TensorBoard
gets one scalar per numeric key under ``train/`` (the k-NN monitor and pseudo-label NMI in percent under
``monitor/``, like the curves), at the row's global ``step``, in ``RUN/tensorboard/``::

    tensorboard --logdir runs/   # every run that logged, side by side

Trackio (Hugging Face's local-first tracker, a Gradio dashboard) gets the same scalars and keys in its project
``sslzoo``, one run per run folder (named after it; a resumed run continues it), stored where trackio keeps its
projects (``$TRACKIO_DIR``, default ``$HF_HOME/trackio``)::

    trackio show --project sslzoo

>>> logger = make_logger("tensorboard", "runs/demo")  # doctest: +SKIP
>>> logger.log({"step": 10, "epoch": 0.5, "loss": 4.2, "lr": 1e-3})  # doctest: +SKIP
>>> logger.close()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from zoo.errors import SslzooError

LOGGERS = ("none", "tensorboard", "trackio")
TRACKIO_PROJECT = "sslzoo"
TENSORBOARD_DIR = "tensorboard"
# Row keys that are scores in [0, 1], shown in percent like everywhere else (trainers.curves does the same).
MONITORS = {"knn_acc": "monitor/knn_top1_subset_pct", "nmi_true": "monitor/pseudo_label_nmi_pct"}
NOT_SCALARS = {"step"}


class RunLogger(Protocol):
    """What the engine calls: one :meth:`log` per ``metrics.jsonl`` row, :meth:`close` at the end."""

    def log(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """A row's numeric values under the loggers' names (``train/KEY``; monitors in percent under ``monitor/``)."""
    out = {}
    for key, value in row.items():
        if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in MONITORS:
            out[MONITORS[key]] = value * 100.0
        else:
            out[f"train/{key}"] = float(value)
    return out


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
        for tag, value in scalars(row).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # a user watching live sees each row as it is written

    def close(self) -> None:
        self.writer.close()


class TrackioLogger:
    """Rows as trackio metrics of run ``RUN``'s name in project ``sslzoo`` (needs the ``trackio`` package)."""

    def __init__(self, run_dir: str | Path, resume: bool = False) -> None:
        try:
            import trackio
        except ImportError:
            raise SslzooError(
                "--logger trackio needs the trackio package: pip install trackio "
                "(or pip install 'sslzoo[trackio]'), or drop --logger."
            ) from None
        self.trackio = trackio
        self.run = trackio.init(
            project=TRACKIO_PROJECT, name=Path(run_dir).resolve().name, resume="allow" if resume else "never"
        )

    def log(self, row: dict[str, Any]) -> None:
        self.trackio.log(scalars(row), step=int(row.get("step", 0)))

    def close(self) -> None:
        self.trackio.finish()


def check_logger(name: str) -> None:
    """Raise :class:`~zoo.errors.SslzooError` unless ``name`` is one of :data:`LOGGERS`."""
    if name not in LOGGERS:
        raise SslzooError(f"unknown --logger {name!r}; choose from {', '.join(LOGGERS)}.")


def make_logger(name: str, run_dir: str | Path, resume: bool = False) -> RunLogger | None:
    """The logger called ``name`` (see :data:`LOGGERS`) writing under ``run_dir``; None for ``"none"``.

    ``resume``: the run continues from a checkpoint (trackio then continues its run of that name).

    Raises:
        SslzooError: an unknown name, or the logger's package is not installed.
    """
    check_logger(name)
    if name == "tensorboard":
        return TensorBoardLogger(run_dir)
    if name == "trackio":
        return TrackioLogger(run_dir, resume)
    return None
