"""The settings of a Langevin integration: validated once, the timestep converted once (a module without torch).

``cglight simulate`` builds one :class:`LangevinSettings` from its config and hands it whole to the workers'
jobs, the integrators, the writer, the estimate and the summary; the training's simulation check builds one
from its own options (and takes its defaults from here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cglight.errors import ConfigError
from cglight.units import fs_to_ps


@dataclass(frozen=True)
class LangevinSettings:
    """How replicas are integrated; a value out of range raises :class:`ConfigError` naming its key."""

    timestep_fs: float = 1.0
    """Integration step (fs, > 0)."""
    friction_per_ps: float = 1.0
    """Langevin collision rate γ (1/ps, >= 0)."""
    temperature: float | None = None
    """Kelvin (> 0); None: each system's own (its data's), filled in by :meth:`at`."""
    max_bond_factor: float = 2.0
    """A replica stops when a CG bond grows past this factor times the longest bond of its reference frames."""
    timestep_ps: float = field(init=False, repr=False, compare=False)
    """``timestep_fs`` in ps (:func:`cglight.units.fs_to_ps`), computed once here."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.timestep_fs) and self.timestep_fs > 0):
            raise ConfigError(f"'timestep_fs' must be a positive number, got {self.timestep_fs!r}")
        if not (math.isfinite(self.friction_per_ps) and self.friction_per_ps >= 0):
            raise ConfigError(f"'friction_per_ps' must be a number >= 0, got {self.friction_per_ps!r}")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"'temperature' must be positive kelvin, got {self.temperature!r}")
        if not self.max_bond_factor > 1:  # NaN too
            raise ConfigError(f"'max_bond_factor' must be > 1, got {self.max_bond_factor}")
        object.__setattr__(self, "timestep_ps", fs_to_ps(self.timestep_fs))

    def at(self, temperature: float) -> LangevinSettings:
        """The settings of a system whose data are at ``temperature`` K: the temperature set here, else that one."""
        return self if self.temperature is not None else replace(self, temperature=temperature)

    def bond_limit(self, longest_bond: float) -> float:
        """The bond length (Å) past which a replica stops, for reference frames whose longest bond is ``longest_bond``."""
        return self.max_bond_factor * longest_bond


def check_masses(masses: Sequence[float] | None) -> None:
    """Raise :class:`ConfigError` unless every bead mass is a positive number (amu); None: not checked."""
    if masses is not None and not all(math.isfinite(m) and m > 0 for m in masses):
        raise ConfigError(f"'masses' must be positive numbers (amu, one per bead), got {list(masses)}")
