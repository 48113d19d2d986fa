"""``cglight data combine OUT DATASET...``: several datasets (different systems) joined into one.

Each source is a finished dataset (its ``manifest.json``), typically one ``cglight prepare`` run per
molecule. The combined dataset holds every system of every source, with its shards and reference
files, so that training can mix them (``data.mix_systems``) and hold some out whole
(``data.holdout_systems``). The systems must have distinct names and share their temperature,
Hessian mode and map kind (``mapping``); every file is copied under its own path (which must lie in
its system's folder), and its copy's sha256 checked against the source's (a shard's also against
its manifest). ``manifest.json`` is written last. An interrupted combine is completed by running the
same command again (``OUT/.combine.json`` names its sources; files already copied intact are kept).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path, PurePosixPath

from cglight.atomic import atomic_write
from cglight.data.manifest import MANIFEST, Manifest, ShardInfo, SystemInfo, read_manifest, write_manifest
from cglight.data.shards import sha256
from cglight.data.workdir import atomic_copy
from cglight.errors import DatasetError

log = logging.getLogger(__name__)

SOURCES = ".combine.json"
"""In the output directory: the resolved source directories, written before anything is copied."""
SHARED = ("temperature", "hessian", "mapping")
"""What every combined system must share."""


def _claim(out: Path, sources: list[Path]) -> None:
    """Make ``out`` the home of this combine (a fresh or empty directory, or the same combine resumed)."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; give a directory for the combined dataset")
    record = out / SOURCES
    mine = [str(s) for s in sources]
    if record.is_file():
        theirs = json.loads(record.read_text()).get("sources")
        if theirs != mine:
            raise DatasetError(f"{out} holds a combine of other datasets ({', '.join(theirs or [])}); choose another OUT")
        return
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} already exists and holds other files; choose another OUT (combine never overwrites)")
    atomic_write(record, json.dumps({"sources": mine}, indent=2) + "\n")


def _systems(manifests: dict[Path, Manifest]) -> dict[str, tuple[Path, SystemInfo]]:
    """Every system by name, with its source; refuses a name twice and systems that differ in ``SHARED``."""
    found: dict[str, tuple[Path, SystemInfo]] = {}
    for root, manifest in manifests.items():
        for name, info in manifest.systems.items():
            if name in found:
                raise DatasetError(f"system '{name}' is in both {found[name][0]} and {root}; system names must be distinct "
                                   "(prepare one of them again with another 'system')")
            found[name] = (root, info)
    first_name, (first_root, first) = next(iter(found.items()))
    for name, (root, info) in found.items():
        for key in SHARED:
            if getattr(info, key) != getattr(first, key):
                raise DatasetError(f"system '{name}' of {root} has {key} {getattr(info, key)!r}, but system '{first_name}' of "
                                   f"{first_root} has {getattr(first, key)!r}; combine only datasets with the same {key}")
    return found


def _files(root: Path, name: str, info: SystemInfo, manifest: Manifest) -> list[tuple[str, str | None]]:
    """``(relative path, sha256 the manifest gives or None)`` of every file of system ``name``: shards, then references."""
    files: list[tuple[str, str | None]] = [(s.path, s.sha256) for s in manifest.shards if s.system == name]
    reference = info.reference or {}
    paths = [reference[k] for k in ("topology", "system") if k in reference]
    paths += info.trajectories or ([reference["trajectory"]] if "trajectory" in reference else [])
    files += [(p, None) for p in dict.fromkeys(paths)]
    for rel, _ in files:
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts or not parts or parts[0] != name:
            raise DatasetError(f"{root / MANIFEST}: system '{name}' lists file {rel!r} outside its folder '{name}/'; "
                               "combine needs every file of a system under its own folder")
        if not (root / rel).is_file():
            raise DatasetError(f"{root / rel}: file of system '{name}' is missing")
    return files


def _copy(src: Path, dst: Path, expected: str | None) -> bool:
    """Copy ``src`` to ``dst`` and check the copy's sha256; False when ``dst`` was already an intact copy."""
    digest = sha256(src)
    if expected is not None and digest != expected:
        raise DatasetError(f"{src}: sha256 does not match its manifest (changed or damaged since it was written); "
                           "`cglight data verify` names what is wrong")
    if dst.is_file() and sha256(dst) == digest:
        return False
    atomic_copy(src, dst)
    if sha256(dst) != digest:
        dst.unlink(missing_ok=True)
        raise DatasetError(f"{dst}: the copy of {src} does not match its sha256; check the disk and combine again")
    return True


def combine_datasets(out: str | os.PathLike, sources: list[str | os.PathLike]) -> Path:
    """Join the datasets ``sources`` (each with its own systems) into one dataset at ``out``; returns ``out``."""
    out = Path(out)
    roots = [Path(s).resolve() for s in sources]
    if len(set(roots)) != len(roots):
        raise DatasetError(f"a dataset is given twice among {', '.join(map(str, sources))}")
    if out.resolve() in roots:
        raise DatasetError(f"{out} is one of the datasets to combine; give a new directory as OUT")
    manifests = {root: read_manifest(root) for root in roots}  # errors name the source
    systems = _systems(manifests)
    if (out / MANIFEST).is_file() and (out / SOURCES).is_file():
        _claim(out, roots)
        log.info("%s is complete already (%s); nothing to do", out, MANIFEST)
        return out
    plan = {name: _files(root, name, info, manifests[root]) for name, (root, info) in systems.items()}
    _claim(out, roots)
    copied = 0
    shards: list[ShardInfo] = []
    for name, files in plan.items():
        root = systems[name][0]
        for rel, expected in files:
            copied += _copy(root / rel, out / rel, expected)
        shards += [s for s in manifests[root].shards if s.system == name]
    write_manifest(out, Manifest({name: info for name, (_, info) in systems.items()}, shards))
    log.info("combined %d datasets (%d systems: %s) into %s: %d files copied, %s written", len(roots), len(systems),
             ", ".join(systems), out, copied, MANIFEST)
    return out
