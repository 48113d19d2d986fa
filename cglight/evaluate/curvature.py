"""Curvature by subspace: a CG Hessian split into rigid-body, stiff and soft blocks.

One Frobenius number for a whole CG Hessian is dominated by the bond and angle directions (on
alanine dipeptide ~95 % of ``‖∇²U‖²_F``), which the priors already set; the slow, soft directions
that decide the ensemble hold under 1 %. So cglight reports the Hessian by subspace. At a
configuration ``R`` of ``n`` beads, ``R^{3n}`` is cut into three orthogonal subspaces:

- **rigid**: the 3 translations and 3 infinitesimal rotations about the centroid (fewer for a
  linear molecule), in which the Hessian of an invariant energy vanishes at a stationary point and
  is small elsewhere;
- **stiff**: the span of the Cartesian gradients of every bond length and bond angle
  (Wilson's B-matrix rows), which are orthogonal to the rigid motions;
- **soft**: the rest of the internal space, the orthogonal complement of the other two:
  dihedral and non-bonded motion at fixed bonds and angles.

With the orthonormal bases ``Q_a`` of the three, a Hessian ``H`` becomes the blocks
``H_ab = Q_aᵀ H Q_b``; ``‖H‖²_F = Σ_ab ‖H_ab‖²_F`` exactly. :func:`curvature_report` compares a
Hessian with a reference block by block: the relative error of each diagonal block, the traces,
the coupling between subspaces, and the eigenvalues of the soft block; where the reference is the
mean of samples (batch means of a PMF-Hessian estimate, a target's per-frame values), every
reference quantity carries the standard error of that mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cglight.energy.geometry import angles, distances
from cglight.energy.topology import Topology

BLOCKS = ("rigid", "stiff", "soft")
"""The subspaces, in the order of the basis."""
EMPTY = 1e-9
"""A reference block below this fraction of the whole's norm is empty: its relative error is not defined (None)."""
RANK_TOLERANCE = 1e-8
"""Singular values below this fraction of the largest are a dependent direction (a linear chain)."""


@dataclass(frozen=True)
class SubspaceBasis:
    """Orthonormal bases of the rigid, stiff and soft subspaces at one configuration (each ``[3n, k]``)."""

    rigid: np.ndarray
    stiff: np.ndarray
    soft: np.ndarray

    def block(self, name: str) -> np.ndarray:
        return getattr(self, name)

    @property
    def dims(self) -> dict[str, int]:
        return {name: self.block(name).shape[1] for name in BLOCKS}


def _orthonormal(columns: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the span of ``columns`` ``[d, k]`` (dependent directions dropped)."""
    if columns.shape[1] == 0:
        return columns
    u, s, _ = np.linalg.svd(columns, full_matrices=False)
    return u[:, s > RANK_TOLERANCE * max(s[0], 1e-300)]


def _complement(d: int, taken: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the orthogonal complement of the orthonormal columns ``taken`` in ``R^d``."""
    u, _, _ = np.linalg.svd(taken, full_matrices=True)
    return u[:, taken.shape[1]:]


def rigid_motions(pos: np.ndarray) -> np.ndarray:
    """``[3n, 6]``: the translations along x, y, z and the rotations about them (about the centroid)."""
    n = len(pos)
    centred = pos - pos.mean(0)
    vectors = []
    for axis in np.eye(3):
        vectors.append(np.tile(axis, n))
        vectors.append(np.cross(axis, centred).reshape(-1))
    return np.stack(vectors, 1)


def stiff_gradients(pos: np.ndarray, bonds: Sequence[Sequence[int]]) -> np.ndarray:
    """``[3n, bonds + angles]``: the Cartesian gradient of every bond length and bond angle
    (angles: every pair of bonds sharing a bead), by float64 autograd."""
    n = len(pos)
    topology = Topology.from_bonds(n, [tuple(b) for b in bonds])
    x = torch.tensor(np.asarray(pos, dtype=np.float64).reshape(1, n, 3), requires_grad=True)
    coordinates = []
    if topology.bonds:
        coordinates.append(distances(x, torch.tensor(topology.bonds)).reshape(-1))
    if topology.angles:
        coordinates.append(angles(x, torch.tensor(topology.angles)).reshape(-1))
    if not coordinates:
        return np.zeros((3 * n, 0))
    q = torch.cat(coordinates)
    rows = [torch.autograd.grad(q[k], x, retain_graph=True)[0].reshape(-1) for k in range(len(q))]
    return torch.stack(rows, 1).numpy()


def subspace_basis(pos: np.ndarray, bonds: Sequence[Sequence[int]]) -> SubspaceBasis:
    """The rigid, stiff and soft subspaces of the configuration ``pos`` ``[n, 3]`` (Å) with CG ``bonds``."""
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"subspace_basis: pos must be [n, 3], got {pos.shape}")
    rigid = _orthonormal(rigid_motions(pos))
    gradients = stiff_gradients(pos, bonds)
    gradients = gradients - rigid @ (rigid.T @ gradients)  # zero up to rounding: internal coordinates are invariant
    stiff = _orthonormal(gradients)
    soft = _complement(3 * len(pos), np.concatenate([rigid, stiff], 1))
    return SubspaceBasis(rigid, stiff, soft)


def split_hessian(hessian: np.ndarray, basis: SubspaceBasis) -> dict[tuple[str, str], np.ndarray]:
    """Every block ``Q_aᵀ H Q_b`` of ``hessian`` ``[3n, 3n]``, keyed ``(a, b)``; their squared
    Frobenius norms add up to the whole's."""
    h = np.asarray(hessian, dtype=np.float64)
    return {(a, b): basis.block(a).T @ h @ basis.block(b) for a in BLOCKS for b in BLOCKS}


def block_norms(hessian: np.ndarray, basis: SubspaceBasis) -> dict[str, float]:
    """Frobenius norm of each diagonal block and of all couplings between subspaces together."""
    return _norms(split_hessian(hessian, basis))


def _norms(blocks: dict[tuple[str, str], np.ndarray]) -> dict[str, float]:
    norms = {a: float(np.linalg.norm(blocks[a, a])) for a in BLOCKS}
    norms["coupling"] = float(np.sqrt(sum(np.linalg.norm(m) ** 2 for (a, b), m in blocks.items() if a != b)))
    return norms


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    return 0.5 * (m + m.T)


def _summary(hessian: np.ndarray, basis: SubspaceBasis) -> dict[str, np.ndarray | float]:
    """Per block the trace and norm, the coupling's norm, and the soft block's eigenvalues (ascending)."""
    blocks = split_hessian(_symmetric(hessian), basis)
    out: dict[str, np.ndarray | float] = {f"{b}/norm": v for b, v in _norms(blocks).items()}
    for a in BLOCKS:
        out[f"{a}/trace"] = float(np.trace(blocks[a, a]))
    out["soft/eigenvalues"] = np.linalg.eigvalsh(blocks["soft", "soft"])
    return out


def _mean_and_stderr(samples: np.ndarray, basis: SubspaceBasis) -> dict[str, tuple[np.ndarray | float, np.ndarray | float]]:
    """Each summary quantity of the mean of ``samples`` ``[S, 3n, 3n]``, with the standard error of
    the quantity's mean over the samples (treated as independent: pass batch means of correlated data)."""
    values = [_summary(s, basis) for s in samples]
    mean = _summary(samples.mean(0), basis)
    return {k: (mean[k], np.std([v[k] for v in values], axis=0, ddof=1) / np.sqrt(len(values))) for k in mean}


def curvature_report(
    hessian: np.ndarray,
    reference: np.ndarray | None,
    basis: SubspaceBasis,
    reference_samples: np.ndarray | None = None,
) -> dict[str, dict]:
    """``hessian`` (e.g. the model's) against ``reference`` by subspace.

    ``reference_samples`` ``[S, 3n, 3n]`` (optional): independent estimates whose mean is the
    reference (batch means of a PMF-Hessian estimate); when given and ``reference`` is None their
    mean is the reference, and the reference's traces and soft eigenvalues get standard errors.
    Returns per block (``rigid``, ``stiff``, ``soft``, ``coupling``) the relative Frobenius error
    ``‖H_b − H_ref,b‖ / ‖H_ref,b‖`` (None where the reference block is empty, e.g. the rigid block
    of an invariant energy at a minimum) and the absolute one, the norms and traces of both, and for ``soft`` the eigenvalues
    of both (ascending, kcal/mol/Å²) with the reference's standard errors, plus ``whole`` (the one
    number this replaces) and ``share`` (each block's fraction of ``‖H_ref‖²_F``).
    """
    h = _symmetric(hessian)
    stderr: dict = {}
    if reference is None:
        if reference_samples is None:
            raise ValueError("curvature_report: give a reference or reference_samples")
        reference = np.asarray(reference_samples, dtype=np.float64).mean(0)
    ref = _symmetric(reference)
    if ref.shape != h.shape:
        raise ValueError(f"curvature_report: Hessian {h.shape} and reference {ref.shape} differ in shape")
    if reference_samples is not None:
        stderr = {k: v[1] for k, v in _mean_and_stderr(np.asarray(reference_samples, dtype=np.float64), basis).items()}
    model, target = _summary(h, basis), _summary(ref, basis)
    diff = block_norms(h - ref, basis)
    total = float(np.linalg.norm(ref)) ** 2
    report: dict[str, dict] = {}
    for b in (*BLOCKS, "coupling"):
        entry = {
            "dim": basis.dims.get(b),
            "error": diff[b] / target[f"{b}/norm"] if target[f"{b}/norm"] > EMPTY * np.sqrt(total) else None,
            "abs_error": diff[b],
            "norm": model[f"{b}/norm"],
            "reference_norm": target[f"{b}/norm"],
            "share": target[f"{b}/norm"] ** 2 / total if total > 0 else float("nan"),
        }
        if b != "coupling":
            entry.update(trace=model[f"{b}/trace"], reference_trace=target[f"{b}/trace"],
                         reference_trace_stderr=stderr.get(f"{b}/trace"))
        report[b] = entry
    report["soft"].update(eigenvalues=model["soft/eigenvalues"].tolist(), reference_eigenvalues=target["soft/eigenvalues"].tolist(),
                          reference_eigenvalues_stderr=None if not stderr else np.asarray(stderr["soft/eigenvalues"]).tolist())
    report["whole"] = {"error": float(np.linalg.norm(h - ref) / np.sqrt(total)) if total > 0 else float("inf")}
    return report
