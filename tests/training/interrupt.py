"""A test callback that lets a ``cglight fit`` subprocess be stopped by SIGTERM at a known step."""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch import Callback


class WaitForSignalAt(Callback):
    """After training step ``step``, write ``marker`` and wait (up to ``timeout`` s) until the trainer has
    received SIGTERM: the test sends it from outside, as a scheduler would, at a step it knows.

    Args:
        step: the global step after which to wait.
        marker: file written when the step is reached.
        timeout: seconds to wait for the signal before going on.
    """

    def __init__(self, step: int, marker: str, timeout: float = 120.0) -> None:
        self.step, self.marker, self.timeout = step, Path(marker), timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        self.marker.write_text(str(self.step))
        end = time.monotonic() + self.timeout
        while not trainer.received_sigterm and time.monotonic() < end:
            time.sleep(0.02)
