"""A callback that puts every random generator training draws from into the checkpoint.

The Hessian-vector losses draw their probes from torch's global generator, so a run resumed
with ``--ckpt_path`` continues exactly only if that generator (and numpy's and Python's, for
anything else) continues where it stopped. Every rank's states are saved (they differ once the
ranks have drawn different numbers of probes) and each rank gets its own back. They are put
back just before the first training batch after the resume, after the sanity check and the
data loader's start, which draw from the same generators.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger("cglight")


def capture() -> dict[str, Any]:
    """The states of torch's (CPU and CUDA), numpy's and Python's global generators, as plain data."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomState(Callback):
    """Save the global random generators of every rank in the checkpoint; restore them on resume.

    Args:
        enabled: save and restore the generators.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._pending: list[dict[str, Any]] | None = None

    def state_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        mine = capture()
        if dist.is_available() and dist.is_initialized():  # every rank saves a checkpoint at the same step
            ranks: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(ranks, mine)
            return {"ranks": ranks}
        return {"ranks": [mine]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("ranks") if self.enabled else None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._pending:
            return
        ranks, self._pending = self._pending, None
        if len(ranks) != trainer.world_size:
            log.warning("the checkpoint holds random states of %d ranks, this run has %d: every rank takes rank 0's",
                        len(ranks), trainer.world_size)
            restore(ranks[0])
            return
        restore(ranks[trainer.global_rank])
