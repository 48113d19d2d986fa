"""A callback that keeps ``last.ckpt`` at the last training step, whatever else is monitored.

Lightning's ``ModelCheckpoint(save_last=True)`` copies ``last.ckpt`` only when it saves a checkpoint
of its own: with ``monitor: val_loss`` only when the validation loss improves, so a run whose loss
stopped improving ended with a ``last.ckpt`` from epochs before and the final weights nowhere.
This callback writes ``<checkpoint dir>/last.ckpt`` (the first ``ModelCheckpoint``'s folder,
``<save_dir>/<name>/version_N/checkpoints`` by default)

- at the end of every training epoch, after its validation pass (so also at the end of training:
  Lightning ends the epoch that ``max_steps`` or ``max_time`` cuts short too),
- when the process receives SIGTERM (a scheduler's preemption, ``scancel``) or SIGINT (Ctrl+C):
  training stops after the step in progress, ``last.ckpt`` is written at that step and the run
  ends; ``cglight fit`` then exits with status 128 + the signal's number (143, 130), as a shell
  reports a process stopped by a signal, so that scripts do not go on as if training had finished.
  ``--ckpt_path last`` resumes from it. A second Ctrl+C stops at once, without saving.

Each file is written under a temporary name and renamed, so ``last.ckpt`` is always complete. A
run that fails (an error, a runaway) does not overwrite it: it keeps the last good epoch end.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cglight.atomic import atomic_path
from cglight.errors import ConfigError
from cglight.newest_checkpoint import NAME

log = logging.getLogger("cglight")


class LastCheckpoint(Callback):
    """Keep ``last.ckpt`` at the last step: every epoch end, the end of training, SIGTERM and SIGINT.

    Args:
        enabled: write ``last.ckpt``.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.last_path: Path | None = None
        """The file written last by this callback, and its step (``last_step``)."""
        self.last_step = -1
        self.interrupted: int | None = None
        """The signal that stopped training (SIGTERM or SIGINT), or None."""
        self._previous_sigint: Any = None

    # ------------------------------------------------------------------ set-up and signals
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self.enabled or stage != "fit":
            return
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.save_last:
                raise ConfigError(
                    "trainer.callbacks: ModelCheckpoint(save_last=...) writes last.ckpt only when it saves a checkpoint "
                    "of its own (with a monitor: only when the monitored value improves), and would compete with "
                    "cglight's last_checkpoint, which writes last.ckpt at every epoch end, at the end of training and "
                    "on SIGTERM/SIGINT: remove save_last from the ModelCheckpoint, or set last_checkpoint.enabled: false"
                )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # after Lightning has put its SIGTERM handler in place (and taken its note of the handlers to restore)
        self.interrupted = None
        if self.enabled and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl+C: stop after the step in progress, as on SIGTERM (a second Ctrl+C stops at once)."""
        if self.interrupted is not None:
            raise KeyboardInterrupt
        self.interrupted = signal.SIGINT
        log.warning("SIGINT: stopping after the current step and saving %s (press Ctrl+C again to stop at once)", NAME)
        signal.raise_signal(signal.SIGTERM)  # Lightning stops every process after the step on SIGTERM

    # ------------------------------------------------------------------ saving
    def _folder(self, trainer: Trainer) -> Path | None:
        callback = trainer.checkpoint_callback
        if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
            return None  # checkpointing is off (enable_checkpointing: false)
        return Path(callback.dirpath)

    def _save(self, trainer: Trainer) -> None:
        folder = self._folder(trainer)
        if trainer.state.fn != TrainerFn.FITTING or folder is None or trainer.fast_dev_run or trainer.sanity_checking:
            return
        if self.last_step == trainer.global_step:
            return
        path = folder / NAME
        if trainer.is_global_zero:  # every process takes part in saving; the main one writes
            with atomic_path(path) as partial:
                trainer.save_checkpoint(partial)
        else:
            trainer.save_checkpoint(path)
        trainer.strategy.barrier("last_checkpoint")
        self.last_path, self.last_step = path, trainer.global_step

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.enabled:
            self._save(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore_sigint()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not self.enabled or not isinstance(exception, SIGTERMException):
            return  # a failed run keeps last.ckpt of its last good epoch end
        if self.interrupted is None:
            self.interrupted = signal.SIGTERM
        self._save(trainer)
        name = signal.Signals(self.interrupted).name
        if self.last_path is not None and self.last_step == trainer.global_step:
            log.warning("training interrupted by %s at step %d; saved %s (resume with --ckpt_path last)",
                        name, trainer.global_step, self.last_path)
        else:
            log.warning("training interrupted by %s at step %d; no last.ckpt written (checkpointing is off, or "
                        "not training)", name, trainer.global_step)
