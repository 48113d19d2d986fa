"""Interrupted, resumed and split runs give the dataset of one uninterrupted run, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from cglight.cli import main
from cglight.data.verify import verify_dataset
from cglight.prepare.reference import read_dcd

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["prepare", "--config", str(ROOT / "configs/prepare/ala2.yaml"), "--frames", "24", "--replicas", "2",
        "--shard_frames", "4", "--stride_steps", "1000", "--equilibration_ps", "0.5", "--seed", "7"]


def _same_dataset(a: Path, b: Path) -> None:
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma == mb  # includes the sha256 of every shard: the files are byte-identical
    for shard in ma["shards"]:
        with h5py.File(a / shard["path"], "r") as fa, h5py.File(b / shard["path"], "r") as fb:
            assert set(fa) == set(fb)
            for key in fa:
                assert np.array_equal(fa[key][:], fb[key][:]), (shard["path"], key)
    for rel in ma["systems"]["ala2"]["trajectories"]:  # (the DCD header holds its creation time)
        assert np.array_equal(read_dcd(a / rel), read_dcd(b / rel)), rel


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "ds"
    assert main([*ARGS, "--out", str(out), "--workers", "1"]) == 0
    return out


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_dataset(whole, tmp_path):
    out = tmp_path / "ds"
    env = dict(os.environ, CGLIGHT_PROGRESS="0", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "cglight.cli", *ARGS, "--out", str(out), "--workers", "1"]
    for marker in ("replica-000", "shard-00001"):  # kill -9 during the MD of replica 1, then during the Hessians
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (out / ".prepare/done" / f"{marker}.json").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if marker == "replica-000":
            assert not (out / "manifest.json").exists()  # the first kill landed mid-run
    assert main([*ARGS, "--out", str(out), "--workers", "2"]) == 0  # resumed on two worker processes
    assert not list(out.rglob("*.partial*"))
    assert verify_dataset(out)[0] == []
    _same_dataset(whole, out)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert main([*ARGS, "--out", str(out)]) == 0  # a finished dataset: nothing to do
    assert (out / "manifest.json").stat().st_mtime_ns == stamp


def test_parts_merged_equal_one_run_of_the_whole(whole, tmp_path, capsys):
    parts = []
    for i in (1, 2, 3):
        parts.append(tmp_path / f"part{i}")
        assert main([*ARGS, "--out", str(parts[-1]), "--part", f"{i}/3", "--workers", "1"]) == 0
        assert not (parts[-1] / "manifest.json").exists()
    assert main(["data", "merge", str(tmp_path / "incomplete"), str(parts[0]), str(parts[2])]) == 2
    err = capsys.readouterr().err
    assert "hold 4 of 6 shards (missing: shard-00002, shard-00003)" in err and "--part" in err
    assert main(["data", "merge", str(tmp_path / "merged"), *map(str, parts)]) == 0
    _same_dataset(whole, tmp_path / "merged")
    assert verify_dataset(tmp_path / "merged")[0] == []
    assert main(["data", "merge", str(tmp_path / "incomplete"), str(parts[1])]) == 0  # completing an earlier merge
    _same_dataset(whole, tmp_path / "incomplete")


def test_a_different_dataset_in_out_is_refused_and_kept(whole, tmp_path, capsys):
    import shutil

    out = tmp_path / "ds"
    shutil.copytree(whole, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*ARGS[:-2], "--seed", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds a different dataset (seed: 7 there, 8 now)" in err and "--overwrite true" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main([*ARGS, "--out", str(tmp_path / "other")]) == 2
    assert "already exists and holds other files" in capsys.readouterr().err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("part", ["3/2", "0/4", "two/3", "1"])
def test_bad_part_is_refused(tmp_path, capsys, part):
    assert main([*ARGS, "--out", str(tmp_path / "ds"), "--part", part]) == 2
    assert "--part" in capsys.readouterr().err and not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_workers_after_in_process_md_on_the_cpu_platform(tmp_path):
    """One replica runs its MD in the parent, then the shards go to forked workers: they must not use
    the parent's OpenMM CPU contexts (whose threads a forked child lacks; using one hangs)."""
    cmd = [sys.executable, "-m", "cglight.cli", *ARGS, "--replicas", "1", "--platform", "CPU", "--hessian_eps_nm", "3e-4",
           "--workers", "2", "--out", str(tmp_path / "ds")]
    env = dict(os.environ, CGLIGHT_PROGRESS="0", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("prepare hung in its worker processes")
    assert proc.returncode == 0, err[-2000:]
    assert verify_dataset(tmp_path / "ds")[0] == []
