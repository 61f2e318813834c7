"""What a run leaves in its folder besides the metrics: the resolved configuration, the checkpoint it resumes from,
and the exported encoder (``RUN/encoder/``, zoo format). A mixin of :class:`trainers.engine.Trainer`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from trainers.checkpoint import git_commit, rng_state, set_rng_state
from trainers.config import CHECKPOINT, SKIPPED_FILES
from trainers.safety import check_finite
from zoo.atomic import atomic_file
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
        if not self.ctx.is_main:
            return
        bad = check_finite(self.method)
        if (
            bad
        ):  # the loss can stay finite while a BatchNorm running variance overflows: keep the last good one
            ckpt = self.run_dir / CHECKPOINT
            kept = (
                f"the last finite checkpoint {ckpt} is kept"
                if ckpt.is_file()
                else "no checkpoint was written"
            )
            raise SslzooError(
                f"the weights became NaN or infinite by step {self.global_step} ({', '.join(bad[:3])}); {kept}. "
                "Lower --lr, set --grad-clip, or use --amp bf16/none."
            )
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
            "config": self._public_config(),
        }
        with atomic_file(self.run_dir / CHECKPOINT) as tmp:
            torch.save(state, tmp)
        self._export(epoch, pos)

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
