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

Writes ``out/metrics.json``, ``out/report.md`` and PNGs under ``out/<system>/``. Every input is
checked, and every system projected, before anything is written: a non-empty ``out`` (unless
``overwrite``), a simulation of other beads than the reference's, unreadable or truncated files, a
system whose replicas all stopped, or an ensemble of fewer than 2 bootstrap blocks is refused;
stopped replicas, when others ran on, are named in the log, ``metrics.json`` and the report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cglight.atomic import atomic_write
from cglight.data.manifest import read_manifest
from cglight.data.reader import reference_trajectories
from cglight.errors import ConfigError
from cglight.evaluate import plots
from cglight.evaluate.bootstrap import BLOCK_TAUS, block_bootstrap, block_length
from cglight.evaluate.config import EvaluateConfig
from cglight.evaluate.divergence import js_samples, kl_samples, shared_edges
from cglight.evaluate.bonded import bonded_coordinates, bonded_text, coordinate_divergences
from cglight.evaluate.floor import finite_sample_floor
from cglight.evaluate.geometry import dihedrals, phi_psi_beads
from cglight.evaluate.tica import SlowCoordinates
from cglight.evaluate.transitions import core_bounds, count_transitions
from cglight.simulate.output import SimulationOutput
from cglight.units import kt

log = logging.getLogger(__name__)


def simulation_topology(sim: SimulationOutput, name: str, info, reference: Path):
    """The topology of the simulation's system ``name``, refused unless its beads are the reference
    system's (count and names; names as the PDB holds them, at most 4 characters)."""
    top = sim.read_topology(name)
    names, expected = [a.name for a in top.atoms], [n[:4] for n in info.bead_names]
    if names != expected:
        raise ConfigError(f"evaluate: {sim.topology_path(name)} has {len(names)} beads {' '.join(names)}, but system '{name}' in "
                          f"{reference / 'manifest.json'} has {len(expected)} beads {' '.join(expected)}: not the same molecule")
    return top


def stopped_text(stopped: dict[str, str], shown: int = 8) -> str:
    """``replica 1 at step 60: ...; replica 3 at ...`` (the first ``shown``)."""
    items = [f"replica {r} at {why}" for r, why in stopped.items()]
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def check_live_replicas(name: str, runs: dict[str, np.ndarray], stopped: dict[str, str] | None, skip: int) -> None:
    """Refuses a model ensemble made of stopped replicas only: their frames lead up to a blow-up."""
    if not stopped or any(r not in stopped for r in runs):
        return
    frames = sum(len(t) for t in runs.values())
    unless = "" if skip == 0 else f" or has no frames after skip_frames={skip}"
    raise ConfigError(f"evaluate: every replica of system '{name}' stopped{unless} ({stopped_text(stopped)}): the {frames} "
                      "frames left lead up to blow-ups, not the model's ensemble; nothing to evaluate")


MIN_BLOCKS = 10
"""Fewer bootstrap blocks than this in either ensemble: the intervals are flagged as unreliable."""
MIN_BOOTSTRAP_BLOCKS = 2
"""Fewer bootstrap blocks than this in either ensemble: refused (every draw would be the one block:
an interval of zero width that says nothing)."""
TEMPERATURE_TOLERANCE_K = 0.5
"""A simulation this much hotter or colder than the reference is flagged."""
PLOTS = ("tic1.png", "tic12.png", "phi_psi.png", "geometry.png")
"""The pictures of a system, under ``out/<system>/``."""
CAPTIONS = {
    "tic1.png": "Free energy along TIC1 (the reference's slowest mode) on the bins the KL uses, the end bins (grey) "
                "collecting everything beyond the reference's range, with block-bootstrap bands. Look for the model (red) "
                "inside the reference's band (black): a missing basin, an extra one, or a barrier of another height is "
                "what the KL along TIC1 counts.",
    "tic12.png": "The TIC1/TIC2 plane on the KL's bins, one colour scale for both panels (blank: no frames). Look for a "
                 "basin in one panel but not the other, and for the basins' relative depths (colours) to match.",
    "phi_psi.png": "The backbone dihedrals (φ, ψ) computed from the beads, one colour scale for both panels (blank: no "
                   "frames). Look for the reference's basins in the model, with the same relative depths.",
    "geometry.png": "Bond lengths and bond angles, reference (black) against model (red), as probability densities. A model "
                    "curve that is wider, narrower or shifted means the stiff local terms are wrong (priors or network), "
                    "whatever the slow modes show.",
}
"""What each picture shows and what to look for (one caption per picture in ``report.md``)."""


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
        out = block_bootstrap(stat, ref, mod, boot["reference"]["block_frames"], config.bootstrap, config.level, config.seed,
                              model_block=boot["model"]["block_frames"])
        # the same interval widths about the plug-in value, which is what the floor is comparable with
        # (a divergence is never negative: the lower end is cut at 0)
        out["plugin_low"] = max(0.0, out["plugin"] - (out["value"] - out["low"]))
        out["plugin_high"] = out["plugin"] + (out["high"] - out["value"])
        if config.floor_draws:
            out["floor"] = finite_sample_floor(stat, ref, [len(t) for t in mod], config.floor_draws, config.level, config.seed)
        return out

    return interval


@dataclass
class Projection:
    """Both ensembles on the reference's slow coordinates, and their bootstrap blocks."""

    tica: SlowCoordinates
    reference: list[np.ndarray]
    model: list[np.ndarray]
    boot: dict


def project(name: str, ref: list[np.ndarray], mod: list[np.ndarray], config: EvaluateConfig) -> Projection:
    """TICA fitted on ``ref``, both ensembles projected, their blocks measured; refused when either
    ensemble gives fewer than ``MIN_BOOTSTRAP_BLOCKS`` blocks. Computes only (writes nothing)."""
    beads = {t.shape[1] for t in ref} | {t.shape[1] for t in mod}
    if len(beads) > 1:
        raise ConfigError(f"evaluate: system '{name}': the reference and model frames have different bead counts {sorted(beads)}")
    try:
        tica = SlowCoordinates(config.lag, dim=2).fit(ref)
    except ValueError as exc:
        raise ConfigError(f"evaluate: system '{name}': no slow coordinates ({exc})") from None
    ref_tic, mod_tic = [tica.transform(t) for t in ref], [tica.transform(t) for t in mod]
    boot = bootstrap_blocks([t[:, 0] for t in ref_tic], [t[:, 0] for t in mod_tic], config.block_frames)
    for key, trajs in (("reference", ref), ("model", mod)):
        b = boot[key]
        if b["blocks"] < MIN_BOOTSTRAP_BLOCKS:
            raise ConfigError(
                f"evaluate: the {key} of system '{name}' gives {b['blocks']} bootstrap block{'s' * (b['blocks'] != 1)} of "
                f"{b['block_frames']} frames ({sum(len(t) for t in trajs)} frames in {len(trajs)} trajectories, TIC1 correlation "
                f"time {b['tau_tic1_frames']:.0f} frames); at least {MIN_BOOTSTRAP_BLOCKS} are needed for an interval")
    return Projection(tica, ref_tic, mod_tic, boot)


def evaluate_system(name: str, info, ref: list[np.ndarray], mod: list[np.ndarray], config: EvaluateConfig, out: Path,
                    projection: Projection | None = None) -> dict:
    """The metrics of one system, its pictures written under ``out`` (``projection``: from :func:`project`)."""
    p = projection or project(name, ref, mod, config)
    out.mkdir(parents=True, exist_ok=True)
    energy = kt(info.temperature)
    interval = bootstrap_interval(p.boot, config)
    metrics = slow_mode_metrics(name, p, config, interval, energy, out)
    names, ref_bonded = bonded_coordinates(info.n_beads, info.bonds, info.bead_names, ref)
    _, mod_bonded = bonded_coordinates(info.n_beads, info.bonds, info.bead_names, mod)
    geometry_picture(out / "geometry.png", names, ref_bonded, mod_bonded)
    if names:
        metrics["bonded"] = coordinate_divergences(names, ref_bonded, mod_bonded, config.bins_1d, config.floor_draws,
                                                   config.level, config.seed)
    phi_psi = phi_psi_metric(name, info, ref, mod, config.bins_2d, interval, energy, out / "phi_psi.png")
    if phi_psi is not None:
        metrics["kl_phi_psi"] = phi_psi
    return metrics


def bootstrap_warnings(boot: dict) -> list[str]:
    """What the bootstrap blocks of :func:`bootstrap_blocks` say of each ensemble: too few blocks, or
    trajectories too short to measure the correlation time."""
    warnings = []
    for key, b in boot.items():
        if b["blocks"] < MIN_BLOCKS:
            warnings.append(f"The {key} gives only {b['blocks']} bootstrap blocks of {b['block_frames']} frames (TIC1 "
                            f"correlation time {b['tau_tic1_frames']:.0f} frames): its intervals are unreliable.")
        if not b["tau_window_reached"]:
            warnings.append(f"The {key}'s trajectories are shorter than 5 TIC1 correlation times: its correlation time "
                            f"({b['tau_tic1_frames']:.0f} frames) is underestimated.")
    return warnings


def slow_mode_metrics(name: str, p: Projection, config: EvaluateConfig, interval, energy: float, out: Path) -> dict:
    """The divergences along TIC1 and on the TIC1/TIC2 plane, the transitions, counts and warnings of
    :func:`evaluate_system`; the pictures ``tic12.png`` and ``tic1.png`` written under ``out``."""
    ref_tic, mod_tic, boot = p.reference, p.model, p.boot
    r1, m1 = np.concatenate(ref_tic), np.concatenate(mod_tic)
    bounds = core_bounds(r1[:, 0])
    # bins fixed once from the whole reference (every bootstrap draw on the same bins)
    e1, e2 = shared_edges(r1[:, 0], m1[:, 0], config.bins_1d), shared_edges(r1[:, :2], m1[:, :2], config.bins_2d)
    metrics = {
        "kl_tic1": interval(lambda a, b: kl_samples(a[:, 0], b[:, 0], edges=e1), ref_tic, mod_tic),
        "js_tic1": interval(lambda a, b: js_samples(a[:, 0], b[:, 0], edges=e1), ref_tic, mod_tic),
        "transitions_tic1": {"reference": count_transitions([t[:, 0] for t in ref_tic], bounds),
                             "model": count_transitions([t[:, 0] for t in mod_tic], bounds)},
        "tic1_timescale_frames": float(p.tica.timescales()[0]),
        "frames": {"reference": int(len(r1)), "model": int(len(m1))},
        "trajectories": {"reference": len(ref_tic), "model": len(mod_tic)},
        "bootstrap": boot,
        "warnings": bootstrap_warnings(boot),
    }
    if r1.shape[1] > 1:
        metrics["kl_tic12"] = interval(lambda a, b: kl_samples(a[:, :2], b[:, :2], edges=e2), ref_tic, mod_tic)
        plots.free_energy_2d(out / "tic12.png", r1[:, :2], m1[:, :2], energy, ("TIC1 (dimensionless)", "TIC2 (dimensionless)"),
                             name, edges=e2)
    blocks = (boot["reference"]["block_frames"], boot["model"]["block_frames"])
    plots.free_energy_1d(out / "tic1.png", [t[:, 0] for t in ref_tic], [t[:, 0] for t in mod_tic], e1[0], energy,
                         "TIC1 (dimensionless)", name, blocks, config.bootstrap, config.seed)
    return metrics


def geometry_picture(path: Path, names: list[tuple[str, str]], ref: list[np.ndarray], mod: list[np.ndarray]) -> None:
    """Bond lengths (Å) and chain angles (degrees) of both ensembles as distributions (``geometry.png``), from
    :func:`~cglight.evaluate.bonded.bonded_coordinates`; nothing without either."""
    if not names:
        return
    rp, mp = np.concatenate(ref), np.concatenate(mod)
    plots.distributions(path, [(f"{kind[:-1]} {name}", "Å" if kind == "bonds" else "deg", rp[:, c], mp[:, c])
                               for c, (kind, name) in enumerate(names)])


def phi_psi_metric(name: str, info, ref: list[np.ndarray], mod: list[np.ndarray], bins: int, interval, energy: float,
                   path: Path) -> dict | None:
    """KL on the backbone dihedrals (φ, ψ) from the beads, its picture written at ``path``; None when the
    beads hold no φ/ψ (not an alanine-dipeptide backbone map)."""
    quads = phi_psi_beads(info.bead_names)
    if quads is None:
        return None
    edges = [np.linspace(-np.pi, np.pi, bins + 1)] * 2
    ref_pp = [dihedrals(t, quads) for t in ref]
    mod_pp = [dihedrals(t, quads) for t in mod]
    kl = interval(lambda a, b: kl_samples(a, b, edges=edges), ref_pp, mod_pp)
    deg = [np.degrees(e) for e in edges]
    plots.free_energy_2d(path, np.degrees(np.concatenate(ref_pp)), np.degrees(np.concatenate(mod_pp)),
                         energy, ("φ (deg)", "ψ (deg)"), name, edges=deg)
    return kl


def _value(m: dict) -> str:
    return f"{m['plugin']:.3f} [{m['plugin_low']:.3f}, {m['plugin_high']:.3f}]"


def _range(floor: dict) -> str:
    return f"{floor['median']:.3f} [{floor['low']:.3f}, {floor['high']:.3f}]"


def headline(m: dict, level: float) -> str:
    """The plug-in value with its interval, next to the finite-sample floor, then the corrected value."""
    text = f"{_value(m)} (plug-in, {level:.0%} interval)"
    if "floor" in m:
        draws = m["floor"]["draws"]
        text += f"; a perfect model sampled as much scores {_range(m['floor'])} (finite-sample floor, {draws} subsamples)"
    return text + f"; bias-corrected {m['value']:.3f}"


def _report(metrics: dict, config: EvaluateConfig) -> str:
    lines = ["# cglight evaluation", "", f"Reference `{config.reference}`, simulation `{config.simulation}`, TICA lag {config.lag} frames.",
             f"KL is KL(reference ‖ model) in nats. Each cell: the plug-in value with its {config.level:.0%} block-bootstrap "
             "interval, then the **finite-sample floor** — the same divergence between the reference and subsamples of it "
             "shaped like the model's ensemble (same trajectories and frames), i.e. what a perfect model sampled as much "
             "would score: median [central range] — then the bootstrap bias-corrected value. A value inside its floor's "
             "range is indistinguishable from a perfect model at this sample size.", ""]
    lines += ["| system | KL TIC1 | JS TIC1 | KL TIC1/TIC2 | KL (φ, ψ) | transitions ref / model | frames ref / model |",
              "| --- | --- | --- | --- | --- | --- | --- |"]

    def fmt(m: dict | None) -> str:
        if m is None:
            return "–"
        floor = f"; floor {_range(m['floor'])}" if m.get("floor") else ""
        return f"{_value(m)}{floor}; corrected {m['value']:.3f}"

    for name, m in metrics["systems"].items():
        t, f = m["transitions_tic1"], m["frames"]
        lines.append(f"| {name} | {fmt(m['kl_tic1'])} | {fmt(m['js_tic1'])} | {fmt(m.get('kl_tic12'))} | {fmt(m.get('kl_phi_psi'))} "
                     f"| {t['reference']} / {t['model']} | {f['reference']} / {f['model']} |")
    lines.append("")
    for name, m in metrics["systems"].items():
        lines.append(f"## {name}\n")
        lines += [f"**{w}**\n" for w in m["warnings"]]
        if m.get("bonded"):
            lines.append(f"Bonded geometry, Jensen–Shannon divergence per coordinate next to its floor: {bonded_text(m['bonded'])}.\n")
        if m["transitions_tic1"]["reference"] < 4:
            lines.append(f"**The reference crosses the slow mode only {m['transitions_tic1']['reference']} times: its TIC1 "
                         "distribution is not converged and the KL along it is not meaningful.**\n")
        for png in PLOTS:
            if (Path(config.out) / name / png).is_file():
                lines.append(f"![{png}]({name}/{png})\n\n*{CAPTIONS[png]}*\n")
    return "\n".join(lines)


def check_output(out: Path, overwrite: bool) -> None:
    """Refuses an ``out`` that is a file, or a non-empty directory unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"evaluate: 'out' {out} is a file, not a directory")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"evaluate: 'out' {out} is not empty; choose another directory, or set 'overwrite: true' "
                          "(--overwrite true) to replace the evaluation there")


def remove_previous(out: Path, names: list[str]) -> None:
    """An earlier evaluation's files that this one writes (none may outlive it looking current)."""
    for path in [out / "metrics.json", out / "report.md", *(out / n / png for n in names for png in PLOTS)]:
        path.unlink(missing_ok=True)


def replica_warnings(sim: Path, runs: dict[str, np.ndarray], stopped: dict[str, str] | None) -> list[str]:
    """What the record says of the replicas: which stopped (their frames up to the stop are evaluated)."""
    if stopped is None:
        return [f"Stopped replicas and the simulation's temperature are unknown (no simulation.json entry in {sim}): "
                "every replica file is evaluated as it is."]
    if not stopped:
        return []
    total = len(set(runs) | set(stopped))
    return [f"{len(stopped)} of {total} replicas stopped ({stopped_text(stopped)}): the model is unstable there; their "
            "frames up to the stop are evaluated with the others."]


def evaluate(config: EvaluateConfig) -> Path:
    config.validate()
    root, out = Path(config.reference), Path(config.out)
    sim = SimulationOutput(config.simulation)
    check_output(out, config.overwrite)  # before anything is read
    if not sim.root.is_dir():
        raise ConfigError(f"evaluate: simulation directory {sim.root} does not exist")
    record = sim.read_record()
    manifest = read_manifest(root)
    found = sim.systems(list(manifest.systems))
    names = config.systems or found
    missing = [n for n in names if n not in found]
    if missing or not names:
        raise ConfigError(f"evaluate: systems {missing or '(none)'} are not in both {root} ({sorted(manifest.systems)}) "
                          f"and {sim.root} ({found})")
    metrics = {"settings": asdict(config), "systems": {}}
    data = {}
    for name in names:  # every input checked, and every system projected, before anything is written
        info = manifest.systems[name]
        ref = reference_trajectories(root, manifest, name)
        longest = max(len(t) for t in ref)
        if config.lag >= longest:
            raise ConfigError(f"evaluate: 'lag' {config.lag} frames needs a reference trajectory longer than that, but the longest "
                              f"of system '{name}' in {root} has {longest} frames")
        runs = sim.trajectories(name, config.skip_frames, simulation_topology(sim, name, info, root))
        if not runs:
            raise ConfigError(f"evaluate: {sim.root / name} holds no trajectory frames after skip_frames={config.skip_frames}")
        entry = None if record is None else record.get(name)
        stopped = None if entry is None else {str(r): why for r, why in entry.get("stopped", {}).items()}
        check_live_replicas(name, runs, stopped, config.skip_frames)
        mod = list(runs.values())
        data[name] = ref, mod, project(name, ref, mod, config), entry, runs, stopped
    if config.overwrite:
        remove_previous(out, names)
    for name, (ref, mod, projection, entry, runs, stopped) in data.items():
        m = metrics["systems"][name] = evaluate_system(name, manifest.systems[name], ref, mod, config, out / name, projection)
        m["replicas"] = {"model": len(set(runs) | set(stopped or {})), "stopped": stopped}
        m["warnings"] += replica_warnings(sim.root, runs, stopped)
        t_ref, t_sim = manifest.systems[name].temperature, (entry or {}).get("temperature")
        m["temperature"] = {"reference": t_ref, "model": t_sim}
        if t_sim is not None and abs(t_sim - t_ref) > TEMPERATURE_TOLERANCE_K:
            m["warnings"].append(f"The simulation ran at {t_sim:.1f} K, the reference at {t_ref:.1f} K: the ensembles differ "
                                 "by temperature too.")
        for warning in m["warnings"]:
            log.warning("%s: %s", name, warning)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write(out / "report.md", _report(metrics, config))
    for name in names:  # the summary: the headline of every system, what was written where, what to read next
        log.info("%s: KL(ref‖model) along TIC1, nats: %s", name, headline(metrics["systems"][name]["kl_tic1"], config.level))
        if metrics["systems"][name].get("bonded"):
            log.info("%s: bonded geometry, %s", name, bonded_text(metrics["systems"][name]["bonded"]))
    pictures = "; ".join(f"{out / n}/{{{', '.join(p for p in PLOTS if (out / n / p).is_file())}}}" for n in names)
    log.info("wrote %s and %s (every divergence with its interval and floor, warnings), pictures %s",
             out / "metrics.json", out / "report.md", pictures)
    log.info("next: open %s", out / "report.md")
    return out
