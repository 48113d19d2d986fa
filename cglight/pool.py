"""The worker pool of ``cglight prepare`` and ``cglight simulate``: an even split, and jobs run in worker processes
that report to the parent through one queue.

``run_jobs(target, jobs, handle, workers)`` calls ``target(job, emit)`` for every job and returns what each
returned, in job order: in this process when one worker is asked for (or there is one job), otherwise in
``workers`` processes (default: one per job; forked where the platform allows) that take the jobs in turn.
Every ``emit(message)`` reaches ``handle(message)`` in the parent, in the order its job sent them, so the
parent alone draws progress bars and writes shared files. A job that raises stops the others and its
exception is raised in the parent (an input error as itself, a bug with the worker's traceback); a worker
that dies without a word (killed, out of memory) is reported with its exit code; workers end with their
parent even when it is killed (:mod:`cglight.workers_lifetime`) and stop at their next message once it is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue as queues
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from cglight.errors import CGLightError
from cglight.workers_lifetime import die_with_parent

Emit = Callable[[Any], None]
_MESSAGE, _DONE, _FAILED, _EXIT = "message", "done", "failed", "exit"


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def even_sizes(total: int, parts: int) -> list[int]:
    """``total`` items cut into ``parts`` counts that differ by at most one (the larger ones first)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def even_blocks(total: int, parts: int) -> list[range]:
    """``range(total)`` cut into ``parts`` contiguous blocks of :func:`even_sizes`."""
    sizes = even_sizes(total, parts)
    starts = [sum(sizes[:i]) for i in range(parts)]
    return [range(a, a + n) for a, n in zip(starts, sizes, strict=True)]


def process_context():
    """The multiprocessing context of the workers: fork where the platform has it (nothing to re-import), else spawn."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _work(target: Callable[[Any, Emit], Any], jobs: Sequence[Any], tasks, messages, worker: int, parent: int,
          start: Callable[[], None] | None) -> None:
    """The body of a worker process: jobs from ``tasks`` until ``None``; it ends itself once the parent is gone."""
    die_with_parent(parent)
    if start is not None:
        start()

    def emit(message) -> None:
        if os.getppid() != parent:  # the parent was killed: nobody reads, stop working
            os._exit(1)
        messages.put((_MESSAGE, worker, message))

    for index in iter(tasks.get, None):
        try:
            result = target(jobs[index], emit)
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
            messages.put((_FAILED, worker, _picklable(exc, worker)))
            break
        messages.put((_DONE, index, result))
    messages.put((_EXIT, worker, None))
    messages.close()
    messages.join_thread()


def _picklable(exc: BaseException, worker: int) -> BaseException:
    if not isinstance(exc, CGLightError):
        exc = RuntimeError(f"worker {worker} failed:\n{traceback.format_exc()}")
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001
        exc = RuntimeError(f"worker {worker}: {exc}")
    return exc


def run_jobs(target: Callable[[Any, Emit], Any], jobs: Sequence[Any], handle: Emit, workers: int | None = None,
             poll_s: float = 1.0, start: Callable[[], None] | None = None) -> list[Any]:
    """``[target(job, emit) for job in jobs]``, on ``workers`` processes (default one per job) when more than one,
    every emitted message passed to ``handle``; ``start()`` runs first in every worker process. Raises when a
    job fails or a worker dies."""
    count = min(len(jobs) if workers is None else max(workers, 1), len(jobs))
    if count <= 1:
        return [target(job, handle) for job in jobs]
    ctx = process_context()
    tasks, messages = ctx.Queue(), ctx.Queue()
    for index in [*range(len(jobs)), *[None] * count]:
        tasks.put(index)
    procs = [ctx.Process(target=_work, args=(target, jobs, tasks, messages, w, os.getpid(), start), daemon=True)
             for w in range(count)]
    for p in procs:
        p.start()
    try:
        return _collect(procs, messages, handle, len(jobs), poll_s)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        for q in (tasks, messages):
            q.close()


def _collect(procs: list, messages, handle: Emit, n_jobs: int, poll_s: float) -> list[Any]:
    """The parent's side: forward messages, gather results, raise a worker's failure or death."""
    results: dict[int, Any] = {}
    running, quiet = set(range(len(procs))), set()
    while running:
        try:
            kind, index, payload = messages.get(timeout=poll_s)
        except queues.Empty:
            # a worker that has exited stays in `running` only until its last messages are read;
            # gone at two polls in a row without its "exit", it died
            gone = {w for w in running if procs[w].exitcode is not None}
            if gone & quiet:
                w = min(gone & quiet)
                raise RuntimeError(f"worker {w} of {len(procs)} ended (exit code {procs[w].exitcode}) before its jobs were done")
            quiet = gone
            continue
        if kind == _MESSAGE:
            handle(payload)
        elif kind == _DONE:
            results[index] = payload
        elif kind == _EXIT:
            running.discard(index)
        else:
            raise payload
    return [results[i] for i in range(n_jobs)]
