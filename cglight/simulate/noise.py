"""One random stream per replica, addressed by step: the Langevin noise of replica ``r`` at step
``t`` depends only on the replica's key and ``t``, never on which other replicas share its batch,
its process or its device.

Each replica's stream is SplitMix64 (Steele, Lea & Flood 2014): its ``i``-th 64-bit output is
``mix(key + (i + 1) γ)`` with ``γ = 0x9E3779B97F4A7C15`` and ``mix`` the generator's own finaliser,
so any output is computed directly from its index (counter-based), for all replicas in one
vectorised call. Pairs of outputs become two standard normals by the Box–Muller transform from 53-bit
uniforms. A replica's key is drawn by NumPy's ``SeedSequence`` from ``(*seed, replica)``, so keys of
different replicas, systems and seeds are independent 64-bit numbers; two replicas' streams could
only meet after about 2⁶⁴ / (keys in use) draws.

Index layout: step ``t`` of a system of ``d = 3n`` coordinates uses outputs
``t · 2m … t · 2m + 2m − 1`` with ``m = ⌈d / 2⌉`` (one Box–Muller pair per two coordinates); the
starting velocities are "step −1". With no state to carry, a restart only needs the step number
and the keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_POW_MINUS_53 = 2.0**-53


def replica_keys(seed: int | Sequence[int], replicas: Sequence[int]) -> Tensor:
    """The keys ``[R]`` (int64 holding the 64-bit pattern) of ``replicas`` under ``seed``."""
    entropy = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    keys = [np.random.SeedSequence([*entropy, int(r)]).generate_state(1, np.uint64)[0] for r in replicas]
    return torch.from_numpy(np.asarray(keys, dtype=np.uint64).view(np.int64).copy())


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (uint64, wrapping arithmetic)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def normals(keys: Tensor, step: int, shape: tuple[int, ...], dtype: torch.dtype = torch.float64,
            device: torch.device | str = "cpu") -> Tensor:
    """Standard normal noise ``[R, *shape]`` of every replica (key) at ``step`` (−1: starting velocities)."""
    d = int(np.prod(shape))
    m = (d + 1) // 2
    k = keys.cpu().numpy().view(np.uint64)[:, None]
    with np.errstate(over="ignore"):
        index = np.uint64(step * 2 * m % 2**64) + np.arange(1, 2 * m + 1, dtype=np.uint64)  # (i + 1) of each output
        bits = _mix(k + index * GAMMA) >> _S11  # [R, 2m], 53 random bits each
    u1 = (bits[:, 0::2] + 1.0) * _TWO_POW_MINUS_53  # (0, 1]
    u2 = bits[:, 1::2] * _TWO_POW_MINUS_53  # [0, 1)
    radius, angle = np.sqrt(-2.0 * np.log(u1)), 2.0 * np.pi * u2
    z = np.empty((len(k), 2 * m))
    z[:, 0::2], z[:, 1::2] = radius * np.cos(angle), radius * np.sin(angle)
    return torch.from_numpy(z[:, :d].reshape(len(k), *shape)).to(device=device, dtype=dtype)
