"""Worker processes that end with their parent, even when the parent is killed with ``kill -9``.

``die_with_parent(parent)`` is the first call of every worker process (the prepare pool's initializer,
the simulate workers). On Linux it asks the kernel for ``SIGKILL`` once the parent is gone
(``prctl(PR_SET_PDEATHSIG)``): nothing in the worker has to run for it to happen, so a worker busy in
OpenMM's C++ ends as promptly as an idle one. The kernel sends the signal when the *thread* that
started the worker ends, so workers are started from the thread that waits for them. Elsewhere a
daemon thread in the worker polls ``os.getppid()`` once a second (it needs the interpreter to get a
turn, which a worker deep in C++ code releasing the GIL gives it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """End this process when process ``parent`` (the one that started it) ends."""
    if not (sys.platform.startswith("linux") and _kill_on_parent_death()):
        threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()
    if os.getppid() != parent:  # the parent was gone before the request took effect
        os._exit(1)


def _kill_on_parent_death() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, every_s: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)
