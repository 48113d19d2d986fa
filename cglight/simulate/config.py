"""The options of ``cglight simulate`` (a module without torch, so that ``--help`` is quick)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cglight.errors import ConfigError
from cglight.newest_checkpoint import DEFAULT_RUNS
from cglight.simulate.settings import LangevinSettings, check_masses


@dataclass
class SimulateConfig:
    """Every key of ``cglight simulate``; each is also a command-line option."""

    checkpoint: str = ""
    """A trained model: the ``.ckpt`` written by ``cglight fit``; ``latest``: the newest ``last.ckpt`` at any
    depth under ``runs/cglight`` (where ``cglight fit`` writes by default); ``latest:DIR``: the newest under ``DIR``."""
    starts: str = ""
    """A dataset directory; starting structures are drawn from its frames."""
    out: str = "simulations/run"
    """Output directory (trajectories, topology, restart state)."""
    systems: list[str] = field(default_factory=list)
    """Systems of the dataset to simulate; empty: all of them."""
    replicas: int = 32
    """Independent replicas per system, integrated together."""
    steps: int = 10000
    """Total integration steps, a multiple of ``save_every`` (a rerun with more steps continues the same run)."""
    timestep_fs: float = LangevinSettings.timestep_fs
    """Integration step (fs, > 0)."""
    friction_per_ps: float = LangevinSettings.friction_per_ps
    """Langevin collision rate γ (1/ps, >= 0)."""
    temperature: float | None = None
    """Kelvin (> 0); default: the temperature of each system's data."""
    save_every: int = 100
    """Steps between saved frames."""
    flush_every: int = 5000
    """Steps between writing trajectories and the restart state."""
    seed: int = 0
    """Starting frames, initial velocities and the noise (>= 0)."""
    max_bond_factor: float = LangevinSettings.max_bond_factor
    """A replica stops when a CG bond grows past this factor times the longest bond in the starts."""
    masses: list[float] | None = None
    """Bead masses (amu) when the dataset has no map/reference topology to take them from."""
    device: str = "auto"
    """``auto``: the GPU when torch sees one, else the CPU; or a torch device (``cpu``, ``cuda``, ``cuda:1``)."""
    max_beads_per_call: int | None = None
    """Beads per backbone call, the replicas cut into several calls per step when there are more
    (0: one call). Default: 512 on the CPU (the backbone's neighbour search costs the square of the
    beads of a call: measured at 35 beads × 32 replicas, calls of 16 replicas are 1.14× faster per
    replica than one call of 32), no cap on a GPU."""
    workers: int = 0
    """Worker processes on the CPU, each integrating a contiguous block of every system's replicas with
    one torch thread (0: all cores, at most one per replica). On a GPU one process runs every replica.
    Does not change the trajectories (one noise stream per replica); may change on continuation."""
    trusted_backbones: list[str] = field(default_factory=list)
    """Dotted class paths (``package.module.Class``) the checkpoint's backbone may name: importing one
    runs its module's code, so a checkpoint naming any other is refused. The built-in names
    (graph-network, equivariant-transformer, tensornet) always load."""

    def validate(self) -> LangevinSettings:
        """Raise :class:`ConfigError` naming the first key out of range; else the run's Langevin settings."""
        if not self.checkpoint:
            raise ConfigError(f"simulate: 'checkpoint' is required (a .ckpt written by cglight fit, or 'latest': the newest "
                              f"last.ckpt under {DEFAULT_RUNS})")
        if not Path(self.checkpoint).is_file():
            raise ConfigError(f"simulate: checkpoint {self.checkpoint} does not exist")
        if not self.starts:
            raise ConfigError("simulate: 'starts' is required (a dataset directory to draw starting structures from)")
        for name in ("replicas", "steps", "save_every", "flush_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"simulate: '{name}' must be >= 1, got {getattr(self, name)}")
        if self.steps % self.save_every:
            raise ConfigError(f"simulate: 'steps' ({self.steps}) must be a multiple of 'save_every' ({self.save_every}): "
                              "every frame of a trajectory is 'save_every' steps after the one before")
        try:  # the integrator's settings: nothing is written for a run that cannot start
            langevin = LangevinSettings(self.timestep_fs, self.friction_per_ps, self.temperature, self.max_bond_factor)
            check_masses(self.masses)
        except ConfigError as exc:
            raise ConfigError(f"simulate: {exc}") from None
        if self.seed < 0:
            raise ConfigError(f"simulate: 'seed' must be >= 0, got {self.seed}")
        if self.max_beads_per_call is not None and self.max_beads_per_call < 0:
            raise ConfigError(f"simulate: 'max_beads_per_call' must be >= 0 (0: no cap), got {self.max_beads_per_call}")
        if self.flush_every % self.save_every:
            raise ConfigError(f"simulate: 'flush_every' ({self.flush_every}) must be a multiple of 'save_every' ({self.save_every})")
        if self.workers < 0:
            raise ConfigError(f"simulate: 'workers' must be >= 0 (0: all cores), got {self.workers}")
        if self.device != "auto":
            self._check_device()
        return langevin

    def _check_device(self) -> None:
        import torch

        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"simulate: 'device' {self.device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"simulate: 'device: {self.device}' but this torch sees no CUDA device (a CPU-only build, "
                              "or no GPU on this machine); use device cpu")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"simulate: 'device: {self.device}' but this machine has {torch.cuda.device_count()} CUDA device(s)")

    def torch_device(self) -> str:
        """The device the run uses (``auto`` resolved)."""
        if self.device == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device
