"""The work directory of a dataset being built: what to do, what is done, and the final manifest.

``cglight prepare`` keeps, inside the dataset directory, a hidden folder ``.prepare/`` with

- ``config.json``: the settings the dataset is built from (a rerun with other settings is refused),
- ``system.json``: the manifest entry of the system (beads, map, temperature, reference files),
- ``plan.json``: every unit of work — one reference trajectory per replica, then the shards,
- ``done/<unit>.json``: one marker per finished unit, with the sha256 of the file it produced.

Every file is written atomically (``cglight.atomic``), so a process killed at any moment leaves
either a finished unit (file and marker) or nothing that counts. ``manifest.json`` is written last,
once every shard has its marker. ``cglight data merge`` joins work directories of ``--part`` runs
through the same markers. Nothing here knows OpenMM.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from cglight.atomic import PARTIAL, atomic_path, atomic_write
from cglight.data.manifest import MANIFEST, Manifest, ShardInfo, SystemInfo, write_manifest
from cglight.data.shards import sha256
from cglight.errors import DatasetError

WORKDIR = ".prepare"


def atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


class WorkDir:
    """The ``.prepare`` folder of dataset directory ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.path = self.root / WORKDIR

    # --- identity -------------------------------------------------------------------------
    def config(self) -> dict | None:
        p = self.path / "config.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def claim(self, config: dict[str, Any], overwrite: bool = False) -> bool:
        """Make ``root`` the home of the dataset built from ``config``; True when resuming one.

        Refuses (naming the directory and the fix) a directory that holds a different dataset or
        other files, unless ``overwrite``; then it is emptied first.
        """
        existing = self.config()
        if existing is not None and existing != config and not overwrite:
            diff = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
            shown = ", ".join(f"{k}: {existing.get(k)!r} there, {config.get(k)!r} now" for k in diff[:4])
            raise DatasetError(
                f"{self.root} holds a different dataset ({shown}); choose another --out, or pass --overwrite true to replace it"
            )
        if existing is None and self.root.exists() and any(self.root.iterdir()) and not overwrite:
            what = "a dataset built elsewhere" if (self.root / MANIFEST).is_file() else "other files"
            raise DatasetError(f"{self.root} already exists and holds {what}; choose another --out, or pass --overwrite true to replace it")
        if overwrite and self.root.exists() and existing != config:
            shutil.rmtree(self.root)
        resuming = existing == config
        if not resuming:
            atomic_write(self.path / "config.json", _json(config))
        self.clean_partials()
        return resuming

    def clean_partials(self) -> None:
        """Remove temporary files left by killed processes (they never count as done)."""
        if self.root.exists():
            for p in self.root.rglob(f"*{PARTIAL}*"):
                if p.is_file():
                    p.unlink(missing_ok=True)

    # --- plan and system ------------------------------------------------------------------
    def write(self, name: str, obj: Any) -> None:
        atomic_write(self.path / name, _json(obj))

    def read(self, name: str) -> Any:
        p = self.path / name
        if not p.is_file():
            raise DatasetError(f"{self.root}: {WORKDIR}/{name} is missing; is this a directory written by `cglight prepare`?")
        return json.loads(p.read_text())

    # --- units ----------------------------------------------------------------------------
    def marker(self, unit: str) -> Path:
        return self.path / "done" / f"{unit}.json"

    def done(self, unit: str, check: bool = True) -> dict | None:
        """The marker of ``unit`` if the unit is finished and its file is intact, else None."""
        p = self.marker(unit)
        if not p.is_file():
            return None
        record = json.loads(p.read_text())
        f = self.root / record["path"]
        if not f.is_file() or (check and sha256(f) != record["sha256"]):
            return None
        return record

    def mark(self, unit: str, record: dict[str, Any]) -> None:
        atomic_write(self.marker(unit), _json(record))

    def missing_shards(self, check: bool = False) -> list[int]:
        plan = self.read("plan.json")
        return [s["index"] for s in plan["shards"] if self.done(shard_unit(s["index"]), check) is None]

    # --- the end ----------------------------------------------------------------------------
    def finish(self) -> Path | None:
        """Write ``manifest.json`` if every shard is done; return its path (None if work remains)."""
        plan = self.read("plan.json")
        name = plan["system"]
        records = [self.done(shard_unit(s["index"]), check=False) for s in plan["shards"]]
        if any(r is None for r in records):
            return None
        system = SystemInfo(**self.read("system.json"))
        shards = [ShardInfo(r["path"], name, int(r["frames"]), r["sha256"]) for r in records]
        return write_manifest(self.root, Manifest({name: system}, shards))


def shard_unit(index: int) -> str:
    return f"shard-{index:05d}"


def md_unit(replica: int) -> str:
    return f"replica-{replica:03d}"
