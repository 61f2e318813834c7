"""Continuing a schedule: ``sslzoo train --out RUN --resume --epochs N`` (or ``train(..., resume=True, epochs=N)``).

**Policy: the schedule is re-planned.** Every schedule of a run (learning rate and weight decay cosines, EMA
momentum, DINO's teacher temperature and frozen last layer, Self-Label's label steps, DeepCluster's rounds) is a
function of the step and of the run's length (:mod:`trainers.schedules`), so a run resumed with ``--epochs N``
continues as a run planned for N epochs from the start would at that step. From an unfinished run that is the rest
of the N-epoch plan; from a finished one the learning rate rises from the old plan's final value to the N-epoch
cosine's value at that step (a warm restart), as DINO's and timm's scripts do when ``--epochs`` grows on resume.
Continuing the old cosine instead would leave the added epochs at ``--min-lr``, which teaches little.

Every change of the run's length is recorded in ``train_config.json`` under ``extensions`` (from / to epochs, the
step it took effect, when, and the policy), so the curves' kink at that step is explained by the run folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from zoo.config import option
from zoo.errors import SslzooError

__all__ = ["SCHEDULE_POLICY", "check_epochs", "extension_record"]

SCHEDULE_POLICY = "re-planned"


def epochs_done(epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
    """Epochs a checkpoint has trained: whole epochs plus the finished part of the current one."""
    return epoch + step_in_epoch / steps_per_epoch


def check_epochs(epochs: int, epoch: int, step_in_epoch: int, steps_per_epoch: int, run_dir: Path) -> None:
    """One line when ``epochs`` is fewer than the checkpoint (at ``epoch``, ``step_in_epoch``) has trained.

    An epoch under way counts as begun: a run stopped in its second epoch continues with ``epochs`` ≥ 2.
    """
    done = epochs_done(epoch, step_in_epoch, steps_per_epoch)
    if epochs < done:
        least = math.ceil(done)
        raise SslzooError(
            f"{option('epochs', epochs)} is fewer than the {done:g} epochs {run_dir} has trained; resume with "
            f"{option('epochs', least)} or more, or start a new run with another {option('out')}."
        )


def extension_record(
    previous: dict[str, Any] | None, epochs: int, global_step: int, steps_per_epoch: int
) -> list[dict[str, Any]]:
    """The run's ``extensions`` after resuming with ``epochs``: those of ``previous`` (the saved
    ``train_config.json``), plus one entry when the length changed.

    >>> [(e["from_epochs"], e["to_epochs"], e["at_step"]) for e in extension_record({"train": {"epochs": 1}}, 2, 22, 22)]
    [(1, 2, 22)]
    """
    if previous is None:
        return []
    records = list(previous.get("extensions") or [])
    before = int(previous.get("train", {}).get("epochs", epochs))
    if before == epochs:
        return records
    records.append(
        {
            "from_epochs": before,
            "to_epochs": epochs,
            "at_step": global_step,
            "at_epoch": round(global_step / steps_per_epoch, 6),
            "total_steps": epochs * steps_per_epoch,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "schedule": f"{SCHEDULE_POLICY}: from step {global_step} on, every schedule is that of a run planned "
            f"for {epochs} epochs ({epochs * steps_per_epoch} steps)",
        }
    )
    return records
