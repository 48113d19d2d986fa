"""A picture of every fitted prior against the data's histogram free energy (``priors.png``).

One panel per prior kind and bead-type tuple, named by the beads' names (``C-N-CA-C`` is φ and
``N-CA-C-N`` is ψ in a backbone map), both curves in kcal/mol and shifted to a minimum of zero over
the occupied bins. Bonds, angles and dihedrals are fits to the data; the repulsion is not: it is a
lower wall ``k_B T (σ/r)^p`` with σ a low quantile of the pair's distances, which only keeps beads
from overlapping, so the data (shaped by the other terms) lie above it away from σ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from cglight.energy.prior_fit import FitCurve

UNITS = {"bonds": "bond length r (Å)", "angles": "bond angle θ (rad)", "dihedrals": "dihedral angle (rad)",
         "repulsion": "pair distance r (Å)"}
Y_LABEL = "free energy (kcal/mol)"
DATA_LABELS = {"bonds": "data: −k_BT ln(p(r)/r²)", "angles": "data: −k_BT ln(p(θ)/sin θ)",
               "dihedrals": "data: −k_BT ln p", "repulsion": "data: −k_BT ln(p(r)/r²)"}
"""The data's Boltzmann-inverted histogram, its Jacobian divided out."""
FIT_LABEL = "fitted prior"
WALL_LABEL = "prior: wall k_BT (σ/r)^p"


def bead_type_names(systems: Mapping[str, object]) -> dict[int, str]:
    """Bead type → the name(s) the systems give beads of that type (``C`` or ``CB/CA`` when several);
    systems without ``bead_names`` add nothing."""
    names: dict[int, list[str]] = {}
    for system in systems.values():
        for t, n in zip(getattr(system, "bead_types", []), getattr(system, "bead_names", None) or [], strict=False):
            seen = names.setdefault(int(t), [])
            if n not in seen:
                seen.append(n)
    return {t: "/".join(n) for t, n in names.items()}


def term_name(key: tuple[int, ...], type_names: Mapping[int, str]) -> str:
    """``C-N-CA-C (types 3-1-2-3)``, or ``types (3, 1, 2, 3)`` when a type has no name."""
    types = "-".join(str(t) for t in key)
    if all(t in type_names for t in key):
        return f"{'-'.join(type_names[t] for t in key)} (types {types})"
    return f"types {types}"


def _limits(*values: torch.Tensor) -> tuple[float, float]:
    finite = torch.cat([v[torch.isfinite(v)].reshape(-1) for v in values])
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.08 * max(hi - lo, 1.0)
    return lo - pad, hi + pad


def _panel(ax, term: nn.Module, curve: FitCurve, type_names: Mapping[int, str]) -> None:
    row = term.table()[curve.key].to(torch.float64)
    occupied = ~torch.isnan(curve.free_energy)
    x = curve.x[occupied]
    lo, hi = float(x.min()), float(x.max())
    lo, hi = (lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)) if curve.kind != "dihedrals" else (-math.pi, math.pi)
    grid = torch.linspace(lo, hi, 200, dtype=torch.float64)
    # the repulsion is drawn as it is (k_BT at σ, 0 far away); the fits share the data's zero
    shift = 0.0 if curve.kind == "repulsion" else float(term.curve(row, x).min())
    prior = term.curve(row, grid) - shift
    data = (curve.free_energy - curve.free_energy[occupied].min())[occupied]
    ax.plot(x.numpy(), data.numpy(), "o", ms=3, label=DATA_LABELS[curve.kind])
    ax.plot(grid.numpy(), prior.numpy(), "-", lw=1.5, label=WALL_LABEL if curve.kind == "repulsion" else FIT_LABEL)
    if curve.kind == "dihedrals":  # the whole fitted curve and every data point
        ax.set_ylim(*_limits(data, prior))
    else:  # the data's range: a parabola or a wall leaves it steeply outside
        top = max(float(data.max()), 1.0)
        ax.set_ylim(-0.1 * top, 1.3 * top)
    title = f"{curve.kind} {term_name(curve.key, type_names)}\n{curve.samples} samples"
    if curve.kind == "repulsion":
        sigma, p = float(row[1]), float(term.config.exponent)
        ax.axvline(sigma, color="gray", ls=":", lw=1)
        title = (f"repulsion {term_name(curve.key, type_names)}, {curve.samples} samples\n"
                 f"not a fit to the data (shaped by the other terms): a lower wall\n"
                 f"σ = {sigma:.2f} Å (the {term.config.quantile:g} quantile of r, dotted), p = {p:g}")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(UNITS[curve.kind])
    ax.set_ylabel(Y_LABEL)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def priors_figure(priors: nn.ModuleDict, curves: list[FitCurve], type_names: Mapping[int, str] | None = None):
    """The matplotlib Figure of :func:`plot_priors` (on a bare Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(4, max(1, len(curves)))
    rows = max(1, math.ceil(len(curves) / cols))
    fig = Figure(figsize=(3.9 * cols, 3.5 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    for ax, curve in zip(axes, curves, strict=False):
        _panel(ax, priors[curve.kind], curve, type_names or {})
    for ax in axes[len(curves):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_priors(priors: nn.ModuleDict, curves: list[FitCurve], out: str | Path,
                type_names: Mapping[int, str] | None = None) -> Path:
    """One panel per prior kind and bead-type tuple (named by ``type_names``, bead type → name, see
    :func:`bead_type_names`): the Jacobian-corrected histogram free energy (dots) and the fitted prior
    (line), both shifted to a minimum of zero over the occupied bins."""
    fig = priors_figure(priors, curves, type_names)
    out = Path(out)
    fig.savefig(out, dpi=100)
    return out
