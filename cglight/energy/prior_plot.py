"""A picture of every fitted prior against the data's histogram free energy (``priors.png``)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from cglight.energy.prior_fit import FitCurve

UNITS = {"bonds": "r (Å)", "angles": "θ (rad)", "dihedrals": "φ (rad)", "repulsion": "r (Å)"}


def plot_priors(priors: nn.ModuleDict, curves: list[FitCurve], out: str | Path) -> Path:
    """One panel per prior kind and bead-type tuple: the Jacobian-corrected histogram free energy
    (dots) and the fitted prior (line), both shifted to a minimum of zero over the occupied bins."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(4, max(1, len(curves)))
    rows = max(1, math.ceil(len(curves) / cols))
    fig = Figure(figsize=(3.4 * cols, 2.8 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax, curve in zip(axes, curves, strict=False):
        term = priors[curve.kind]
        row = term.table()[curve.key].to(torch.float64)
        occupied = ~torch.isnan(curve.free_energy)
        lo, hi = float(curve.x[occupied].min()), float(curve.x[occupied].max())
        pad = 0.1 * (hi - lo) if curve.kind != "dihedrals" else 0.0
        grid = torch.linspace(lo - pad, hi + pad, 200, dtype=torch.float64)
        prior = term.curve(row, grid)
        shift = float(term.curve(row, curve.x[occupied]).min())
        data = curve.free_energy - curve.free_energy[occupied].min()
        ax.plot(curve.x[occupied].numpy(), data[occupied].numpy(), "o", ms=3, label="data: −kT ln(p/J)")
        ax.plot(grid.numpy(), (prior - shift).numpy(), "-", lw=1.5, label="fitted prior")
        top = float(data[occupied].max())
        ax.set_ylim(-0.1 * max(top, 1.0), 1.3 * max(top, 1.0))
        ax.set_title(f"{curve.kind} {curve.key} ({curve.samples} samples)", fontsize=9)
        ax.set_xlabel(UNITS[curve.kind])
        ax.grid(alpha=0.3)
    for ax in axes[len(curves):]:
        ax.axis("off")
    axes[0].set_ylabel("kcal/mol")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    return out
