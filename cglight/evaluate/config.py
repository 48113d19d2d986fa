"""The options of ``cglight evaluate`` (a module without torch, so that ``--help`` is quick)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cglight.errors import ConfigError


@dataclass
class EvaluateConfig:
    """Every key of ``cglight evaluate``; each is also a command-line option."""

    reference: str = ""
    """Reference dataset directory (its CG frames are the reference ensemble)."""
    simulation: str = ""
    """A ``cglight simulate`` output directory (``<system>/topology.pdb`` and ``<system>/replica-*.dcd``;
    its ``simulation.json``, if any, names stopped replicas and the temperature)."""
    out: str = "evaluations/run"
    """Output directory: ``metrics.json``, ``report.md`` and ``<system>/*.png``."""
    lag: int = 10
    """TICA lag time in reference frames."""
    systems: list[str] = field(default_factory=list)
    """Systems to evaluate; empty: every system found in both."""
    bins_1d: int = 50
    """Histogram bins along TIC1 (KL, JS and the 1-D free-energy plot)."""
    bins_2d: int = 30
    """Histogram bins per axis on the TIC1/TIC2 plane and the (φ, ψ) plane."""
    block_frames: int = 0
    """Block bootstrap: frames per block in both ensembles; 0: 3 integrated autocorrelation times of
    TIC1, measured in each ensemble on its own (a block longer than a trajectory is the trajectory)."""
    bootstrap: int = 200
    """Bootstrap samples for every interval."""
    level: float = 0.95
    """Coverage of every bootstrap interval, in (0, 1)."""
    skip_frames: int = 0
    """Frames dropped from the start of every simulated trajectory (equilibration)."""
    seed: int = 0
    """Bootstrap draws and the floor's subsamples."""
    floor_draws: int = 100
    """Subsamples of the reference, shaped like the model's ensemble, for each divergence's finite-sample
    floor (what a perfect model sampled as much would score); 0: no floor."""
    overwrite: bool = False
    """Write into a non-empty ``out``, replacing an earlier evaluation's files there; false: such an
    ``out`` is refused before anything is read."""

    def validate(self) -> None:
        if not self.reference or not self.simulation:
            raise ConfigError("evaluate: 'reference' (a dataset directory) and 'simulation' (a simulate output) are required")
        for name in ("lag", "bins_1d", "bins_2d", "bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluate: '{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("block_frames", "skip_frames", "seed", "floor_draws"):
            if getattr(self, name) < 0:
                raise ConfigError(f"evaluate: '{name}' must be >= 0, got {getattr(self, name)}")
        if not 0 < self.level < 1:
            raise ConfigError(f"evaluate: 'level' must be in (0, 1), got {self.level}")
