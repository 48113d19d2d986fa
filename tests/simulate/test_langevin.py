"""BAOAB Langevin against Boltzmann statistics known in closed form or by quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from cglight.errors import ConfigError
from cglight.simulate import LangevinIntegrator
from cglight.simulate.settings import LangevinSettings
from cglight.units import kt

T = 300.0
KT = kt(T)  # 0.596 kcal/mol


def _sample(force_fn, pos, steps, every, masses=None, friction=5.0, timestep_fs=2.0, seed=0, check_fn=None):
    masses = torch.full((pos.shape[1],), 12.0, dtype=pos.dtype) if masses is None else masses
    integ = LangevinIntegrator(force_fn, masses, LangevinSettings(timestep_fs, friction, T), seed=seed, check_fn=check_fn)
    state = integ.init_state(pos)
    frames = []
    for _ in range(steps // every):
        integ.run(state, every)
        frames.append(state.pos.clone())
    return torch.stack(frames, 1), state  # [R, frames, n, 3]


def test_harmonic_oscillator_variance_is_kT_over_k():
    k = 10.0  # kcal/mol/Å²
    pos = torch.zeros(256, 1, 3, dtype=torch.float64)
    traj, _ = _sample(lambda x: -k * x, pos, steps=4000, every=20)
    x = traj[:, 20:].reshape(256, -1)  # drop the first 0.8 ps
    per_replica = x.pow(2).mean(1)
    var, se = float(per_replica.mean()), float(per_replica.std() / math.sqrt(len(per_replica)))
    assert abs(var - KT / k) < max(4 * se, 0.01 * KT / k), (var, KT / k, se)


def test_double_well_populations_match_quadrature():
    a, b = 1.5, 0.4  # U = a (x² − 1)² + b x (kcal/mol, x in Å): barrier ~2.5 kT, tilted

    def force(pos):
        x = pos[..., 0:1]
        fx = -(4 * a * x * (x * x - 1) + b)
        return torch.cat([fx, -4.0 * pos[..., 1:]], dim=-1)  # y, z: stiff harmonic

    pos = torch.zeros(512, 1, 3, dtype=torch.float64)
    pos[::2, 0, 0], pos[1::2, 0, 0] = -1.0, 1.0
    traj, _ = _sample(force, pos, steps=6000, every=10, friction=5.0)
    x = traj[:, 100:, 0, 0]
    left = (x < 0).double().mean(1)
    p_left, se = float(left.mean()), float(left.std() / math.sqrt(len(left)))
    w = lambda y: math.exp(-(a * (y * y - 1) ** 2 + b * y) / KT)  # noqa: E731
    exact = integrate.quad(w, -4, 0)[0] / integrate.quad(w, -4, 4)[0]
    assert abs(p_left - exact) < 4 * se + 0.005, (p_left, exact, se)
    assert 0.6 < exact < 0.9  # the tilt matters: a wrong temperature moves the populations


def test_configurational_temperature_of_an_anharmonic_chain():
    """⟨|∇U|²⟩ / ⟨∇²U⟩ = kT for any smooth U sampled at temperature T."""

    def energy(pos):
        r = (pos[:, 1:] - pos[:, :-1]).norm(dim=-1)
        return (20.0 * (r - 3.8) ** 2 + 5.0 * (r - 3.8) ** 4).sum(-1) + 0.01 * pos.pow(2).sum((1, 2))

    def force(pos):
        with torch.enable_grad():
            p = pos.detach().requires_grad_(True)
            return -torch.autograd.grad(energy(p).sum(), p)[0]

    start = (torch.arange(4, dtype=torch.float64)[:, None] * torch.tensor([3.8, 0.0, 0.0])).expand(256, 4, 3).clone()
    traj, _ = _sample(force, start, steps=3000, every=20)
    x = traj[:, 10:].reshape(-1, 4, 3).requires_grad_(True)
    (g,) = torch.autograd.grad(energy(x).sum(), x, create_graph=True)
    lap = sum(torch.autograd.grad(g[:, i, d].sum(), x, retain_graph=True)[0][:, i, d] for i in range(4) for d in range(3))
    num, den = g.detach().pow(2).sum((1, 2)).reshape(256, -1).mean(1), lap.detach().reshape(256, -1).mean(1)
    t_conf = float(num.mean() / den.mean())
    # jackknife over independent replicas for the error bar of the ratio
    loo = (num.sum() - num) / (den.sum() - den)
    se = float(((len(loo) - 1) / len(loo) * (loo - loo.mean()).pow(2).sum()).sqrt())
    assert se < 0.02 * KT  # the check has teeth: a wrong temperature or unit is many error bars off
    assert abs(t_conf - KT) < 4 * se, (t_conf, KT, se)


def test_restart_continues_step_for_step():
    k = 3.0
    pos = torch.randn(8, 2, 3, dtype=torch.float64)
    masses = torch.tensor([12.0, 14.0], dtype=torch.float64)
    integ = LangevinIntegrator(lambda x: -k * x, masses, LangevinSettings(2.0, 1.0, T), seed=5)
    whole = integ.run(integ.init_state(pos), 50)
    first = integ.run(integ.init_state(pos), 20)
    saved = {k2: (v.clone() if torch.is_tensor(v) else v) for k2, v in first.state_dict().items()}
    from cglight.simulate import LangevinState

    resumed = integ.run(LangevinState.from_state_dict(saved), 30)
    assert resumed.step == whole.step == 50
    torch.testing.assert_close(resumed.pos, whole.pos, rtol=0, atol=0)
    torch.testing.assert_close(resumed.vel, whole.vel, rtol=0, atol=0)


def test_a_blown_up_replica_is_stopped_and_the_others_go_on():
    def force(pos):
        f = -pos.clone()
        f[pos[:, 0, 0] > 50] = float("nan")  # replica pushed far away explodes
        return f

    pos = torch.zeros(4, 1, 3, dtype=torch.float64)
    pos[2, 0, 0] = 100.0
    integ = LangevinIntegrator(force, torch.tensor([12.0], dtype=torch.float64), LangevinSettings(2.0, 1.0, T),
                               check_fn=lambda p: p.norm(dim=-1).amax(-1) < 1000)
    state = integ.run(integ.init_state(pos), 10)
    assert state.alive.tolist() == [True, True, False, True]
    assert list(state.failures) == [2] and "NaN" in state.failures[2]
    assert torch.isfinite(state.pos).all()


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="timestep_fs"):
        LangevinSettings(0.0, 1.0, T)
    with pytest.raises(ConfigError, match="masses"):
        LangevinIntegrator(lambda x: x, torch.tensor([1.0, -1.0]), LangevinSettings(1.0, 1.0, T))
    with pytest.raises(ValueError, match="temperature"):
        LangevinIntegrator(lambda x: x, torch.ones(2), LangevinSettings(1.0, 1.0))
    integ = LangevinIntegrator(lambda x: x, torch.ones(2), LangevinSettings(1.0, 1.0, T))
    with pytest.raises(ConfigError, match="replicas, 2, 3"):
        integ.init_state(torch.zeros(3, 4, 3))
