"""A callback that stops a runaway training with a checkpoint and a message naming the term and step.

``hvp_cov`` uses the model's own forces in its target. With the default ``centered`` estimator the
feedback is of second order and training is stable at every weight measured; with
``estimator: uncentered`` (or a plugin of the same kind) the model's curvature can feed back
into the target and grow without bound once the term's weight passes a limit (docs/hvp.md). The
runaway shows long before the loss turns into NaN: the mean square of the model's HVP
(``train/<name>/model_sq``) grows past that of the whole, noise-dominated target it is matched
to (its calibrated scale), which a model near the PMF Hessian never does (measured ratio ~0.03).

The guard checks, after every training step: any term ``train/<name>`` non-finite (stop at
once), a normalised one above ``max_loss`` for ``patience`` steps in a row, or, for terms whose target
uses the model's forces, ``model_sq / scale`` above ``max_curvature_ratio`` for ``patience``
steps. It then writes ``runaway-step<N>.ckpt`` next to the logs and raises
:class:`~cglight.errors.TrainingDivergedError` (the CLI prints one line and exits with status 2).
"""

from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from cglight.errors import ConfigError, TrainingDivergedError


class RunawayGuard(Callback):
    """Stop training when a loss term runs away.

    Args:
        enabled: watch the training losses.
        max_loss: a normalised term above this (1.0 = as bad as predicting zero) counts as runaway.
        max_curvature_ratio: for terms whose target uses the model's forces (``hvp_cov``), the
            largest allowed ``model_sq / scale`` (model HVP mean square over the target's).
        patience: consecutive steps a limit must be exceeded before stopping.
    """

    def __init__(
        self, enabled: bool = True, max_loss: float = 100.0, max_curvature_ratio: float = 1.0, patience: int = 10
    ) -> None:
        if not (max_loss > 0 and max_curvature_ratio > 0 and patience >= 1):
            raise ConfigError(
                "runaway_guard: need max_loss > 0, max_curvature_ratio > 0, patience >= 1; "
                f"got {max_loss}, {max_curvature_ratio}, {patience}"
            )
        self.enabled, self.max_loss, self.max_curvature_ratio, self.patience = enabled, max_loss, max_curvature_ratio, patience
        self._streak: dict[str, int] = {}

    def _check(self, pl_module: LightningModule, metrics: dict) -> tuple[str, str] | None:
        objective = getattr(pl_module, "objective", None)
        for name, term in objective.items() if objective is not None else []:
            value = metrics.get(f"train/{name}")
            if value is None:  # not computed this step (warming up)
                continue
            value = float(value)
            if not math.isfinite(value):
                return name, f"its normalised loss is {value}"
            reasons = []
            if term.normalize and value > self.max_loss:  # unnormalised terms log physical units
                reasons.append(f"its normalised loss {value:.3g} exceeds max_loss={self.max_loss:g}")
            model_sq = metrics.get(f"train/{name}/model_sq")
            if term.needs_fitted_forces and model_sq is not None and term.calibrated:
                ratio = float(model_sq) / float(term.scale)
                if not ratio <= self.max_curvature_ratio:
                    reasons.append(
                        f"the model's HVP mean square is {ratio:.3g}× the target's calibrated second moment "
                        f"(max_curvature_ratio={self.max_curvature_ratio:g}): its curvature is feeding back into its own target"
                    )
            self._streak[name] = self._streak.get(name, 0) + 1 if reasons else 0
            if self._streak[name] >= self.patience:
                return name, "; ".join(reasons) + f" for {self.patience} steps in a row"
        return None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if not self.enabled:
            return
        found = self._check(pl_module, trainer.callback_metrics)
        # every process stops together (the training metrics are per process under DDP)
        if not trainer.strategy.reduce_boolean_decision(found is not None, all=False):
            return
        name, reason = found or ("(another process)", "detected on another process")
        step = trainer.global_step
        path = Path(trainer.log_dir or trainer.default_root_dir) / f"runaway-step{step}.ckpt"
        trainer.save_checkpoint(path)
        raise TrainingDivergedError(
            f"training stopped at step {step}: loss '{name}' ran away ({reason}). Checkpoint: {path}. "
            f"Lower model.losses.{name}.weight, use its default estimator 'centered', or give it warmup_steps/ramp_steps."
        )
