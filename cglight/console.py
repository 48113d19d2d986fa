"""What the console shows: cglight's own messages and progress bars on stderr, results on stdout,
and no third-party start-up notice or warning that does not concern the user.

Each unwanted notice is filtered at its source, by its library's own setting, its warning message,
its logger and message, or, for text that C code prints, the file descriptor around that one call
(:func:`native_lines_dropped`); every other warning and message still shows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

WARNINGS = (
    # cglight passes the command line to LightningCLI itself (``args=``), which is the same as sys.argv
    r"LightningCLI's args parameter is intended to run from within Python",
    # Lightning's own use of a torch API that torch deprecates
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # cglight's streaming datasets know their length per rank and worker (cglight.data.stream)
    r"Your `IterableDataset` has `__len__` defined",
)
"""Third-party warnings that do not concern the user (regular expressions matching their start)."""

LOG_NOISE = {
    "lightning.pytorch.utilities.rank_zero": (
        r"💡 Tip: ",  # advertisements for Lightning's cloud services
        r"(GPU|TPU|HPU) available: False",  # only an accelerator that exists is news
        r"Loading `train_dataloader` to estimate number of stepping batches",
    ),
    "lightning.pytorch.trainer.connectors.checkpoint_connector": (r"`weights_only` was not set, defaulting to `False`",),
    "lightning.fabric.utilities.seed": (r"Seed set to ",),  # the seed is in the run's config.yaml
}
"""Per logger, the INFO messages of third-party libraries that do not concern the user."""

CUDA_DRIVER_WARNING = r"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"
DCD_NOTICES = r"dcdplugin\) (detected .* DCD file|(CHARMM|X-PLOR) format DCD file)"
"""What mdtraj's DCD reader (C code) prints on stdout about every file it opens."""


class _Drop(logging.Filter):
    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not self.pattern.match(record.getMessage())


def quiet_third_party() -> None:
    """Filter the third-party warnings and log messages that do not concern the user (no import of
    the libraries themselves: the filters wait for them)."""
    import warnings

    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name, patterns in LOG_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(patterns))


def _flush_c_streams() -> None:
    import ctypes

    ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def native_lines_dropped(fd: int, pattern: str, rest_to: int | None = None) -> Iterator[None]:
    """Inside the block, what is written to file descriptor ``fd`` (C code included) is held back;
    after it, the lines that do not match ``pattern`` are written to ``rest_to`` (default: ``fd``).

    Where the descriptor cannot be redirected (no C library to flush, a closed descriptor), the block
    runs unchanged.
    """
    stream = {1: sys.stdout, 2: sys.stderr}.get(fd)
    try:
        if stream is not None:
            stream.flush()
        _flush_c_streams()
        saved = os.dup(fd)
    except (OSError, AttributeError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), fd)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, AttributeError, ValueError):
                if stream is not None:
                    stream.flush()
                _flush_c_streams()
            os.dup2(saved, fd)
            os.close(saved)
            held.seek(0)
            drop = re.compile(pattern)
            kept = [line for line in held.read().splitlines(keepends=True) if not drop.match(line.decode(errors="replace"))]
            if kept:
                os.write(fd if rest_to is None else rest_to, b"".join(kept))


def init_warp() -> None:
    """Start Warp (torchmd-net's kernels run on it) without its start-up banner and kernel-cache notices
    (Warp's own log level), and without its warning that there is no CUDA driver when torch sees no
    GPU either (then the CPU is expected). Warp's later warnings and errors still show."""
    try:
        import warp
    except ImportError:
        return
    warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)
    import torch

    if torch.cuda.is_available():
        warp.init()
        return
    with native_lines_dropped(2, CUDA_DRIVER_WARNING):
        warp.init()
