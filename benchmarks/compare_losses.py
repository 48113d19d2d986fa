"""Force matching against Hessian matching, end to end: fit → simulate → evaluate, several seeds.

    python benchmarks/compare_losses.py --config configs/compare/ala2.yaml [--seeds 0 1 2] [--out comparisons/ala2]

For every loss set of the comparison config (same data, priors, backbone and budget) and every
training seed, this runs ``cglight fit``, ``cglight simulate`` and ``cglight evaluate`` through
the real command line, estimates the reference PMF Hessian at a few configurations by
constrained all-atom sampling (once, cached, after the first fit has built the dataset), measures
each trained model's Hessian error there (next to the reference's own noise),
and writes to ``OUT/tables.md`` (and prints) in Markdown: per loss set the plug-in divergences (KL and JS along TIC1, 2-D KL, (φ, ψ) KL where
defined; mean with a t-interval over seeds) next to their finite-sample floors, every seed's
bootstrap interval, the paired differences against the first loss set (same seed, same reference),
the PMF-Hessian error by subspace (whole, stiff, soft), the bonded geometry (bond and angle JS
divergences next to their floors), the curvature against the ``hvp_cov`` target's mean on held-out
frames (``cglight diagnose --split test``, every run: ``<run>/diagnose_test.json``), and ``cglight diagnose``'s reading of each
loss set's first-seed model (``<run>/diagnose.json``; ``diagnose: false`` in the config skips it). Wall times of every stage are printed and saved in ``OUT/summary.json`` (and per run in
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
    held_out_force: true                   # also `cglight test` every model: its test-split losses
    variants:                              # optional: name → extra fit options; every loss set runs under each
      250-full: [--data.train_frames, "250"]
      250-repulsion: [--data.train_frames, "250", --model.priors, "{bonds: null, angles: null, dihedrals: null}"]
      1000-full: {args: [--data.train_frames, "1000"], losses: [force, force+hvp_cov]}  # only these loss sets

With ``variants`` (learning curves: training frames × priors) the runs go to ``OUT/<variant>/<run>``,
each variant gets its own tables, ``--data.seed`` follows the training seed (a different subset of
frames for every seed), and a learning-curve table of every measure by variant and loss set (with
the paired differences against the first loss set) is printed and drawn to ``OUT/learning_curve.png``.
When the simulation holds several systems (held-out peptides, ``configs/compare/peptides.yaml``),
every system gets its tables, and the paired differences are also pooled over systems: per seed the
mean over systems (one model judges them all), then a t-interval over seeds.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
from comparison_report import first_system, markdown, measures, stage_seconds, value_at  # noqa: E402


class StageFailed(Exception):
    """A model's simulation or evaluation failed (for example every replica blew up): a result of the
    study, recorded for that run, not a reason to stop the others."""


def run(args: list[str], log: Path, model_result: bool = False) -> float:
    """``cglight ARGS`` with its output in ``log``; its wall time. A failure stops the study, unless
    ``model_result``: then it raises :class:`StageFailed` with the command's last line."""
    t = time.perf_counter()
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-m", "cglight.cli", *args], stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        if model_result:
            last = (log.read_text().strip().splitlines() or [""])[-1]
            raise StageFailed(f"cglight {args[0]} exited {r.returncode}: {last[:300]} (see {log})")
        sys.exit(f"failed: cglight {' '.join(args)} (see {log})")
    return time.perf_counter() - t


class StageClock:
    """A run's stage wall times (seconds), kept in its ``seconds.json``. A stage that a stopped process had
    begun (its start is recorded under ``begun``) keeps that attempt's time, from its start to its log's last
    write, and adds it when the stage is run again: a resumed simulation reports its whole time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict = json.loads(path.read_text()) if path.is_file() else {}

    def __contains__(self, stage: str) -> bool:
        return stage in self.seconds

    def finished(self) -> dict[str, float]:
        """Every finished stage's wall time."""
        return {k: v for k, v in self.seconds.items() if k != "begun"}

    def run(self, stage: str, args: list[str], log: Path, model_result: bool = False) -> None:
        """``run(args, log, model_result)``, its wall time (with an earlier stopped attempt's) recorded as ``stage``."""
        begun = self.seconds.setdefault("begun", {})
        start, earlier = begun.get(stage, (None, 0.0))
        if start is not None and log.is_file():
            earlier += max(0.0, log.stat().st_mtime - start)
        begun[stage] = (time.time(), earlier)
        self._save()
        try:
            elapsed = run(args, log, model_result)
        except (StageFailed, SystemExit):  # an orderly failure: not an attempt to resume
            self._end(stage)
            raise
        self._end(stage)
        self.seconds[stage] = earlier + elapsed
        self._save()

    def _end(self, stage: str) -> None:
        self.seconds["begun"].pop(stage, None)
        if not self.seconds["begun"]:
            del self.seconds["begun"]
        self._save()

    def _save(self) -> None:
        self.path.write_text(json.dumps(self.seconds))


def pmf_hessians(data: Path, frames: int, samples: int, cache: Path) -> dict:
    """Reference PMF Hessians at ``frames`` evenly spaced frames of the dataset's first system, and at
    the first of them the convergence report (step halved, samples doubled), printed and cached."""
    if cache.is_file():
        out = json.loads(cache.read_text())
        if "convergence" not in out:
            out["convergence"] = pmf_convergence(data, out, samples)
            cache.write_text(json.dumps(out))
        print_convergence(out["convergence"])
        return out
    import h5py

    from cglight.data import keys
    from cglight.data.manifest import read_manifest
    from cglight.prepare.pmf_hessian import conditional_pmf_hessian

    manifest = read_manifest(data)
    name, info = next(iter(manifest.systems.items()))
    if any(len(atoms) != 1 for atoms in info.map["atoms"]):
        sys.exit(f"pmf_hessian: {data} maps some bead on several atoms; the PMF Hessian here holds one atom per bead fixed "
                 "(a slice map such as 'backbone' or 'ca')")
    shard = next(s for s in manifest.shards if s.system == name)
    with h5py.File(data / shard.path, "r") as f:
        pos = f[keys.POS][:]
    picks = np.linspace(0, len(pos) - 1, frames).astype(int)
    out = {"system": name, "frames": [], "picks": [int(i) for i in picks]}
    t = time.perf_counter()
    for i in picks:
        system, x, mapped, temperature = _reference_frame(data, int(i))
        est = conditional_pmf_hessian(system, x, mapped, temperature, samples=samples)
        out["frames"].append({"pos": pos[i].tolist(), "hessian": est.hessian.tolist(), "stderr": est.frobenius_stderr,
                              "per_block": est.per_block.tolist(), "settings": est.settings, "acceptance": est.acceptance})
    out["seconds"] = time.perf_counter() - t
    out["convergence"] = pmf_convergence(data, out, samples)
    cache.write_text(json.dumps(out))
    print_convergence(out["convergence"])
    return out


def _reference_frame(data: Path, position: int):
    """The all-atom system, the AA positions (nm) of dataset frame ``position`` and the mapped atoms."""
    import h5py
    import mdtraj as md
    import openmm as mm

    from cglight.data import keys
    from cglight.data.manifest import read_manifest

    manifest = read_manifest(data)
    name, info = next(iter(manifest.systems.items()))
    ref = info.reference
    system = mm.XmlSerializer.deserialize((data / ref["system"]).read_text())
    shard = next(s for s in manifest.shards if s.system == name)
    with h5py.File(data / shard.path, "r") as f:
        index = int(f[keys.FRAME_INDEX][position])
        replica = int(f[keys.REPLICA][position]) if keys.REPLICA in f else 0
    paths = info.trajectories or [ref["trajectory"]]
    traj = md.load_frame(str(data / paths[replica]), index, top=str(data / ref["topology"]))
    return system, traj.xyz[0], [atoms[0] for atoms in info.map["atoms"]], info.temperature


def pmf_convergence(data: Path, reference: dict, samples: int) -> dict:
    """``convergence_report`` at the first reference configuration: the table and the settings."""
    from cglight.prepare.pmf_hessian import convergence_report

    system, x, mapped, temperature = _reference_frame(data, reference.get("picks", [0])[0])
    report = convergence_report(system, x, mapped, temperature, samples=samples)
    return {"table": report["table"], "settings": report["estimate"].settings, "acceptance": report["estimate"].acceptance}


def print_convergence(convergence: dict) -> None:
    t = convergence["table"]
    print(f"PMF-Hessian convergence at one configuration ({convergence['settings']['sampler']}, "
          f"{convergence['settings']['timestep_fs']} fs, {t['base']['samples']} samples; Frobenius norm {t['base']['frobenius_norm']:.0f}, "
          f"stderr {t['base']['stderr']:.0f}): step halved moves it by {t['half_step']['change']:.0f} "
          f"({t['half_step']['ratio']:.2f} × the combined noise), samples doubled by {t['more_samples']['change']:.0f} "
          f"({t['more_samples']['ratio']:.2f} ×); error with the step bias {t['base']['error_with_step_bias']:.0f}; "
          f"mapped-force variance {t['base']['force_variance']:.0f} / {t['half_step']['force_variance']:.0f} / "
          f"{t['more_samples']['force_variance']:.0f}", flush=True)


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
        h = model.hessian(torch.tensor(frame["pos"], dtype=torch.float64)[None], torch.tensor(bead_types))[0].numpy()
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
    study = Study(config, out, Path(yaml.safe_load(Path(config["simulate"]).read_text())["starts"]), args.seeds)
    results: dict[str, dict[str, list[dict]]] = {}  # variant → loss set → one row per seed
    runs = variant_runs(config)
    for variant, (variant_args, loss_names) in runs.items():
        for loss_name in loss_names:
            for seed in args.seeds:
                row = study.run(variant, variant_args, loss_name, config["losses"][loss_name], seed)
                results.setdefault(variant, {}).setdefault(loss_name, []).append(row)
    notes = []
    if study.reference is not None:
        noise = [f["stderr"] / float(np.linalg.norm(f["hessian"])) for f in study.reference["frames"]]
        notes.append(f"PMF-Hessian reference: {len(noise)} configurations, standard error {min(noise):.1%}–{max(noise):.1%} of its "
                     "norm (a perfect model's Hessian error would be about that).")
    if len(results) > 1:
        plot_learning_curve(curve_points(results), list(results), out / "learning_curve.png")
    (out / "summary.json").write_text(json.dumps({"results": results, "seconds": study.times}, indent=2) + "\n")
    tables = markdown(results, {v: a for v, (a, _) in runs.items()}, stage_seconds(results), notes)
    (out / "tables.md").write_text(tables)
    print("\n" + tables)
    print(f"Markdown tables: {out / 'tables.md'}; learning curve: {out / 'learning_curve.png'}" if len(results) > 1
          else f"Markdown tables: {out / 'tables.md'}")
    print(f"wall times (s): {study.times}; per run in {out / 'summary.json'}")

def variant_runs(config: dict) -> dict[str, tuple[list[str], list[str]]]:
    """variant → (its extra fit options, the loss sets it runs). A variant is a list of options (every
    loss set runs) or ``{args: [...], losses: [names]}``; no ``variants``: one unnamed variant."""
    every = list(config["losses"])
    runs = {}
    for name, spec in (config.get("variants") or {"": []}).items():
        args, losses = (spec.get("args", []), spec.get("losses", every)) if isinstance(spec, dict) else (spec, every)
        unknown = [loss for loss in losses if loss not in config["losses"]]
        if unknown or not isinstance(args, list):
            raise SystemExit(f"variant {name!r}: " + (f"loss sets {unknown} are not in losses: (allowed: {every})"
                                                        if unknown else "args must be a list of fit options"))
        runs[name] = ([str(a) for a in args], list(losses))
    return runs


class Study:
    """The runs of one comparison config: each (variant, loss set, seed) fitted, simulated, evaluated,
    scored; a stage already done (its wall time in ``seconds.json``) is not run again."""

    def __init__(self, config: dict, out: Path, data: Path, seeds: list[int]) -> None:
        self.config, self.out, self.data, self.seeds = config, out, data, seeds
        self.times: dict[str, float] = {}
        self.reference: dict | None = None
        self.bead_types: list[int] | None = None
        self.bonds: list[list[int]] | None = None

    def run(self, variant: str, variant_args: list[str], loss_name: str, losses: dict, seed: int) -> dict:
        """One run: ``{"systems": {name: evaluate's metrics}, "pmf_hessian", "held_out", "seconds"}``."""
        config, tag = self.config, f"{loss_name.replace('+', '_')}-seed{seed}"
        run_dir = (self.out / variant / tag) if variant else self.out / tag
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = run_dir / "fit/cglight/version_0/checkpoints/last.ckpt"
        clock = StageClock(run_dir / "seconds.json")
        model_args = [*config.get("fit_args", []), *variant_args, "--model.losses", json.dumps(losses)]
        if variant_args:  # a variant may choose a subset of the training frames: a different one for every seed
            model_args += ["--data.seed", str(seed)]
        if not ckpt.is_file():
            clock.run("fit", ["fit", "--config", config["fit"], *model_args, "--seed_everything", str(seed),
                              "--trainer.default_root_dir", str(run_dir / "fit"),
                              "--trainer.logger.init_args.save_dir", str(run_dir / "fit")], run_dir / "fit.log")
        pmf_cfg = config.get("pmf_hessian")
        if self.reference is None and pmf_cfg:  # the first fit has built the dataset
            self.reference = pmf_hessians(self.data, pmf_cfg.get("frames", 4), pmf_cfg.get("samples", 2000),
                                          self.out / "pmf_hessians.json")
            self.times["pmf_hessian"] = self.reference["seconds"]  # of the estimate, cached or not
        row: dict = {"seed": seed, "systems": {}}
        try:
            self._simulate_and_evaluate(run_dir, ckpt, seed, clock)
            row["systems"] = json.loads((run_dir / "eval/metrics.json").read_text())["systems"]
        except StageFailed as exc:
            row["failed"] = str(exc)
            print(f"{variant + '/' if variant else ''}{tag}: {exc}", flush=True)
        if self.reference is not None:
            row["pmf_hessian"] = hessian_errors(ckpt, self.reference, *self._first_system())
        if config.get("held_out_force"):
            row["held_out"] = self._held_out(run_dir, ckpt, model_args, clock)
        self._diagnose(run_dir, tag, ckpt, seed, clock)
        held_out_curvature = self._held_out_curvature(run_dir, ckpt, clock)
        if held_out_curvature:
            row["held_out_curvature"] = held_out_curvature
        row["seconds"] = clock.finished()
        if row["systems"]:
            first = next(iter(row["systems"].values()))
            print(f"{variant + '/' if variant else ''}{tag}: KL TIC1 plug-in {first['kl_tic1']['plugin']:.3f} {row['seconds']}", flush=True)
        return row

    def _simulate_and_evaluate(self, run_dir: Path, ckpt: Path, seed: int, clock: StageClock) -> None:
        config = self.config
        if (run_dir / "eval/metrics.json").is_file():
            return
        if (run_dir / "failed.txt").is_file():  # a model that failed before fails again: not rerun
            raise StageFailed((run_dir / "failed.txt").read_text().strip())
        try:
            if "simulate" not in clock or not (run_dir / "sim/simulation.json").is_file():  # not finished yet
                clock.run("simulate", ["simulate", "--config", config["simulate"], *config.get("simulate_args", []),
                                       "--checkpoint", str(ckpt), "--seed", str(seed), "--out", str(run_dir / "sim")],
                          run_dir / "simulate.log", model_result=True)
            clock.run("evaluate", ["evaluate", "--config", config["evaluate"], "--overwrite", "true",
                                   *config.get("evaluate_args", []), "--simulation", str(run_dir / "sim"),
                                   "--out", str(run_dir / "eval")], run_dir / "evaluate.log", model_result=True)
        except StageFailed as exc:
            (run_dir / "failed.txt").write_text(str(exc) + "\n")
            raise

    def _first_system(self) -> tuple[list[int], list[list[int]]]:
        if self.bead_types is None:
            from cglight.data.manifest import read_manifest

            info = next(iter(read_manifest(self.data).systems.values()))
            self.bead_types, self.bonds = info.bead_types, info.bonds
        return self.bead_types, self.bonds

    def _held_out(self, run_dir: Path, ckpt: Path, model_args: list[str], clock: StageClock) -> dict[str, float]:
        """``cglight test`` of the model: its losses on the test split, normalised and raw, from the CSV log.
        The test split is the held-out frames of every system or, with ``data.holdout_systems``, the held-out
        systems only (``--data.test_fraction 0``: the molecules never seen, not the trained ones' later frames)."""
        found = sorted((run_dir / "test").glob("cglight/version_*/metrics.csv"))
        if not found:
            only_held_out = ["--data.test_fraction", "0"] if self._holdout() else []
            clock.run("test", ["test", "--config", self.config["fit"], *model_args, *only_held_out, "--ckpt_path", str(ckpt),
                               "--trainer.default_root_dir", str(run_dir / "test"),
                               "--trainer.logger.init_args.save_dir", str(run_dir / "test")], run_dir / "test.log")
            found = sorted((run_dir / "test").glob("cglight/version_*/metrics.csv"))
        import csv

        with open(found[-1]) as f:
            rows = [r for r in csv.DictReader(f)]
        return {k: float(v) for r in rows for k, v in r.items() if k.startswith("test/") and v not in ("", None)}

    def _diagnose(self, run_dir: Path, tag: str, ckpt: Path, seed: int, clock: StageClock) -> None:
        if self.config.get("diagnose", True) and seed == self.seeds[0] and not (run_dir / "diagnose.json").is_file():
            holdout = self._holdout()
            trained = []  # held-out systems have no training frames: the trained ones only
            if holdout:
                from cglight.data.manifest import read_manifest

                trained = [s for s in read_manifest(self.data).systems if s not in holdout]
            clock.run("diagnose", ["diagnose", *self._diagnose_args(ckpt, trained), "--out", str(run_dir / "diagnose.json")],
                      run_dir / "diagnose.log")
        if (run_dir / "diagnose.json").is_file():
            for system, entry in json.loads((run_dir / "diagnose.json").read_text())["systems"].items():
                for line in entry["verdict"]:
                    print(f"  diagnose {tag} {system}: {line}")

    def _fit_data(self) -> dict:
        """The ``data`` section of the base fit config."""
        return (yaml.safe_load(Path(self.config["fit"]).read_text()) or {}).get("data", {})

    def _holdout(self) -> list[str]:
        """The fit config's ``data.holdout_systems``."""
        return list(self._fit_data().get("holdout_systems") or [])

    def _diagnose_args(self, ckpt: Path, systems: list[str]) -> list[str]:
        """``cglight diagnose`` options for ``systems`` of the model at ``ckpt``, its splits cut as the fit cut them."""
        data = self._fit_data()
        return ["--checkpoint", str(ckpt), "--data", str(self.data), "--systems", json.dumps(systems),
                "--holdout_systems", json.dumps(self._holdout()), "--val_fraction", str(data.get("val_fraction", 0.1)),
                "--test_fraction", str(data.get("test_fraction", 0.1))]

    def _held_out_curvature(self, run_dir: Path, ckpt: Path, clock: StageClock) -> dict:
        """``cglight diagnose --split test``: per judged system and subspace the model's curvature against the
        held-out mean of the ``hvp_cov`` (centered) target, ``{model, target, stderr, z, relative_gap}``."""
        if not self.config.get("diagnose", True):
            return {}
        path = run_dir / "diagnose_test.json"
        if not path.is_file():
            clock.run("diagnose_test", ["diagnose", *self._diagnose_args(ckpt, self._holdout()), "--split", "test",
                                        "--gradient_frames", "0", "--out", str(path)], run_dir / "diagnose_test.log")
        return {system: entry["readings"]["hvp_cov/centered"]
                for system, entry in json.loads(path.read_text())["systems"].items()}


def curve_points(results: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, list[tuple[str, dict[int, float]]]]]:
    """measure → loss set → [(variant, {seed: value})] of the learning-curve measures, for the first judged
    system; a run without the measure (its simulation failed, or it was not measured) has no entry."""
    first = first_system(results)
    points: dict[str, dict[str, list[tuple[str, dict[int, float]]]]] = {}
    for measure, path in measures(first or "", curve_only=True).items():
        for variant, table in results.items():
            for name, rows in table.items():
                values = {r["seed"]: value for r in rows if (value := value_at(r, path)) is not None}
                if values:
                    points.setdefault(measure, {}).setdefault(name, []).append((variant, values))
    return points


def _frames_and_group(variant: str) -> tuple[float, str] | None:
    """``"250-full"`` → ``(250, "full")``: variants named ``<training frames>-<group>`` lie on a curve."""
    head, _, group = variant.partition("-")
    return (float(head), group) if head.isdigit() else None


def plot_learning_curve(points: dict, variants: list[str], png: Path) -> None:
    """One panel per measure; variants named ``<frames>-<group>`` as curves over the training frames
    (log axis), one line per loss set and group; other variant names as categories, unconnected."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    on_curve = all(_frames_and_group(v) for v in variants)
    groups = list(dict.fromkeys(_frames_and_group(v)[1] for v in variants)) if on_curve else [""]
    styles = ["-", "--", ":", "-."]
    columns = min(3, len(points))
    rows = -(-len(points) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[len(points):]:
        ax.set_visible(False)
    for ax, (measure, by_loss) in zip(axes.flat, points.items()):
        for colour, (name, series) in enumerate(by_loss.items()):
            for g, group in enumerate(groups):
                chosen = [(var, v) for var, v in series if not on_curve or _frames_and_group(var)[1] == group]
                if not chosen:
                    continue
                values = [list(v.values()) for _, v in chosen]
                x = ([_frames_and_group(var)[0] * (1 + 0.06 * (colour - (len(by_loss) - 1) / 2) + 0.02 * g) for var, _ in chosen]
                     if on_curve else [variants.index(var) + 0.08 * (colour - (len(by_loss) - 1) / 2) for var, _ in chosen])
                mean = [float(np.mean(v)) for v in values]
                ax.plot(x, mean, marker="o", color=f"C{colour}", linestyle=styles[g % len(styles)] if on_curve else "none",
                        label=f"{name}, {group} priors" if on_curve and len(groups) > 1 else name)
                for xi, v in zip(x, values):  # every seed, so that one failed model does not hide behind a mean
                    ax.plot([xi] * len(v), v, linestyle="none", marker="x" if g else ".", color=f"C{colour}", alpha=0.6)
        if on_curve:
            ax.set_xscale("log")
            frames = sorted({_frames_and_group(v)[0] for v in variants})
            ax.set_xticks(frames, [f"{f:.0f}" for f in frames])  # the measured sizes, not the log axis' minor labels
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("training frames")
        else:
            ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
        if measure.startswith("KL"):
            ax.set_yscale("log")
        ax.set_title(measure, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("mean over seeds (line) and every seed (dots" + ("; crosses for the second priors group" if len(groups) > 1 else "") +
                 "); runs whose simulation failed are left out: see the tables", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)

if __name__ == "__main__":
    main()
