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
steps. It then writes ``runaway-step<N>.ckpt`` next to the logs, if the weights are still finite
(a non-finite loss has usually made them NaN by the optimiser step: then no file is written and
the message names the run's last checkpoint, ``last.ckpt`` of the last epoch end), and raises
:class:`~cglight.errors.TrainingDivergedError` (the CLI prints one line and exits with status 2)
with advice that applies to the term: its weight and schedule, ``model.lr`` for a non-finite
loss, and ``estimator: centered`` only for ``hvp_cov`` with the uncentered estimator.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from cglight.errors import ConfigError, TrainingDivergedError
from cglight.losses.base import LossTerm
from cglight.losses.hessian import CovarianceHVPLoss
from cglight.training.last_checkpoint import LastCheckpoint


def advice(name: str, term: LossTerm | None, finite: bool) -> str:
    """What to change for a runaway of term ``name``: only settings that exist for that term."""
    tips = [f"lower model.losses.{name}.weight", f"give it model.losses.{name}.warmup_steps/ramp_steps"]
    if isinstance(term, CovarianceHVPLoss) and term.estimator != "centered":
        tips.insert(1, f"set model.losses.{name}.estimator: centered (its target then errs only to second order)")
    if not finite:
        tips.append("lower model.lr")
    return "To go on: " + ", ".join(tips[:-1]) + f" or {tips[-1]}, and train again."


def _finite(module: LightningModule) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


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
            model_sq = metrics.get(f"train/{name}/{term.MODEL_SQ}")
            if term.needs_fitted_forces and model_sq is not None and term.calibrated:
                ratio = term.scale_ratio(float(model_sq))
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
        objective = getattr(pl_module, "objective", None)
        term = dict(objective.items()).get(name) if objective is not None else None
        if _finite(pl_module):
            path = Path(trainer.log_dir or trainer.default_root_dir) / f"runaway-step{step}.ckpt"
            trainer.save_checkpoint(path)
            saved = f"Checkpoint (finite weights, step {step}): {path}."
        else:
            saved = f"The weights are no longer finite, so none was saved; {self._last_finite(trainer)}."
        raise TrainingDivergedError(
            f"training stopped at step {step}: loss '{name}' ran away ({reason}). {saved} "
            f"{advice(name, term, finite=math.isfinite(float(trainer.callback_metrics.get(f'train/{name}', 0.0))))}"
        )

    @staticmethod
    def _last_finite(trainer: Trainer) -> str:
        last = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint) and c.last_path is not None), None)
        if last is None:
            return "no checkpoint of this run was written before (last_checkpoint writes one at every epoch end)"
        return f"the run's last checkpoint is {last.last_path} (step {last.last_step}, before the loss turned non-finite)"
