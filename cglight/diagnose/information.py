"""Can the Hessian teach this model anything? The curvature targets against the model, by subspace.

A Hessian-matching term can only move a model where the mean of its per-frame target differs
from the model's own curvature by more than the target's noise. Per frame ``i`` (configuration
``R_i``, mapped force ``f_i``, projected Hessian ``BᵀHB_i``, model forces ``F_θ`` and Hessian
``H_θ``) the targets are

    hvp                  T = BᵀHB
    hvp_cov centered     T = BᵀHB − β (f − F_θ)(f − F_θ)ᵀ          (cglight's variant)
    hvp_cov uncentered   T = BᵀHB − β (f fᵀ − F_θ F_θᵀ)

and each is read in the rigid, stiff (bond and angle) and soft subspaces of ``R_i``
(:mod:`cglight.evaluate.curvature`) through the block's trace, a number that does not depend on
the basis chosen inside the block. Over the frames: the mean of the model's trace, the mean of the
target's with its standard error (from the spread of ``target − model`` and its integrated
autocorrelation time: consecutive MD frames are correlated), the standardised gap
``z = (target − model) / stderr``, the gap relative to the block's curvature, and the squared
signal-to-noise of one frame's target, ``mean² / variance`` of its trace. A gap beyond
``threshold`` standard errors and beyond ``RELATIVE_GAP`` of the block's curvature means the term
carries information about that block that the model (and the force term that trained it) does
not have; a gap within it means the target agrees with the model as far as the data can tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from cglight.diagnose.config import THRESHOLD
from cglight.evaluate.bootstrap import integrated_time
from cglight.evaluate.curvature import BLOCKS, SubspaceBasis, subspace_basis

TARGETS = ("hvp", "hvp_cov/centered", "hvp_cov/uncentered")
"""The curvature targets read, by loss name (and estimator)."""
RELATIVE_GAP = 0.01
"""...and the fraction of the block's curvature the gap must reach to matter (the subspaces turn with
the configuration, so a model wrong in one block leaks a sliver into the others' traces)."""


def target_matrices(hessians: np.ndarray, forces: np.ndarray, model_forces: np.ndarray, beta: float) -> dict[str, np.ndarray]:
    """Every target of :data:`TARGETS` per frame, ``[F, 3n, 3n]`` (forces ``[F, 3n]``, kcal/mol/Å)."""
    f, m = forces.reshape(len(forces), -1), model_forces.reshape(len(model_forces), -1)
    d = f - m

    def outer(a: np.ndarray) -> np.ndarray:  # per frame a aᵀ
        return a[:, :, None] * a[:, None, :]

    return {
        "hvp": hessians,
        "hvp_cov/centered": hessians - beta * outer(d),
        "hvp_cov/uncentered": hessians - beta * (outer(f) - outer(m)),
    }


def block_traces(matrices: np.ndarray, bases: Sequence[SubspaceBasis]) -> dict[str, np.ndarray]:
    """The trace of each frame's matrix in each block of that frame's subspaces, ``block -> [F]``."""
    return {b: np.array([np.einsum("ik,ij,jk->", q.block(b), h, q.block(b)) for h, q in zip(matrices, bases, strict=True)])
            for b in BLOCKS}


@dataclass
class BlockReading:
    """One target in one block over the frames (kcal/mol/Å², traces)."""

    model: float
    target: float
    stderr: float
    z: float
    relative_gap: float
    """``|target − model| / max(|target|, |model|)``."""
    snr2: float
    """Squared signal-to-noise of a single frame's target: mean² / variance of its trace."""
    tau: float
    """Integrated autocorrelation time (frames) of ``target − model``."""
    informative: bool


def read_block(target: np.ndarray, model: np.ndarray, trajectories: Sequence[slice], threshold: float) -> BlockReading:
    """``target`` and ``model`` traces ``[F]``; ``trajectories`` cut the frames into time-ordered pieces."""
    gap = target - model
    tau, _ = integrated_time([gap[s] for s in trajectories])
    frames = len(gap)
    stderr = float(np.std(gap, ddof=1) * np.sqrt(tau / frames)) if frames > 1 else float("inf")
    mean_gap = float(gap.mean())
    z = mean_gap / stderr if stderr > 0 else (0.0 if mean_gap == 0 else float("inf"))
    var = float(np.var(target, ddof=1)) if frames > 1 else float("nan")
    snr2 = float(target.mean() ** 2 / var) if var > 0 else float("inf")
    scale = max(abs(float(target.mean())), abs(float(model.mean())))
    relative = abs(mean_gap) / scale if scale > 0 else 0.0
    informative = abs(z) > threshold and relative > RELATIVE_GAP
    return BlockReading(float(model.mean()), float(target.mean()), stderr, z, relative, snr2, tau, bool(informative))


def information(
    pos: np.ndarray,
    forces: np.ndarray,
    hessians: np.ndarray,
    model_forces: np.ndarray,
    model_hessians: np.ndarray,
    bonds: Sequence[Sequence[int]],
    beta: float,
    trajectories: Sequence[slice] | None = None,
    threshold: float = THRESHOLD,
) -> dict[str, dict[str, BlockReading]]:
    """Each target of :data:`TARGETS` against the model in each block: ``target -> block -> reading``.

    ``pos`` ``[F, n, 3]`` Å; ``forces``, ``model_forces`` ``[F, n, 3]``; ``hessians`` (the
    projected ``BᵀHB``), ``model_hessians`` ``[F, 3n, 3n]``; ``trajectories``: slices of the frames
    that are contiguous in time (default: all frames one trajectory).
    """
    frames = len(pos)
    if frames < 2:
        raise ValueError(f"information: need at least 2 frames, got {frames}")
    trajectories = list(trajectories) if trajectories is not None else [slice(0, frames)]
    bases = [subspace_basis(p, bonds) for p in pos]
    model = block_traces(model_hessians, bases)
    out: dict[str, dict[str, BlockReading]] = {}
    for name, matrices in target_matrices(hessians, forces, model_forces, beta).items():
        traces = block_traces(matrices, bases)
        out[name] = {b: read_block(traces[b], model[b], trajectories, threshold) for b in BLOCKS}
    return out


def verdict(readings: dict[str, dict[str, BlockReading]], threshold: float = THRESHOLD) -> list[str]:
    """One sentence per target: in which blocks it carries information the model does not have."""
    lines = []
    for name, blocks in readings.items():
        informative = [b for b, r in blocks.items() if r.informative and b != "rigid"]
        if informative:
            detail = "; ".join(f"{b}: target {blocks[b].target:.4g} ± {blocks[b].stderr:.2g} against the model's "
                               f"{blocks[b].model:.4g} (z = {blocks[b].z:+.1f})" for b in informative)
            lines.append(f"{name}: carries information the model lacks in the {' and '.join(informative)} block(s) ({detail})")
        else:
            lines.append(f"{name}: nothing to teach: its mean agrees with the model's curvature within {threshold:g} standard "
                         f"errors (or {RELATIVE_GAP:.0%} of the curvature) in the stiff and soft blocks")
    return lines


def as_dict(readings: dict[str, dict[str, BlockReading]]) -> dict:
    return {name: {b: asdict(r) for b, r in blocks.items()} for name, blocks in readings.items()}
