"""The settings of ``cglight prepare`` (``PrepareConfig``: every key of the prepare YAML), validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from cglight.errors import ConfigError
from cglight.prepare.hessian import MODES


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
