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

Every replica draws its noise from its own stream (:mod:`cglight.simulate.noise`: the noise of
replica ``r`` at step ``t`` is a function of the replica's key and ``t``), so a replica follows the
same trajectory whichever replicas share its batch or process (up to the rounding of the batched
force call), and a state split into blocks of replicas and joined again continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cglight.errors import ConfigError
from cglight.simulate.noise import normals, replica_keys
from cglight.simulate.settings import LangevinSettings, check_masses
from cglight.units import KCAL_PER_MOL_TO_AMU_A2_PER_PS2, kt

ForceFn = Callable[[Tensor], Tensor]
CheckFn = Callable[[Tensor], Tensor]
"""``check_fn(pos [R, n, 3]) -> bool [R]``: True where a replica is still physical."""


@dataclass
class LangevinState:
    """Everything needed to continue a simulation exactly (positions to the replicas' noise keys)."""

    pos: Tensor  # [R, n, 3] Å
    vel: Tensor  # [R, n, 3] Å/ps
    forces: Tensor  # [R, n, 3] kcal/mol/Å at pos
    step: int = 0
    alive: Tensor | None = None  # [R] bool
    failures: dict[int, str] = field(default_factory=dict)
    """Replica index → why it was stopped (and at which step)."""
    keys: Tensor | None = None  # [R] int64: each replica's noise key (cglight.simulate.noise)

    def state_dict(self) -> dict:
        return {"pos": self.pos, "vel": self.vel, "forces": self.forces, "step": self.step, "alive": self.alive,
                "failures": dict(self.failures), "keys": self.keys}

    @classmethod
    def from_state_dict(cls, d: dict) -> LangevinState:
        if "keys" not in d:
            raise ConfigError("simulate: this restart state holds one random stream per system (written by an older "
                              "cglight); continue it with that version or start a new 'out'")
        return cls(d["pos"], d["vel"], d["forces"], int(d["step"]), d["alive"], dict(d["failures"]), d["keys"])

    def block(self, start: int, stop: int) -> LangevinState:
        """Replicas ``start … stop − 1`` as a state of their own (failures renumbered from 0)."""
        failures = {r - start: why for r, why in self.failures.items() if start <= r < stop}
        return LangevinState(self.pos[start:stop].clone(), self.vel[start:stop].clone(), self.forces[start:stop].clone(),
                             self.step, self.alive[start:stop].clone(), failures, self.keys[start:stop].clone())

    @classmethod
    def join(cls, blocks: list[LangevinState]) -> LangevinState:
        """The states of consecutive blocks of replicas (all at the same step) as one state."""
        steps = {b.step for b in blocks}
        if len(steps) != 1:
            raise ValueError(f"blocks at different steps {sorted(steps)} cannot be joined")
        failures, offset = {}, 0
        for b in blocks:
            failures.update({r + offset: why for r, why in b.failures.items()})
            offset += len(b.pos)
        cat = lambda name: torch.cat([getattr(b, name) for b in blocks])  # noqa: E731
        return cls(cat("pos"), cat("vel"), cat("forces"), steps.pop(), cat("alive"), failures, cat("keys"))


class LangevinIntegrator:
    """BAOAB Langevin dynamics of ``R`` replicas of one system, batched in one force call.

    Args:
        force_fn: forces of a batch of configurations (kcal/mol/Å).
        masses: bead masses ``[n]`` in amu.
        settings: the timestep, the collision rate γ and the temperature (set: :meth:`LangevinSettings.at`),
            validated and converted when they were built.
        seed: an integer or a sequence of integers; replica ``r``'s noise stream is keyed by
            ``(*seed, r)`` (its index among all replicas, see :meth:`init_state`).
        check_fn: optional extra test of every replica after each step.
    """

    def __init__(
        self,
        force_fn: ForceFn,
        masses: Tensor,
        settings: LangevinSettings,
        seed: int | Sequence[int] = 0,
        check_fn: CheckFn | None = None,
    ) -> None:
        masses = torch.as_tensor(masses)
        if masses.dim() != 1:
            raise ConfigError(f"simulate: 'masses' must be a vector [n] (amu, one per bead), got shape {tuple(masses.shape)}")
        try:
            check_masses(masses.tolist())
        except ConfigError as exc:
            raise ConfigError(f"simulate: {exc}") from None
        if settings.temperature is None:
            raise ValueError("LangevinIntegrator: the settings need a temperature (LangevinSettings.at)")
        self.force_fn, self.check_fn = force_fn, check_fn
        self.masses, self.seed, self.settings = masses, seed, settings
        self.temperature = float(settings.temperature)
        self.h = settings.timestep_ps
        self.c = math.exp(-settings.friction_per_ps * self.h)
        self.kt = kt(self.temperature) * KCAL_PER_MOL_TO_AMU_A2_PER_PS2  # amu Å²/ps²
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def _factors(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Per bead, on ``like``'s device and dtype (computed once each): the half kick per unit
        force ``(h/2) / m`` (Å/ps per kcal/mol/Å) and the O step's noise scale ``sqrt((1 − c²) kT/m)``
        (Å/ps), both ``[n, 1]``."""
        key = (like.device, like.dtype)
        if key not in self._cache:
            masses = self.masses.to(device=like.device, dtype=like.dtype)
            kick = (0.5 * self.h * KCAL_PER_MOL_TO_AMU_A2_PER_PS2 / masses)[:, None]
            noise = ((1 - self.c**2) * self.kt / masses).sqrt()[:, None]
            self._cache[key] = (kick, noise)
        return self._cache[key]

    def init_state(self, pos: Tensor, vel: Tensor | None = None, replicas: Sequence[int] | None = None) -> LangevinState:
        """A state at ``pos [R, n, 3]`` with Maxwell–Boltzmann velocities (unless given).

        ``replicas``: the indices of these replicas among all replicas of the run (default
        ``0 … R − 1``); they key the noise streams, so a block of replicas started on its own
        (e.g. ``range(8, 16)``) gets the streams it would get in the whole batch."""
        if pos.dim() != 3 or pos.shape[-1] != 3 or pos.shape[1] != len(self.masses):
            raise ConfigError(f"simulate: starting positions must be [replicas, {len(self.masses)}, 3], got {tuple(pos.shape)}")
        replicas = range(len(pos)) if replicas is None else replicas
        if len(replicas) != len(pos):
            raise ValueError(f"{len(replicas)} replica indices for {len(pos)} starting structures")
        keys = replica_keys(self.seed, replicas)
        masses = self.masses.to(pos)
        if vel is None:
            vel = normals(keys, -1, tuple(pos.shape[1:]), pos.dtype, pos.device) * (self.kt / masses).sqrt()[:, None]
        alive = torch.ones(len(pos), dtype=torch.bool, device=pos.device)
        state = LangevinState(pos.clone(), vel.clone(), torch.zeros_like(pos), 0, alive, {}, keys)
        state.forces = self._forces(state)
        return state

    def _forces(self, state: LangevinState) -> Tensor:
        return _forces_of([state], self._group_force_fn)[0]

    def _group_force_fn(self, pos: list[Tensor]) -> list[Tensor]:
        return [self.force_fn(p) if len(p) else torch.zeros_like(p) for p in pos]

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
        each = None if callback is None else (lambda states: callback(states[0]))
        run_together([self], [state], steps, self._group_force_fn, each)
        return state

    def begin_step(self, state: LangevinState) -> tuple[Tensor, Tensor, Tensor]:
        """The step up to the new positions (B A O A); returns the state before it, for :meth:`end_step`
        (the caller evaluates the forces at the new positions in between: :func:`run_together`)."""
        kick, noise = self._factors(state.pos)
        half = 0.5 * self.h
        prev = (state.pos, state.vel, state.forces)  # never modified in place below
        vel = torch.addcmul(state.vel, state.forces, kick)
        pos = torch.add(state.pos, vel, alpha=half)
        xi = normals(state.keys, state.step, tuple(state.pos.shape[1:]), state.pos.dtype, state.pos.device)
        vel = torch.addcmul(vel.mul_(self.c), xi, noise)
        pos.add_(vel, alpha=half)
        state.pos = torch.where(state.alive[:, None, None], pos, state.pos)
        state.vel = vel
        return prev

    def end_step(self, state: LangevinState, prev: tuple[Tensor, Tensor, Tensor], forces: Tensor) -> None:
        """The step's last B with ``forces`` at the new positions, then the checks; ``prev``: what
        :meth:`begin_step` returned."""
        kick, _ = self._factors(state.pos)
        state.forces = forces
        state.vel = torch.where(state.alive[:, None, None], torch.addcmul(state.vel, forces, kick), prev[1])
        state.step += 1
        self._retire(state, *prev)


GroupForceFn = Callable[[list[Tensor]], list[Tensor]]
"""``forces([pos_1 [R_1, n_1, 3], ...]) -> [forces_1, ...]``: several systems' forces in one call
(a system whose replicas have all stopped comes with ``R_i = 0``)."""


def _forces_of(states: list[LangevinState], group_force_fn: GroupForceFn) -> list[Tensor]:
    """The forces of every state's live, finite replicas, all states in one call (zero elsewhere)."""
    picks, pos = [], []
    for state in states:
        ok = state.alive & torch.isfinite(state.pos).flatten(1).all(1)
        if bool(ok.all()):  # the usual case: the whole batch, no gather/scatter
            picks.append(None)
            pos.append(state.pos)
        else:
            idx = ok.nonzero().squeeze(-1)
            picks.append(idx)
            pos.append(state.pos[idx])  # possibly none: every system keeps its place in the call
    computed = group_force_fn(pos) if any(len(p) for p in pos) else [torch.zeros_like(p) for p in pos]
    out = []
    for state, idx, f in zip(states, picks, computed, strict=True):
        if idx is None:
            out.append(f.detach().to(state.pos))
            continue
        forces = torch.zeros_like(state.pos)
        if len(idx):
            forces[idx] = f.detach().to(forces)
        out.append(forces)
    return out


@torch.no_grad()
def run_together(integrators: list[LangevinIntegrator], states: list[LangevinState], steps: int,
                 group_force_fn: GroupForceFn, callback: Callable[[list[LangevinState]], None] | None = None) -> list[LangevinState]:
    """Advance several systems' states (one integrator each: masses, temperature, seed, checks)
    by ``steps`` BAOAB steps in place, with ONE force call per step for all of them:
    ``group_force_fn`` (e.g. ``CGEnergy.forces_groups``, one backbone call). Every replica keeps
    its own random stream, so each system follows the same trajectory as when run alone with
    :meth:`LangevinIntegrator.run` (up to the rounding of the batched force call).
    ``callback(states)`` after each step."""
    if len(integrators) != len(states):
        raise ValueError(f"{len(integrators)} integrators for {len(states)} states")
    for _ in range(steps):
        prev = [integ.begin_step(state) for integ, state in zip(integrators, states, strict=True)]
        forces = _forces_of(list(states), group_force_fn)
        for integ, state, p, f in zip(integrators, states, prev, forces, strict=True):
            integ.end_step(state, p, f)
        if callback is not None:
            callback(list(states))
    return list(states)
