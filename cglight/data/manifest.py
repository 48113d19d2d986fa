"""The dataset manifest (``manifest.json``), shard format version 1.

A dataset is a directory holding ``manifest.json`` and ``<system>/shard-NNNNN.h5`` files; see
``architecture.md``. This module reads, validates and writes the manifest; it knows nothing of
HDF5 (``shards.py``) or of training.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cglight.atomic import atomic_write
from cglight.errors import DatasetError

FORMAT = "cglight-shards"
VERSION = 1
MANIFEST = "manifest.json"
HESSIAN_MODES = ("full", "probes", "none")
UNITS = {"length": "angstrom", "energy": "kcal/mol"}


@dataclass
class SystemInfo:
    """What the manifest says of one system (molecule at one temperature)."""

    temperature: float
    bead_types: list[int]
    bead_names: list[str]
    bonds: list[list[int]]
    mapping: str
    hessian: str
    map: dict[str, list[list[Any]]] | None = None
    reference: dict[str, str] | None = None
    trajectories: list[str] | None = None
    """Reference trajectory of each replica (paths relative to the dataset), indexed by the shard
    dataset ``replica``; ``frame_index`` counts frames within that trajectory. Optional (added
    after version 1 was fixed; absent means one trajectory, ``reference['trajectory']``)."""

    @property
    def n_beads(self) -> int:
        return len(self.bead_types)


@dataclass
class ShardInfo:
    path: str
    system: str
    frames: int
    sha256: str | None = None


@dataclass
class Manifest:
    systems: dict[str, SystemInfo]
    shards: list[ShardInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        systems = {}
        for name, s in self.systems.items():
            d = asdict(s)
            systems[name] = {k: v for k, v in d.items() if v is not None}
        shards = [{k: v for k, v in asdict(s).items() if v is not None} for s in self.shards]
        return {"format": FORMAT, "version": VERSION, "units": dict(UNITS), "systems": systems, "shards": shards}

    def frames(self, system: str | None = None) -> int:
        return sum(s.frames for s in self.shards if system is None or s.system == system)


def _require(obj: dict, key: str, where: str, types: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DatasetError(f"{where}: missing key '{key}'")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise DatasetError(f"{where}: key '{key}' must be {names}, got {value!r}")
    return value


def _parse_system(name: str, d: Any, where: str) -> SystemInfo:
    where = f"{where}: system '{name}'"
    if not isinstance(d, dict):
        raise DatasetError(f"{where} must be an object, got {d!r}")
    temperature = float(_require(d, "temperature", where, (int, float)))
    if temperature <= 0:
        raise DatasetError(f"{where}: temperature must be positive kelvin, got {temperature}")
    bead_types = _require(d, "bead_types", where, list)
    if not bead_types or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in bead_types):
        raise DatasetError(f"{where}: bead_types must be a non-empty list of non-negative ints, got {bead_types!r}")
    bead_names = _require(d, "bead_names", where, list)
    if len(bead_names) != len(bead_types):
        raise DatasetError(f"{where}: bead_names has {len(bead_names)} entries but bead_types has {len(bead_types)}")
    bonds = _require(d, "bonds", where, list)
    n = len(bead_types)
    for b in bonds:
        if not (isinstance(b, list) and len(b) == 2 and all(isinstance(i, int) and 0 <= i < n for i in b)):
            raise DatasetError(f"{where}: bond {b!r} is not a pair of bead indices in [0, {n})")
    mapping = _require(d, "mapping", where, str)
    hessian = _require(d, "hessian", where, str)
    if hessian not in HESSIAN_MODES:
        raise DatasetError(f"{where}: hessian must be one of {HESSIAN_MODES}, got {hessian!r}")
    cg_map = d.get("map")
    if cg_map is not None:
        atoms, weights = cg_map.get("atoms"), cg_map.get("weights")
        if not (isinstance(atoms, list) and isinstance(weights, list) and len(atoms) == n == len(weights)):
            raise DatasetError(f"{where}: map must have 'atoms' and 'weights' with one list per bead ({n} beads)")
    trajectories = d.get("trajectories")
    if trajectories is not None and not (isinstance(trajectories, list) and all(isinstance(t, str) for t in trajectories)):
        raise DatasetError(f"{where}: trajectories must be a list of paths, got {trajectories!r}")
    return SystemInfo(
        temperature, list(bead_types), list(bead_names), [list(b) for b in bonds], mapping, hessian, cg_map, d.get("reference"), trajectories
    )


def read_manifest(root: str | os.PathLike) -> Manifest:
    """Read and validate ``root/manifest.json``; every error names the file and the key at fault."""
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist")
    if not path.is_file():
        raise DatasetError(
            f"{root} is not a cglight dataset: it has no {MANIFEST}. "
            f"Build one with `cglight prepare --config FILE --out {root}`."
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    where = str(path)
    if _require(raw, "format", where, str) != FORMAT:
        raise DatasetError(f"{where}: format must be '{FORMAT}', got {raw['format']!r}")
    if _require(raw, "version", where, int) != VERSION:
        raise DatasetError(f"{where}: this cglight reads version {VERSION}, the manifest is version {raw['version']}")
    units = raw.get("units", UNITS)
    if units != UNITS:
        raise DatasetError(f"{where}: units must be {UNITS}, got {units!r}")
    systems_raw = _require(raw, "systems", where, dict)
    if not systems_raw:
        raise DatasetError(f"{where}: 'systems' is empty")
    systems = {name: _parse_system(name, d, where) for name, d in systems_raw.items()}
    shards = []
    for i, s in enumerate(_require(raw, "shards", where, list)):
        w = f"{where}: shards[{i}]"
        shard = ShardInfo(
            path=_require(s, "path", w, str),
            system=_require(s, "system", w, str),
            frames=_require(s, "frames", w, int),
            sha256=s.get("sha256"),
        )
        if shard.system not in systems:
            raise DatasetError(f"{w}: system '{shard.system}' is not in 'systems' ({sorted(systems)})")
        if shard.frames < 0:
            raise DatasetError(f"{w}: frames must be >= 0, got {shard.frames}")
        if not (root / shard.path).is_file():
            raise DatasetError(f"{w}: shard file {root / shard.path} does not exist")
        shards.append(shard)
    return Manifest(systems, shards)


def write_manifest(root: str | os.PathLike, manifest: Manifest) -> Path:
    """Write the manifest atomically (``cglight.atomic``)."""
    path = Path(root) / MANIFEST
    atomic_write(path, json.dumps(manifest.to_json(), indent=2) + "\n")
    return path
