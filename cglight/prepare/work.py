"""The units of work of ``cglight prepare``, run in worker processes: a replica's reference trajectory
(Langevin MD, or the frames of a user trajectory) and a shard's mapped forces and Hessians.

Each unit writes its file under a temporary name, renames it, then leaves its marker in the dataset's
work directory (``cglight.data.workdir``). Every random number comes from ``seed`` and the unit's own
indices, so a unit's result does not depend on which process runs it, nor when.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cglight.atomic import atomic_path
from cglight.data import keys
from cglight.data.manifest import SystemInfo
from cglight.data.shards import sha256, write_shard
from cglight.data.workdir import WorkDir, md_unit, shard_unit
from cglight.errors import DatasetError
from cglight.prepare.config import PrepareConfig
from cglight.prepare.hessian import ProjectedHessian, evaluate_refined, refine_steps
from cglight.prepare.mapping import CGMap
from cglight.prepare.reference import as_stored, langevin_frames, make_context, read_dcd, read_trajectory, replica_seed
from cglight.units import NM_TO_ANGSTROM, fs_to_ps

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What a worker process needs to run units of one dataset (picklable)."""

    root: str
    config: PrepareConfig
    plan: dict = field(default_factory=dict)


Tick = Callable[[int], None]
"""Where a unit reports finished frames: the progress bar (through the pool's messages from a worker)."""

_CACHE: dict[tuple[int, str], object] = {}
"""OpenMM systems and contexts made in this process, keyed by ``(pid, key)``: a forked worker never touches its
parent's contexts (their platform threads do not exist in the child); they stay referenced, not destroyed
(workers end with ``os._exit``)."""


def _cached(key: str, make: Callable[[], object]) -> object:
    mine = (os.getpid(), key)
    if mine not in _CACHE:
        _CACHE[mine] = make()
    return _CACHE[mine]


def _system(job: Job):
    """The AA system of the dataset (cached per system.xml content, so a rebuilt system is never stale)."""
    from openmm import XmlSerializer

    xml = (Path(job.root) / job.config.system / "reference" / "system.xml").read_text()
    key = f"system:{hashlib.sha256(xml.encode()).hexdigest()}"
    return key, _cached(key, lambda: XmlSerializer.deserialize(xml))


def _context(job: Job, platform: str):
    """An OpenMM context of the dataset's system for forces and Hessians, made once per process."""
    key, system = _system(job)
    return _cached(f"{key}:{platform}", lambda: make_context(system, platform))


def _topology(job: Job):
    from openmm import app, unit

    pdb = app.PDBFile(str(Path(job.root) / job.config.system / "reference" / "topology.pdb"))
    return pdb.topology, np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)


def _run_replica(job: Job, replica: int, tick: Tick) -> dict:
    """Write the reference trajectory of ``replica`` (MD, or the selected frames of a user trajectory)."""
    from openmm import app, unit

    c, root = job.config, Path(job.root)
    entry = job.plan["replicas"][replica]
    t0 = time.perf_counter()
    topology, positions = _topology(job)
    if c.trajectory:
        xs = read_trajectory(c.trajectory[replica], c.pdb, topology.getNumAtoms())[:: c.trajectory_stride][: entry["frames"]]
        frames = (as_stored(x) for x in xs)
        dt_ps = 1.0
    else:
        _, system = _system(job)
        frames = langevin_frames(system, positions, c.temperature, c.timestep_fs, c.friction_per_ps, c.equilibration_ps,
                                 entry["frames"], c.stride_steps, replica_seed(c.seed, replica), c.md_platform or c.platform,
                                 c.heat_temperature, c.heat_ps)
        dt_ps = fs_to_ps(c.timestep_fs * c.stride_steps)
    path = root / entry["path"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a failed write (a full disk) leaves nothing behind
        dcd = app.DCDFile(f, topology, dt_ps)
        for x in frames:
            dcd.writeModel(x * unit.nanometer)  # DCDFile stores float32 Å
            tick(1)
    return {"path": entry["path"], "frames": entry["frames"], "sha256": sha256(path), "seconds": time.perf_counter() - t0}


def _run_shard(job: Job, index: int, tick: Tick) -> dict:
    """Mapped forces and Hessians (or probes) of the frames of shard ``index``."""
    c, root = job.config, Path(job.root)
    s = job.plan["shards"][index]
    info = SystemInfo(**WorkDir(root).read("system.json"))
    t0 = time.perf_counter()
    xyz = read_dcd(root / job.plan["replicas"][s["replica"]]["path"], s["start"], s["stop"])  # float32 Å, as evaluated
    xs = xyz.astype(np.float64) / NM_TO_ANGSTROM
    cg_map = CGMap(info.mapping, info.map["atoms"], info.map["weights"], info.bead_names, info.bead_types, info.bonds,
                   xs.shape[1])
    evaluate = ProjectedHessian(_context(job, c.platform), cg_map.force_matrix(), c.hessian_eps_nm, c.hessian,
                                c.hessian_probes)
    frames = np.arange(s["start"], s["stop"])
    out: dict[str, list] = {}
    quality = np.zeros(len(frames))
    refined: list[list[float]] = []
    for j, (i, x) in enumerate(zip(frames, xs, strict=True)):
        frame, eps, tried = evaluate_refined(evaluate, x, [c.seed, s["replica"], int(i)], c.hessian_max_asymmetry,
                                             c.hessian_refinements)
        if frame.asymmetry > c.hessian_max_asymmetry:
            raise _asymmetry_error(c, s["replica"], int(i), tried)
        if eps != c.hessian_eps_nm:
            refined.append([int(i), eps])
        quality[j] = frame.asymmetry
        tick(1)
        _collect(out, frame, c.hessian)
    arrays = {keys.POS: np.einsum("bi,fid->fbd", cg_map.matrix(), xs) * NM_TO_ANGSTROM,
              **{k: np.stack(v) for k, v in out.items()},
              keys.FRAME_INDEX: frames, keys.REPLICA: np.full(len(frames), s["replica"], dtype=np.int64),
              keys.FD_ASYMMETRY: quality.astype(np.float32)}
    attrs = {"hessian": c.hessian, "hessian_eps_nm": c.hessian_eps_nm, "hessian_max_rel_asymmetry": float(quality.max()),
             "hessian_refined_frames": len(refined), "platform": c.platform, "replica": s["replica"]}
    if refined:
        log.info("system '%s', replica %d: %d of %d frames re-evaluated with a smaller finite-difference step "
                 "(a kink of the force field within the first step)", c.system, s["replica"], len(refined), len(frames))
    digest = write_shard(root / s["path"], arrays, attrs)
    return {"path": s["path"], "frames": len(frames), "replica": s["replica"], "sha256": digest,
            "max_asymmetry": float(quality.max()), "refined_frames": refined, "seconds": time.perf_counter() - t0,
            "force_evaluations": evaluate.evaluations}


def _collect(out: dict[str, list], frame, hessian: str) -> None:
    """Append a frame's mapped forces and its Hessian (``full``) or probes and products (``probes``) to ``out``."""
    out.setdefault(keys.FORCES, []).append(frame.forces)
    if hessian == "full":
        out.setdefault(keys.HESSIAN, []).append(frame.hessian)
    elif hessian == "probes":
        out.setdefault(keys.PROBES, []).append(frame.probes)
        out.setdefault(keys.HVP, []).append(frame.hvp)


def _asymmetry_error(c: PrepareConfig, replica: int, frame: int, tried: list[float]) -> DatasetError:
    """A frame still above ``hessian_max_asymmetry`` at every step tried, named with its asymmetries and the fix."""
    steps = refine_steps(c.hessian_eps_nm, c.hessian_refinements)
    return DatasetError(
        f"system '{c.system}', replica {replica}, frame {frame}: finite-difference asymmetry "
        f"{', '.join(f'{a:.2e}' for a in tried)} at steps {', '.join(f'{e:.0e}' for e in steps)} nm exceeds "
        f"hessian_max_asymmetry {c.hessian_max_asymmetry:.1e}; use platform Reference (double precision) "
        "or change hessian_eps_nm"
    )


def run_unit(unit: tuple[Job, str, int], tick: Tick) -> dict:
    """Run one ``(job, kind, index)`` unit (kind ``md`` or ``shard``) and leave its marker; its record."""
    job, kind, index = unit
    record = _run_replica(job, index, tick) if kind == "md" else _run_shard(job, index, tick)
    WorkDir(job.root).mark(md_unit(index) if kind == "md" else shard_unit(index), record)
    return record

