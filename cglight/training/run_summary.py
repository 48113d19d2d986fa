"""A callback that ends ``cglight fit`` with a summary: where the checkpoints are, the final validation
losses with their units, and the command that simulates the model."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from cglight.newest_checkpoint import DEFAULT_RUNS

log = logging.getLogger("cglight")

def losses_line(metrics: dict[str, float], units: dict[str, str], stage: str = "val") -> str | None:
    """``<stage>`` losses of every term in ``units``: the normalised value (1 = predicting zero) and the raw one with its unit."""
    parts = []
    for name, unit in units.items():
        value = metrics.get(f"{stage}/{name}")
        if value is None:
            continue
        raw = metrics.get(f"{stage}/{name}_raw")
        parts.append(f"{name} {value:.3g}" + (f" (raw {raw:.3g} {unit})" if raw is not None else ""))
    if not parts:
        return None
    total = metrics.get(f"{stage}_loss")
    tail = f"; {stage}_loss {total:.3g} (weighted sum)" if total is not None else ""
    return f"final validation losses, normalised (1 = as bad as predicting zero): {', '.join(parts)}{tail}"


def simulate_command(checkpoint: Path, data: str, systems: list[str]) -> str:
    """The ``cglight simulate`` command for ``checkpoint`` (with the system's config when there is one here)."""
    config = Path("configs") / "simulate" / f"{systems[0]}.yaml" if len(systems) == 1 else None
    if config is not None and config.is_file():
        return f"cglight simulate --config {config} --checkpoint {checkpoint} --starts {data}"
    return f"cglight simulate --checkpoint {checkpoint} --starts {data} --out simulations/{checkpoint.parents[1].name}"


RUN_FILES = ("metrics.csv", "loss_curves.png", "priors.png", "config.yaml")
"""What a run directory may hold that a person reads (each listed when it is there)."""


def fit_summary(last: Path | None, best: str, best_score: float | None, run_dir: str | None, val: str | None,
                data: str, systems: list[str]) -> list[str]:
    """The closing lines of ``cglight fit``."""
    lines = []
    found = [name for name in RUN_FILES if run_dir and (Path(run_dir) / name).is_file()]
    if found:
        lines.append(f"run directory {run_dir}: {', '.join(found)}")
    kept = []
    if last is not None:
        kept.append(f"{last} (the last step)")
    if best:
        score = f", val_loss {best_score:.3g}" if best_score is not None and math.isfinite(best_score) else ""
        kept.append(f"{best} (the lowest val_loss{score})")
    if kept:
        lines.append("checkpoints: " + "; ".join(kept))
    if val:
        lines.append(val)
    chosen = last or (Path(best) if best else None)
    if chosen is not None:
        latest = ""
        if chosen.name == "last.ckpt" and Path(chosen).resolve().is_relative_to(DEFAULT_RUNS.resolve()):
            latest = " (or `checkpoint: latest`, as configs/simulate/*.yaml have it: the newest last.ckpt, this one)"
        lines.append(f"next: {simulate_command(chosen, data, systems)}{latest}")
    return lines


class RunSummary(Callback):
    """At the end of ``cglight fit``: the checkpoints, the final validation losses and the next command.

    Args:
        enabled: log the summary.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled:
            return
        log_dir = trainer.log_dir  # a collective under DDP (rank 0 broadcasts it): every rank asks
        if not trainer.is_global_zero:
            return
        from cglight.training.last_checkpoint import LastCheckpoint

        last = next((c.last_path for c in trainer.callbacks if isinstance(c, LastCheckpoint) and c.last_path), None)
        best_cb = trainer.checkpoint_callback
        best = getattr(best_cb, "best_model_path", "") or ""
        score = getattr(best_cb, "best_model_score", None)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        units = {name: term.raw_unit for name, term in pl_module.objective.items()}
        datamodule = trainer.datamodule
        data = str(getattr(datamodule, "path", "DATA"))
        systems = list(getattr(datamodule, "systems", None) or [])
        lines = fit_summary(last, best, None if score is None else float(score), log_dir,
                            losses_line(metrics, units), data, systems)
        for line in lines:
            log.info("%s", line)
