"""``cglight prepare``: all-atom reference frames → mapped forces and projected Hessians → shards.

The work is split into units: one reference trajectory per replica (Langevin MD, or the frames of
an existing trajectory), then shards of ``shard_frames`` frames each. Units run in parallel worker
processes, each unit writes its file under a temporary name, renames it, then leaves a marker in
the dataset's work directory (``cglight.data.workdir``). A rerun of the same command skips what is
done; ``manifest.json`` appears last. ``--part I/N`` runs the I-th of N contiguous slices of the
shards (and the trajectories they need); ``cglight data merge`` joins the parts.

Every random number is drawn from ``seed`` and the unit's own indices, so the result does not
depend on the number of workers, on the parts, or on interruptions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cglight.atomic import atomic_path, atomic_write
from cglight.data import keys
from cglight.data.manifest import MANIFEST, SystemInfo
from cglight.data.shards import sha256, write_shard
from cglight.data.workdir import WorkDir, md_unit, shard_unit
from cglight.errors import ConfigError, DatasetError
from cglight.pool import cores, even_sizes, run_jobs
from cglight.prepare.hessian import MODES, ProjectedHessian, evaluate_refined, refine_steps
from cglight.prepare.lock import prepare_lock
from cglight.prepare.mapping import CGMap, make_map
from cglight.prepare.reference import as_stored, langevin_frames, make_context, read_dcd, read_trajectory, replica_seed
from cglight.prepare.systems import build_system, check_constraints, pdb_text
from cglight.progress import progress
from cglight.units import NM_TO_ANGSTROM, fs_to_ps

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    """Everything ``cglight prepare`` needs; every field is a key of the prepare YAML."""

    system: str = "ala2"
    """Name of the system in the manifest (and its folder in the dataset)."""
    molecule: str = "alanine-dipeptide"
    """Built-in molecule: alanine-dipeptide, tetra-alanine, chignolin, trpcage, villin, or a peptide from its one-letter
    sequence: ``capped:AY`` (ACE-ALA-TYR-NME) or ``peptide:AY`` (uncapped, charged termini); ignored when ``pdb`` is given."""
    solvent: str = "implicit-obc"
    """For built-in molecules: ``implicit-obc`` (AMBER ff99SB-ILDN + OBC GB/SA) or ``vacuum``."""
    pdb: str | None = None
    """The user's own all-atom structure (PDB or PDBx/mmCIF); needs ``forcefield``."""
    forcefield: list[str] | str | None = None
    """OpenMM force-field XML files (paths, or names OpenMM ships such as amber14-all.xml, implicit/obc2.xml)."""
    add_hydrogens: bool = False
    """Add missing hydrogens to ``pdb`` from the force field's templates."""
    trajectory: list[str] | str | None = None
    """Existing all-atom trajectories of ``pdb`` (DCD, XTC, HDF5, anything mdtraj reads): their frames are
    re-evaluated, no MD is run; one replica per file."""
    trajectory_stride: int = 1
    """Use every k-th frame of each ``trajectory``."""
    constraints: str = "none"
    """OpenMM constraints: none | hbonds | allbonds | hangles; refused if they touch an atom the map uses."""
    mapping: str = "backbone"
    """CG map: ``ca``, ``backbone``, ``backbone-residue`` (CA typed by residue), ``residue-com``, or a map file (YAML/JSON)."""
    temperature: float = 300.0
    """Kelvin."""
    timestep_fs: float = 1.0
    """Integrator step with flexible bonds; keep at 1 fs."""
    friction_per_ps: float = 1.0
    """Langevin collision rate γ of the MD (1/ps)."""
    equilibration_ps: float = 10.0
    """Per replica, after minimisation (and heating) and before the first saved frame."""
    heat_temperature: float | None = None
    """Kelvin; if set, every replica first runs ``heat_ps`` at this temperature, so that replicas start
    their equilibration from different structures."""
    heat_ps: float = 0.0
    """Picoseconds at ``heat_temperature`` before equilibration (0: no heating)."""
    frames: int = 4000
    """Saved frames in total, split evenly over the replicas."""
    stride_steps: int = 250
    """MD steps between saved frames."""
    replicas: int = 1
    """Independent trajectories (own seed; run in parallel)."""
    hessian: str = "full"
    """full (BᵀHB, 6n force evaluations per frame) | probes (hessian_probes sketches, 2K) | none."""
    hessian_probes: int = 4
    """K, the Rademacher probes per frame in ``hessian: probes`` mode."""
    hessian_eps_nm: float = 1.0e-5
    """Central finite-difference step; 1e-5 nm on the Reference platform (≥ 3e-4 nm on CPU)."""
    hessian_max_asymmetry: float = 1.0e-3
    """A frame whose finite-difference asymmetry figure exceeds this is re-evaluated with smaller steps,
    and refused if it still does."""
    hessian_refinements: int = 3
    """How many times a frame above ``hessian_max_asymmetry`` is re-evaluated, each with a 10× smaller
    step (a kink of the force field, such as OBC's, within the first step; 0: refuse at once)."""
    platform: str = "Reference"
    """OpenMM platform for forces and Hessians (Reference is double precision)."""
    md_platform: str | None = None
    """OpenMM platform for MD (default: ``platform``); CPU or CUDA are faster."""
    shard_frames: int = 4096
    """Frames per shard file (and per unit of work)."""
    seed: int = 1
    """Every random number (MD of each replica, Hessian probes) is drawn from it and the unit's own indices."""
    workers: int = 0
    """Worker processes (0: all cores). Does not change the result."""

    def __post_init__(self) -> None:
        for name in ("forcefield", "trajectory"):  # one file may be given without a list
            if isinstance(getattr(self, name), str):
                setattr(self, name, [getattr(self, name)])

    def validate(self) -> None:
        for name in ("frames", "stride_steps", "shard_frames", "replicas", "trajectory_stride", "hessian_probes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prepare: '{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("temperature", "timestep_fs", "friction_per_ps", "hessian_eps_nm", "hessian_max_asymmetry"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"prepare: '{name}' must be positive, got {getattr(self, name)}")
        if self.hessian_refinements < 0:
            raise ConfigError(f"prepare: 'hessian_refinements' must be >= 0, got {self.hessian_refinements}")
        if self.heat_temperature is not None and self.heat_temperature <= 0:
            raise ConfigError(f"prepare: 'heat_temperature' must be positive kelvin, got {self.heat_temperature}")
        if self.heat_ps < 0 or (self.heat_ps > 0 and self.heat_temperature is None):
            raise ConfigError(f"prepare: 'heat_ps' ({self.heat_ps}) must be >= 0, and needs 'heat_temperature'")
        if self.equilibration_ps < 0:
            raise ConfigError(f"prepare: 'equilibration_ps' must be >= 0, got {self.equilibration_ps}")
        if self.workers < 0:
            raise ConfigError(f"prepare: 'workers' must be >= 0 (0: all cores), got {self.workers}")
        if self.hessian not in MODES:
            raise ConfigError(f"prepare: unknown hessian mode {self.hessian!r}; available: {', '.join(MODES)}")
        if self.platform == "CPU" and self.hessian != "none" and self.hessian_eps_nm < 3e-4:
            raise ConfigError("prepare: on the single-precision CPU platform use hessian_eps_nm >= 3e-4")
        if not self.system or "/" in self.system or self.system.startswith("."):
            raise ConfigError(f"prepare: 'system' must be a plain name, got {self.system!r}")
        if self.frames < self.replicas:
            raise ConfigError(f"prepare: 'frames' ({self.frames}) must be at least 'replicas' ({self.replicas})")
        if self.trajectory and self.pdb is None:
            raise ConfigError("prepare: 'trajectory' needs 'pdb', the topology of its frames (and 'forcefield')")
        import openmm as mm

        names = [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]
        for key in ("platform", "md_platform"):
            value = getattr(self, key)
            if value is not None and value not in names:
                raise ConfigError(f"OpenMM platform {value!r} is not available ('{key}'); available: {', '.join(names)}")

    def identity(self) -> dict:
        """The settings that determine the dataset (everything but ``workers``)."""
        d = asdict(self)
        d.pop("workers")
        d["trajectory"] = [str(Path(t).resolve()) for t in self.trajectory] if self.trajectory else None
        return d


@dataclass
class Part:
    """The ``index``-th (1-based) of ``count`` slices of the shards; ``1/1`` is everything."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Part:
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ConfigError(f"--part must look like I/N (e.g. 2/8), got {text!r}") from None
        if not 1 <= i <= n:
            raise ConfigError(f"--part {text}: need 1 <= I <= N")
        return cls(i, n)

    def select(self, n_shards: int) -> range:
        return range((self.index - 1) * n_shards // self.count, self.index * n_shards // self.count)


@dataclass
class _Job:
    """What a worker process needs to run units of one dataset (picklable)."""

    root: str
    config: PrepareConfig
    plan: dict = field(default_factory=dict)


def _plan(config: PrepareConfig, available: list[int] | None) -> dict:
    """Replicas (their frame counts and reference files) and shards (replica, frame range) in order."""
    n_rep = len(available) if available is not None else config.replicas
    quota = even_sizes(config.frames, n_rep)
    if available is not None:
        quota = [min(q, a) for q, a in zip(quota, available, strict=True)]
    replicas, shards = [], []
    for r, q in enumerate(quota):
        replicas.append({"replica": r, "frames": q, "path": f"{config.system}/reference/trajectory-{r:03d}.dcd"})
        for start in range(0, q, config.shard_frames):
            g = len(shards)
            shards.append({"index": g, "replica": r, "start": start, "stop": min(start + config.shard_frames, q),
                           "path": f"{config.system}/shard-{g:05d}.h5"})
    return {"system": config.system, "replicas": replicas, "shards": shards}


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

    plan = _plan(config, available)
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


# --- the units (run in worker processes) ---------------------------------------------------------

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


def _system(job: _Job):
    """The AA system of the dataset (cached per system.xml content, so a rebuilt system is never stale)."""
    from openmm import XmlSerializer

    xml = (Path(job.root) / job.config.system / "reference" / "system.xml").read_text()
    key = f"system:{hashlib.sha256(xml.encode()).hexdigest()}"
    return key, _cached(key, lambda: XmlSerializer.deserialize(xml))


def _context(job: _Job, platform: str):
    """An OpenMM context of the dataset's system for forces and Hessians, made once per process."""
    key, system = _system(job)
    return _cached(f"{key}:{platform}", lambda: make_context(system, platform))


def _topology(job: _Job):
    from openmm import app, unit

    pdb = app.PDBFile(str(Path(job.root) / job.config.system / "reference" / "topology.pdb"))
    return pdb.topology, np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)


def _run_replica(job: _Job, replica: int, tick: Tick) -> dict:
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


def _run_shard(job: _Job, index: int, tick: Tick) -> dict:
    """Mapped forces and Hessians (or probes) of the frames of shard ``index``."""
    c, root = job.config, Path(job.root)
    s = job.plan["shards"][index]
    info = SystemInfo(**WorkDir(root).read("system.json"))
    t0 = time.perf_counter()
    xyz = read_dcd(root / job.plan["replicas"][s["replica"]]["path"], s["start"], s["stop"])  # float32 Å, as evaluated
    xs = xyz.astype(np.float64) / NM_TO_ANGSTROM
    context = _context(job, c.platform)
    cg_map = CGMap(info.mapping, info.map["atoms"], info.map["weights"], info.bead_names, info.bead_types, info.bonds, xs.shape[1])
    m = cg_map.matrix()
    evaluate = ProjectedHessian(context, cg_map.force_matrix(), c.hessian_eps_nm, c.hessian, c.hessian_probes)
    frames = np.arange(s["start"], s["stop"])
    out: dict[str, list] = {}
    quality = np.zeros(len(frames))
    refined: list[list[float]] = []
    for j, (i, x) in enumerate(zip(frames, xs, strict=True)):
        frame, eps, tried = evaluate_refined(evaluate, x, [c.seed, s["replica"], int(i)], c.hessian_max_asymmetry,
                                             c.hessian_refinements)
        if frame.asymmetry > c.hessian_max_asymmetry:
            steps = refine_steps(c.hessian_eps_nm, c.hessian_refinements)
            raise DatasetError(
                f"system '{c.system}', replica {s['replica']}, frame {i}: finite-difference asymmetry "
                f"{', '.join(f'{a:.2e}' for a in tried)} at steps {', '.join(f'{e:.0e}' for e in steps)} nm exceeds "
                f"hessian_max_asymmetry {c.hessian_max_asymmetry:.1e}; use platform Reference (double precision) "
                "or change hessian_eps_nm"
            )
        if eps != c.hessian_eps_nm:
            refined.append([int(i), eps])
        quality[j] = frame.asymmetry
        tick(1)
        out.setdefault(keys.FORCES, []).append(frame.forces)
        if c.hessian == "full":
            out.setdefault(keys.HESSIAN, []).append(frame.hessian)
        elif c.hessian == "probes":
            out.setdefault(keys.PROBES, []).append(frame.probes)
            out.setdefault(keys.HVP, []).append(frame.hvp)
    arrays = {keys.POS: np.einsum("bi,fid->fbd", m, xs) * NM_TO_ANGSTROM, **{k: np.stack(v) for k, v in out.items()},
              keys.FRAME_INDEX: frames, keys.REPLICA: np.full(len(frames), s["replica"], dtype=np.int64),
              keys.FD_ASYMMETRY: quality.astype(np.float32)}
    attrs = {"hessian": c.hessian, "hessian_eps_nm": c.hessian_eps_nm, "hessian_max_rel_asymmetry": float(quality.max()),
             "hessian_refined_frames": len(refined), "platform": c.platform, "replica": s["replica"]}
    if refined:
        log.info("system '%s', replica %d: %d of %d frames re-evaluated with a smaller finite-difference step "
                 "(a kink of the force field within the first step)", c.system, s["replica"], len(refined), len(frames))
    digest = write_shard(root / s["path"], arrays, attrs)
    return {"path": s["path"], "frames": len(frames), "replica": s["replica"], "sha256": digest,
            "max_asymmetry": float(quality.max()), "refined_frames": refined, "seconds": time.perf_counter() - t0, "force_evaluations": evaluate.evaluations}


def _unit(unit: tuple[_Job, str, int], tick: Tick) -> dict:
    job, kind, index = unit
    record = _run_replica(job, index, tick) if kind == "md" else _run_shard(job, index, tick)
    WorkDir(job.root).mark(md_unit(index) if kind == "md" else shard_unit(index), record)
    return record


def _run_all(job: _Job, units: list[tuple[str, int, int]], workers: int, desc: str) -> list[dict]:
    """Run ``(kind, index, frames)`` units on ``workers`` processes, with a progress bar in frames."""
    if not units:
        return []
    bar = progress(None, total=sum(f for _, _, f in units), desc=desc, unit="frame")
    try:
        return run_jobs(_unit, [(job, kind, index) for kind, index, _ in units], bar.update, workers=workers)
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
    job = _Job(str(out), config, plan)
    workers = config.workers or cores()
    mine = [plan["shards"][g] for g in part.select(len(plan["shards"]))]
    todo = [s for s in mine if work.done(shard_unit(s["index"])) is None]
    needed = sorted({s["replica"] for s in todo})
    md = [("md", r, plan["replicas"][r]["frames"]) for r in needed if work.done(md_unit(r)) is None]
    label = "re-reading frames" if config.trajectory else "all-atom MD"
    if resuming:
        log.info("resuming %s: %d of %d shards of this part left", out, len(todo), len(mine))
    md_records = _run_all(job, md, workers, f"{config.system}: {label}")
    t_md = time.perf_counter() - t0
    shard_records = _run_all(job, [("shard", s["index"], s["stop"] - s["start"]) for s in todo], workers,
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
