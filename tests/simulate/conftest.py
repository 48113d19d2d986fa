"""Tiny trained models shared by the simulate tests (trained once per session)."""

from __future__ import annotations

import pytest


def _trained(data, folder, priors):
    import lightning as L

    from cglight import CGDataModule, CGPotential

    L.seed_everything(0)
    model = CGPotential(backbone={"embedding_dimension": 16, "num_layers": 1}, priors=priors, losses={"force": {"weight": 1.0}})
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        inference_mode=False, enable_model_summary=False)
    trainer.fit(model, datamodule=CGDataModule(str(data), batch_size=8))
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def checkpoint(tiny_dataset, tmp_path_factory):
    """A tiny model with the quickstart's priors, fitted on alanine dipeptide."""
    priors = {"bonds": {}, "angles": {}, "dihedrals": {"terms": 2}, "repulsion": {"min_bonds_apart": 4}}
    return _trained(tiny_dataset, tmp_path_factory.mktemp("ckpt"), priors)


@pytest.fixture(scope="session")
def network_checkpoint(tiny_dataset, tmp_path_factory):
    """A tiny model without priors: it evaluates molecules of any bead types (synthetic systems)."""
    return _trained(tiny_dataset, tmp_path_factory.mktemp("ckpt_net"), None)
