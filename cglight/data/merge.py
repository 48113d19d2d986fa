"""``cglight data merge OUT PART_DIR...``: join the parts of a ``cglight prepare --part I/N`` run.

Each part directory holds its shards, the reference trajectories they need and the markers of its
finished units (``cglight.data.workdir``). The parts must come from the same settings; every
file is checked against its marker's sha256 before it is copied, and the manifest is written
last, once every shard of the plan is present. Merging again (for example after adding a part
that was missing) completes the same output.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cglight.data.manifest import MANIFEST
from cglight.data.shards import sha256
from cglight.data.workdir import WorkDir, atomic_copy, md_unit, shard_unit
from cglight.errors import DatasetError

log = logging.getLogger(__name__)


def merge_parts(out: str | os.PathLike, parts: list[str | os.PathLike]) -> Path:
    out = Path(out)
    works = [WorkDir(p) for p in parts]
    configs = []
    for w in works:
        if not w.root.is_dir():
            raise DatasetError(f"part directory {w.root} does not exist")
        config = w.config()
        if config is None:
            raise DatasetError(f"{w.root} is not a directory written by `cglight prepare` (no .prepare/config.json)")
        configs.append(config)
    for w, c in zip(works, configs, strict=True):
        if c != configs[0]:
            diff = sorted(k for k in set(c) | set(configs[0]) if c.get(k) != configs[0].get(k))
            raise DatasetError(f"{w.root} was prepared with other settings than {works[0].root} ({', '.join(diff)}); merge parts of one run only")
    target = WorkDir(out)
    if out.resolve() not in [w.root.resolve() for w in works]:
        target.claim(configs[0])
    plan = works[0].read("plan.json")
    for name in ("system.json", "plan.json"):
        target.write(name, works[0].read(name))
    for rel in ("reference/system.xml", "reference/topology.pdb"):
        src = works[0].root / plan["system"] / rel
        if not (out / plan["system"] / rel).is_file():
            atomic_copy(src, out / plan["system"] / rel)
    units = [md_unit(r["replica"]) for r in plan["replicas"]] + [shard_unit(s["index"]) for s in plan["shards"]]
    copied = 0
    for unit in units:
        if target.done(unit) is not None:
            continue
        for w in works:
            record = w.done(unit)  # checks the part's file against its marker's sha256
            if record is None:
                continue
            dst = out / record["path"]
            if w.root.resolve() != out.resolve():
                atomic_copy(w.root / record["path"], dst)
                if sha256(dst) != record["sha256"]:
                    raise DatasetError(f"{dst}: copy from {w.root} does not match its sha256; check the disk and merge again")
            target.mark(unit, record)
            copied += 1
            break
    manifest = target.finish()
    if manifest is None:
        missing = target.missing_shards()
        raise DatasetError(
            f"the parts {', '.join(map(str, parts))} hold {len(plan['shards']) - len(missing)} of {len(plan['shards'])} shards "
            f"(missing: {', '.join(shard_unit(i) for i in missing[:8])}{' …' if len(missing) > 8 else ''}); "
            f"run the missing `cglight prepare --part I/N` jobs and merge again"
        )
    log.info("merged %d parts into %s: %d files copied, %s written", len(parts), out, copied, MANIFEST)
    return out
