"""A last look at the calibration frames: a frame whose targets dwarf the others' is named before it is used.

The loss normalisation (each target's second moment) and the priors are estimated once, from the
calibration frames. A value changed before its shard's checksum was written (or a shard rewritten
with a new checksum) passes every other check; if it is large, one frame can move the
normalisation by orders of magnitude. So, per system, every frame's mean square of each target
(``forces``, ``hessian``, ``hvp``) is compared with the median over the system's calibration frames,
and a frame more than ``RATIO`` times the median is reported with its file and frame. Genuine
frames of an equilibrium ensemble stay far below: a frame's mean square of ``3n`` force components
scatters by a factor of a few around the median, not a hundred.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from cglight.data import keys

RATIO = 100.0
"""A frame whose mean square exceeds this many times its system's median is an outlier."""
MIN_FRAMES = 3
"""Fewer calibration frames of a system have no robust median: they are not compared."""
FIELDS = (keys.FORCES, keys.HESSIAN, keys.HVP)
MODES = ("refuse", "warn")


@dataclass(frozen=True)
class Outlier:
    """Frame ``frame`` of shard file ``path``: the mean square of ``field`` is ``ratio`` times the median ``median``."""

    path: str
    frame: int
    field: str
    ratio: float
    median: float

    def __str__(self) -> str:
        return (f"{self.path}: frame {self.frame}: '{self.field}' has a mean square {self.ratio:.3g} times the median "
                f"({self.median:.4g}) of its system's calibration frames")


def frame_moments(batch: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """Every frame's mean square of each target field of a one-system batch, in float64 (no overflow)."""
    out = {}
    for name in FIELDS:
        if name in batch:
            v = batch[name].detach().cpu().numpy().astype(np.float64)
            out[name] = (v.reshape(len(v), -1) ** 2).mean(axis=1)
    return out


def check_calibration_frames(moments: Mapping[str, np.ndarray], origins: Sequence[tuple[str, int]],
                             ratio: float = RATIO) -> list[Outlier]:
    """The frames of ONE system whose mean square of a field exceeds ``ratio`` times the median over them.

    Args:
        moments: field → every frame's mean square (``frame_moments``), frames in the order of ``origins``.
        origins: ``(shard file, frame within the shard)`` of every frame.
    """
    found = []
    for name, m in moments.items():
        if len(m) != len(origins):
            raise ValueError(f"check_calibration_frames: {len(m)} moments of '{name}' for {len(origins)} frames")
        if len(m) < MIN_FRAMES:
            continue
        median = float(np.median(m))
        if not (median > 0 and np.isfinite(median)):
            continue
        for i in np.nonzero(~(m <= ratio * median))[0]:  # NaN and inf count as outliers
            path, frame = origins[int(i)]
            found.append(Outlier(str(path), int(frame), name, float(m[i]) / median, median))
    return found
