"""``cglight data info DIR``: a table of the dataset's systems, and how well each is sampled, with a
legend of its columns under it.

Sampling: consecutive MD frames are correlated, so the number of frames overstates the
information. For each system the slowest of a few cheap features of the CG coordinates
(the end-to-end distance, the radius of gyration, and the cosine and sine of every dihedral of
four consecutive beads, named by its beads, and φ or ψ where they are a backbone's C N CA C or
N CA C N) is found by its integrated autocorrelation time ``τ`` (in frames; Sokal's
window: the smallest ``W ≥ 5 τ(W)``), computed per reference trajectory and averaged over them
weighted by length; the effective sample size is ``Σ_trajectories frames / τ``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cglight.data import keys
from cglight.data.manifest import Manifest, read_manifest
from cglight.data.shards import shard_file


def integrated_autocorrelation_time(x: np.ndarray, c: float = 5.0) -> float:
    """``τ = 1 + 2 Σ_{t=1}^{W} ρ(t)`` in frames, with Sokal's automatic window; 1 for white noise."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 4 or np.var(x) == 0:
        return 1.0
    y = x - x.mean()
    f = np.fft.rfft(y, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    rho = acf / acf[0]
    tau = 1.0
    for w in range(1, n):
        tau = 1.0 + 2.0 * rho[1 : w + 1].sum()
        if w >= c * tau:
            break
    return max(float(tau), 1.0)


def dihedrals(p: np.ndarray) -> np.ndarray:
    """Dihedral angles (radians) of every four consecutive beads, ``[F, n − 3]``."""
    b0, b1, b2 = p[:, 1:-2] - p[:, :-3], p[:, 2:-1] - p[:, 1:-2], p[:, 3:] - p[:, 2:-1]
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    m = np.cross(n1, b1 / np.linalg.norm(b1, axis=-1, keepdims=True))
    return -np.arctan2((m * n2).sum(-1), (n1 * n2).sum(-1))  # IUPAC sign: φ of an α helix is about −60°


BACKBONE_DIHEDRALS = {("C", "N", "CA", "C"): "φ", ("N", "CA", "C", "N"): "ψ"}
"""Four consecutive beads of a backbone map that make a residue's φ or ψ (by bead name)."""


def dihedral_names(bead_names: list[str]) -> list[str]:
    """The dihedral of every four consecutive beads by its beads, name and index (``C0-N1-CA2-C3``), led by
    ``φ`` or ``ψ`` where the beads are a backbone's (numbered by residue when the chain has several)."""
    quads = [tuple(bead_names[i : i + 4]) for i in range(len(bead_names) - 3)]
    kinds = [BACKBONE_DIHEDRALS.get(q, "") for q in quads]
    seen: dict[str, int] = {}
    names = []
    for i, (quad, kind) in enumerate(zip(quads, kinds, strict=True)):
        beads = "-".join(f"{name}{i + j}" for j, name in enumerate(quad))
        if kind:
            seen[kind] = seen.get(kind, 0) + 1
            kind += str(seen[kind]) if kinds.count(kind) > 1 else ""
        names.append(f"{kind} ({beads})" if kind else beads)
    return names


def features(pos: np.ndarray, bead_names: list[str]) -> dict[str, np.ndarray]:
    """Cheap candidate slow features of CG coordinates ``[F, n, 3]`` of beads named ``bead_names``."""
    feats = {"end-to-end": np.linalg.norm(pos[:, -1] - pos[:, 0], axis=-1),
             "Rg": np.sqrt(((pos - pos.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean(-1))}
    if pos.shape[1] >= 4:
        d = dihedrals(pos)
        for i, name in enumerate(dihedral_names(bead_names)):
            feats[f"cos {name}"] = np.cos(d[:, i])
            feats[f"sin {name}"] = np.sin(d[:, i])
    return feats


def sampling(root: Path, manifest: Manifest, system: str) -> tuple[str, float, float]:
    """``(slowest feature, τ in frames, effective sample size)`` of one system."""
    per_traj: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for shard in manifest.shards:
        if shard.system != system:
            continue
        with shard_file(root / shard.path) as f:
            rep = f[keys.REPLICA][:] if keys.REPLICA in f else np.zeros(shard.frames, dtype=np.int64)
            idx, pos = f[keys.FRAME_INDEX][:], f[keys.POS][:]
        for r in np.unique(rep):
            per_traj.setdefault(int(r), []).append((idx[rep == r], pos[rep == r]))
    trajs = []
    for parts in per_traj.values():
        idx = np.concatenate([i for i, _ in parts])
        pos = np.concatenate([p for _, p in parts]).astype(np.float64)
        trajs.append(pos[np.argsort(idx, kind="stable")])
    total = sum(len(t) for t in trajs)
    if total == 0:
        return "-", float("nan"), 0.0
    taus: dict[str, float] = {}
    for t in trajs:
        for name, x in features(t, manifest.systems[system].bead_names).items():
            taus[name] = taus.get(name, 0.0) + integrated_autocorrelation_time(x) * len(t) / total
    slowest = max(taus, key=taus.get)
    return slowest, taus[slowest], total / taus[slowest]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def dataset_info(root: str | os.PathLike) -> str:
    """The table ``cglight data info`` prints."""
    root = Path(root)
    manifest = read_manifest(root)
    header = ("system", "beads", "frames", "hessian", "T (K)", "size", "shards", "trajs", "slowest feature", "tau", "ESS")
    rows = []
    for name, s in manifest.systems.items():
        shards = [x for x in manifest.shards if x.system == name]
        size = sum((root / x.path).stat().st_size for x in shards)
        for rel in {*(s.trajectories or []), *((s.reference or {}).get(k) for k in ("trajectory", "topology", "system"))}:
            if rel and (root / rel).is_file():
                size += (root / rel).stat().st_size
        mode = s.hessian
        if mode == "probes" and shards:
            with shard_file(root / shards[0].path) as f:
                mode = f"probes (K={f[keys.PROBES].shape[1]})"
        interval = (s.reference or {}).get("frame_interval_ps")
        feature, tau, ess = sampling(root, manifest, name)
        tau_text = f"{tau:.1f} fr" + (f" = {tau * float(interval):.3g} ps" if interval else "")
        rows.append((name, str(s.n_beads), str(manifest.frames(name)), mode, f"{s.temperature:g}", _size(size), str(len(shards)),
                     str(len(s.trajectories or [1])), feature, tau_text, f"{ess:.0f}"))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*lines, "", *LEGEND])


LEGEND = (
    "hessian: Hessian data per frame (full: the projected Hessian BᵀHB; probes (K=k): k Hessian-vector products; none)",
    "trajs: independent reference trajectories (replicas, or the trajectory files given)",
    "slowest feature: of the end-to-end distance, the radius of gyration Rg and the cos/sin of each dihedral of four",
    "  consecutive beads (named by its beads; φ/ψ on a backbone map), the one that decorrelates slowest",
    "tau: its integrated autocorrelation time, in frames (fr) and ps: about one independent sample per tau frames",
    "ESS: effective sample size, frames / tau summed over trajectories: about how many independent frames there are",
)
"""The lines under the table that explain its less obvious columns."""
