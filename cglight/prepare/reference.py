"""All-atom reference: build the OpenMM system and run Langevin MD with flexible bonds."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cglight.errors import ConfigError
from cglight.prepare.peptide import build_alanine_dipeptide

MOLECULES = {"alanine-dipeptide": build_alanine_dipeptide}
SOLVENTS = {
    # name: force-field files (OpenMM ships them); Born radii model for implicit solvent
    "vacuum": ("amber99sbildn.xml",),
    "implicit-obc": ("amber99sbildn.xml", "amber99_obc.xml"),
}


def build_system(molecule: str, solvent: str):
    """Return ``(topology, positions, system)`` with no constraints (flexible X–H bonds)."""
    from openmm import app

    if molecule not in MOLECULES:
        raise ConfigError(f"unknown molecule {molecule!r}; available: {', '.join(MOLECULES)}")
    if solvent not in SOLVENTS:
        raise ConfigError(f"unknown solvent {solvent!r}; available: {', '.join(SOLVENTS)}")
    forcefield = app.ForceField(*SOLVENTS[solvent])
    topology, positions = MOLECULES[molecule](forcefield)
    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    return topology, positions, system


def make_context(system, platform: str, integrator=None):
    import openmm as mm

    try:
        plat = mm.Platform.getPlatformByName(platform)
    except Exception:
        names = [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]
        raise ConfigError(f"OpenMM platform {platform!r} is not available; available: {', '.join(names)}") from None
    props = {"Threads": "1"} if platform == "CPU" else {}
    return mm.Context(system, integrator or mm.VerletIntegrator(0.001), plat, props)


def as_stored(x_nm: np.ndarray) -> np.ndarray:
    """Round positions (nm) to what a DCD file stores (float32 Å), returned in nm as float64.

    Forces and Hessians are evaluated at exactly these positions, so anything recomputed from the
    saved trajectory reproduces the stored targets.
    """
    return (np.asarray(x_nm, dtype=np.float64) * 10.0).astype(np.float32).astype(np.float64) / 10.0


def langevin_frames(
    system,
    positions,
    temperature: float,
    timestep_fs: float,
    friction_per_ps: float,
    equilibration_ps: float,
    frames: int,
    stride_steps: int,
    seed: int,
    platform: str = "Reference",
) -> Iterator[np.ndarray]:
    """Minimise, equilibrate, then yield ``frames`` positions (nm, DCD-rounded) every ``stride_steps``."""
    import openmm as mm
    from openmm import unit

    integrator = mm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction_per_ps / unit.picosecond, timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = make_context(system, platform, integrator)
    context.setPositions(positions)
    mm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    integrator.step(int(round(equilibration_ps * 1000.0 / timestep_fs)))
    for _ in range(frames):
        integrator.step(stride_steps)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if not np.isfinite(x).all():
            raise RuntimeError("all-atom MD blew up (non-finite positions); lower the timestep or check the system")
        yield as_stored(x)
