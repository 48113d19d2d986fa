"""All-atom reference frames: Langevin MD with flexible bonds, or the frames of an existing trajectory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from cglight.errors import ConfigError
from cglight.units import NM_TO_ANGSTROM, steps_in


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
    return (np.asarray(x_nm, dtype=np.float64) * NM_TO_ANGSTROM).astype(np.float32).astype(np.float64) / NM_TO_ANGSTROM


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
    heat_temperature: float | None = None,
    heat_ps: float = 0.0,
) -> Iterator[np.ndarray]:
    """Minimise, (heat,) equilibrate, then yield ``frames`` positions (nm, DCD-rounded) every ``stride_steps``.

    With ``heat_temperature``, ``heat_ps`` of MD at that temperature come first, so that replicas
    with different seeds start their equilibration from different structures.
    """
    import openmm as mm
    from openmm import unit

    integrator = mm.LangevinMiddleIntegrator(temperature * unit.kelvin, friction_per_ps / unit.picosecond, timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = make_context(system, platform, integrator)
    context.setPositions(positions)
    mm.LocalEnergyMinimizer.minimize(context)
    if heat_temperature is not None and heat_ps > 0:
        integrator.setTemperature(heat_temperature * unit.kelvin)
        context.setVelocitiesToTemperature(heat_temperature * unit.kelvin, seed)
        integrator.step(steps_in(heat_ps, timestep_fs))
        integrator.setTemperature(temperature * unit.kelvin)
    else:
        context.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
    integrator.step(steps_in(equilibration_ps, timestep_fs))
    for _ in range(frames):
        integrator.step(stride_steps)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if not np.isfinite(x).all():
            raise RuntimeError("all-atom MD blew up (non-finite positions); lower the timestep or check the system")
        yield as_stored(x)


def replica_seed(seed: int, replica: int) -> int:
    """A positive 31-bit OpenMM seed for ``replica`` (0 would ask OpenMM for a random one)."""
    return int(np.random.SeedSequence([seed, replica]).generate_state(1)[0] % (2**31 - 1)) + 1


def _atoms_in(path: str) -> int | None:
    """The number of atoms in a trajectory file without a topology, if mdtraj can tell."""
    import mdtraj

    try:
        with mdtraj.open(path) as f:
            first = f.read(n_frames=1)
        xyz = first[0] if isinstance(first, tuple) else first
        return int(np.asarray(xyz).shape[1])
    except Exception:
        return None


def read_trajectory(path: str, topology_pdb: str, n_atoms: int) -> np.ndarray:
    """All frames of an existing trajectory (anything mdtraj reads), in nm, ``[F, N, 3]``."""
    import mdtraj

    if not os.path.isfile(path):
        raise ConfigError(f"trajectory {path} does not exist; fix the path in 'trajectory'")
    if str(path).lower().endswith(".dcd"):
        try:  # DCD stores float32 Å: read it exactly (and quietly), not through mdtraj's float32 nm
            xyz = read_dcd(path)
        except (ValueError, IndexError):
            xyz = None
        if xyz is not None and xyz.shape[1] == n_atoms:
            return xyz.astype(np.float64) / NM_TO_ANGSTROM
    try:
        traj = mdtraj.load(path, top=topology_pdb)
    except Exception as exc:
        found = _atoms_in(path)
        if found is not None and found != n_atoms:
            raise ConfigError(
                f"trajectory {path} has {found} atoms but the topology has {n_atoms}; "
                "give the trajectory and topology of the same system (the topology as prepared, hydrogens included)"
            ) from None
        raise ConfigError(f"trajectory {path} cannot be read with topology {topology_pdb}: {' '.join(str(exc).split())}") from None
    if traj.n_atoms != n_atoms:
        raise ConfigError(
            f"trajectory {path} has {traj.n_atoms} atoms but the topology has {n_atoms}; "
            "give the trajectory and topology of the same system (the topology as prepared, hydrogens included)"
        )
    return np.asarray(traj.xyz, dtype=np.float64)


def read_dcd(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames ``[start, stop)`` of a DCD file as written by OpenMM's ``DCDFile``: float32 Å, ``[F, N, 3]``.

    A DCD is a sequence of Fortran records (int32 length, payload, int32 length): a header of
    three records (the control words, the title, the atom count), then per frame an optional
    unit-cell record (6 doubles) and the x, y and z records of N float32 each.
    """
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    offset, header = 0, []
    for _ in range(3):
        n = int(raw[offset : offset + 4].view(np.int32)[0])
        header.append(raw[offset + 4 : offset + 4 + n])
        offset += n + 8
    control = header[0][4:84].view(np.int32)
    n_atoms = int(header[2].view(np.int32)[0])
    cell = 56 if control[10] else 0
    frame_bytes = cell + 3 * (4 * n_atoms + 8)
    total = (raw.size - offset) // frame_bytes
    stop = total if stop is None else stop
    if not 0 <= start <= stop <= total:
        raise ValueError(f"{path}: frames [{start}, {stop}) out of range; the file has {total}")
    block = raw[offset + start * frame_bytes : offset + stop * frame_bytes].reshape(stop - start, frame_bytes)
    coords = block[:, cell:].reshape(stop - start, 3, 4 * n_atoms + 8)[:, :, 4:-4]
    return np.ascontiguousarray(coords).view(np.float32).reshape(stop - start, 3, n_atoms).transpose(0, 2, 1).copy()
