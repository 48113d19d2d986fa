"""Safeguards of the Hessian losses, each checked against an independent computation:
the model forces in the ``hvp_cov`` target carry no gradient, the parameter gradient is that of
the same loss with its target frozen, and probes are fresh on every call."""

from __future__ import annotations

import pytest
import torch

from cglight.data import keys
from cglight.losses import CovarianceHVPLoss, HVPLoss
from cglight.testing import PairPotential, synthetic_batch


def _stored_probe_batch(frames: int = 3, beads: int = 5, probes: int = 2):
    """A batch with stored probes, so that the probes are known outside the loss."""
    batch = synthetic_batch(frames=frames, beads=beads, seed=4)
    g = torch.Generator().manual_seed(5)
    v = (torch.randint(0, 2, (frames, probes, 3 * beads), generator=g) * 2 - 1).double()
    stored = {k: x for k, x in batch.items() if k != keys.HESSIAN}
    stored[keys.PROBES] = v
    stored[keys.HVP] = torch.einsum("bij,bkj->bki", batch[keys.HESSIAN], v)
    return stored


@pytest.mark.parametrize("estimator", ["centered", "uncentered"])
def test_hvp_cov_gradient_is_that_of_the_frozen_target(estimator):
    batch = _stored_probe_batch()
    potential = PairPotential(5, seed=6)
    params = list(potential.parameters())
    out = potential.output(batch[keys.POS])
    grads = torch.autograd.grad(CovarianceHVPLoss(estimator=estimator, method="autograd").double()(batch, out).loss, params)

    # independently: the target from a separate, detached force evaluation, then frozen
    with torch.no_grad():
        m = potential.forces(batch[keys.POS]).flatten(1)
    f, beta = batch[keys.FORCES].flatten(1), batch[keys.BETA][:, None]
    out = potential.output(batch[keys.POS])
    errors = []
    for k in range(batch[keys.PROBES].shape[1]):
        v, hv = batch[keys.PROBES][:, k], batch[keys.HVP][:, k]
        if estimator == "centered":
            target = hv - beta * ((f - m) * v).sum(1, keepdim=True) * (f - m)
        else:
            target = hv - beta * ((f * v).sum(1, keepdim=True) * f - (m * v).sum(1, keepdim=True) * m)
        errors.append((out.hvp(v.reshape(out.pos.shape)).flatten(1) - target).pow(2).mean())
    expected = torch.autograd.grad(torch.stack(errors).mean(), params)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_probes_are_fresh_on_every_call():
    """Consecutive calls draw new probes, and the loss averaged over calls is its expectation over
    probes, ``mean_b ‖∇²U_θ − BᵀHB‖²_F / 3n`` (closed form, from the full model Hessian)."""
    batch = synthetic_batch(frames=2, beads=4, seed=7)
    potential = PairPotential(4, seed=8)
    loss = HVPLoss(probes=4, method="autograd").double()
    torch.manual_seed(0)
    out = potential.output(batch[keys.POS])
    values = torch.stack([loss(batch, out).loss.detach() for _ in range(300)])
    assert values[0] != values[1]
    hessians = torch.stack([
        torch.autograd.functional.hessian(lambda p: potential.energy(p.reshape(1, 4, 3)).sum(), x.flatten())
        for x in batch[keys.POS]
    ])
    expected = (hessians - batch[keys.HESSIAN]).pow(2).sum((1, 2)).mean() / 12
    assert float(values.mean()) == pytest.approx(float(expected), rel=0.05)
