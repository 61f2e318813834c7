"""What a run leaves in its folder besides the metrics: the resolved configuration, the checkpoint it resumes from,
and the exported encoder (``RUN/encoder/``, zoo format). A mixin of :class:`trainers.engine.Trainer`.

Under ``torchrun`` the run folder is rank 0's: rank 0 decides whether there is a checkpoint to continue and sends it
whole to the other ranks, so their ``--out`` may be an empty folder on another node's disk (no shared file system).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from trainers import distributed as dist_utils
from trainers.checkpoint import git_commit, rng_state, set_rng_state
from trainers.config import CHECKPOINT, SKIPPED_FILES
from trainers.safety import check_finite, load_checkpoint
from zoo.atomic import atomic_file
from zoo.disk_full import DiskFullError
from zoo.errors import SslzooError


class RunFiles:
    """``train_config.json``, ``checkpoints/last.pt`` and ``encoder/`` of the :class:`~trainers.engine.Trainer`."""

    def _config_record(self) -> dict[str, Any]:
        """The resolved configuration, as written to ``train_config.json`` and into checkpoints and exports."""
        ctx = self.ctx
        return {
            "train": dataclasses.asdict(self.cfg),
            "method": dataclasses.asdict(self.method_cfg),
            "resolved": {
                "image_size": ctx.image_size,
                "in_chans": ctx.in_chans,
                "mean": ctx.mean,
                "std": ctx.std,
                "views": [dataclasses.asdict(s) for s in self.specs],
                "augmentations": self.method.describe_views(),
                "eval_view": dataclasses.asdict(ctx.eval_spec),
                "train_images": len(ctx.train),
                "unreadable_files": {u.source: len(u) for u in self.unreadable},
                "workers": ctx.workers,
                "world_size": ctx.world_size,
                "amp_dtype": dist_utils.dtype_name(self.amp_dtype),
            },
        }

    def _write_skipped_files(self) -> None:
        """``RUN/skipped_files.txt``: every image file the datasets left out and why (none: no file)."""
        import sys

        from zoo.atomic import write_lines_atomic

        path = self.run_dir / SKIPPED_FILES
        if not self.unreadable:
            path.unlink(missing_ok=True)  # a resumed run whose folder was fixed since
            return
        write_lines_atomic(path, [line for u in self.unreadable for line in u.lines()])
        for found in self.unreadable:
            print(found.note(path), file=sys.stderr)

    def _public_config(self) -> dict[str, Any]:
        """The config an exported encoder carries (its card shows it): options, and the augmentations as applied."""
        return {
            "train": dataclasses.asdict(self.cfg),
            "method": dataclasses.asdict(self.method_cfg),
            "augmentations": self.method.describe_views(),
        }

    def _agreed_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint every rank continues from, as rank 0 finds it in its run folder (``None``: a new run).

        ``--resume`` and an elastic restart (``torchrun --max-restarts``) continue it; a new run refuses a folder
        holding one. Every rank gets rank 0's verdict and checkpoint, or the same one-line error.
        """
        path = self.run_dir / CHECKPOINT
        present = dist_utils.all_gather_object(path.is_file())
        verdict: tuple[str, Any] = ("new", None)
        if self.rank == 0:
            try:
                verdict = ("resume", self._checkpoint_to_resume(path, present))
            except SslzooError as exc:
                verdict = ("error", str(exc))
        kind, value = dist_utils.broadcast_object(verdict)
        if kind == "error":
            raise SslzooError(value)
        return value

    def _checkpoint_to_resume(self, path: Path, present: list[bool]) -> dict[str, Any] | None:
        resume = self.cfg.resume or dist_utils.elastic_restart()
        if present[0]:
            if not resume:
                raise SslzooError(
                    f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out."
                )
            return load_checkpoint(path)
        others = [str(r) for r, there in enumerate(present) if there]
        if self.cfg.resume and others:
            raise SslzooError(
                f"--resume: rank 0 finds no checkpoint in {self.run_dir}, but rank {', '.join(others)} does; rank 0 "
                "reads and writes the run folder: start rank 0 on the node that holds it (or copy it there)."
            )
        if self.cfg.resume and self.strict_resume:
            raise SslzooError(
                f"--resume: {self.run_dir} holds no checkpoint ({CHECKPOINT}) to continue; check --out, or drop "
                "--resume to start a new run."
            )
        return None

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.method.load_state_dict(ckpt["method"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.global_step = int(ckpt["global_step"])
        self.start_epoch, self.start_pos = int(ckpt["epoch"]), int(ckpt["step_in_epoch"])
        self.order = ckpt.get("order")
        self.skipped_total = int(ckpt.get("skipped_images", 0))
        set_rng_state(ckpt["rng"])
        self.ctx.global_step = self.global_step

    def _save_checkpoint(self, epoch: int, pos: int, order: torch.Tensor | None) -> None:
        # The loss can stay finite while a BatchNorm running variance overflows, on one rank only (its own batch
        # statistics): every rank checks its weights and buffers, and all stop together with the same line.
        bad = dist_utils.all_gather_object(check_finite(self.method))
        where = [(r, names) for r, names in enumerate(bad) if names]
        if where:
            ranks = ", ".join(str(r) for r, _ in where)
            on = f" on rank {ranks}" if self.world > 1 else ""
            raise SslzooError(
                f"the weights became NaN or infinite by step {self.global_step}{on} ({', '.join(where[0][1][:3])}); "
                f"{self._kept_checkpoint()}. Lower --lr, set --grad-clip, or use --amp bf16/none."
            )
        failure = None
        if self.ctx.is_main:
            try:
                self._write_checkpoint(epoch, pos, order)
                self.checkpointed = self.global_step
                self._export(epoch, pos)
            except DiskFullError as exc:  # the previous checkpoint and export are still in place
                failure = str(exc.with_advice(self._after_disk_full()))
        # Rank 0's disk is the run's: every rank stops together with its line (not at the next collective).
        failure = dist_utils.broadcast_object(failure)
        if failure is not None:
            raise SslzooError(failure)
        self.checkpointed = self.global_step

    def _after_disk_full(self) -> str:
        """How to go on after a full disk stopped the run: from the last good checkpoint, if there is one."""
        if getattr(self, "checkpointed", None) is None:
            return "No checkpoint was written yet: free space and run the command again."
        return f"{self._kept_checkpoint().capitalize()}: free space, then continue with --resume."

    def _write_checkpoint(self, epoch: int, pos: int, order: torch.Tensor | None) -> None:
        state = {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "global_step": self.global_step,
            "epoch": epoch,
            "step_in_epoch": pos,
            "order": order,
            "skipped_images": self.skipped_total,
            "rng": rng_state(),
            "amp_dtype": dist_utils.dtype_name(self.amp_dtype),  # what --amp auto resolved to: kept on resume
            "config": self._public_config(),
        }
        # Through a Python file: a full disk then surfaces as OSError(ENOSPC) in the chain (torch.save to a path
        # reports it as an opaque 'unexpected pos'); zoo.atomic keeps the previous checkpoint and says so in one line.
        with atomic_file(self.run_dir / CHECKPOINT) as tmp, tmp.open("wb") as f:
            torch.save(state, f)

    def _export(self, epoch: int, pos: int) -> Path:
        import zoo

        ctx = self.ctx
        encoder = self.method.encoder()
        pretrained_cfg = {
            "input_size": (ctx.in_chans, ctx.image_size, ctx.image_size),
            "mean": ctx.mean,
            "std": ctx.std,
            "crop_pct": ctx.eval_spec.crop_pct,
            "interpolation": ctx.eval_spec.interpolation,
            "num_classes": 0,
        }
        metadata = {
            "method": self.cfg.method,
            "dataset": self.cfg.dataset,
            "arch": self.cfg.arch,
            "epochs_done": epoch + pos / ctx.steps_per_epoch,
            "global_step": self.global_step,
            "seed": self.cfg.seed,
            "commit": git_commit(),
            "config": self._public_config(),
        }
        model_args = self.method.encoder_model_args(
            {k: v for k, v in ctx.model_args().items() if k != "num_classes"}
        )
        return zoo.save_encoder(
            encoder,
            self.run_dir / "encoder",
            model_args=model_args,
            pretrained_cfg=pretrained_cfg,
            metadata=metadata,
        )
