"""``cglight prepare``: all-atom reference frames → mapped forces and projected Hessians → shards.

The work is split into units (``cglight.prepare.plan``): one reference trajectory per replica (Langevin
MD, or the frames of an existing trajectory), then shards of ``shard_frames`` frames each. Units run in
parallel worker processes (``cglight.prepare.work``), each unit writes its file under a temporary name,
renames it, then leaves a marker in the dataset's work directory (``cglight.data.workdir``). A rerun of
the same command skips what is done; ``manifest.json`` appears last. ``--part I/N`` runs the I-th of N
contiguous slices of the shards (and the trajectories they need); ``cglight data merge`` joins the parts.

Every random number is drawn from ``seed`` and the unit's own indices, so the result does not
depend on the number of workers, on the parts, or on interruptions.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

from cglight.atomic import atomic_write
from cglight.data.manifest import MANIFEST, SystemInfo
from cglight.data.workdir import WorkDir, md_unit, shard_unit
from cglight.errors import ConfigError
from cglight.pool import cores, run_jobs
from cglight.prepare.config import PrepareConfig
from cglight.prepare.lock import prepare_lock
from cglight.prepare.mapping import make_map
from cglight.prepare.plan import Part, dataset_plan, part_work
from cglight.prepare.reference import read_trajectory
from cglight.prepare.systems import build_system, check_constraints, pdb_text
from cglight.prepare.work import Job, run_unit
from cglight.progress import progress
from cglight.units import fs_to_ps

__all__ = ["Part", "PrepareConfig", "prepare_dataset", "summary"]

log = logging.getLogger(__name__)


def _build(config: PrepareConfig):
    """The AA system, the map and the frames available per user trajectory; every input error surfaces here."""
    aa = build_system(config.molecule, config.solvent, config.pdb, config.forcefield, config.constraints, config.add_hydrogens)
    cg_map = make_map(aa.topology, aa.masses, config.mapping)
    check_constraints(aa.system, cg_map, f"system '{config.system}'")
    available = None
    if config.trajectory:
        n = aa.topology.getNumAtoms()
        available = [len(range(0, len(read_trajectory(t, config.pdb, n)), config.trajectory_stride)) for t in config.trajectory]
    return aa, cg_map, available


def _setup(config: PrepareConfig, root: Path, work: WorkDir, aa, cg_map, available) -> dict:
    """Write the reference files, the system's manifest entry and the plan (idempotent)."""
    from openmm import XmlSerializer

    plan = dataset_plan(config, available)
    ref = root / config.system / "reference"
    atomic_write(ref / "system.xml", XmlSerializer.serialize(aa.system))
    atomic_write(ref / "topology.pdb", pdb_text(aa.topology, aa.positions))
    dt_ps = fs_to_ps(config.timestep_fs * config.stride_steps) if not config.trajectory else None
    reference = {
        "topology": f"{config.system}/reference/topology.pdb",
        "trajectory": plan["replicas"][0]["path"],
        "system": f"{config.system}/reference/system.xml",
        **aa.description,
        "timestep_fs": str(config.timestep_fs),
    }
    if dt_ps is not None:
        reference["frame_interval_ps"] = str(dt_ps)
    else:
        reference["source_trajectories"] = ", ".join(str(Path(t).resolve()) for t in config.trajectory)
        reference["trajectory_stride"] = str(config.trajectory_stride)
    info = SystemInfo(
        temperature=config.temperature, bead_types=cg_map.bead_types, bead_names=cg_map.bead_names, bonds=cg_map.bonds,
        mapping=config.mapping, hessian=config.hessian,
        map=cg_map.to_json(), reference=reference, trajectories=[r["path"] for r in plan["replicas"]],
    )
    work.write("system.json", asdict(info))
    work.write("plan.json", plan)
    return plan


def _run_all(job: Job, units: list[tuple[str, int, int]], workers: int, desc: str) -> list[dict]:
    """Run ``(kind, index, frames)`` units on ``workers`` processes, with a progress bar in frames."""
    if not units:
        return []
    bar = progress(None, total=sum(f for _, _, f in units), desc=desc, unit="frame")
    try:
        return run_jobs(run_unit, [(job, kind, index) for kind, index, _ in units], bar.update, workers=workers)
    finally:
        bar.close()


def prepare_dataset(config: PrepareConfig, out: str | os.PathLike, overwrite: bool = False, part: Part | None = None) -> Path:
    """Build (or resume, or extend by one part) the dataset at ``out``; ``manifest.json`` comes last.

    Returns ``out``. A part run that leaves other shards undone writes no manifest.
    """
    config.validate()
    part = part or Part()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    with prepare_lock(out):
        _prepare_locked(config, out, part, overwrite)
    if (out / MANIFEST).is_file():
        for line in summary(out):
            log.info("%s", line)
    return out


def summary(out: Path) -> list[str]:
    """What the dataset at ``out`` holds and where: one line per system, then the manifest."""
    from cglight.data.manifest import read_manifest

    manifest = read_manifest(out)
    lines = []
    for name, info in manifest.systems.items():
        shards = [s for s in manifest.shards if s.system == name]
        hessians = {"full": "full projected Hessians", "probes": "projected Hessian-vector probes"}.get(info.hessian,
                                                                                                        "no Hessians")
        reference = f"; all-atom reference in {out / name / 'reference'}" if info.reference else ""
        lines.append(f"dataset {out}, system '{name}': {manifest.frames(name)} frames of {len(info.bead_names)} beads "
                     f"({' '.join(info.bead_names)}) at {info.temperature:g} K, mapped forces and {hessians}, in {len(shards)} "
                     f"shards {out / name}/shard-*.h5{reference}")
    lines.append(f"manifest {out / MANIFEST} (units, bead types, CG bonds, the map); "
                 f"`cglight data info {out}` shows it as a table")
    return lines


def _prepare_locked(config: PrepareConfig, out: Path, part: Part, overwrite: bool) -> None:
    """``prepare_dataset`` while this process holds the lock of ``out``."""
    work = WorkDir(out)
    if work.config() == config.identity() and (out / MANIFEST).is_file() and not work.missing_shards():
        log.info("%s is complete already (%s); nothing to do", out, MANIFEST)
        return
    built = _build(config)  # input errors are raised before anything is written
    resuming = work.claim(config.identity(), overwrite)
    t0 = time.perf_counter()
    plan = _setup(config, out, work, *built)
    job = Job(str(out), config, plan)
    workers = config.workers or cores()
    work_left = part_work(plan, part, lambda g: work.done(shard_unit(g)) is not None,
                          lambda r: work.done(md_unit(r)) is not None)
    md = [("md", r, plan["replicas"][r]["frames"]) for r in work_left.md]
    label = "re-reading frames" if config.trajectory else "all-atom MD"
    if resuming:
        log.info("resuming %s: %d of %d shards of this part left", out, len(work_left.todo), len(work_left.shards))
    md_records = _run_all(job, md, workers, f"{config.system}: {label}")
    t_md = time.perf_counter() - t0
    shard_records = _run_all(job, [("shard", s["index"], s["stop"] - s["start"]) for s in work_left.todo], workers,
                             f"{config.system}: forces + Hessians ({config.hessian})")
    t_hess = time.perf_counter() - t0 - t_md
    worst = max((r["max_asymmetry"] for r in shard_records), default=0.0)
    log.info("%s: %s %.1f s (%d trajectories), forces/Hessians %.1f s (%d shards, max asymmetry %.1e)",
             config.system, label, t_md, len(md_records), t_hess, len(shard_records), worst)
    manifest = work.finish()
    if manifest is None:
        left = work.missing_shards()
        log.info("part %d/%d of %s done; %d shards belong to other parts: join them with `cglight data merge`",
                 part.index, part.count, out, len(left))
