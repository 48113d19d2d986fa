"""Units used everywhere in cglight (see docs/architecture.md): Å, kcal/mol, K, ps.

OpenMM works in nm and kJ/mol; the conversion factors live here and nowhere else.
"""

from __future__ import annotations

KB_KCAL_PER_MOL_K: float = 0.0019872041
"""Boltzmann constant in kcal/mol/K."""

KJ_TO_KCAL: float = 1.0 / 4.184
NM_TO_ANGSTROM: float = 10.0
FORCE_OPENMM_TO_CGLIGHT: float = KJ_TO_KCAL / NM_TO_ANGSTROM
"""kJ/mol/nm → kcal/mol/Å."""
HESSIAN_OPENMM_TO_CGLIGHT: float = KJ_TO_KCAL / NM_TO_ANGSTROM**2
"""kJ/mol/nm² → kcal/mol/Å²."""


def beta(temperature: float) -> float:
    """Inverse temperature 1/(k_B T) in mol/kcal."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (kelvin), got {temperature!r}")
    return 1.0 / (KB_KCAL_PER_MOL_K * temperature)

KB_KJ_PER_MOL_K: float = KB_KCAL_PER_MOL_K / KJ_TO_KCAL
"""Boltzmann constant in kJ/mol/K (OpenMM's energy unit)."""
FS_TO_PS: float = 1.0e-3
FS_PER_PS: float = 1000.0
PS_TO_NS: float = 1.0e-3
SECONDS_PER_DAY: float = 86400.0
KCAL_PER_MOL_TO_AMU_A2_PER_PS2: float = 418.4
"""kcal/mol → amu·Å²/ps² (1 amu·Å²/ps² = 10 J/mol): turns force/mass into Å/ps²."""


def kt(temperature: float) -> float:
    """Thermal energy k_B T in kcal/mol."""
    return 1.0 / beta(temperature)


def fs_to_ps(fs: float) -> float:
    """A time in fs as ps (divided by 1000, so that e.g. 2 fs × 500 steps is exactly 1.0 ps)."""
    return fs / FS_PER_PS


def steps_in(duration_ps: float, timestep_fs: float) -> int:
    """The number of integration steps of ``timestep_fs`` in ``duration_ps`` (rounded to the nearest)."""
    return int(round(duration_ps * FS_PER_PS / timestep_fs))
