"""A callback that draws the run's pictures next to its log: the fitted priors when training starts
(``priors.png``, :mod:`cglight.energy.prior_plot`) and the loss curves at the end of fit.

The picture is written next to the CSV log (``runs/cglight/version_N/loss_curves.png``): one
panel per loss term on a log axis, the training loss per logged step (faint: one batch each) with
its running geometric mean over ``SMOOTH_WINDOW`` logged steps (centred) drawn over it, the validation loss per epoch,
and the priors alone at step 0 (a dotted line across the panel): the loss of the model with its
network switched off on the validation frames, before the first optimiser step. The network has
to bring the curves below that line. Normalised terms are dimensionless (1 = as bad as predicting
zero), others are in their physical units squared.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from cglight.data import mixed
from cglight.energy.prior_plot import plot_priors

log = logging.getLogger("cglight")

SMOOTH_WINDOW = 9
"""Logged training steps in the running geometric mean drawn over the raw training curve (centred)."""
PRIORS_ONLY = "priors_only"
"""Metrics prefix of the priors-only losses at step 0 (``priors_only/<term>`` in ``metrics.csv``)."""
PRIORS_ONLY_LABEL = "priors only (step 0; validation frames, network off)"
NORMALISED_LABEL = "loss / target mean square\n(dimensionless; 1 = predicting zero)"
RAW_LABEL = "loss (physical units²; not normalised)"
PRIORS_PNG = "priors.png"


def csv_logger(trainer: Trainer) -> CSVLogger | None:
    """The trainer's CSV logger (the one that writes ``metrics.csv``), if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)


def log_folder(trainer: Trainer) -> Path | None:
    """Where the run's files go: the CSV logger's folder, else the first logger's; None without a logger."""
    logger = csv_logger(trainer) or (trainer.loggers[0] if trainer.loggers else None)
    return None if logger is None or logger.log_dir is None else Path(logger.log_dir)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _series(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key, "")
        if value not in ("", None) and row.get("step", "") != "":
            y = float(value)
            if math.isfinite(y) and y > 0:
                xs.append(float(row["step"]))
                ys.append(y)
    return xs, ys


def running_geometric_mean(ys: list[float], window: int = SMOOTH_WINDOW) -> np.ndarray:
    """The geometric mean of each value's centred window of ``window`` values (shorter at the ends):
    a running mean on the log axis the curves are drawn on."""
    y, half = np.log(np.asarray(ys, dtype=np.float64)), window // 2
    return np.exp([y[max(0, i - half) : i + half + 1].mean() for i in range(len(y))])


def loss_curves_figure(rows: list[dict[str, str]], terms: list[str], normalised: Mapping[str, bool] | None = None):
    """The matplotlib Figure of :func:`plot_loss_curves` from the CSV log's ``rows`` (on a bare Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    normalised = normalised or {}
    fig = Figure(figsize=(4.8 * len(terms), 4.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(terms), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        xs, ys = _series(rows, f"train/{term}")
        if xs:
            ax.plot(xs, ys, lw=0.7, alpha=0.35, color="tab:blue", label="train (one batch per logged step)")
            window = min(SMOOTH_WINDOW, len(ys))
            ax.plot(xs, running_geometric_mean(ys, window), lw=1.8, color="tab:blue",
                    label=f"train, geometric running mean of {window} logged steps")
        xs, ys = _series(rows, f"val/{term}")
        if xs:
            ax.plot(xs, ys, marker="o", lw=1.5, color="tab:orange", label="validation (per epoch)")
        xs, ys = _series(rows, f"{PRIORS_ONLY}/{term}")
        if xs:
            ax.axhline(ys[0], color="gray", lw=1.0, ls=":")
            ax.plot([xs[0]], [ys[0]], "D", color="gray", ms=6, label=PRIORS_ONLY_LABEL)
        ax.set_title(term)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(NORMALISED_LABEL if normalised.get(term, True) else RAW_LABEL)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_loss_curves(metrics_csv: str | Path, out: str | Path, terms: list[str],
                     normalised: Mapping[str, bool] | None = None) -> Path:
    """Draw ``train/<term>``, ``val/<term>`` and ``priors_only/<term>`` from a Lightning CSV log into
    ``out`` (PNG); ``normalised``: term → whether it is normalised (default: all are)."""
    fig = loss_curves_figure(_read(Path(metrics_csv)), terms, normalised)
    out = Path(out)
    fig.savefig(out, dpi=110)
    return out


def _on_device(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def priors_only_losses(pl_module: LightningModule, batches: Iterable[Mapping], limit: int | None = None) -> dict[str, float]:
    """Each loss term of ``pl_module`` (a :class:`cglight.CGPotential`) with its network's energy
    multiplied by zero (a forward hook: the priors alone), frame-weighted over ``batches`` (at most
    ``limit``), as a validation step computes it; the random generators are left as they were."""
    sums: dict[str, float] = {}
    frames = 0
    handle = pl_module.core.net.register_forward_hook(lambda module, args, output: output * 0)
    was_training = pl_module.training
    devices = [pl_module.device] if pl_module.device.type == "cuda" else []
    try:
        pl_module.eval()
        with torch.random.fork_rng(devices=devices):
            for i, batch in enumerate(batches):
                if limit is not None and i >= limit:
                    break
                _, logs = pl_module.loss(_on_device(batch, pl_module.device), train=False)
                size = mixed.frames(batch)
                for name in pl_module.objective.names:
                    if name in logs:
                        sums[name] = sums.get(name, 0.0) + float(logs[name]) * size
                frames += size
    finally:
        handle.remove()
        pl_module.train(was_training)
    return {name: s / frames for name, s in sums.items()} if frames else {}


class LossCurves(Callback):
    """Write ``<csv log dir>/<filename>`` when training ends (needs the CSV logger), and ``priors.png``
    when it starts.

    Args:
        enabled: draw the loss curves.
        filename: name of the PNG written next to ``metrics.csv``.
        priors_only: before the first optimiser step of a new run, compute every term with the
            network switched off on the validation frames (one extra validation pass) and log it as
            ``priors_only/<term>`` at step 0.
        priors_picture: write ``priors.png`` (the priors fitted in this run against the data) next to the
            log (the CSV logger's folder, else the first logger's) when training starts.
    """

    def __init__(self, enabled: bool = True, filename: str = "loss_curves.png", priors_only: bool = True,
                 priors_picture: bool = True) -> None:
        self.enabled, self.filename, self.priors_only, self.priors_picture = enabled, filename, priors_only, priors_picture

    @rank_zero_only
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.priors_picture:
            draw_priors(trainer, pl_module)
        self._priors_only(trainer, pl_module)

    def _priors_only(self, trainer: Trainer, pl_module: LightningModule) -> None:
        csv = csv_logger(trainer)
        dm = trainer.datamodule
        if not (self.enabled and self.priors_only and csv is not None and trainer.global_step == 0):
            return
        if not (len(getattr(getattr(pl_module, "core", None), "priors", ())) and hasattr(dm, "val_dataloader")):
            return
        limit = trainer.limit_val_batches
        if limit == 0:
            return
        values = priors_only_losses(pl_module, dm.val_dataloader(), limit if isinstance(limit, int) else None)
        if values:
            csv.log_metrics({f"{PRIORS_ONLY}/{k}": v for k, v in values.items()}, step=0)
            log.info("loss of the priors alone (network off) on the validation frames: %s",
                     {k: f"{v:.3g}" for k, v in values.items()})

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled:
            return
        csv = csv_logger(trainer)
        if csv is None:
            return
        csv.save()
        metrics = Path(csv.log_dir) / "metrics.csv"
        objective = getattr(pl_module, "objective", None)
        terms = list(getattr(objective, "names", []))
        normalised = {name: bool(term.normalize) for name, term in objective.items()} if terms else {}
        if metrics.is_file() and terms:
            path = plot_loss_curves(metrics, Path(csv.log_dir) / self.filename, terms, normalised)
            log.info("loss curves: %s", path)


def draw_priors(trainer: Trainer, pl_module: LightningModule) -> Path | None:
    """Write ``priors.png`` into :func:`log_folder` from the priors ``pl_module`` (a :class:`cglight.CGPotential`)
    fitted in this process (none after a resume, or without a logger)."""
    curves = getattr(pl_module, "prior_curves", None)
    folder = log_folder(trainer)
    if not curves or folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = plot_priors(pl_module.core.priors, curves, folder / PRIORS_PNG, pl_module.prior_type_names)
    log.info("fitted priors: %s", path)
    return path
