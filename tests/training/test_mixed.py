"""Several systems in one batch: the model side.

Oracle: the loss of a mixed batch (two molecules of 5 and 8 beads) must equal the frame-weighted
mean of the losses of its molecules taken one at a time through the ordinary one-system path
(``CGEnergy.evaluate`` and one ``Objective`` call per molecule), with the same probes (seeded),
and so must its parameter gradient; every built-in term, exact and finite-difference HVPs,
normalised and raw.
"""

from __future__ import annotations

import pytest
import torch

from cglight.data import keys, mixed
from cglight.data.datamodule import CGDataModule
from cglight.training import BackboneConfig, CGPotential
from tests.data.synthetic import write_synthetic

FRAMES = {"a": 3, "b": 5}  # frames of each molecule in the mixed batch: unequal, so a plain mean differs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("mixed") / "ds", {"a": [40], "b": [40]}, beads={"a": 5, "b": 8},
                           temperature=300.0)
    dm = CGDataModule(str(root), batch_size=8, num_workers=0, block_frames=4, window_frames=16)
    dm.setup()
    return dm


def _model(data, losses) -> CGPotential:
    torch.manual_seed(0)
    backbone = BackboneConfig(name="graph-network", embedding_dimension=16, num_layers=2, num_rbf=8, cutoff_upper=8.0)
    model = CGPotential(backbone=backbone, priors={"bonds": {}, "angles": {}}, losses=losses)
    model.fit_to_data(data.calibration_batches(80), data.systems)
    return model.double().train()


def _molecules(data) -> list[dict[str, torch.Tensor]]:
    """One homogeneous float64 batch per system, the first frames of each system's training frames."""
    out, want = {}, dict(FRAMES)
    for batch in data.calibration_batches(80):
        name = list(data.systems)[int(batch[keys.SYSTEM][0])]
        if name in want and name not in out:
            out[name] = {k: (v.double() if v.is_floating_point() else v)[: want[name]] for k, v in batch.items()}
    return [out["a"], out["b"]]


def _one_at_a_time(model, molecules):
    """The oracle: each molecule through the one-system path, then the frame-weighted mean."""
    torch.manual_seed(7)
    results = []
    for batch in molecules:
        out = model.core.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES], create_graph=True)
        results.append(model.objective(batch, out))
    b = [len(m[keys.POS]) for m in molecules]
    total = sum(r[0] * n for r, n in zip(results, b, strict=True)) / sum(b)
    logs = {k: sum(r[1][k] * n for r, n in zip(results, b, strict=True)) / sum(b) for k in results[0][1]}
    return total, logs


CASES = [
    pytest.param(method, normalize, id=f"{method}-{'normalised' if normalize else 'raw'}")
    for method in ("autograd", "finite_difference") for normalize in (True, False)
]


@pytest.mark.parametrize(("method", "normalize"), CASES)
def test_mixed_loss_and_gradient_equal_the_frame_weighted_molecules(data, method, normalize):
    losses = {"force": {"weight": 1.0, "normalize": normalize},
              "hvp": {"weight": 0.3, "probes": 2, "method": method, "normalize": normalize},
              "hvp_cov": {"weight": 0.5, "probes": 2, "method": method, "normalize": normalize}}
    model = _model(data, losses)
    molecules = _molecules(data)
    batch = mixed.pack(molecules)
    assert batch[keys.POS].shape == (3 * 5 + 5 * 8, 3) and batch[keys.HESSIAN].shape == (3 * 15**2 + 5 * 24**2,)
    params = [p for p in model.parameters() if p.requires_grad]

    torch.manual_seed(7)
    total, logs = model.loss(batch)
    grads = torch.autograd.grad(total, params, allow_unused=True)
    want_total, want_logs = _one_at_a_time(model, molecules)
    want_grads = torch.autograd.grad(want_total, params, allow_unused=True)

    assert torch.allclose(total, want_total, rtol=1e-9, atol=0)
    for name in ("force", "hvp", "hvp_cov"):
        for key in (name, f"{name}_raw", f"{name}/model_sq", f"{name}/target_sq"):
            if key in want_logs:
                assert torch.allclose(logs[key], want_logs[key], rtol=1e-9, atol=0), key
    assert logs["hvp/model_sq"] > 0
    checked = 0
    for g, w in zip(grads, want_grads, strict=True):
        if w is None:
            assert g is None or g.abs().max() == 0
            continue
        assert torch.allclose(g, w, rtol=1e-8, atol=1e-12 * w.abs().max()), g.shape
        checked += int(w.abs().max() > 0)
    assert checked >= 5


def test_groups_share_one_backbone_call_and_hvps_stay_per_molecule(data):
    """``evaluate_groups`` (one backbone call) against ``evaluate`` per molecule: energies,
    forces, exact HVPs (block diagonal: a probe on one molecule leaves the other untouched) and
    ``force_fn``."""
    model = _model(data, {"force": {}})
    molecules = _molecules(data)
    calls = []
    hook = model.core.net.register_forward_hook(lambda *args: calls.append(1))
    outs = model.core.evaluate_groups([(m[keys.POS], m[keys.BEAD_TYPES], None) for m in molecules])
    assert len(calls) == 1
    hook.remove()
    g = torch.Generator().manual_seed(3)
    for m, out in zip(molecules, outs, strict=True):
        one = model.core.evaluate(m[keys.POS], m[keys.BEAD_TYPES])
        v = torch.randn(m[keys.POS].shape, generator=g, dtype=torch.float64)
        assert torch.allclose(out.energy, one.energy, rtol=1e-10)
        assert torch.allclose(out.forces, one.forces, rtol=1e-10, atol=1e-12)
        assert torch.allclose(out.hvp(v), one.hvp(v), rtol=1e-9, atol=1e-12)
        shifted = m[keys.POS] + 1e-3 * v
        assert torch.allclose(out.force_fn(shifted), one.force_fn(shifted), rtol=1e-10, atol=1e-12)
    # the gradient of one molecule's forces with respect to the other's positions is zero
    (cross,) = torch.autograd.grad(outs[0].forces, outs[1].pos, grad_outputs=torch.ones_like(outs[0].forces), allow_unused=True)
    assert cross is None or cross.abs().max() == 0


def test_mixed_batch_with_stored_probes_equals_the_molecules(data):
    """A ``hessian: probes`` dataset: stored probes (3 for one molecule, 2 for the other) travel
    per molecule in the mixed batch; the loss equals the frame-weighted molecules' losses."""
    model = _model(data, {"force": {"normalize": False}, "hvp_cov": {"normalize": False, "method": "finite_difference"}})
    g = torch.Generator().manual_seed(9)
    molecules = []
    for batch, k in zip(_molecules(data), (3, 2), strict=True):
        b, width = batch[keys.POS].shape[0], batch[keys.HESSIAN].shape[-1]
        probes = torch.randn(b, k, width, generator=g, dtype=torch.float64)
        hvp = torch.einsum("bij,bkj->bki", batch.pop(keys.HESSIAN), probes)
        molecules.append(batch | {keys.PROBES: probes, keys.HVP: hvp})
    total, logs = model.loss(mixed.pack(molecules))
    want_total, want_logs = _one_at_a_time(model, molecules)
    assert torch.allclose(total, want_total, rtol=1e-9, atol=0)
    assert torch.allclose(logs["hvp_cov_raw"], want_logs["hvp_cov_raw"], rtol=1e-9, atol=0)
