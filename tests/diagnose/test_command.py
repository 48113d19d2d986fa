"""``cglight diagnose`` end to end on a real (tiny) alanine-dipeptide dataset and checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cglight.cli import main


@pytest.fixture(scope="module")
def checkpoint(tiny_dataset, tmp_path_factory):
    import lightning as L

    from cglight import CGDataModule, CGPotential

    L.seed_everything(0)
    model = CGPotential(backbone={"embedding_dimension": 16, "num_layers": 1}, priors={"bonds": {}, "angles": {}},
                        losses={"force": {"weight": 1.0}, "hvp_cov": {"weight": 3.0}})
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        inference_mode=False, enable_model_summary=False)
    trainer.fit(model, datamodule=CGDataModule(str(tiny_dataset), batch_size=8))
    path = tmp_path_factory.mktemp("diag") / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_diagnose_reads_the_model_curvature_by_subspace(tiny_dataset, checkpoint, tmp_path, capsys):
    out = tmp_path / "diagnose.json"
    assert main(["diagnose", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset), "--frames", "12",
                 "--gradient_frames", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hvp_cov/centered" in printed and ("nothing to teach" in printed or "carries information" in printed)
    report = json.loads(out.read_text())
    entry = report["systems"]["ala2"]
    assert entry["frames"] == 12
    assert set(entry["readings"]) == {"hvp", "hvp_cov/centered", "hvp_cov/uncentered"}
    assert set(entry["gradients"]) == {"force", "hvp_cov"} and entry["gradients"]["force"]["ratio_to_force"] == 1.0

    # oracle: the model's stiff + soft + rigid traces add up to the trace of its Hessian, taken here
    # by float64 autograd of the energy at the same frames
    from cglight.data.dataset import ShardDataset
    from cglight.diagnose.run import DiagnoseConfig, _split_frames
    from cglight.training.potential import CGPotential

    dataset = ShardDataset(tiny_dataset)
    index, _ = _split_frames(dataset, DiagnoseConfig(frames=12))["ala2"]
    model = CGPotential.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).double()
    batch = dataset[index.tolist()]
    types = batch["bead_types"][0]
    traces = []
    for pos in batch["pos"].double():
        h = torch.autograd.functional.hessian(lambda x: model.energy(x.reshape(1, -1, 3), types).sum(), pos.reshape(-1))
        traces.append(float(torch.trace(h)))
    blocks = entry["readings"]["hvp"]
    assert sum(blocks[b]["model"] for b in ("rigid", "stiff", "soft")) == pytest.approx(np.mean(traces), rel=1e-6)


def test_diagnose_refuses_what_it_cannot_read(tiny_dataset, checkpoint, tmp_path, capsys):
    assert main(["diagnose", "--checkpoint", str(tmp_path / "none.ckpt"), "--data", str(tiny_dataset)]) == 2
    assert main(["diagnose", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset), "--systems", "[nope]"]) == 2
    assert main(["diagnose", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset), "--frames", "1"]) == 2
    assert main(["diagnose", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset), "--split", "val"]) == 2
    assert main(["diagnose", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset), "--split", "test",
                 "--test_fraction", "0"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "'frames' must be >= 2" in err and "'split' must be one of ('train', 'test'), got 'val'" in err
    assert "systems ['ala2'] have no test frames" in err


def test_held_out_frames_are_the_test_split_and_none_of_the_training_frames(tiny_dataset, checkpoint, tmp_path, capsys):
    from cglight.data.dataset import ShardDataset
    from cglight.data.splits import split_dataset
    from cglight.diagnose.run import DiagnoseConfig, _split_frames

    dataset = ShardDataset(tiny_dataset)
    splits = split_dataset(dataset.manifest, 0.1, 0.1)
    test = {int(dataset.offsets[g.shard] + i) for g in splits.test for i in range(g.start, g.stop)}
    train = {int(dataset.offsets[g.shard] + i) for g in splits.train for i in range(g.start, g.stop)}
    held, _ = _split_frames(dataset, DiagnoseConfig(frames=8, split="test"))["ala2"]
    assert len(held) == min(8, len(test)) and set(held.tolist()) <= test and not set(held.tolist()) & train
    out = tmp_path / "held.json"
    assert main(["diagnose", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset), "--frames", "8", "--split", "test",
                 "--gradient_frames", "0", "--out", str(out)]) == 0
    assert "held-out frames" in capsys.readouterr().out and json.loads(out.read_text())["systems"]["ala2"]["split"] == "test"
