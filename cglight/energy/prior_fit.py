"""Fitting the priors by Boltzmann inversion of bead-geometry histograms (docs/method.md §7).

For each prior kind and bead-type tuple, the internal coordinates ``x`` of all matching terms in
the fitting frames are histogrammed. The free energy of ``x`` with its Jacobian divided out,

    F(x) = −k_B T ln( p(x) / J(x) ),     J(r) = r² (distances), J(θ) = sin θ (angles), J(φ) = 1 (dihedrals)

is the potential that would produce the histogram on its own (``p(x)`` the normalised histogram
density at the bin centre). Bonds and angles: a weighted least-squares fit of a parabola
``c₀ + c₁x + c₂x²`` to ``F`` over the occupied bins, weights = bin counts (the inverse variance of
``ln count``), gives ``k = 2c₂`` and ``x₀ = −c₁/2c₂``. When the histogram is too sparse for that
(fewer than 3 occupied bins, or a parabola that does not open upwards), the same harmonic model is
fitted by its moments instead, with a warning: ``x₀`` and ``σ²`` are the mean and variance of the
samples reweighted by ``1/J(x)`` (which turns ``p`` into ``p/J``), and ``k = k_B T / σ²``. Dihedrals: the same fit with ``c₀ + Σₙ aₙ cos nφ + bₙ sin nφ`` over (−π, π]; empty bins
carry no weight, so unsampled dihedral regions are not constrained by the prior. Repulsion:
``σ`` = the ``quantile`` of the pair distances, ``ε = k_B T``. Bins span the samples' range
(angles within [0, π]); there are at most ``bins`` of them and at most one per 20 samples (at
least 8). A bead-type tuple with fewer than ``min_samples`` samples is an error naming it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cglight.energy.priors import PriorTerm
from cglight.energy.topology import Topology, canonical
from cglight.errors import ConfigError

Key = tuple[int, ...]
log = logging.getLogger(__name__)


@dataclass
class FitCurve:
    """One fitted prior against the data: bin centres, the histogram's free energy (kcal/mol,
    ``nan`` in empty bins), and the number of samples."""

    kind: str
    key: Key
    x: Tensor
    free_energy: Tensor
    samples: int


JACOBIANS: dict[str, Callable[[Tensor], Tensor]] = {
    "bonds": lambda r: r.pow(2),
    "angles": torch.sin,
    "dihedrals": torch.ones_like,
    "repulsion": lambda r: r.pow(2),
}
RANGES: dict[str, tuple[float, float] | None] = {"angles": (0.0, math.pi), "dihedrals": (-math.pi, math.pi)}


def n_bins(samples: int, most: int) -> int:
    return min(most, max(8, samples // 20))


def free_energy(kind: str, x: Tensor, kT: float, bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(centres, F, counts)`` of the Jacobian-corrected histogram free energy of ``x``."""
    lo, hi = float(x.min()), float(x.max())
    if kind == "dihedrals":
        lo, hi = -math.pi, math.pi
    elif kind == "angles":
        lo, hi = max(lo, 0.0), min(hi, math.pi)
    if hi <= lo:
        hi = lo + 1e-6
    counts = torch.histc(x, bins=bins, min=lo, max=hi)
    width = (hi - lo) / bins
    centres = lo + width * (torch.arange(bins, dtype=x.dtype) + 0.5)
    density = counts / (counts.sum() * width * JACOBIANS[kind](centres))
    f = -kT * torch.log(density)
    f[counts == 0] = float("nan")
    return centres, f, counts


def _weighted_lstsq(design: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    w = weights.sqrt()[:, None]
    return torch.linalg.lstsq(design * w, target[:, None] * w).solution[:, 0]


def fit_harmonic(kind: str, x: Tensor, kT: float, bins: int) -> tuple[list[float], FitCurve]:
    centres, f, counts = free_energy(kind, x, kT, n_bins(len(x), bins))
    use = counts > 0
    mid = float(x.mean())
    t = centres[use] - mid
    c = _weighted_lstsq(torch.stack([torch.ones_like(t), t, t * t], 1), f[use], counts[use]) if int(use.sum()) >= 3 else None
    if c is not None and c[2] > 0:
        k = 2 * float(c[2])
        return [k, mid - float(c[1]) / k], FitCurve(kind, (), centres, f, len(x))
    # too sparse a histogram for a parabola: the same model by its moments, p/J reweighted by 1/J
    w = 1.0 / JACOBIANS[kind](x)
    x0 = float((w * x).sum() / w.sum())
    var = float((w * (x - x0).pow(2)).sum() / w.sum())
    if not var > 0:
        raise ConfigError(f"prior '{kind}': all {len(x)} samples of a term have the same value; cannot fit a spring")
    log.warning("prior '%s': histogram of %d samples too sparse for a parabola; fitted by Jacobian-weighted moments", kind, len(x))
    return [kT / var, x0], FitCurve(kind, (), centres, f, len(x))


def fit_fourier(x: Tensor, kT: float, terms: int, bins: int) -> tuple[list[float], FitCurve]:
    centres, f, counts = free_energy("dihedrals", x, kT, n_bins(len(x), bins))
    use = counts > 0
    n = torch.arange(1, terms + 1, dtype=x.dtype)
    nx = centres[use, None] * n
    design = torch.cat([torch.ones(int(use.sum()), 1, dtype=x.dtype), torch.cos(nx), torch.sin(nx)], 1)
    c = _weighted_lstsq(design, f[use], counts[use])
    return c[1:].tolist(), FitCurve("dihedrals", (), centres, f, len(x))


def fit_repulsion(x: Tensor, kT: float, quantile: float, bins: int) -> tuple[list[float], FitCurve]:
    centres, f, _ = free_energy("repulsion", x, kT, n_bins(len(x), bins))
    return [kT, float(torch.quantile(x, quantile))], FitCurve("repulsion", (), centres, f, len(x))


FITTERS: dict[str, Callable[[Tensor, float, object], tuple[list[float], FitCurve]]] = {
    "bonds": lambda x, kT, c: fit_harmonic("bonds", x, kT, c.bins),
    "angles": lambda x, kT, c: fit_harmonic("angles", x, kT, c.bins),
    "dihedrals": lambda x, kT, c: fit_fourier(x, kT, c.terms, c.bins),
    "repulsion": lambda x, kT, c: fit_repulsion(x, kT, c.quantile, 50),
}
"""Prior kind → its Boltzmann-inversion fit ``(samples, k_B T, config) -> (parameter row, curve)``."""


class GeometrySamples:
    """Internal coordinates of every prior term in the fitting frames, grouped by kind and bead types."""

    def __init__(self, priors: nn.ModuleDict) -> None:
        self.priors = priors
        self.values: dict[str, dict[Key, list[Tensor]]] = {kind: {} for kind in priors}
        self.frames = 0

    @torch.no_grad()
    def add(self, pos: Tensor, types: list[int], topology: Topology) -> None:
        pos = pos.detach().to("cpu", torch.float64)
        self.frames += pos.shape[0]
        for kind, term in self.priors.items():
            terms = term.terms(topology)
            if not terms:
                continue
            values = term.coordinate(pos, torch.tensor(terms, dtype=torch.long))
            for column, t in enumerate(terms):
                key = canonical(tuple(types[i] for i in t))
                self.values[kind].setdefault(key, []).append(values[:, column])

    def fit(self, kT: float) -> list[FitCurve]:
        """Fit every kind's parameters into its buffers; return the curves to plot."""
        curves = []
        for kind, term in self.priors.items():
            term: PriorTerm
            config = term.config
            table = {}
            for key, chunks in sorted(self.values[kind].items()):
                x = torch.cat(chunks)
                if len(x) < config.min_samples:
                    raise ConfigError(
                        f"prior '{kind}': bead types {key} occur {len(x)} times in the {self.frames} fitting frames, fewer than "
                        f"min_samples={config.min_samples}; fit on more frames (model.calibration_frames), lower "
                        f"model.priors.{kind}.min_samples, or turn the prior off (model.priors.{kind}: null)"
                    )
                params, curve = FITTERS[kind](x, kT, config)
                table[key] = params
                curve.key = key
                curves.append(curve)
            term.set_parameters(table)
        return curves
