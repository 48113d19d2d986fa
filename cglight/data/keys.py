"""Field names of shards and batches: the one place they are spelled out."""

from __future__ import annotations

# Shard datasets (docs/architecture.md, docs/data.md; shard format version 1).
POS = "pos"  # [F, n, 3] CG coordinates, Å
FORCES = "forces"  # [F, n, 3] mapped AA forces, kcal/mol/Å
HESSIAN = "hessian"  # [F, 3n, 3n] projected AA Hessian, kcal/mol/Å²
PROBES = "probes"  # [F, K, 3n] stored probe vectors
HVP = "hvp"  # [F, K, 3n] projected AA Hessian times the stored probes
FRAME_INDEX = "frame_index"  # [F] index into the system's reference trajectory
REPLICA = "replica"  # [F] which reference trajectory (optional; absent means 0)
FD_ASYMMETRY = "fd_asymmetry"  # [F] finite-difference quality figure of the frame's Hessian (optional)

# Extra batch fields added by the dataset.
BEAD_TYPES = "bead_types"  # [B, n] embedding index of every bead
BETA = "beta"  # [B] inverse temperature, mol/kcal
SYSTEM = "system"  # [B] index of the system in the manifest

# Extra fields of a mixed batch (several systems, ``cglight.data.mixed``): per-bead fields are
# concatenated over frames ([N, 3], [N]) and per-molecule matrices flattened ([Σ ...]).
BATCH = "batch"  # [N] the frame of every bead (torch-geometric's batch vector)
PROBE_COUNT = "probe_count"  # [B] stored probes of every frame (with probes and hvp)

FLOAT_DATASETS = (POS, FORCES, HESSIAN, PROBES, HVP)
