"""The newest ``last.ckpt``: what ``cglight fit --ckpt_path last`` and ``cglight simulate --checkpoint latest`` load.

One rule for both: among the candidate ``last.ckpt`` files that exist, the one modified last (ties:
the greater path); none is a one-line ``ConfigError``; the choice is logged.

``cglight simulate`` takes ``checkpoint: latest`` (the newest ``last.ckpt`` at any depth under
``runs/cglight``, where ``cglight fit`` writes its runs by default: ``runs/cglight/version_N/checkpoints``)
or ``checkpoint: latest:DIR`` (the newest at any depth under ``DIR``, e.g. a ``trainer.default_root_dir``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from cglight.errors import ConfigError

log = logging.getLogger("cglight")

NAME = "last.ckpt"
LATEST = "latest"
DEFAULT_RUNS = Path("runs") / "cglight"
"""Where ``cglight fit`` writes its runs unless told otherwise (``runs/cglight/version_N``): the CLI's
default logger takes its ``save_dir`` and ``name`` from here."""


def newest(candidates: Iterable[Path], label: str, where: str, hint: str) -> Path:
    """The newest existing file of ``candidates``; ``label`` and ``where`` name the request in the log and the error."""
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise ConfigError(f"{label}: there is no {NAME} in {where} ({hint})")
    chosen = max(found, key=lambda p: (p.stat().st_mtime, str(p)))
    others = f", {len(found) - 1} older" if len(found) > 1 else ""
    log.info("%s: %s (the newest %s in %s%s)", label, chosen, NAME, where, others)
    return chosen


def is_latest(spec: str) -> bool:
    """Whether ``spec`` asks for the newest checkpoint (``latest`` or ``latest:DIR``) rather than naming a file."""
    return spec == LATEST or spec.startswith(LATEST + ":")


def resolve(spec: str, option: str = "checkpoint") -> str:
    """``spec`` itself, or for ``latest`` / ``latest:DIR`` the newest ``last.ckpt`` under ``runs/cglight`` / ``DIR``."""
    if not is_latest(spec):
        return spec
    given = spec[len(LATEST) + 1:].strip()
    if spec != LATEST and not given:
        raise ConfigError(f"{option} {spec}: give a directory after 'latest:' (e.g. latest:runs/cglight), or 'latest' alone")
    folder = Path(given) if given else DEFAULT_RUNS
    hint = ("no such directory" if not folder.is_dir() else "no run of `cglight fit` saved one there") + \
        f"; give the file (e.g. {DEFAULT_RUNS}/version_0/checkpoints/{NAME}) or latest:DIR"
    return str(newest(folder.rglob(NAME) if folder.is_dir() else [], f"{option} {spec}", f"{folder} (at any depth)", hint))
