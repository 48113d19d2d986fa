"""A Lightning callback that records the CPU time of every training step (batch fetched →
optimiser step done; the main thread's CPU time, so that other processes on a shared machine do
not inflate it; torch runs one thread) and writes them as JSON at the end of fit. Used by ``hvp_cost.py`` through
the real CLI: ``--trainer.callbacks+=step_timer.StepTimer --trainer.callbacks.out=FILE``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lightning.pytorch import Callback


class StepTimer(Callback):
    def __init__(self, out: str) -> None:
        self.out = out
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.thread_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.thread_time() - self._start)

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.out).write_text(json.dumps(self.times))
