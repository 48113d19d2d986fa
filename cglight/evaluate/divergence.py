"""Divergences between a reference ensemble and a model ensemble along slow coordinates.

Estimator (documented in docs/evaluate.md): both samples are histogrammed on the SAME bins,
``bins`` equal-width bins per dimension spanning the REFERENCE's range, plus one overflow bin
beyond each end that collects every sample outside it (a model frame far outside the reference
counts as weight the model put where the reference is not, and cannot stretch the bins: bins over
the pooled range would, and one stray model frame would then blur every bin and make the model
look better). Counts become probabilities after adding a pseudo-count ``alpha`` to every bin of
both histograms (additive smoothing; it keeps ``log(p/q)`` finite where the model never went and
is the only smoothing applied). Then, in nats,

    KL(P_ref ‖ P_model) = Σ_b p_b ln(p_b / q_b)     (reference first: where the reference is and
                                                      the model is not, the cost is large)
    JS(P, Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M),   M = ½(P + Q)     (symmetric, bounded by ln 2)

The direction matters: KL(ref ‖ model) punishes a model that misses reference states; the
reverse punishes a model that visits states the reference lacks.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BINS = {1: 50, 2: 30}
DEFAULT_ALPHA = 1e-6


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def shared_edges(reference: np.ndarray, model: np.ndarray, bins: int | None = None) -> list[np.ndarray]:
    """Bin edges per dimension: ``bins`` equal-width bins over the reference's range, and an
    overflow bin of the same width beyond each end (samples outside are counted there, see
    :func:`histogram`)."""
    ref, mod = _as_2d(reference), _as_2d(model)
    if ref.shape[1] != mod.shape[1]:
        raise ValueError(f"the samples have {ref.shape[1]} and {mod.shape[1]} dimensions")
    bins = bins or DEFAULT_BINS.get(ref.shape[1], 20)
    _check_finite(ref, "reference")
    _check_finite(mod, "model")
    if len(ref) == 0:
        raise ValueError("the reference sample is empty")
    lo, hi = ref.min(0), ref.max(0)
    hi = np.where(hi > lo, hi, lo + 1e-9 * np.maximum(1.0, np.abs(lo)))  # a reference of one value
    width = (hi - lo) / bins
    return [np.linspace(lo[d] - width[d], hi[d] + width[d], bins + 3) for d in range(ref.shape[1])]


def _check_finite(x: np.ndarray, name: str) -> None:
    finite = np.isfinite(x).all(1)
    if not finite.all():
        raise ValueError(f"{int((~finite).sum())} {name} sample(s) are not finite")


def histogram(x: np.ndarray, edges: list[np.ndarray], alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Smoothed probabilities of ``x`` on ``edges`` (pseudo-count ``alpha`` per bin); a sample
    outside the edges is counted in the outermost bin on its side; a non-finite sample is an error."""
    x = _as_2d(x)
    _check_finite(x, "histogram")
    inner = [(e[0] + e[1]) / 2 for e in edges], [(e[-2] + e[-1]) / 2 for e in edges]
    counts, _ = np.histogramdd(np.clip(x, *inner), bins=edges)
    counts = counts + alpha
    return counts / counts.sum()


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """``Σ p ln(p/q)`` of two probability arrays of the same shape (nats)."""
    p, q = np.asarray(p, dtype=np.float64).ravel(), np.asarray(q, dtype=np.float64).ravel()
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (nats, in [0, ln 2])."""
    m = 0.5 * (np.asarray(p) + np.asarray(q))
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def kl_samples(
    reference: np.ndarray, model: np.ndarray, bins: int | None = None, alpha: float = DEFAULT_ALPHA, edges: list[np.ndarray] | None = None
) -> float:
    """``KL(P_ref ‖ P_model)`` from samples ``[N]`` or ``[N, d]`` by the shared-bin estimator
    (``edges`` fixes the bins, e.g. ``[-π, π]`` for angles; default: :func:`shared_edges`)."""
    edges = shared_edges(reference, model, bins) if edges is None else edges
    return kl(histogram(reference, edges, alpha), histogram(model, edges, alpha))


def js_samples(
    reference: np.ndarray, model: np.ndarray, bins: int | None = None, alpha: float = DEFAULT_ALPHA, edges: list[np.ndarray] | None = None
) -> float:
    """Jensen–Shannon divergence from samples by the shared-bin estimator."""
    edges = shared_edges(reference, model, bins) if edges is None else edges
    return js(histogram(reference, edges, alpha), histogram(model, edges, alpha))
