"""BAOAB Langevin dynamics for many replicas at once.

The splitting (Leimkuhler & Matthews) per step of length ``h``::

    B  v ← v + (h/2) F(x)/m
    A  x ← x + (h/2) v
    O  v ← c v + sqrt((1 − c²) kT/m) ξ,     c = exp(−γ h),  ξ ~ N(0, 1)
    A  x ← x + (h/2) v
    B  v ← v + (h/2) F(x)/m      (with the new forces, reused by the next step's first B)

Its configurational sampling is exact for harmonic potentials and second-order accurate
otherwise, which is what the tests check (variance of an oscillator, well populations of a
double well, the configurational temperature).

Units: positions Å, velocities Å/ps, forces kcal/mol/Å, masses amu, time ps. All replicas
share one force evaluation per step: ``force_fn(pos [R, n, 3]) -> [R, n, 3]`` is called on the
replicas still alive. A replica whose positions or forces stop being finite, or whose check
fails (e.g. a bond stretched past a limit), is frozen and reported; the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cglight.errors import ConfigError
from cglight.units import FS_TO_PS, KCAL_PER_MOL_TO_AMU_A2_PER_PS2, kt

ForceFn = Callable[[Tensor], Tensor]
CheckFn = Callable[[Tensor], Tensor]
"""``check_fn(pos [R, n, 3]) -> bool [R]``: True where a replica is still physical."""


@dataclass
class LangevinState:
    """Everything needed to continue a simulation exactly (positions to RNG state)."""

    pos: Tensor  # [R, n, 3] Å
    vel: Tensor  # [R, n, 3] Å/ps
    forces: Tensor  # [R, n, 3] kcal/mol/Å at pos
    step: int = 0
    alive: Tensor | None = None  # [R] bool
    failures: dict[int, str] = field(default_factory=dict)
    """Replica index → why it was stopped (and at which step)."""
    rng: Tensor | None = None  # torch.Generator state

    def state_dict(self) -> dict:
        return {"pos": self.pos, "vel": self.vel, "forces": self.forces, "step": self.step, "alive": self.alive,
                "failures": dict(self.failures), "rng": self.rng}

    @classmethod
    def from_state_dict(cls, d: dict) -> LangevinState:
        return cls(d["pos"], d["vel"], d["forces"], int(d["step"]), d["alive"], dict(d["failures"]), d["rng"])


class LangevinIntegrator:
    """BAOAB Langevin dynamics of ``R`` replicas of one system, batched in one force call.

    Args:
        force_fn: forces of a batch of configurations (kcal/mol/Å).
        masses: bead masses ``[n]`` in amu.
        temperature: kelvin.
        timestep_fs: integration step in fs.
        friction_per_ps: collision rate γ in 1/ps.
        seed: seed of the integrator's own random stream (saved in the state).
        check_fn: optional extra test of every replica after each step.
    """

    def __init__(
        self,
        force_fn: ForceFn,
        masses: Tensor,
        temperature: float,
        timestep_fs: float,
        friction_per_ps: float,
        seed: int = 0,
        check_fn: CheckFn | None = None,
    ) -> None:
        for name, value in (("temperature", temperature), ("timestep_fs", timestep_fs)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"simulate: '{name}' must be a positive number, got {value!r}")
        if not (math.isfinite(friction_per_ps) and friction_per_ps >= 0):
            raise ConfigError(f"simulate: 'friction_per_ps' must be >= 0, got {friction_per_ps!r}")
        masses = torch.as_tensor(masses)
        if masses.dim() != 1 or not bool((masses > 0).all()):
            raise ConfigError(f"simulate: bead masses must be a positive vector [n], got {masses.tolist()}")
        self.force_fn, self.check_fn = force_fn, check_fn
        self.masses, self.seed = masses, seed
        self.temperature = float(temperature)
        self.h = timestep_fs * FS_TO_PS
        self.c = math.exp(-friction_per_ps * self.h)
        self.kt = kt(temperature) * KCAL_PER_MOL_TO_AMU_A2_PER_PS2  # amu Å²/ps²

    def _accel(self, forces: Tensor, masses: Tensor) -> Tensor:
        return forces * (KCAL_PER_MOL_TO_AMU_A2_PER_PS2 / masses)[..., None]

    def init_state(self, pos: Tensor, vel: Tensor | None = None) -> LangevinState:
        """A state at ``pos [R, n, 3]`` with Maxwell–Boltzmann velocities (unless given)."""
        if pos.dim() != 3 or pos.shape[-1] != 3 or pos.shape[1] != len(self.masses):
            raise ConfigError(f"simulate: starting positions must be [replicas, {len(self.masses)}, 3], got {tuple(pos.shape)}")
        g = torch.Generator(device=pos.device).manual_seed(self.seed)
        masses = self.masses.to(pos)
        if vel is None:
            vel = torch.randn(pos.shape, generator=g, device=pos.device, dtype=pos.dtype) * (self.kt / masses).sqrt()[:, None]
        alive = torch.ones(len(pos), dtype=torch.bool, device=pos.device)
        state = LangevinState(pos.clone(), vel.clone(), torch.zeros_like(pos), 0, alive, {}, g.get_state())
        state.forces = self._forces(state)
        return state

    def _forces(self, state: LangevinState) -> Tensor:
        ok = state.alive & torch.isfinite(state.pos).flatten(1).all(1)
        if bool(ok.all()):  # the usual case: one call on the whole batch, no gather/scatter
            return self.force_fn(state.pos).detach().to(state.pos)
        forces = torch.zeros_like(state.pos)
        idx = ok.nonzero().squeeze(-1)
        if len(idx):
            forces[idx] = self.force_fn(state.pos[idx]).detach().to(forces)
        return forces

    def _retire(self, state: LangevinState, prev_pos: Tensor, prev_vel: Tensor, prev_forces: Tensor) -> None:
        finite = torch.isfinite(state.pos).flatten(1).all(1) & torch.isfinite(state.forces).flatten(1).all(1)
        ok = finite if self.check_fn is None else finite & self.check_fn(state.pos).to(torch.bool)
        bad = state.alive & ~ok
        if not bool(bad.any()):
            return
        for i in bad.nonzero().squeeze(-1).tolist():
            why = "positions or forces became NaN/inf" if not finite[i] else "failed the physical check (e.g. a bond stretched past its limit)"
            state.failures[i] = f"step {state.step}: {why}"
        # freeze the replica at its last good state
        state.pos[bad], state.vel[bad], state.forces[bad] = prev_pos[bad], prev_vel[bad], prev_forces[bad]
        state.alive = state.alive & ~bad

    @torch.no_grad()
    def run(self, state: LangevinState, steps: int, callback: Callable[[LangevinState], None] | None = None) -> LangevinState:
        """Advance ``state`` by ``steps`` BAOAB steps in place; ``callback(state)`` after each."""
        g = torch.Generator(device=state.pos.device)
        g.set_state(state.rng)
        masses = self.masses.to(state.pos)
        noise = ((1 - self.c**2) * self.kt / masses).sqrt()[:, None]
        half = 0.5 * self.h
        for _ in range(steps):
            prev = (state.pos, state.vel, state.forces)  # never modified in place below
            live = state.alive[:, None, None]
            vel = state.vel + half * self._accel(state.forces, masses)
            pos = state.pos + half * vel
            xi = torch.randn(state.pos.shape, generator=g, device=state.pos.device, dtype=state.pos.dtype)
            vel = self.c * vel + noise * xi
            pos = pos + half * vel
            state.pos = torch.where(live, pos, state.pos)
            state.vel = vel
            state.forces = self._forces(state)
            state.vel = torch.where(live, state.vel + half * self._accel(state.forces, masses), prev[1])
            state.step += 1
            self._retire(state, *prev)
            if callback is not None:
                callback(state)
        state.rng = g.get_state()
        return state
