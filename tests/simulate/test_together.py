"""Several systems in one simulation: one batched force call per step, each system as if alone.

Oracle: the same two systems (5 and 8 beads, different temperatures, masses and seeds) run
separately with ``LangevinIntegrator.run`` and one force call per system; the run together must
follow the same trajectories step for step (float64, so the batched force call's rounding is
far below the tolerance).
"""

from __future__ import annotations

import torch

from cglight.energy import CGEnergy
from cglight.simulate.langevin import LangevinIntegrator, run_together
from cglight.simulate.block import force_calls
from cglight.simulate.block import force_function, group_force_function
from cglight.simulate.settings import LangevinSettings

SYSTEMS = [  # beads, replicas, temperature, seed
    (5, 4, 300.0, 11),
    (8, 3, 350.0, 12),
]


def _setup():
    torch.manual_seed(0)
    energy = CGEnergy({"embedding_dimension": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 8.0}).double().eval()
    g = torch.Generator().manual_seed(1)
    systems = []
    for n, replicas, temperature, seed in SYSTEMS:
        types = torch.randint(1, 8, (n,), generator=g)
        steps = torch.randn(replicas, n, 3, generator=g, dtype=torch.float64)
        pos = torch.cumsum(3.8 * steps / steps.norm(dim=-1, keepdim=True), 1)
        masses = 10.0 + 5.0 * torch.rand(n, generator=g, dtype=torch.float64)
        systems.append((types, pos, masses, temperature, seed))
    pos = systems[0][1]
    pos[2, 1] = float("nan")  # a broken replica: skipped by the force call from the start, then frozen
    return energy, systems


def _integrator(force_fn, masses, temperature, seed):
    return LangevinIntegrator(force_fn, masses, LangevinSettings(timestep_fs=2.0, friction_per_ps=1.0, temperature=temperature),
                              seed=seed)


def test_two_systems_together_follow_their_separate_trajectories_step_for_step():
    energy, systems = _setup()
    steps = 40
    alone = []
    for types, pos, masses, temperature, seed in systems:
        integ = _integrator(force_function(energy, types), masses, temperature, seed)
        trajectory = []
        integ.run(integ.init_state(pos), steps, lambda s, t=trajectory: t.append(s.pos.clone()))
        alone.append(trajectory)

    calls = []
    hook = energy.net.register_forward_hook(lambda *args: calls.append(1))
    integs = [_integrator(force_function(energy, t), m, temp, seed) for t, _, m, temp, seed in systems]
    states = [integ.init_state(pos) for integ, (_, pos, *_) in zip(integs, systems, strict=True)]
    calls.clear()
    together = [[], []]
    run_together(integs, states, steps, group_force_function(energy, [s[0] for s in systems]),
                 lambda st: [t.append(s.pos.clone()) for t, s in zip(together, st, strict=True)])
    hook.remove()
    assert len(calls) == steps  # one backbone call per step for both systems

    for a, b in zip(alone, together, strict=True):
        assert len(a) == len(b) == steps
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert states[0].failures.keys() == {2} and not states[1].failures
    moved = (alone[1][-1] - systems[1][1]).abs().max()
    assert moved > 0.05  # the trajectories went somewhere


def test_a_system_whose_replicas_all_stopped_leaves_the_others_on_their_trajectories():
    """Every replica of the first system is broken from the start (as can happen to a worker's small
    block); the second system still gets its forces and follows its trajectory when run alone."""
    energy, systems = _setup()
    systems[0][1][:] = float("nan")
    steps = 10
    types, pos, masses, temperature, seed = systems[1]
    integ = _integrator(force_function(energy, types), masses, temperature, seed)
    alone = integ.run(integ.init_state(pos), steps)

    integs = [_integrator(force_function(energy, t), m, temp, seed) for t, _, m, temp, seed in systems]
    states = [integ.init_state(p) for integ, (_, p, *_) in zip(integs, systems, strict=True)]
    run_together(integs, states, steps, group_force_function(energy, [s[0] for s in systems]))
    assert not states[0].alive.any() and sorted(states[0].failures) == [0, 1, 2, 3]
    torch.testing.assert_close(states[1].pos, alone.pos, rtol=1e-9, atol=1e-9)
    assert states[1].alive.all()


def test_force_calls_cover_every_replica_once_within_the_bead_cap():
    sizes = [(7, 5), (0, 9), (3, 40), (4, 12)]  # (replicas, beads); 40 beads exceed the cap of 30
    for cap in (0, 12, 30, 64, 1000):
        calls = force_calls(sizes, cap)
        seen = [(k, first + i) for call in calls for k, first, count in call for i in range(count)]
        assert seen == [(k, r) for k, (replicas, _) in enumerate(sizes) for r in range(replicas)]  # once each, in order
        for call in calls:
            beads = sum(count * sizes[k][1] for k, _, count in call)
            assert beads <= cap or (len(call) == 1 and call[0][2] == 1) or cap == 0
        if cap == 0:
            assert len(calls) == 1
    assert [len(c) for c in force_calls([(4, 10)], 25)] == [1, 1]  # 2 replicas (20 beads) per call


def test_forces_cut_into_several_calls_equal_one_call():
    energy, systems = _setup()
    types = [s[0] for s in systems]
    pos = [s[1].clone() for s in systems]
    pos[0][2, 1] = 0.5  # all finite here
    calls = []
    hook = energy.net.register_forward_hook(lambda *args: calls.append(1))
    whole = group_force_function(energy, types)(pos)
    assert len(calls) == 1
    cut = group_force_function(energy, types, max_beads_per_call=16)(pos)  # 5-bead replicas 3 per call, 8-bead 2
    hook.remove()
    assert len(calls) == 1 + 4
    for a, b in zip(whole, cut, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
