"""The worker pool shared by prepare and simulate (``cglight.pool``): even split, results in job order,
messages in order per job, failures and deaths raised in the parent."""

from __future__ import annotations

import os
import time

import pytest

from cglight.errors import ConfigError
from cglight.pool import even_blocks, even_sizes, run_jobs

_STARTED: list[int] = []


def test_even_split_by_hand():
    assert even_sizes(10, 3) == [4, 3, 3] and even_sizes(2, 4) == [1, 1, 0, 0]
    assert even_blocks(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    for total, parts in ((0, 3), (7, 7), (100, 9)):
        sizes = even_sizes(total, parts)
        assert sum(sizes) == total and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def _square(job: dict, emit) -> tuple[int, int, list[int]]:
    time.sleep(job.get("sleep", 0.0))
    for i in range(job["n"]):
        emit((job["x"], i))
    if job.get("fail"):
        raise ConfigError(f"bad input in job {job['x']}")
    if job.get("die"):
        os._exit(3)
    return job["x"] ** 2, os.getpid(), list(_STARTED)


def _mark_started() -> None:
    _STARTED.append(os.getpid())


def test_fewer_workers_than_jobs_results_in_job_order_messages_in_order():
    jobs = [{"x": x, "n": 20, "sleep": 0.05 * (5 - x)} for x in range(6)]  # the first jobs finish last
    seen: list[tuple[int, int]] = []
    out = run_jobs(_square, jobs, seen.append, workers=2, poll_s=0.2, start=_mark_started)
    assert [r[0] for r in out] == [x * x for x in range(6)]
    pids = {r[1] for r in out}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes took the six jobs
    assert all(r[2] == [r[1]] for r in out)  # start() ran once in each worker, before its jobs
    for x in range(6):
        assert [m for m in seen if m[0] == x] == [(x, i) for i in range(20)]
    assert len(seen) == 120


def test_one_worker_runs_in_this_process():
    out = run_jobs(_square, [{"x": 3, "n": 1}, {"x": 4, "n": 0}], lambda m: None, workers=1)
    assert [(r[0], r[1]) for r in out] == [(9, os.getpid()), (16, os.getpid())]


def test_a_failure_is_raised_as_itself_and_a_death_with_its_exit_code():
    with pytest.raises(ConfigError, match="bad input in job 1"):
        run_jobs(_square, [{"x": 0, "n": 1}, {"x": 1, "n": 1, "fail": True}, {"x": 2, "n": 1}], lambda m: None, workers=2)
    with pytest.raises(RuntimeError, match="exit code 3"):
        run_jobs(_square, [{"x": 0, "n": 1}, {"x": 1, "n": 1, "die": True}], lambda m: None, workers=2, poll_s=0.2)
