"""Force matching against Hessian matching, end to end: fit → simulate → evaluate, several seeds.

    python benchmarks/compare_losses.py --config configs/compare/ala2.yaml [--seeds 0 1 2] [--out comparisons/ala2]

For every loss set of the comparison config (same data, priors, backbone and budget) and every
training seed, this runs ``cglight fit``, ``cglight simulate`` and ``cglight evaluate`` through
the real command line, estimates the reference PMF Hessian at a few configurations by
constrained all-atom sampling (once, cached, after the first fit has built the dataset), measures
each trained model's Hessian error there (next to the reference's own noise),
and prints one table: loss → KL(reference ‖ model) along TIC1 (mean over seeds, with the spread
and every seed's bootstrap interval), JS, 2-D KL, (φ, ψ) KL where defined, and the PMF-Hessian
error. Wall times of every stage are printed and saved in ``OUT/summary.json`` (and per run in
``OUT/<run>/seconds.json``). A stage already done (its wall time in ``seconds.json``) is not run
again: delete a run's ``eval/metrics.json`` (or ``eval/``) to evaluate it again (into the same ``eval/``, with
``--overwrite true``: an unfinished earlier evaluation's files there are replaced).

The comparison config (YAML):

    fit: configs/quickstart.yaml          # the base fit config
    fit_args: [--trainer.max_epochs, "20"]  # extra fit options shared by every run
    losses:                                # name → model.losses
      force: {force: {weight: 1.0}}
      force+hvp: {force: {weight: 1.0}, hvp: {weight: 0.1, probes: 4}}
      force+hvp_cov: {force: {weight: 1.0}, hvp_cov: {weight: 0.1, probes: 4}}
    simulate: configs/simulate/ala2.yaml
    simulate_args: [--replicas, "16"]      # extra simulate options shared by every run
    evaluate: configs/evaluate/ala2.yaml
    evaluate_args: []
    pmf_hessian: {frames: 4, samples: 2000}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml


def run(args: list[str], log: Path) -> float:
    t = time.perf_counter()
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-m", "cglight.cli", *args], stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        sys.exit(f"failed: cglight {' '.join(args)} (see {log})")
    return time.perf_counter() - t


def pmf_hessians(data: Path, frames: int, samples: int, cache: Path) -> dict:
    """Reference PMF Hessians at ``frames`` evenly spaced frames of the dataset's first system."""
    if cache.is_file():
        return json.loads(cache.read_text())
    import h5py
    import mdtraj as md
    import openmm as mm

    from cglight.data import keys
    from cglight.data.manifest import read_manifest
    from cglight.prepare.pmf_hessian import conditional_pmf_hessian

    manifest = read_manifest(data)
    name, info = next(iter(manifest.systems.items()))
    ref = info.reference
    system = mm.XmlSerializer.deserialize((data / ref["system"]).read_text())
    shard = next(s for s in manifest.shards if s.system == name)
    with h5py.File(data / shard.path, "r") as f:
        index = f[keys.FRAME_INDEX][:]
        pos = f[keys.POS][:]
        replica = f[keys.REPLICA][:] if keys.REPLICA in f else np.zeros(len(index), dtype=int)
    paths = info.trajectories or [ref["trajectory"]]
    picks = np.linspace(0, len(index) - 1, frames).astype(int)
    if any(len(atoms) != 1 for atoms in info.map["atoms"]):
        sys.exit(f"pmf_hessian: {data} maps some bead on several atoms; the PMF Hessian here holds one atom per bead fixed "
                 "(a slice map such as 'backbone' or 'ca')")
    mapped = [atoms[0] for atoms in info.map["atoms"]]
    out = {"system": name, "frames": []}
    t = time.perf_counter()
    for i in picks:
        traj = md.load_frame(str(data / paths[replica[i]]), int(index[i]), top=str(data / ref["topology"]))
        est = conditional_pmf_hessian(system, traj.xyz[0], mapped, info.temperature, samples=samples)
        out["frames"].append({"pos": pos[i].tolist(), "hessian": est.hessian.tolist(), "stderr": est.frobenius_stderr,
                              "per_block": est.per_block.tolist(), "settings": est.settings, "acceptance": est.acceptance})
    out["seconds"] = time.perf_counter() - t
    cache.write_text(json.dumps(out))
    return out


def hessian_errors(checkpoint: Path, reference: dict, bead_types: list[int], bonds: list[list[int]]) -> dict[str, float]:
    """The model Hessian against the reference at its configurations, by subspace
    (``cglight.evaluate.curvature``): mean relative error of the whole (the old single number) and
    of the stiff and soft blocks, and the model's and the reference's mean soft trace (± its stderr)."""
    import torch

    from cglight.energy import CGEnergy
    from cglight.evaluate.curvature import curvature_report, subspace_basis

    model = CGEnergy.from_checkpoint(checkpoint).double()
    rows = []
    for frame in reference["frames"]:
        pos = torch.tensor(frame["pos"], dtype=torch.float64)[None]
        d = pos.numel()
        cols = [model.hvp(pos, torch.tensor(bead_types), torch.eye(d, dtype=torch.float64)[k].reshape(pos.shape)).flatten() for k in range(d)]
        h = torch.stack(cols, 1).numpy()
        samples = np.asarray(frame["per_block"]) if "per_block" in frame else None
        rows.append(curvature_report(h, np.asarray(frame["hessian"]), subspace_basis(np.asarray(frame["pos"]), bonds), samples))
    out = {"whole": float(np.mean([r["whole"]["error"] for r in rows]))}
    for block in ("stiff", "soft"):
        out[block] = float(np.mean([r[block]["error"] for r in rows]))
    out["soft_trace"] = float(np.mean([r["soft"]["trace"] for r in rows]))
    out["reference_soft_trace"] = float(np.mean([r["soft"]["reference_trace"] for r in rows]))
    if all(r["soft"]["reference_trace_stderr"] is not None for r in rows):
        out["reference_soft_trace_stderr"] = float(np.sqrt(sum(r["soft"]["reference_trace_stderr"] ** 2 for r in rows)) / len(rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    out = Path(args.out or f"comparisons/{Path(args.config).stem}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CGLIGHT_PROGRESS", "0")
    sim_cfg = yaml.safe_load(Path(config["simulate"]).read_text())
    data = Path(sim_cfg["starts"])
    times: dict[str, float] = {}
    pmf_cfg = config.get("pmf_hessian")
    reference, bead_types, bonds = None, None, None
    results: dict[str, list[dict]] = {}
    for loss_name, losses in config["losses"].items():
        for seed in args.seeds:
            tag = f"{loss_name.replace('+', '_')}-seed{seed}"
            run_dir = out / tag
            run_dir.mkdir(exist_ok=True)
            ckpt = run_dir / "fit/cglight/version_0/checkpoints/last.ckpt"
            seconds = run_dir / "seconds.json"
            timing = json.loads(seconds.read_text()) if seconds.is_file() else {}
            if not ckpt.is_file():
                timing["fit"] = run(["fit", "--config", config["fit"], *config.get("fit_args", []), "--model.losses", json.dumps(losses),
                                     "--seed_everything", str(seed), "--trainer.default_root_dir", str(run_dir / "fit"),
                                     "--trainer.logger.init_args.save_dir", str(run_dir / "fit")], run_dir / "fit.log")
            seconds.write_text(json.dumps(timing))
            if reference is None and pmf_cfg:  # the first fit has built the dataset
                reference = pmf_hessians(data, pmf_cfg.get("frames", 4), pmf_cfg.get("samples", 2000), out / "pmf_hessians.json")
                times["pmf_hessian"] = reference["seconds"]  # of the estimate, cached or not
            if not (run_dir / "eval/metrics.json").is_file():
                if "simulate" not in timing or not (run_dir / "sim/simulation.json").is_file():  # not finished yet
                    timing["simulate"] = run(["simulate", "--config", config["simulate"], *config.get("simulate_args", []),
                                              "--checkpoint", str(ckpt), "--seed", str(seed), "--out", str(run_dir / "sim")],
                                             run_dir / "simulate.log")
                    seconds.write_text(json.dumps(timing))
                timing["evaluate"] = run(["evaluate", "--config", config["evaluate"], "--overwrite", "true",
                                          *config.get("evaluate_args", []), "--simulation", str(run_dir / "sim"),
                                          "--out", str(run_dir / "eval")], run_dir / "evaluate.log")
                seconds.write_text(json.dumps(timing))
            metrics = next(iter(json.loads((run_dir / "eval/metrics.json").read_text())["systems"].values()))
            if reference is not None:
                if bead_types is None:
                    from cglight.data.manifest import read_manifest

                    system_info = next(iter(read_manifest(data).systems.values()))
                    bead_types, bonds = system_info.bead_types, system_info.bonds
                metrics["pmf_hessian"] = hessian_errors(ckpt, reference, bead_types, bonds)
            metrics["seconds"] = timing
            results.setdefault(loss_name, []).append(metrics)
            print(f"{tag}: KL TIC1 {metrics['kl_tic1']['value']:.3f} {timing}", flush=True)

    def summary(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"

    if reference is not None:
        noise = [f["stderr"] / float(np.linalg.norm(f["hessian"])) for f in reference["frames"]]
        print(f"PMF-Hessian reference: {len(noise)} configurations, standard error {min(noise):.1%}–{max(noise):.1%} of its norm "
              "(a perfect model's Hessian error would be about that)")
    print(f"\n{'losses':<16} {'KL TIC1':>15} {'JS TIC1':>15} {'KL TIC1/2':>15} {'KL (φ,ψ)':>15} {'Hessian err':>15} "
          f"{'stiff err':>15} {'soft err':>15}  per-seed KL TIC1 [interval]")
    for name, rows in results.items():
        cells = [summary([r[k]["value"] for r in rows]) if k in rows[0] else "–" for k in ("kl_tic1", "js_tic1", "kl_tic12", "kl_phi_psi")]
        herr = [summary([r["pmf_hessian"][b] for r in rows]) if "pmf_hessian" in rows[0] else "–" for b in ("whole", "stiff", "soft")]
        seeds = ", ".join(f"{r['kl_tic1']['value']:.3f} [{r['kl_tic1']['low']:.3f}, {r['kl_tic1']['high']:.3f}]" for r in rows)
        print(f"{name:<16} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {cells[3]:>15} {herr[0]:>15} {herr[1]:>15} {herr[2]:>15}  {seeds}")
    (out / "summary.json").write_text(json.dumps({"results": results, "seconds": times}, indent=2) + "\n")
    print(f"\nwall times (s): {times}; per run in {out / 'summary.json'}")


if __name__ == "__main__":
    main()
