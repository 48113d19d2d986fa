"""Lightning's progress bar on stderr, the stream of cglight's messages and of its other progress bars
(Lightning's own writes on stdout, which then mixes bars into a command's output)."""

from __future__ import annotations

import contextlib
import os
import sys

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import TQDMProgressBar


class StderrProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` whose bars write on stderr: each bar is made while ``sys.stdout`` is stderr."""

    # one override per public hook of TQDMProgressBar that makes a bar, each the same two lines: Lightning
    # calls them by name, and spelled out they stay visible to a reader and to a type checker

    def init_sanity_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_sanity_tqdm()

    def init_train_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_train_tqdm()

    def init_validation_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()

    def init_test_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_test_tqdm()

    def init_predict_tqdm(self):
        with contextlib.redirect_stdout(sys.stderr):
            return super().init_predict_tqdm()


def bars_on_stderr(trainer: Trainer) -> None:
    """Swap the plain ``TQDMProgressBar`` among ``trainer.callbacks`` (Lightning's default) for a
    ``StderrProgressBar`` of the same refresh rate and position; ``CGLIGHT_PROGRESS=0`` turns it off."""
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) is TQDMProgressBar:
            bar = StderrProgressBar(refresh_rate=callback.refresh_rate, process_position=callback.process_position)
            if os.environ.get("CGLIGHT_PROGRESS", "1") == "0":
                bar.disable()
            trainer.callbacks[i] = bar
