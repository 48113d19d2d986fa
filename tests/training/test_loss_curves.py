"""``loss_curves.png``: the smoothed training curve over the raw one, labels on every panel, and the
priors-only loss at step 0 (network off, validation frames) without disturbing the training."""

from __future__ import annotations

import csv
import math

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from cglight.data import CGDataModule, keys
from cglight.training import CGPotential
from cglight.training.loss_curves import LossCurves, loss_curves_figure, priors_only_losses

PRIORS = {"bonds": {}, "angles": {}, "dihedrals": {}, "repulsion": {}}


def _rows() -> list[dict[str, str]]:
    """A CSV log: train/force alternating 1 and 4 at steps 0..19, validation at 9 and 19, and the
    priors-only value at step 0; hvp is a raw (not normalised) term."""
    rows = [{"step": "0", "priors_only/force": "2.5", "priors_only/hvp": "7.0"}]
    for s in range(20):
        rows.append({"step": str(s), "train/force": str(1.0 if s % 2 == 0 else 4.0), "train/hvp": "3.0"})
    rows += [{"step": "9", "val/force": "2.0", "val/hvp": "3.0"}, {"step": "19", "val/force": "1.8", "val/hvp": "2.9"}]
    return rows


def test_every_panel_has_labels_a_smoothed_curve_and_the_priors_only_point():
    fig = loss_curves_figure(_rows(), ["force", "hvp"], {"force": True, "hvp": False})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["force", "hvp"]
    assert "dimensionless; 1 = predicting zero" in axes[0].get_ylabel()
    assert "physical units" in axes[1].get_ylabel() and "not normalised" in axes[1].get_ylabel()
    for ax in axes:
        assert ax.get_xlabel() == "optimiser step"
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts == ["train (one batch per logged step)", "train, geometric running mean of 9 logged steps",
                         "validation (per epoch)", "priors only (step 0; validation frames, network off)"]
    raw, smooth, _, priors = [line for line in axes[0].get_lines() if line.get_label() in
                              ("train (one batch per logged step)", "train, geometric running mean of 9 logged steps",
                               "validation (per epoch)", "priors only (step 0; validation frames, network off)")]
    assert list(raw.get_ydata()) == [1.0 if s % 2 == 0 else 4.0 for s in range(20)]
    # oracle: a centred window of 9 at step 10 holds steps 6..14: five 1s and four 4s → 4^(4/9)
    assert smooth.get_ydata()[10] == pytest.approx(4.0 ** (4 / 9))
    # at the first step the window is cut to steps 0..4: three 1s and two 4s
    assert smooth.get_ydata()[0] == pytest.approx(4.0 ** (2 / 5))
    assert list(priors.get_xdata()) == [0.0] and list(priors.get_ydata()) == [2.5]
    assert any(list(line.get_ydata()) == [2.5, 2.5] for line in axes[0].get_lines())  # the dotted line across


def _model(losses) -> CGPotential:
    torch.manual_seed(0)
    return CGPotential(backbone={"embedding_dimension": 8, "num_layers": 1, "num_rbf": 8}, priors=PRIORS, losses=losses)


def test_priors_only_loss_is_the_force_loss_of_the_priors_alone(tiny_dataset):
    """Oracle: the priors' forces by autograd of the prior energies (``energy_terms`` without the
    network), their mean squared error against the reference forces over the target's mean square."""
    model = _model({"force": {"weight": 1.0}})
    dm = CGDataModule(str(tiny_dataset), batch_size=8)
    model.fit_to_data(dm.calibration_batches(64), dm.systems)
    (_, term), = model.objective.items()
    errors, frames, full = 0.0, 0, 0.0
    for batch in dm.val_dataloader():
        pos = batch[keys.POS].detach().double().requires_grad_(True)
        parts = model.double().energy_terms(pos, batch[keys.BEAD_TYPES][0])
        prior = sum(v for k, v in parts.items() if k != "network")
        forces = -torch.autograd.grad(prior.sum(), pos)[0]
        errors += float((forces - batch[keys.FORCES].double()).pow(2).mean()) * len(pos)
        frames += len(pos)
        double = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
        full += float(model.loss(double, train=False)[1]["force"]) * len(pos)
    model.float()
    expected = errors / frames / float(term.scale)
    got = priors_only_losses(model, dm.val_dataloader())
    assert got["force"] == pytest.approx(expected, rel=1e-4)
    assert abs(full / frames - expected) > 1e-3 * expected  # the untrained network's forces are not nothing
    # the network is back on afterwards
    batch = next(iter(dm.val_dataloader()))
    assert float(model.loss(batch, train=False)[1]["force"]) != pytest.approx(got["force"], rel=1e-4)


def _fit(tiny_dataset, tmp_path, priors_only: bool) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    model = _model({"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 1}})  # probes: random draws
    logger = CSVLogger(tmp_path, name="run")
    trainer = L.Trainer(max_steps=3, limit_val_batches=1, num_sanity_val_steps=0, logger=logger, log_every_n_steps=1,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        inference_mode=False, accelerator="cpu", callbacks=[LossCurves(priors_only=priors_only)])
    trainer.fit(model, datamodule=CGDataModule(str(tiny_dataset), batch_size=8))
    with open(f"{logger.log_dir}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}, rows


@pytest.mark.slow
def test_the_priors_only_pass_is_logged_at_step_0_and_leaves_training_alone(tiny_dataset, tmp_path):
    with_pass, rows = _fit(tiny_dataset, tmp_path / "a", True)
    without, plain_rows = _fit(tiny_dataset, tmp_path / "b", False)
    (row,) = [r for r in rows if r.get("priors_only/force")]
    assert row["step"] == "0" and math.isfinite(float(row["priors_only/hvp_cov"]))
    assert not any(r.get("priors_only/force") for r in plain_rows)
    assert (tmp_path / "a/run/version_0/loss_curves.png").is_file()
    for name, value in with_pass.items():  # the probes drawn by the extra pass do not shift training's draws
        assert torch.equal(value, without[name]), name
    assert np.isfinite([float(r["train/force"]) for r in rows if r.get("train/force")]).all()


@pytest.mark.parametrize("callbacks, drawn", [([LossCurves(enabled=False, priors_only=False)], True),
                                              ([LossCurves(priors_only=False, priors_picture=False)], False), ([], False)])
def test_priors_png_is_drawn_by_the_callback_next_to_the_log(tiny_dataset, tmp_path, callbacks, drawn):
    """The model fits the priors; the callback, not the model, writes the picture (a PNG in the CSV log's folder)."""
    logger = CSVLogger(tmp_path, name="run")
    trainer = L.Trainer(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=logger, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, inference_mode=False, accelerator="cpu",
                        callbacks=callbacks)
    model = _model({"force": {"weight": 1.0}})
    trainer.fit(model, datamodule=CGDataModule(str(tiny_dataset), batch_size=8))
    png = tmp_path / "run/version_0/priors.png"
    assert png.is_file() == drawn and model.prior_curves
    assert not drawn or png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
