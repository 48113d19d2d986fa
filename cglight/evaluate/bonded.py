"""The bonded geometry of a model's ensemble against the reference: every CG bond length and chain angle.

The slow-mode divergences (TIC1) say whether a model samples the right basins; they say little
about the stiff directions a model gets from its bond and angle terms (or, with repulsion-only
priors, from the network alone), which is where Hessian data carry the most signal. Here every bond
length and every angle of the CG topology is compared as a 1-D distribution: the Jensen–Shannon
divergence on ``bins`` shared bins (the reference's range), next to its **finite-sample floor** (the
same divergence between the reference and subsamples of it shaped like the model's ensemble,
:func:`cglight.evaluate.floor.finite_sample_floor`): a coordinate whose value lies above its floor's
range is distinguishable from a perfect model's at this sample size. Bonds relax within
femtoseconds, so their floors are small and even slight errors in a bond's width show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cglight.evaluate.divergence import js_samples, shared_edges
from cglight.evaluate.floor import finite_sample_floor
from cglight.evaluate.geometry import angles, bond_lengths, chain_angles


def bonded_coordinates(n_beads: int, bonds: Sequence[Sequence[int]], bead_names: Sequence[str],
                       trajectories: Sequence[np.ndarray]) -> tuple[list[tuple[str, str]], list[np.ndarray]]:
    """``([(kind, name)], per trajectory [F, C])``: every bond length (Å) and chain angle (degrees),
    named by their beads (``CA2-C3``, ``N1-CA2-C3``)."""
    pairs = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    triples = chain_angles(n_beads, [list(b) for b in bonds])
    label = [f"{bead_names[i]}{i}" for i in range(n_beads)]
    names = [("bonds", "-".join(label[i] for i in b)) for b in pairs] + [("angles", "-".join(label[i] for i in t)) for t in triples]
    values = []
    for traj in trajectories:
        columns = []
        if len(pairs):
            columns.append(bond_lengths(traj, pairs))
        if len(triples):
            columns.append(np.degrees(angles(traj, triples)))
        values.append(np.concatenate(columns, axis=1) if columns else np.zeros((len(traj), 0)))
    return names, values


def bonded_divergences(n_beads: int, bonds: Sequence[Sequence[int]], bead_names: Sequence[str],
                       reference: Sequence[np.ndarray], model: Sequence[np.ndarray], bins: int = 50,
                       floor_draws: int = 100, level: float = 0.95, seed: int = 0) -> dict:
    """:func:`coordinate_divergences` of the bonded coordinates of two ensembles of trajectories
    ``[F, n, 3]`` (Å)."""
    names, ref = bonded_coordinates(n_beads, bonds, bead_names, reference)
    _, mod = bonded_coordinates(n_beads, bonds, bead_names, model)
    return coordinate_divergences(names, ref, mod, bins, floor_draws, level, seed)


def coordinate_divergences(names: Sequence[tuple[str, str]], ref: Sequence[np.ndarray], mod: Sequence[np.ndarray],
                           bins: int = 50, floor_draws: int = 100, level: float = 0.95, seed: int = 0) -> dict:
    """For coordinates as :func:`bonded_coordinates` gives them (``names``; per trajectory ``[F, C]``): per
    coordinate ``{kind, name, js, floor, reference_mean, reference_std, model_mean, model_std}`` and per kind
    (``bonds``, ``angles``) a summary: ``js_mean``, ``floor_mean`` (mean floor median), ``above_floor`` (how
    many lie above their floor's range), ``count`` and the ``worst`` coordinate. ``floor_draws`` 0: no floors."""
    whole_ref, whole_mod = np.concatenate(ref), np.concatenate(mod)
    lengths = [len(t) for t in mod]
    coordinates = []
    for c, (kind, name) in enumerate(names):
        edges = shared_edges(whole_ref[:, c], whole_mod[:, c], bins)

        def statistic(a: np.ndarray, b: np.ndarray, c: int = c, edges: list = edges) -> float:
            return js_samples(a[:, c], b[:, c], edges=edges)

        entry = {"kind": kind, "name": name, "js": statistic(whole_ref, whole_mod),
                 "reference_mean": float(whole_ref[:, c].mean()), "reference_std": float(whole_ref[:, c].std()),
                 "model_mean": float(whole_mod[:, c].mean()), "model_std": float(whole_mod[:, c].std())}
        if floor_draws:
            entry["floor"] = finite_sample_floor(statistic, ref, lengths, floor_draws, level, seed)
        coordinates.append(entry)
    summary = {}
    for kind in ("bonds", "angles"):
        rows = [e for e in coordinates if e["kind"] == kind]
        if not rows:
            continue
        worst = max(rows, key=lambda e: e["js"])
        summary[kind] = {"count": len(rows), "js_mean": float(np.mean([e["js"] for e in rows])),
                         "worst": {"name": worst["name"], "js": worst["js"]}}
        if floor_draws:
            summary[kind]["floor_mean"] = float(np.mean([e["floor"]["median"] for e in rows]))
            summary[kind]["above_floor"] = sum(e["js"] > e["floor"]["high"] for e in rows)
            summary[kind]["worst"]["floor_high"] = worst["floor"]["high"]
    return {**summary, "coordinates": coordinates}


def bonded_text(bonded: dict) -> str:
    """One line per kind: ``bonds: JS mean 0.004 (floor 0.001), 2 of 4 above their floor; worst CA2-C3 0.010``."""
    parts = []
    for kind in ("bonds", "angles"):
        s = bonded.get(kind)
        if s is None:
            continue
        floor = f" (floor {s['floor_mean']:.4f}), {s['above_floor']} of {s['count']} above their floor's range" if "floor_mean" in s else ""
        parts.append(f"{kind}: JS mean {s['js_mean']:.4f}{floor}; worst {s['worst']['name']} {s['worst']['js']:.4f}")
    return "; ".join(parts)
