"""``cglight evaluate``: a simulated CG ensemble against the reference, along its slow modes.

Per system present in both the reference dataset and the simulation directory:

1. TICA on pairwise bead distances, fitted on the reference trajectories alone (``lag`` in
   reference frames); both ensembles are projected on TIC1 and TIC2.
2. ``KL(reference ‖ model)`` along TIC1 and on the TIC1/TIC2 plane, and Jensen–Shannon along
   TIC1 (shared-bin estimator, see :mod:`cglight.evaluate.divergence`), each with a block
   bootstrap interval over trajectories and time blocks (blocks of 3 integrated correlation times
   of TIC1, measured in each ensemble, see :mod:`cglight.evaluate.bootstrap`).
3. Core-to-core transitions along TIC1 in each ensemble (an unconverged reference shows here).
4. For an alanine-dipeptide backbone map, the (φ, ψ) surface from the beads and its KL.

Writes ``out/metrics.json``, ``out/report.md`` and PNGs under ``out/<system>/``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cglight.data.manifest import read_manifest
from cglight.errors import ConfigError, DatasetError
from cglight.evaluate import plots
from cglight.evaluate.bootstrap import BLOCK_TAUS, block_bootstrap, block_length
from cglight.evaluate.divergence import js_samples, kl_samples, shared_edges
from cglight.evaluate.geometry import angles, bond_lengths, chain_angles, dihedrals, phi_psi_beads
from cglight.evaluate.tica import SlowCoordinates
from cglight.evaluate.transitions import core_bounds, count_transitions
from cglight.units import kt

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    """Every key of ``cglight evaluate``; each is also a command-line option."""

    reference: str = ""
    """Reference dataset directory (its CG frames are the reference ensemble)."""
    simulation: str = ""
    """A ``cglight simulate`` output directory."""
    out: str = "evaluations/run"
    lag: int = 10
    """TICA lag time in reference frames."""
    systems: list[str] = field(default_factory=list)
    """Systems to evaluate; empty: every system found in both."""
    bins_1d: int = 50
    bins_2d: int = 30
    block_frames: int = 0
    """Block bootstrap: frames per block in both ensembles; 0: 3 integrated autocorrelation times of
    TIC1, measured in each ensemble on its own (a block longer than a trajectory is the trajectory)."""
    bootstrap: int = 200
    """Bootstrap samples for every interval."""
    level: float = 0.95
    skip_frames: int = 0
    """Frames dropped from the start of every simulated trajectory (equilibration)."""
    seed: int = 0

    def validate(self) -> None:
        if not self.reference or not self.simulation:
            raise ConfigError("evaluate: 'reference' (a dataset directory) and 'simulation' (a simulate output) are required")
        if not (Path(self.simulation) / "simulation.json").is_file():
            raise ConfigError(f"evaluate: {self.simulation} is not a cglight simulate output (no simulation.json)")
        for name in ("lag", "bins_1d", "bins_2d", "bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate: '{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("block_frames", "skip_frames", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"evaluate: '{name}' must be >= 0, got {getattr(self, name)}")
        if not 0 < self.level < 1:
            raise ConfigError(f"evaluate: 'level' must be in (0, 1), got {self.level}")


def reference_trajectories(root: Path, manifest, name: str) -> list[np.ndarray]:
    """The reference CG frames of ``name`` as trajectories: a new one wherever ``frame_index``
    does not advance by one (replicas, or gaps)."""
    from cglight.data import keys
    from cglight.data.shards import shard_file

    pos, index = [], []
    for s in manifest.shards:
        if s.system == name:
            with shard_file(root / s.path) as f:
                pos.append(f[keys.POS][:])
                index.append(f[keys.FRAME_INDEX][:])
    if not pos:
        raise DatasetError(f"{root}: system '{name}' has no frames")
    pos, index = np.concatenate(pos).astype(np.float64), np.concatenate(index)
    bad = ~np.isfinite(pos).reshape(len(pos), -1).all(1)
    if bad.any():
        raise DatasetError(f"{root}: system '{name}' has {int(bad.sum())} reference frame(s) with non-finite positions "
                           f"(frame_index {index[bad][:5].tolist()}...); run `cglight data verify` on it")
    cuts = np.nonzero(np.diff(index) != 1)[0] + 1
    return [p for p in np.split(pos, cuts) if len(p)]


def model_trajectories(sim: Path, name: str, skip: int) -> list[np.ndarray]:
    import mdtraj as md

    top = sim / name / "topology.pdb"
    trajs = []
    for path in sorted((sim / name).glob("replica-*.dcd")):
        xyz = md.load_dcd(str(path), top=str(top)).xyz.astype(np.float64) * 10.0  # nm → Å
        bad = ~np.isfinite(xyz).reshape(len(xyz), -1).all(1)
        if bad.any():
            raise DatasetError(f"{path}: {int(bad.sum())} frame(s) with non-finite positions (first: frame {int(np.argmax(bad))})")
        if len(xyz) > skip:
            trajs.append(xyz[skip:])
    return trajs


MIN_BLOCKS = 10
"""Fewer bootstrap blocks than this in either ensemble: the intervals are flagged as unreliable."""
TEMPERATURE_TOLERANCE_K = 0.5
"""A simulation this much hotter or colder than the reference is flagged."""


def bootstrap_blocks(ref_tic1: list[np.ndarray], mod_tic1: list[np.ndarray], block_frames: int) -> dict:
    """Block length, correlation time and block count of each ensemble (``block_frames`` 0: automatic)."""
    out = {}
    for key, trajs in (("reference", ref_tic1), ("model", mod_tic1)):
        block, tau, reached = block_length(trajs, BLOCK_TAUS)
        block = block_frames or block
        out[key] = {"tau_tic1_frames": tau, "tau_window_reached": reached, "block_frames": block,
                    "blocks": int(sum(-(-len(t) // block) for t in trajs))}
    return out


def bootstrap_interval(boot: dict, config: EvaluateConfig):
    """``interval(statistic, reference, model)``: the block bootstrap of :func:`block_bootstrap` with
    each ensemble's blocks from ``boot`` (:func:`bootstrap_blocks`) and ``config``'s settings."""

    def interval(stat, ref, mod) -> dict[str, float]:
        return block_bootstrap(stat, ref, mod, boot["reference"]["block_frames"], config.bootstrap, config.level, config.seed,
                               model_block=boot["model"]["block_frames"])

    return interval


def evaluate_system(name: str, info, ref: list[np.ndarray], mod: list[np.ndarray], config: EvaluateConfig, out: Path) -> dict:
    tica = SlowCoordinates(config.lag, dim=2).fit(ref)
    out.mkdir(parents=True, exist_ok=True)
    energy = kt(info.temperature)
    ref_tic = [tica.transform(t) for t in ref]
    mod_tic = [tica.transform(t) for t in mod]
    r1, m1 = np.concatenate(ref_tic), np.concatenate(mod_tic)
    bounds = core_bounds(r1[:, 0])
    b1, b2 = config.bins_1d, config.bins_2d
    boot = bootstrap_blocks([t[:, 0] for t in ref_tic], [t[:, 0] for t in mod_tic], config.block_frames)
    warnings = []
    for key, b in boot.items():
        if b["blocks"] < MIN_BLOCKS:
            warnings.append(f"The {key} gives only {b['blocks']} bootstrap blocks of {b['block_frames']} frames (TIC1 "
                            f"correlation time {b['tau_tic1_frames']:.0f} frames): its intervals are unreliable.")
        if not b["tau_window_reached"]:
            warnings.append(f"The {key}'s trajectories are shorter than 5 TIC1 correlation times: its correlation time "
                            f"({b['tau_tic1_frames']:.0f} frames) is underestimated.")
    interval = bootstrap_interval(boot, config)
    # bins fixed once from the whole reference (every bootstrap draw on the same bins)
    e1, e2 = shared_edges(r1[:, 0], m1[:, 0], b1), shared_edges(r1[:, :2], m1[:, :2], b2)
    metrics = {
        "kl_tic1": interval(lambda a, b: kl_samples(a[:, 0], b[:, 0], edges=e1), ref_tic, mod_tic),
        "js_tic1": interval(lambda a, b: js_samples(a[:, 0], b[:, 0], edges=e1), ref_tic, mod_tic),
        "transitions_tic1": {"reference": count_transitions([t[:, 0] for t in ref_tic], bounds),
                             "model": count_transitions([t[:, 0] for t in mod_tic], bounds)},
        "tic1_timescale_frames": float(tica.timescales()[0]),
        "frames": {"reference": int(len(r1)), "model": int(len(m1))},
        "trajectories": {"reference": len(ref), "model": len(mod)},
        "bootstrap": boot,
        "warnings": warnings,
    }
    if r1.shape[1] > 1:
        metrics["kl_tic12"] = interval(lambda a, b: kl_samples(a[:, :2], b[:, :2], edges=e2), ref_tic, mod_tic)
        plots.free_energy_2d(out / "tic12.png", r1[:, :2], m1[:, :2], energy, ("TIC1", "TIC2"), name)
    plots.free_energy_1d(out / "tic1.png", r1[:, 0], m1[:, 0], energy, "TIC1", name)
    rp, mp = np.concatenate(ref), np.concatenate(mod)
    bonds = np.asarray(info.bonds, dtype=np.int64).reshape(-1, 2)
    triples = chain_angles(info.n_beads, info.bonds)
    panels = []
    if len(bonds):
        rb, mb = bond_lengths(rp, bonds), bond_lengths(mp, bonds)
        panels += [(f"bond {info.bead_names[i]}{i}-{info.bead_names[j]}{j} (Å)", rb[:, k], mb[:, k]) for k, (i, j) in enumerate(bonds)]
    if len(triples):
        ra, ma = np.degrees(angles(rp, triples)), np.degrees(angles(mp, triples))
        panels += [(f"angle {i}-{j}-{k} (deg)", ra[:, a], ma[:, a]) for a, (i, j, k) in enumerate(triples)]
    if panels:
        plots.distributions(out / "geometry.png", panels)
    quads = phi_psi_beads(info.bead_names)
    if quads is not None:
        edges = [np.linspace(-np.pi, np.pi, b2 + 1)] * 2
        ref_pp = [dihedrals(t, quads) for t in ref]
        mod_pp = [dihedrals(t, quads) for t in mod]
        metrics["kl_phi_psi"] = interval(lambda a, b: kl_samples(a, b, edges=edges), ref_pp, mod_pp)
        deg = [np.degrees(e) for e in edges]
        plots.free_energy_2d(out / "phi_psi.png", np.degrees(np.concatenate(ref_pp)), np.degrees(np.concatenate(mod_pp)),
                             energy, ("φ (deg)", "ψ (deg)"), name, edges=deg)
    return metrics


def _report(metrics: dict, config: EvaluateConfig) -> str:
    lines = ["# cglight evaluation", "", f"Reference `{config.reference}`, simulation `{config.simulation}`, TICA lag {config.lag} frames.",
             f"KL is KL(reference ‖ model) in nats: bootstrap bias-corrected values with {config.level:.0%} basic "
             "block-bootstrap intervals (metrics.json also has the plug-in values and the biases).", ""]
    lines += ["| system | KL TIC1 | JS TIC1 | KL TIC1/TIC2 | KL (φ, ψ) | transitions ref / model | frames ref / model |",
              "| --- | --- | --- | --- | --- | --- | --- |"]

    def fmt(m: dict | None) -> str:
        return "–" if m is None else f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"

    for name, m in metrics["systems"].items():
        t, f = m["transitions_tic1"], m["frames"]
        lines.append(f"| {name} | {fmt(m['kl_tic1'])} | {fmt(m['js_tic1'])} | {fmt(m.get('kl_tic12'))} | {fmt(m.get('kl_phi_psi'))} "
                     f"| {t['reference']} / {t['model']} | {f['reference']} / {f['model']} |")
    lines.append("")
    for name, m in metrics["systems"].items():
        lines.append(f"## {name}\n")
        lines += [f"**{w}**\n" for w in m["warnings"]]
        if m["transitions_tic1"]["reference"] < 4:
            lines.append(f"**The reference crosses the slow mode only {m['transitions_tic1']['reference']} times: its TIC1 "
                         "distribution is not converged and the KL along it is not meaningful.**\n")
        for png in ("tic1.png", "tic12.png", "phi_psi.png", "geometry.png"):
            if (Path(config.out) / name / png).is_file():
                lines.append(f"![{png}]({name}/{png})\n")
    return "\n".join(lines)


def evaluate(config: EvaluateConfig) -> Path:
    config.validate()
    root, sim, out = Path(config.reference), Path(config.simulation), Path(config.out)
    manifest = read_manifest(root)
    found = [n for n in manifest.systems if (sim / n / "topology.pdb").is_file()]
    names = config.systems or found
    missing = [n for n in names if n not in found]
    if missing or not names:
        raise ConfigError(f"evaluate: systems {missing or '(none)'} are not in both {root} ({sorted(manifest.systems)}) and {sim} ({found})")
    metrics = {"settings": asdict(config), "systems": {}}
    simulated = json.loads((sim / "simulation.json").read_text()).get("systems", {})
    data = {}
    for name in names:  # every input checked before anything is written
        ref = reference_trajectories(root, manifest, name)
        longest = max(len(t) for t in ref)
        if config.lag >= longest:
            raise ConfigError(f"evaluate: 'lag' {config.lag} frames needs a reference trajectory longer than that, but the longest "
                              f"of system '{name}' in {root} has {longest} frames")
        mod = model_trajectories(sim, name, config.skip_frames)
        if not mod:
            raise ConfigError(f"evaluate: {sim / name} holds no trajectory frames after skip_frames={config.skip_frames}")
        data[name] = ref, mod
    for name, (ref, mod) in data.items():
        metrics["systems"][name] = evaluate_system(name, manifest.systems[name], ref, mod, config, out / name)
        m = metrics["systems"][name]
        t_ref, t_sim = manifest.systems[name].temperature, simulated.get(name, {}).get("temperature")
        m["temperature"] = {"reference": t_ref, "model": t_sim}
        if t_sim is not None and abs(t_sim - t_ref) > TEMPERATURE_TOLERANCE_K:
            m["warnings"].append(f"The simulation ran at {t_sim:.1f} K, the reference at {t_ref:.1f} K: the ensembles differ "
                                 "by temperature too.")
        for warning in m["warnings"]:
            log.warning("%s: %s", name, warning)
        log.info("%s: KL(ref‖model) along TIC1 %.3f", name, metrics["systems"][name]["kl_tic1"]["value"])
    out.mkdir(parents=True, exist_ok=True)
    for fname, text in (("metrics.json", json.dumps(metrics, indent=2) + "\n"), ("report.md", _report(metrics, config))):
        tmp = out / (fname + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out / fname)
    return out
