"""A test callback that writes down the frames every rank trains, validates and tests on."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback

from cglight.data import keys


class RecordFrames(Callback):
    """Write ``<out>/<stage>-rank<r>.json``: ``[stage, epoch, system, [frame_index, ...]]`` per batch
    (per system of a batch, for mixed batches).

    Args:
        out: directory to write into.
    """

    def __init__(self, out: str) -> None:
        self.out, self.rows = Path(out), []

    def _add(self, trainer, stage, batch) -> None:
        if not trainer.sanity_checking:
            system = batch[keys.SYSTEM]
            for s in dict.fromkeys(system.tolist()):
                self.rows.append([stage, trainer.current_epoch, s, batch[keys.FRAME_INDEX][system == s].tolist()])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._add(trainer, "train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._add(trainer, "val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._add(trainer, "test", batch)

    def teardown(self, trainer, pl_module, stage):
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"{getattr(stage, 'value', stage)}-rank{trainer.global_rank}.json").write_text(json.dumps(self.rows))
        self.rows = []
