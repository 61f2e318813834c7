"""``metrics.jsonl`` (one JSON row per logged step) and the ``curves.png`` drawn from it, on rank 0 only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.atomic import write_lines_atomic

__all__ = ["MetricsLog"]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``; a line a kill cut in half (appends are not atomic) is dropped."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class MetricsLog:
    """``metrics.jsonl`` rows (rank 0 only) and the ``curves.png`` drawn from them."""

    def __init__(self, run_dir: Path, enabled: bool, logger: str = "none", resume: bool = False) -> None:
        from trainers.loggers import make_logger

        self.path = run_dir / "metrics.jsonl"
        self.png = run_dir / "curves.png"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        # A live view of the same rows where the user already watches runs (rank 0 only).
        self.logger = make_logger(logger, run_dir, resume) if enabled else None

    def restore(self, upto_step: int) -> None:
        """Keep the rows of steps a resumed run has already done; drop those the killed run did after."""
        if not self.path.is_file():
            return
        self.rows = [r for r in _read_rows(self.path) if r.get("step", 0) <= upto_step]
        if self.enabled:
            self._rewrite()

    def _rewrite(self) -> None:
        write_lines_atomic(self.path, (json.dumps(r) + "\n" for r in self.rows))

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if self.logger is not None:
            self.logger.log(row)

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
            self.logger = None

    def plot(self, title: str) -> None:
        if not self.enabled or not self.rows:
            return
        from trainers.curves import plot_curves

        plot_curves(self.rows, self.png, title)
