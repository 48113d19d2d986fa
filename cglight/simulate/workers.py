"""The worker processes of ``cglight simulate``: how many, and the jobs run on them with one torch thread each.

The pool itself (the even split, the processes, their messages to the parent, failures and teardown) is
:mod:`cglight.pool`, shared with ``cglight prepare``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cglight import pool
from cglight.errors import ConfigError
from cglight.pool import Emit, cores


def worker_count(requested: int, device: str, jobs_at_most: int) -> int:
    """Worker processes for ``requested`` (0: every core) on ``device``: one on a GPU, never more
    than ``jobs_at_most``."""
    import torch

    if requested < 0:
        raise ConfigError(f"simulate: 'workers' must be >= 0 (0: all cores), got {requested}")
    if torch.device(device).type != "cpu":
        if requested > 1:
            raise ConfigError(f"simulate: 'workers: {requested}' needs device cpu; on {device} one process "
                              "integrates every replica in one batch (use workers 0 or 1)")
        return 1
    return max(1, min(requested or cores(), jobs_at_most))


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_jobs(target: Callable[[Any, Emit], None], jobs: Sequence[Any], handle: Emit, poll_s: float = 1.0) -> None:
    """``target(job, emit)`` for every job, one process per job when more than one (each with one torch thread),
    every message to ``handle`` (:func:`cglight.pool.run_jobs`)."""
    pool.run_jobs(target, jobs, handle, poll_s=poll_s, start=_one_torch_thread)
