"""A loss plugin that raises: training ends with one PluginError naming the plugin, the step and the cause."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from cglight.errors import PluginError
from cglight.losses.base import LossResult
from cglight.losses.force import ForceLoss
from cglight.training import BackboneConfig, CGPotential
from cglight.testing import synthetic_batch


class ExplodingLoss(ForceLoss):
    """A force loss whose computation raises from the training step ``fail_at`` on."""

    def __init__(self, fail_at: int = 2, normalize: bool = True) -> None:
        super().__init__(normalize=normalize)
        self.fail_at, self.calls = fail_at, 0

    def forward(self, batch, output) -> LossResult:
        self.calls += 1
        if self.training and self.calls > self.fail_at:
            raise ValueError("kaboom: shapes (4, 5) and (4, 6) do not match")
        return super().forward(batch, output)


def _batch() -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v) for k, v in synthetic_batch(frames=4, beads=5).items()}


def _model(losses) -> CGPotential:
    torch.manual_seed(0)
    backbone = BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=8, cutoff_upper=5.0, max_z=8)
    return CGPotential(backbone=backbone, losses=losses)


def test_raising_plugin_names_itself_the_step_and_the_cause(register_loss, tmp_path):
    register_loss("boom", f"{__name__}:ExplodingLoss")
    batch = _batch()
    model = _model({"force": {"weight": 1.0}, "boom": {"weight": 0.5, "fail_at": 2}})
    system = SimpleNamespace(temperature=300.0, bead_types=batch["bead_types"][0].tolist(), bonds=[[i, i + 1] for i in range(4)])
    model.fit_to_data([batch], {"synthetic": system})
    trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, inference_mode=False)
    with pytest.raises(PluginError) as info:
        trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader([batch] * 5, batch_size=None))
    message = str(info.value)
    assert "\n" not in message
    assert "loss 'boom'" in message and "unknown distribution" in message and f"{__name__}:ExplodingLoss" in message
    assert "training step 2" in message  # steps 0 and 1 computed, the third call raised
    assert "ValueError: kaboom: shapes (4, 5) and (4, 6) do not match" in message
    assert isinstance(info.value.__cause__, ValueError)  # the traceback stays reachable (--debug)


def test_builtin_term_errors_are_not_blamed_on_a_plugin():
    """A failure inside cglight's own terms is a bug, not bad input: it keeps its type and traceback."""
    model = _model({"force": {"weight": 1.0}})
    model.objective.terms["force"].scale.fill_(1.0)
    batch = _batch()
    batch["forces"] = batch["forces"][:, :4]  # a wrong shape reaches the built-in term
    with pytest.raises(RuntimeError, match="size of tensor"):
        model.loss(batch)
