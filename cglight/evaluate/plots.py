"""The pictures of an evaluation (PNG, drawn on bare Agg figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REF, MODEL = dict(color="black", label="reference"), dict(color="tab:red", label="model")


def _figure(width: float, height: float, ncols: int, nrows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _free_energy(x: np.ndarray, edges: np.ndarray, kt: float) -> np.ndarray:
    p, _ = np.histogram(x, bins=edges, density=True)
    with np.errstate(divide="ignore"):
        f = -kt * np.log(p)
    return f - np.nanmin(f[np.isfinite(f)]) if np.isfinite(f).any() else f


def free_energy_1d(path: Path, ref: np.ndarray, model: np.ndarray, kt: float, label: str, title: str) -> Path:
    """Free energy (kcal/mol) along one coordinate, model over reference."""
    fig, ax = _figure(5, 3.6, 1)
    ax = ax[0][0]
    both = np.concatenate([ref, model])
    edges = np.linspace(both.min(), both.max(), 61)
    mid = 0.5 * (edges[1:] + edges[:-1])
    for x, style in ((ref, REF), (model, MODEL)):
        ax.plot(mid, _free_energy(x, edges, kt), **style)
    ax.set_xlabel(label)
    ax.set_ylabel("free energy (kcal/mol)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    return path


def free_energy_2d(path: Path, ref: np.ndarray, model: np.ndarray, kt: float, labels: tuple[str, str], title: str,
                   edges: list[np.ndarray] | None = None) -> Path:
    """Side-by-side 2-D free-energy surfaces (same bins, same colour scale)."""
    if edges is None:
        both = np.concatenate([ref, model])
        edges = [np.linspace(both[:, d].min(), both[:, d].max(), 41) for d in range(2)]
    fig, axes = _figure(9, 3.8, 2)
    surfaces = []
    for x in (ref, model):
        h, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=edges, density=True)
        with np.errstate(divide="ignore"):
            f = -kt * np.log(h)
        surfaces.append(f)
    low = min(np.nanmin(f[np.isfinite(f)]) for f in surfaces if np.isfinite(f).any())
    top = 6.0  # kcal/mol shown above the minimum
    for ax, f, name in zip(axes[0], surfaces, ("reference", "model"), strict=True):
        im = ax.pcolormesh(edges[0], edges[1], (f - low).T, vmin=0, vmax=top, cmap="viridis")
        ax.set_title(f"{title}: {name}")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    fig.colorbar(im, ax=axes[0].tolist(), label="free energy (kcal/mol)")
    fig.savefig(path, dpi=110)
    return path


def distributions(path: Path, panels: list[tuple[str, np.ndarray, np.ndarray]]) -> Path:
    """Histograms of reference and model values, one panel per quantity (bonds, angles)."""
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    fig, axes = _figure(3.2 * cols, 2.6 * rows, cols, rows)
    for ax, (name, ref, model) in zip(axes.flat, panels, strict=False):
        both = np.concatenate([ref, model])
        edges = np.linspace(both.min(), both.max(), 50)
        ax.hist(ref, bins=edges, density=True, histtype="step", **REF)
        ax.hist(model, bins=edges, density=True, histtype="step", **MODEL)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path
