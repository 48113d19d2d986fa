"""``last.ckpt`` holds the last step: at every epoch end, at the end of training, and on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from cglight.atomic import PARTIAL
from cglight.errors import ConfigError
from cglight.training import BackboneConfig, CGPotential
from cglight.training.last_checkpoint import LastCheckpoint
from cglight.testing import synthetic_batch

STEPS = 4  # training batches per epoch


class FlatScore(Callback):
    """Logs a validation score that never improves after the first epoch (``val_flat``)."""

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("val_flat", 1.0 + trainer.current_epoch)


class SignalAt(Callback):
    """Sends ``signum`` to this process after training step ``step`` (as a scheduler would)."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            signal.raise_signal(self.signum)


class ReadLast(Callback):
    """Notes the step ``last.ckpt`` holds at the start of every epoch."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        path = trainer.checkpoint_callback.dirpath + "/last.ckpt"
        self.steps.append(torch.load(path, weights_only=True)["global_step"] if trainer.current_epoch else -1)


def _model_and_batch():
    torch.manual_seed(0)
    batch = {k: (v.float() if v.is_floating_point() else v) for k, v in synthetic_batch(frames=4, beads=5).items()}
    model = CGPotential(backbone=BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=8, cutoff_upper=5.0, max_z=8),
                        losses={"force": {"weight": 1.0}}, lr=1e-2)
    system = SimpleNamespace(temperature=300.0, bead_types=batch["bead_types"][0].tolist(), bonds=[[i, i + 1] for i in range(4)])
    model.fit_to_data([batch], {"synthetic": system})
    return model, batch


def _fit(tmp_path, callbacks, epochs: int = 3, max_steps: int = -1):
    model, batch = _model_and_batch()
    loader = torch.utils.data.DataLoader([batch] * STEPS, batch_size=None)
    trainer = L.Trainer(max_epochs=epochs, max_steps=max_steps, logger=False, enable_progress_bar=False,
                        enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=callbacks, inference_mode=False, num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    return trainer, model


def _weights_equal(path, model) -> bool:
    saved = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.equal(saved[k], v) for k, v in model.state_dict().items() if torch.is_tensor(v))


def test_last_holds_the_final_step_when_the_monitored_score_stops_improving(tmp_path):
    best, read = ModelCheckpoint(monitor="val_flat", filename="best-{epoch}"), ReadLast()
    trainer, model = _fit(tmp_path, [FlatScore(), best, LastCheckpoint(), read])
    assert read.steps == [-1, STEPS, 2 * STEPS]  # written at every epoch end
    assert trainer.global_step == 3 * STEPS
    assert [p.name for p in sorted((tmp_path / "checkpoints").glob("best-*"))] == ["best-epoch=0.ckpt"]  # never improved
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3 * STEPS
    assert _weights_equal(last, model)
    assert not list((tmp_path / "checkpoints").glob(f"*{PARTIAL}*"))


def test_last_written_at_the_end_of_a_run_stopped_mid_epoch(tmp_path):
    trainer, model = _fit(tmp_path, [LastCheckpoint()], epochs=5, max_steps=STEPS + 2)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == STEPS + 2 and _weights_equal(last, model)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_last_at_the_step_it_stopped_at(tmp_path, signum):
    callback = LastCheckpoint()
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit):
        _fit(tmp_path, [SignalAt(STEPS + 1, signum), callback])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == STEPS + 1
    assert callback.interrupted == signum and callback.last_path == last
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back


def test_save_last_of_a_model_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="save_last"):
        _fit(tmp_path, [ModelCheckpoint(monitor="val_flat", save_last=True), LastCheckpoint()], epochs=1)
