"""``cglight prepare``: all-atom reference MD → mapped forces and projected Hessians → shards."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cglight.data import keys
from cglight.data.manifest import MANIFEST, Manifest, ShardInfo, SystemInfo, write_manifest
from cglight.data.shards import write_shard
from cglight.errors import ConfigError
from cglight.prepare.hessian import ProjectedHessian
from cglight.prepare.mapping import slice_map
from cglight.prepare.reference import build_system, langevin_frames, make_context
from cglight.progress import progress

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    """Everything ``cglight prepare`` needs; every field is a key of the prepare YAML."""

    system: str = "ala2"
    """Name of the system in the manifest (and its folder in the dataset)."""
    molecule: str = "alanine-dipeptide"
    """Molecule to build (ACE-ALA-NME from ideal geometry)."""
    solvent: str = "implicit-obc"
    """``implicit-obc`` (AMBER ff99SB-ILDN + OBC GB/SA) or ``vacuum`` (ff99SB-ILDN alone)."""
    mapping: str = "backbone"
    """CG map: ``backbone`` (C N CA C N for alanine dipeptide) or ``ca-slice``."""
    temperature: float = 300.0
    """Kelvin."""
    timestep_fs: float = 1.0
    """Integrator step with flexible bonds; keep at 1 fs."""
    friction_per_ps: float = 1.0
    equilibration_ps: float = 10.0
    frames: int = 4000
    """Number of saved frames (each gets mapped forces and a projected Hessian)."""
    stride_steps: int = 250
    """MD steps between saved frames."""
    hessian_eps_nm: float = 1.0e-5
    """Central finite-difference step; 1e-5 nm on the Reference platform (≥ 3e-4 nm on CPU)."""
    platform: str = "Reference"
    """OpenMM platform for MD and Hessians (Reference is double precision)."""
    shard_frames: int = 4096
    """Frames per shard file."""
    seed: int = 1

    def validate(self) -> None:
        for name in ("frames", "stride_steps", "shard_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prepare: '{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("temperature", "timestep_fs", "friction_per_ps", "hessian_eps_nm"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"prepare: '{name}' must be positive, got {getattr(self, name)}")
        if self.equilibration_ps < 0:
            raise ConfigError(f"prepare: 'equilibration_ps' must be >= 0, got {self.equilibration_ps}")
        if self.platform == "CPU" and self.hessian_eps_nm < 3e-4:
            raise ConfigError("prepare: on the single-precision CPU platform use hessian_eps_nm >= 3e-4")
        if not self.system or "/" in self.system:
            raise ConfigError(f"prepare: 'system' must be a plain name, got {self.system!r}")


def prepare_dataset(config: PrepareConfig, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Build a dataset directory at ``out``; nothing appears there until it is complete."""
    from openmm import XmlSerializer, app, unit

    config.validate()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} already exists and is not empty; pass --overwrite to replace it")
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if work.exists():
        shutil.rmtree(work)
    ref_dir = work / config.system / "reference"
    ref_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        topology, positions, system = build_system(config.molecule, config.solvent)
        cg_map = slice_map(topology, config.mapping)
        m = cg_map.matrix()
        (ref_dir / "system.xml").write_text(XmlSerializer.serialize(system))
        with open(ref_dir / "topology.pdb", "w") as f:
            app.PDBFile.writeFile(topology, positions, f)

        md = langevin_frames(
            system, positions, config.temperature, config.timestep_fs, config.friction_per_ps,
            config.equilibration_ps, config.frames, config.stride_steps, config.seed, config.platform,
        )
        xs = np.empty((config.frames, topology.getNumAtoms(), 3))
        dt_ps = config.timestep_fs * config.stride_steps / 1000.0
        with open(ref_dir / "trajectory.dcd", "wb") as f:
            dcd = app.DCDFile(f, topology, dt_ps)
            for i, x in enumerate(progress(md, total=config.frames, desc=f"{config.system}: all-atom MD", unit="frame")):
                xs[i] = x
                dcd.writeModel(x * unit.nanometer)  # DCDFile stores float32 Å
        t_md = time.perf_counter() - t0

        evaluate = ProjectedHessian(make_context(system, config.platform), cg_map.force_matrix(), config.hessian_eps_nm)
        shards: list[ShardInfo] = []
        worst_asym = 0.0
        for start in range(0, config.frames, config.shard_frames):
            idx = np.arange(start, min(start + config.shard_frames, config.frames))
            forces = np.empty((len(idx), cg_map.n_beads, 3))
            hess = np.empty((len(idx), 3 * cg_map.n_beads, 3 * cg_map.n_beads))
            asym = 0.0
            desc = f"{config.system}: Hessians, shard {len(shards)}"
            for j, i in enumerate(progress(idx, desc=desc, unit="frame")):
                frame = evaluate(xs[i])
                forces[j], hess[j] = frame.forces, frame.hessian
                asym = max(asym, frame.asymmetry)
            worst_asym = max(worst_asym, asym)
            rel = f"{config.system}/shard-{len(shards):05d}.h5"
            arrays = {keys.POS: np.einsum("bi,fid->fbd", m, xs[idx]) * 10.0, keys.FORCES: forces, keys.HESSIAN: hess, keys.FRAME_INDEX: idx}
            attrs = {"hessian_eps_nm": config.hessian_eps_nm, "hessian_max_rel_asymmetry": asym, "platform": config.platform}
            digest = write_shard(work / rel, arrays, attrs)
            shards.append(ShardInfo(rel, config.system, len(idx), digest))
        t_hess = time.perf_counter() - t0 - t_md

        info = SystemInfo(
            temperature=config.temperature,
            bead_types=cg_map.bead_types,
            bead_names=cg_map.bead_names,
            bonds=cg_map.bonds,
            mapping=cg_map.name,
            hessian="full",
            map=cg_map.to_json(),
            reference={
                "topology": f"{config.system}/reference/topology.pdb",
                "trajectory": f"{config.system}/reference/trajectory.dcd",
                "system": f"{config.system}/reference/system.xml",
                "molecule": config.molecule,
                "solvent": config.solvent,
                "timestep_fs": str(config.timestep_fs),
                "frame_interval_ps": str(dt_ps),
            },
        )
        write_manifest(work, Manifest({config.system: info}, shards))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    log.info(
        "prepared %d frames of %s in %s: MD %.1f s, Hessians %.1f s (max relative asymmetry %.1e)",
        config.frames, config.system, out, t_md, t_hess, worst_asym,
    )
    assert (out / MANIFEST).is_file()
    return out
