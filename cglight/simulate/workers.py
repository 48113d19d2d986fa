"""Jobs run in worker processes that report to the parent through one queue.

``run_jobs(target, jobs, handle)`` calls ``target(job, emit)`` for every job: in this process when
there is one job, otherwise in one process per job (forked where the platform allows, one torch
thread each). Every ``emit(message)`` of a job reaches ``handle(message)`` in the parent, in the
order that job sent them, so the parent alone writes files and draws the progress bar. A job that
raises stops the others and its exception is raised in the parent (an input error as itself, a bug
with the worker's traceback); a worker that dies without a word (killed, out of memory) is
reported with its exit code; a worker whose parent was killed stops at its next message.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queues
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from cglight.errors import CGLightError, ConfigError
from cglight.workers_lifetime import die_with_parent

Emit = Callable[[Any], None]
_MESSAGE, _DONE, _FAILED = "message", "done", "failed"


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(requested: int, device: str, jobs_at_most: int) -> int:
    """Worker processes for ``requested`` (0: every core) on ``device``: one on a GPU, never more
    than ``jobs_at_most``."""
    import torch

    if requested < 0:
        raise ConfigError(f"simulate: 'workers' must be >= 0 (0: all cores), got {requested}")
    if torch.device(device).type != "cpu":
        if requested > 1:
            raise ConfigError(f"simulate: 'workers: {requested}' needs device cpu; on {device} one process "
                              "integrates every replica in one batch (use workers 0 or 1)")
        return 1
    return max(1, min(requested or cores(), jobs_at_most))


def split(total: int, parts: int) -> list[range]:
    """``range(total)`` cut into ``parts`` contiguous blocks whose sizes differ by at most one."""
    sizes = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    starts = [sum(sizes[:i]) for i in range(parts)]
    return [range(a, a + n) for a, n in zip(starts, sizes, strict=True)]


def _work(target: Callable[[Any, Emit], None], index: int, job: Any, messages, parent: int) -> None:
    """The body of a worker process; it ends itself at its next message once the parent is gone."""
    import torch

    die_with_parent(parent)
    torch.set_num_threads(1)

    def emit(message) -> None:
        if os.getppid() != parent:  # the parent was killed: nobody reads, stop working
            os._exit(1)
        messages.put((_MESSAGE, index, message))

    try:
        target(job, emit)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
        if not isinstance(exc, CGLightError):
            exc = RuntimeError(f"worker {index} failed:\n{traceback.format_exc()}")
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001
            exc = RuntimeError(f"worker {index}: {exc}")
        messages.put((_FAILED, index, exc))
    else:
        messages.put((_DONE, index, None))
    messages.close()
    messages.join_thread()


def run_jobs(target: Callable[[Any, Emit], None], jobs: Sequence[Any], handle: Emit, poll_s: float = 1.0) -> None:
    """Run ``target(job, emit)`` for every job (in parallel processes when more than one), passing
    every emitted message to ``handle``; returns when all are done, raises when one fails."""
    if len(jobs) == 1:
        target(jobs[0], handle)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    messages = ctx.Queue()
    procs = [ctx.Process(target=_work, args=(target, i, job, messages, os.getpid()), daemon=True) for i, job in enumerate(jobs)]
    for p in procs:
        p.start()
    running, quiet = set(range(len(jobs))), set()
    try:
        while running:
            try:
                kind, index, payload = messages.get(timeout=poll_s)
            except queues.Empty:
                # a worker that has exited stays in `running` only until its last messages are read;
                # gone at two polls in a row without its "done", it died
                gone = {i for i in running if procs[i].exitcode is not None}
                if gone & quiet:
                    i = min(gone & quiet)
                    raise RuntimeError(f"worker {i} of {len(jobs)} ended (exit code {procs[i].exitcode}) before its job was done")
                quiet = gone
                continue
            if kind == _MESSAGE:
                handle(payload)
            elif kind == _DONE:
                running.discard(index)
            else:
                raise payload
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        messages.close()
