"""The pictures of an evaluation (PNG, drawn on bare Agg figures).

Each ``*_figure`` function builds the matplotlib Figure (what the tests inspect); the function of
the same name without it writes the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cglight.evaluate.bootstrap import blocks

REF, MODEL = dict(color="black", label="reference"), dict(color="tab:red", label="model")
BAND = (5.0, 95.0)
"""Percentiles of the block-bootstrap free energies drawn as a band around each curve."""
EMPTY = 1e6
"""A bootstrap draw's free energy in a bin it left empty (kcal/mol; beyond any axis: the band runs off the top)."""


def _figure(width: float, height: float, ncols: int, nrows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _clip(x: np.ndarray, edges: Sequence[np.ndarray]) -> np.ndarray:
    """Values outside ``edges`` moved into the outermost bin on their side (the KL's overflow bins)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    lo = [(e[0] + e[1]) / 2 for e in edges]
    hi = [(e[-2] + e[-1]) / 2 for e in edges]
    return np.clip(x, lo, hi)


def free_energy(x: np.ndarray, edges: Sequence[np.ndarray], kt: float) -> np.ndarray:
    """``−kT ln p`` per bin of ``edges`` (equal widths; outliers counted in the end bins), shifted to a
    minimum of zero; ``inf`` in an empty bin."""
    counts, _ = np.histogramdd(_clip(x, edges), bins=list(edges))
    with np.errstate(divide="ignore"):
        f = -kt * np.log(counts / counts.sum())
    finite = np.isfinite(f)
    return f - f[finite].min() if finite.any() else f


def bootstrap_free_energy(trajectories: Sequence[np.ndarray], block: int, edges: np.ndarray, kt: float, draws: int,
                          seed: int) -> np.ndarray:
    """``[2, bins]``: the ``BAND`` percentiles of the 1-D free energy over ``draws`` block-bootstrap
    resamples (blocks of ``block`` frames, drawn with replacement as the evaluation's intervals are);
    a bin a draw left empty counts as ``EMPTY``."""
    rng = np.random.default_rng(seed)
    parts = blocks(trajectories, block)
    curves = []
    for _ in range(draws):
        x = np.concatenate([parts[i] for i in rng.integers(0, len(parts), len(parts))])
        curves.append(np.minimum(free_energy(x, [edges], kt), EMPTY))
    return np.percentile(np.asarray(curves), BAND, axis=0)


def free_energy_1d_figure(ref: Sequence[np.ndarray], model: Sequence[np.ndarray], edges: np.ndarray, kt: float, label: str,
                          title: str, block: tuple[int, int], draws: int, seed: int = 0):
    """Free energy (kcal/mol) along one coordinate, model over reference, on ``edges`` (the KL's
    bins: the first and last are its overflow bins, shaded), each curve in its ``BAND`` percentile
    band over ``draws`` block-bootstrap resamples (``block``: frames per block of the reference and
    of the model). ``ref``, ``model``: trajectories of the coordinate."""
    fig, ax = _figure(5.6, 4.0, 1)
    ax = ax[0][0]
    mid = 0.5 * (edges[1:] + edges[:-1])
    shown = []
    for trajs, b, style in ((ref, block[0], REF), (model, block[1], MODEL)):
        x = np.concatenate(trajs)
        f = free_energy(x, [edges], kt)
        low, high = bootstrap_free_energy(trajs, b, edges, kt, draws, seed)
        ax.fill_between(mid, low, high, color=style["color"], alpha=0.18, lw=0,
                        label=f"{style['label']}: {BAND[0]:.0f}–{BAND[1]:.0f} % of {draws} block-bootstrap draws")
        ax.plot(mid, np.where(np.isfinite(f), f, np.nan), marker=".", ms=3, color=style["color"],
                label=f"{style['label']} ({len(x)} frames)")
        shown.append(f[np.isfinite(f)])
    top = max(float(s.max()) for s in shown if len(s))
    ax.set_ylim(-0.05 * max(top, 1.0), 1.15 * max(top, 1.0))
    width = edges[1] - edges[0]
    for a, b in ((edges[0], edges[1]), (edges[-2], edges[-1])):
        ax.axvspan(a, b, color="gray", alpha=0.15, lw=0)
    ax.set_xlim(edges[0] - 0.5 * width, edges[-1] + 0.5 * width)
    ax.set_xlabel(label)
    ax.set_ylabel("free energy (kcal/mol)")
    ax.set_title(f"{title}: {len(edges) - 3} bins over the reference's range\n+ an overflow bin at each end (grey)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def free_energy_1d(path: Path, *args, **kwargs) -> Path:
    """:func:`free_energy_1d_figure` written to ``path``."""
    free_energy_1d_figure(*args, **kwargs).savefig(path, dpi=110)
    return path


def free_energy_2d_figure(ref: np.ndarray, model: np.ndarray, kt: float, labels: tuple[str, str], title: str,
                          edges: list[np.ndarray] | None = None):
    """Side-by-side 2-D free-energy surfaces on the same bins (``edges``, values outside them counted in
    the outermost bins; default: 40 per axis over both ensembles' range), one colour scale for both
    from 0 to the highest finite free energy of either; empty bins left blank."""
    if edges is None:
        both = np.concatenate([ref, model])
        edges = [np.linspace(both[:, d].min(), both[:, d].max(), 41) for d in range(2)]
    fig, axes = _figure(9.5, 3.9, 2)
    surfaces = []
    for x in (ref, model):
        counts, _ = np.histogramdd(_clip(x, edges), bins=list(edges))
        with np.errstate(divide="ignore"):
            surfaces.append(-kt * np.log(counts / counts.sum()))
    low = min(np.nanmin(f[np.isfinite(f)]) for f in surfaces if np.isfinite(f).any())
    top = max(np.max(f[np.isfinite(f)]) for f in surfaces if np.isfinite(f).any()) - low
    for ax, f, name, x in zip(axes[0], surfaces, ("reference", "model"), (ref, model), strict=True):
        shown = np.where(np.isfinite(f), f - low, np.nan)
        im = ax.pcolormesh(edges[0], edges[1], shown.T, vmin=0, vmax=top, cmap="viridis")
        ax.set_title(f"{title}: {name} ({len(x)} frames)", fontsize=9)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    fig.colorbar(im, ax=axes[0].tolist(), label="free energy (kcal/mol; blank: no frames)")
    return fig


def free_energy_2d(path: Path, *args, **kwargs) -> Path:
    """:func:`free_energy_2d_figure` written to ``path``."""
    free_energy_2d_figure(*args, **kwargs).savefig(path, dpi=110)
    return path


def distributions_figure(panels: list[tuple[str, str, np.ndarray, np.ndarray]]):
    """Histograms (probability densities) of reference and model values, one panel per quantity:
    ``(name, unit, reference values, model values)``, e.g. ``("bond C0-N1", "Å", ...)``."""
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    fig, axes = _figure(3.3 * cols, 2.8 * rows, cols, rows)
    for ax, (name, unit, ref, model) in zip(axes.flat, panels, strict=False):
        both = np.concatenate([ref, model])
        edges = np.linspace(both.min(), both.max(), 50)
        ax.hist(ref, bins=edges, density=True, histtype="step", color=REF["color"], label=f"reference ({len(ref)})")
        ax.hist(model, bins=edges, density=True, histtype="step", color=MODEL["color"], label=f"model ({len(model)})")
        ax.set_title(name, fontsize=9)
        quantity = {"bond": "bond length", "angle": "bond angle"}.get(name.split()[0], name.split()[0])
        ax.set_xlabel(f"{quantity} ({unit})", fontsize=8)
        ax.set_ylabel(f"probability density (1/{unit})", fontsize=8)
        ax.legend(fontsize=6, title="frames", title_fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return fig


def distributions(path: Path, panels: list[tuple[str, str, np.ndarray, np.ndarray]]) -> Path:
    """:func:`distributions_figure` written to ``path``."""
    distributions_figure(panels).savefig(path, dpi=110)
    return path
