"""Two prepare runs into one directory, and a killed prepare: one run at a time, no orphan workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cglight.cli import main
from cglight.data.verify import verify_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, CGLIGHT_PROGRESS="0", PYTHONPATH=str(ROOT))
TINY = ["--frames", "4", "--stride_steps", "10", "--equilibration_ps", "0.01", "--hessian", "none", "--workers", "1"]
HOLD = "import sys, time; from cglight.prepare.lock import prepare_lock\nwith prepare_lock(sys.argv[1]):\n" \
       "    print('held', flush=True); time.sleep(600)\n"


def _lock_file(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_second_run_fails_at_once_naming_the_holder_then_runs_after_a_kill(tmp_path, capsys):
    out = tmp_path / "ds"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        assert main(["prepare", "--out", str(out), *TINY]) == 2
        seconds = time.monotonic() - t0
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"cglight: error: {out} is being prepared by another process (PID {holder.pid})")
        assert seconds < 10  # no work was started (the tiny dataset alone takes longer on two shared cores)
        assert not out.exists()
    finally:
        holder.kill()  # kill -9: the kernel releases the lock with the process
        holder.wait()
    assert _lock_file(out).exists()  # left behind by the killed holder: stale, not held
    assert main(["prepare", "--out", str(out), *TINY]) == 0
    assert verify_dataset(out)[0] == []
    assert not _lock_file(out).exists()  # removed by the run that held it


@pytest.mark.slow
def test_two_prepare_processes_into_one_directory(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["prepare", "--out", str(out), "--frames", "100", "--stride_steps", "50", "--equilibration_ps", "0.01",
            "--hessian", "full", "--workers", "1"]
    first = subprocess.Popen([sys.executable, "-m", "cglight.cli", *args], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: (out / ".prepare" / "config.json").exists() or first.poll() is not None, 120, "the first run to start")
        assert main(args) == 2  # the second run (in this process: it starts at once)
        assert first.poll() is None, "the first run ended before the second was refused; make it longer"
        assert capsys.readouterr().err == (f"cglight: error: {out} is being prepared by another process (PID {first.pid}); "
                                           "wait for it to end, or stop it and rerun (a stopped run resumes)\n")
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-3000:]
    finally:
        first.kill()
    assert verify_dataset(out)[0] == []
    assert sum(s["frames"] for s in json.loads((out / "manifest.json").read_text())["shards"]) == 100


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc (Linux)")
def test_workers_end_with_a_killed_prepare(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "cglight.cli", "prepare", "--out", str(out), "--replicas", "2", "--frames", "2000",
           "--stride_steps", "2000", "--equilibration_ps", "0", "--hessian", "none", "--workers", "2"]
    parent = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        def working() -> bool:  # both workers have started their trajectory (the file is named after the worker's PID)
            workers.update(_children(parent.pid))
            busy = {int(p.name.rsplit("-", 1)[1]) for p in out.glob("ala2/reference/*.partial-*")}
            return len(busy & workers) == 2 or parent.poll() is not None

        _wait(working, 120, "two workers at work")
        assert parent.poll() is None
        parent.kill()  # kill -9: no Python code of the parent runs
        parent.wait()
        _wait(lambda: not any(_alive(w) for w in workers), 10, f"the workers {sorted(workers)} to end")
    finally:
        parent.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
