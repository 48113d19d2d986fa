"""``cglight fit --help`` (and ``validate``, ``test``) in a fraction of a second.

LightningCLI builds its parser from torch, Lightning and the model's classes: 5-10 s of imports
before a line of help. The first ``cglight fit --help`` prints the help it builds and keeps the text
in the user's cache directory (``$XDG_CACHE_HOME/cglight``, default ``~/.cache/cglight``), under a
key of everything the text is made from: the program's name, the Python version, every installed distribution and its
version, cglight's source files, the terminal width and the ``JSONARGPARSE_*`` settings. Later calls
with the same key print the kept text without importing any of it; any change builds it anew.

A ``cglight fit`` run from a terminal has imported all of it already: when it ends it keeps the
help of ``fit``, ``validate`` and ``test`` where none is kept under the current key (:func:`keep_missing`,
about 1 s idle), so that after the README's first command every ``--help`` is quick.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from cglight.atomic import atomic_write

HELP_FLAGS = (["--help"], ["-h"])
"""The only arguments whose help is kept (with ``--config`` the help shows that file's values)."""


def cache_dir() -> Path | None:
    """Where the help texts are kept; None where there is no home directory to keep them in."""
    try:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cglight"
    except RuntimeError:  # no home directory
        return None


def key(command: str) -> str:
    """A digest of everything ``cglight <command> --help`` prints depends on."""
    from importlib.metadata import distributions

    program = os.path.basename(sys.argv[0]) if sys.argv else ""  # LightningCLI's usage line names it
    h = hashlib.sha256(f"{command}\n{program}\n{sys.version}\n{shutil.get_terminal_size().columns}\n".encode())
    for name in sorted(n for n in os.environ if n.startswith("JSONARGPARSE")):
        h.update(f"{name}={os.environ[name]}\n".encode())
    for name, version in sorted((d.metadata["Name"] or "", d.version or "") for d in distributions()):
        h.update(f"{name}=={version}\n".encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:24]


def show(command: str, build: Callable[[], object]) -> int:
    """Print the help of ``command``: the kept text, or else what ``build()`` prints (it ends in
    ``SystemExit``, as a parser's ``--help`` does), kept for next time when it exits 0."""
    folder = cache_dir()
    path = _text_path(folder, command) if folder is not None else None
    if path is not None and path.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = path.read_text(encoding="utf-8")
            sys.stdout.write(text)
            return 0
    printed = io.StringIO()
    try:
        code = _printed_by(build, printed)
    finally:
        sys.stdout.write(printed.getvalue())
    if code in (0, None) and printed.getvalue() and path is not None:
        _keep(path, printed.getvalue())
    return code if isinstance(code, int) else (0 if code is None else 2)


def keep_missing(commands: tuple[str, ...], build: Callable[[str], object]) -> list[str]:
    """Keep the help of every command in ``commands`` that has none kept under its current key:
    ``build(command)`` prints it (and ends in ``SystemExit``); nothing reaches the console. The commands kept."""
    folder = cache_dir()
    if folder is None:
        return []
    kept = []
    for command in commands:
        path = _text_path(folder, command)
        if path.is_file():
            continue
        printed = io.StringIO()
        with contextlib.redirect_stderr(io.StringIO()):
            code = _printed_by(lambda c=command: build(c), printed)
        if code in (0, None) and printed.getvalue():
            _keep(path, printed.getvalue())
            kept.append(command)
    return kept


def _text_path(folder: Path, command: str) -> Path:
    """Where the help of ``command`` is kept under its current key."""
    return folder / f"help-{command}-{key(command)}.txt"


def _printed_by(build: Callable[[], object], printed: io.StringIO) -> object:
    """Run ``build()`` with its standard output going to ``printed``; its exit code (0 when it returns)."""
    try:
        with contextlib.redirect_stdout(printed):
            build()
    except SystemExit as exc:
        return exc.code
    return 0


def _keep(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically and remove the texts kept for ``path``'s command under other keys;
    a cache directory that cannot be written is left alone."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        command = path.name.rsplit("-", 1)[0]
        for old in path.parent.glob(f"{command}-*.txt"):
            old.unlink(missing_ok=True)
        atomic_write(path, text)
