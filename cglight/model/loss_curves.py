"""A callback that draws the training and validation curves of every loss term at the end of fit.

The picture is written next to the CSV log (``runs/cglight/version_N/loss_curves.png``): one
panel per loss term, normalised values on a log axis, training per logged step and validation
per epoch, so over-fitting the noisy ``hvp_cov`` target shows at a glance.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("cglight")


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


def plot_loss_curves(metrics_csv: str | Path, out: str | Path, terms: list[str]) -> Path:
    """Draw ``train/<term>`` and ``val/<term>`` from a Lightning CSV log into ``out`` (PNG)."""
    # A bare Figure on the Agg canvas: no pyplot state, and the caller's backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _read(Path(metrics_csv))
    fig = Figure(figsize=(4.2 * len(terms), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(terms), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        for stage, style in (("train", dict(lw=0.8, alpha=0.7)), ("val", dict(marker="o", lw=1.5))):
            xs, ys = _series(rows, f"{stage}/{term}")
            if xs:
                ax.plot(xs, ys, label=stage, **style)
        ax.set_title(term)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    axes[0][0].set_ylabel("normalised loss (1 = predicting zero)")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    return out


class LossCurves(Callback):
    """Write ``<csv log dir>/<filename>`` when training ends (needs the CSV logger).

    Args:
        enabled: draw the picture.
        filename: name of the PNG written next to ``metrics.csv``.
    """

    def __init__(self, enabled: bool = True, filename: str = "loss_curves.png") -> None:
        self.enabled, self.filename = enabled, filename

    @rank_zero_only
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled:
            return
        csv_logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is None:
            return
        csv_logger.save()
        metrics = Path(csv_logger.log_dir) / "metrics.csv"
        terms = list(getattr(getattr(pl_module, "objective", None), "names", []))
        if metrics.is_file() and terms:
            path = plot_loss_curves(metrics, Path(csv_logger.log_dir) / self.filename, terms)
            log.info("loss curves: %s", path)
