"""Mixed batches: frames of several systems (molecules of different bead counts) in one batch.

A homogeneous batch holds frames of one system: ``pos [B, n, 3]``, ``hessian [B, 3n, 3n]``, ...
A mixed batch holds frames of several, laid out the torch-geometric way:

- per-bead fields are concatenated over frames: ``pos [N, 3]``, ``forces [N, 3]``,
  ``bead_types [N]``, with ``batch [N]`` the frame of every bead (``N = Σ_b n_b``);
- per-frame fields stay ``[B]``: ``beta``, ``system``, ``frame_index`` (and ``replica``,
  ``fd_asymmetry`` when present);
- per-molecule matrices travel per frame, flattened and concatenated in frame order:
  ``hessian [Σ_b (3 n_b)²]``, ``probes`` and ``hvp [Σ_b K_b · 3 n_b]`` with ``probe_count [B]``
  (``K_b``).

:func:`pack` makes a mixed batch of homogeneous ones, :func:`split` cuts one back into
homogeneous batches, one per system in the order of the system index, each with its frames in
batch order. Nothing else in cglight needs to know the layout: the model splits a mixed batch
and the losses see homogeneous batches only (the total energy is a sum over molecules, so its
Hessian is block diagonal and never couples two frames).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from cglight.data import keys
from cglight.errors import DatasetError

PER_BEAD = (keys.POS, keys.FORCES)
"""``[B, n, 3]`` in a homogeneous batch, ``[N, 3]`` in a mixed one."""
PER_FRAME = (keys.BETA, keys.SYSTEM, keys.FRAME_INDEX, keys.REPLICA, keys.FD_ASYMMETRY)
PER_MOLECULE = (keys.HESSIAN, keys.PROBES, keys.HVP)
"""``[B, ...]`` per frame, flattened in a mixed batch."""


def is_mixed(batch: Mapping[str, Tensor]) -> bool:
    """Whether ``batch`` has the mixed layout (a ``batch`` vector)."""
    return keys.BATCH in batch


def frames(batch: Mapping[str, Tensor]) -> int:
    """Number of frames of a homogeneous or a mixed batch."""
    return int(batch[keys.SYSTEM].shape[0]) if is_mixed(batch) else int(batch[keys.POS].shape[0])


def pack(groups: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Homogeneous batches (each ``pos [B_g, n_g, 3]``, ...; the same keys in all) → one mixed batch."""
    if not groups:
        raise ValueError("pack needs at least one batch")
    names = set(groups[0])
    for g in groups:
        if set(g) != names:
            raise DatasetError(f"cannot mix batches with different fields: {sorted(names)} and {sorted(g)}")
    unknown = names - {*PER_BEAD, *PER_FRAME, *PER_MOLECULE, keys.BEAD_TYPES}
    if unknown:
        raise DatasetError(f"cannot mix batches with field(s) {sorted(unknown)}; known: {sorted({*PER_BEAD, *PER_FRAME, *PER_MOLECULE})}")
    out: dict[str, Tensor] = {}
    for name in names:
        if name in PER_BEAD:
            out[name] = torch.cat([g[name].reshape(-1, 3) for g in groups])
        elif name == keys.BEAD_TYPES:
            out[name] = torch.cat([g[name].reshape(-1) for g in groups])
        elif name in PER_MOLECULE:
            out[name] = torch.cat([g[name].reshape(-1) for g in groups])
        else:
            out[name] = torch.cat([g[name] for g in groups])
    beads = torch.tensor([g[keys.POS].shape[1] for g in groups for _ in range(g[keys.POS].shape[0])], dtype=torch.long)
    out[keys.BATCH] = torch.arange(len(beads)).repeat_interleave(beads)
    if keys.PROBES in names:
        out[keys.PROBE_COUNT] = torch.cat([torch.full((g[keys.PROBES].shape[0],), g[keys.PROBES].shape[1], dtype=torch.long) for g in groups])
    return out


def split(batch: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
    """A mixed batch → homogeneous batches, one per system (ascending system index), frames in batch order."""
    system, bead_frame = batch[keys.SYSTEM], batch[keys.BATCH]
    n = torch.bincount(bead_frame, minlength=len(system))
    bead_system = system[bead_frame]
    sizes = {keys.HESSIAN: (3 * n) ** 2}
    if keys.PROBE_COUNT in batch:
        sizes[keys.PROBES] = sizes[keys.HVP] = batch[keys.PROBE_COUNT] * 3 * n
    groups = []
    for s in torch.unique(system).tolist():
        pick = system == s
        b = int(pick.sum())
        counts = n[pick].unique()
        if len(counts) != 1:
            raise DatasetError(f"mixed batch: frames of system {s} have different bead counts {counts.tolist()}")
        beads = bead_system == s
        g: dict[str, Tensor] = {}
        for name, value in batch.items():
            if name in (keys.BATCH, keys.PROBE_COUNT):
                continue
            if name in PER_BEAD:
                g[name] = value[beads].reshape(b, -1, 3)
            elif name == keys.BEAD_TYPES:
                g[name] = value[beads].reshape(b, -1)
            elif name in PER_MOLECULE:
                mask = torch.repeat_interleave(pick, sizes[name], output_size=value.shape[0])
                width = 3 * int(counts[0])
                g[name] = value[mask].reshape(b, -1, width) if name != keys.HESSIAN else value[mask].reshape(b, width, width)
            else:
                g[name] = value[pick]
        groups.append(g)
    return groups
