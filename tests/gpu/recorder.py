"""A test callback that writes down the device the LightningModule trains on."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback


class RecordDevice(Callback):
    """Write ``str(pl_module.device)`` to ``out`` at the first training batch.

    Args:
        out: the file to write.
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.out.exists():
            self.out.write_text(str(pl_module.device))
