"""The options of ``cglight diagnose`` (a module without torch, so that ``--help`` is quick)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cglight.errors import ConfigError

SPLITS = ("train", "test")
THRESHOLD = 3.0
"""Standard errors between a target's mean and the model beyond which a term carries information."""


@dataclass
class DiagnoseConfig:
    """Every key of ``cglight diagnose``; each is also a command-line option."""

    # the fields are spelled out one by one: they are the command's option schema (jsonargparse reads each
    # field, its type and its docstring for --help), so options alike in other commands' configs repeat here

    checkpoint: str = ""
    """A model: the ``.ckpt`` written by ``cglight fit``."""
    data: str = ""
    """The dataset it was (or will be) trained on; needs full projected Hessians (``hessian: full``)."""
    systems: list[str] = field(default_factory=list)
    """Systems to read; empty: all of them."""
    frames: int = 256
    """Frames per system, evenly spaced over the chosen split (>= 2)."""
    split: str = "train"
    """Which frames: ``train`` (what the model learned from: does a Hessian term have anything left to teach?)
    or ``test`` (held-out frames, the held-out systems' included: how far is the model from the targets there?)."""
    gradient_frames: int = 32
    """Of those, frames for the per-term gradient norms (0: skip)."""
    val_fraction: float = 0.1
    """The validation fraction of ``cglight fit`` (the training split is the first 1 − val − test)."""
    test_fraction: float = 0.1
    """The test fraction of ``cglight fit``."""
    holdout_systems: list[str] = field(default_factory=list)
    """The ``data.holdout_systems`` of ``cglight fit``: all their frames are test frames."""
    threshold: float = THRESHOLD
    """Standard errors between a target's mean and the model beyond which a term carries information."""
    seed: int = 0
    """The Hessian terms' probe vectors in the gradient part."""
    out: str | None = None
    """A JSON file for every number printed (optional)."""
    trusted_backbones: list[str] = field(default_factory=list)
    """Dotted class paths of backbones that the checkpoint may name (importing runs their code); built-in names always load."""

    def validate(self) -> None:
        if not self.checkpoint or not Path(self.checkpoint).is_file():
            raise ConfigError(f"diagnose: 'checkpoint' must be a .ckpt written by cglight fit, got {self.checkpoint!r}")
        if not self.data:
            raise ConfigError("diagnose: 'data' is required (a dataset directory with full projected Hessians)")
        if self.split not in SPLITS:
            raise ConfigError(f"diagnose: 'split' must be one of {SPLITS}, got {self.split!r}")
        if self.frames < 2:
            raise ConfigError(f"diagnose: 'frames' must be >= 2, got {self.frames}")
        if not 0 <= self.gradient_frames <= self.frames:
            raise ConfigError(f"diagnose: 'gradient_frames' must be in [0, frames={self.frames}], got {self.gradient_frames}")
        if not self.threshold > 0:
            raise ConfigError(f"diagnose: 'threshold' must be > 0, got {self.threshold}")
