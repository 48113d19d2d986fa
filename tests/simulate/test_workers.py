"""Replicas split over worker processes, and the per-replica noise streams that make the split harmless.

Oracles: SplitMix64 written out in plain Python integers; the moments and correlations of standard
normals; the same replicas integrated as one batch (float64: the batched force call's rounding is
far below the tolerance); ``cglight simulate`` with one worker.
"""

from __future__ import annotations

import json
import math
import os

import mdtraj as md
import numpy as np
import pytest
import torch

from cglight.cli import main
from cglight.energy import CGEnergy
from cglight.errors import ConfigError
from cglight.simulate.block import force_function
from cglight.simulate.langevin import LangevinIntegrator, LangevinState
from cglight.simulate.noise import normals, replica_keys
from cglight.simulate.settings import LangevinSettings
from cglight.pool import even_blocks as split
from cglight.simulate.workers import run_jobs, worker_count

MASK = 2**64 - 1


def _splitmix64(seed: int, count: int) -> list[int]:
    """The generator as published (Steele, Lea & Flood 2014), sequentially, in Python integers."""
    out, state = [], seed
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def test_noise_is_splitmix64_through_box_muller_at_the_right_index():
    keys = replica_keys((3, 1), range(2))
    for r in range(2):
        key = int(keys[r]) & MASK
        # steps −1, 0, 1 of a 2-bead system (6 coordinates, 6 outputs per step): the outputs −6 … 11 of
        # the replica's stream, i.e. a sequential run started 6 outputs before the key
        raw = _splitmix64((key - 6 * 0x9E3779B97F4A7C15) & MASK, 3 * 6)
        for step in (-1, 0, 1):
            bits = [x >> 11 for x in raw[(step + 1) * 6:(step + 2) * 6]]
            expect = []
            for a, b in zip(bits[0::2], bits[1::2], strict=True):
                radius, angle = math.sqrt(-2 * math.log((a + 1) * 2.0**-53)), 2 * math.pi * b * 2.0**-53
                expect += [radius * math.cos(angle), radius * math.sin(angle)]
            got = normals(keys, step, (2, 3))[r].flatten().tolist()
            np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)
    # an odd number of coordinates (one bead: 3) uses two Box–Muller pairs per step and drops the last value
    assert normals(keys, 4, (1, 3)).shape == (2, 1, 3)


def test_noise_streams_are_standard_normal_and_independent():
    keys = replica_keys(0, range(64))
    x = torch.stack([normals(keys, t, (5, 3)) for t in range(400)])  # [T, R, 5, 3]
    flat = x.flatten()
    n = flat.numel()  # 384000
    assert abs(float(flat.mean())) < 4 / math.sqrt(n)
    assert abs(float(flat.var()) - 1) < 4 * math.sqrt(2 / n)
    assert abs(float(flat.pow(4).mean()) - 3) < 4 * math.sqrt(96 / n)
    # neighbouring replicas, neighbouring steps and neighbouring coordinates are uncorrelated
    pairs = [(x[:, 1:], x[:, :-1]), (x[1:], x[:-1]), (x[..., 1:], x[..., :-1])]
    for a, b in pairs:
        corr = float((a * b).mean())
        assert abs(corr) < 4 / math.sqrt(a.numel()), corr
    # a replica's stream does not depend on the others in its batch
    torch.testing.assert_close(normals(keys[5:9], 17, (5, 3)), normals(keys, 17, (5, 3))[5:9], rtol=0, atol=0)
    assert not torch.equal(normals(replica_keys(1, range(4)), 17, (5, 3)), normals(keys[:4], 17, (5, 3)))


def _chain_system():
    torch.manual_seed(0)
    energy = CGEnergy({"embedding_dimension": 16, "num_layers": 2, "num_rbf": 8, "cutoff_upper": 8.0}).double().eval()
    g = torch.Generator().manual_seed(1)
    types = torch.randint(1, 8, (6,), generator=g)
    steps = torch.randn(7, 6, 3, generator=g, dtype=torch.float64)
    pos = torch.cumsum(3.8 * steps / steps.norm(dim=-1, keepdim=True), 1)
    masses = 10.0 + 5.0 * torch.rand(6, generator=g, dtype=torch.float64)
    integ = LangevinIntegrator(force_function(energy, types), masses, LangevinSettings(2.0, 1.0, 320.0), seed=(4, 0))
    return integ, pos


def test_blocks_of_replicas_follow_the_whole_batch_and_may_be_recut_on_restart():
    """7 replicas as one batch against blocks started on their own (2 + 5), their states joined at
    step 20 and cut again into 3 + 1 + 3 for the last 20 steps: the same trajectories (float64)."""
    integ, pos = _chain_system()
    whole = integ.run(integ.init_state(pos), 40)

    blocks = [integ.init_state(pos[b.start:b.stop], replicas=b) for b in (range(0, 2), range(2, 7))]
    for b in blocks:
        integ.run(b, 20)
    joined = LangevinState.join(blocks)
    saved = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in joined.state_dict().items()}  # a restart state
    again = LangevinState.from_state_dict(saved)
    recut = [again.block(a, b) for a, b in ((0, 3), (3, 4), (4, 7))]
    for b in recut:
        integ.run(b, 20)
    end = LangevinState.join(recut)
    assert end.step == whole.step == 40
    torch.testing.assert_close(end.pos, whole.pos, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(end.vel, whole.vel, rtol=1e-9, atol=1e-9)
    assert float((whole.pos - pos).abs().max()) > 0.05  # the trajectories went somewhere


def test_block_and_join_keep_failures_under_their_replica_numbers():
    integ, pos = _chain_system()
    state = integ.init_state(pos)
    state.failures = {1: "step 3: x", 5: "step 9: y"}
    state.alive[[1, 5]] = False
    parts = [state.block(0, 4), state.block(4, 7)]
    assert parts[0].failures == {1: "step 3: x"} and parts[1].failures == {1: "step 9: y"}
    back = LangevinState.join(parts)
    assert back.failures == state.failures and torch.equal(back.alive, state.alive) and torch.equal(back.keys, state.keys)


def test_an_old_restart_state_is_refused_with_a_reason():
    integ, pos = _chain_system()
    d = integ.init_state(pos).state_dict()
    d.pop("keys")
    d["rng"] = torch.zeros(5056, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="older cglight"):
        LangevinState.from_state_dict(d)


def test_split_and_worker_count():
    assert [len(b) for b in split(10, 3)] == [4, 3, 3] and split(10, 3)[1] == range(4, 7)
    assert [list(b) for b in split(2, 2)] == [[0], [1]]
    assert worker_count(3, "cpu", 2) == 2  # never more workers than replicas
    assert 1 <= worker_count(0, "cpu", 1000) <= os.cpu_count()
    assert worker_count(0, "cuda", 32) == 1
    with pytest.raises(ConfigError, match="needs device cpu"):
        worker_count(2, "cuda", 32)
    with pytest.raises(ConfigError, match="workers"):
        worker_count(-1, "cpu", 32)


def _count(job, emit):
    for i in range(job["n"]):
        emit((job["name"], i))
    if job.get("fail"):
        raise ConfigError(f"bad input in job {job['name']}")
    if job.get("die"):
        os._exit(3)


def test_run_jobs_forwards_messages_in_order_and_raises_a_workers_failure():
    seen = []
    run_jobs(_count, [{"name": "a", "n": 50}, {"name": "b", "n": 30}], seen.append)
    assert [m for m in seen if m[0] == "a"] == [("a", i) for i in range(50)] and len(seen) == 80
    with pytest.raises(ConfigError, match="bad input in job b"):
        run_jobs(_count, [{"name": "a", "n": 1}, {"name": "b", "n": 1, "fail": True}], lambda m: None)
    with pytest.raises(RuntimeError, match="exit code 3"):
        run_jobs(_count, [{"name": "a", "n": 1}, {"name": "b", "n": 1, "die": True}], lambda m: None, poll_s=0.2)


ORPHANS = """
import os, sys, time
from cglight.simulate.workers import run_jobs

def job(j, emit):
    os.write(1, f"{os.getpid()}\\n".encode())  # one write: the two workers' lines never interleave
    while True:
        time.sleep(0.05)
        emit(j)

run_jobs(job, [0, 1], lambda m: None)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has stopped
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_workers_stop_when_their_parent_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", ORPHANS], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(parent.stdout.readline()) for _ in range(2)]
        assert all(_running(p) for p in pids)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _running(p)]
    for p in left:  # the test's own orphans, ended by their ids when the check fails
        os.kill(p, signal.SIGKILL)
    assert not left


def _simulate(ckpt, data, out, steps, extra=()):
    args = ["simulate", "--checkpoint", str(ckpt), "--starts", str(data), "--out", str(out), "--replicas", "4",
            "--steps", str(steps), "--save_every", "20", "--flush_every", "40", "--seed", "3", *extra]
    return main(args)


def _dcd(out, system, r):
    """Positions in Å (mdtraj reads nm)."""
    return 10.0 * md.load(str(out / system / f"replica-{r:03d}.dcd"), top=str(out / system / "topology.pdb")).xyz


# Blocks of different sizes call the network with batches of different sizes, whose float32 results
# differ in the last bits (~3e-8 kcal/mol/Å here); over 100 steps that stays far below 1e-4 Å, while
# a replica given another replica's noise is ~1e-3 Å off after one step and ~1 Å after 100.
ATOL = 1e-4


@pytest.mark.slow
def test_the_number_of_workers_does_not_change_the_trajectories(network_checkpoint, tmp_path):
    """Two systems, 4 replicas: one worker against two (2 + 2) and three (2 + 1 + 1) workers."""
    from tests.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "ds", {"a": [12], "b": [12]}, temperature=300.0)
    masses = ["--masses", "[12.0, 14.0, 12.0, 12.0, 14.0]"]
    for w in (1, 2, 3):
        assert _simulate(network_checkpoint, data, tmp_path / f"w{w}", 100, [*masses, "--workers", str(w)]) == 0
    one = json.loads((tmp_path / "w1/simulation.json").read_text())["systems"]
    for w in (2, 3):
        summary = json.loads((tmp_path / f"w{w}/simulation.json").read_text())
        assert summary["systems"] == one and summary["settings"]["workers"] == w
        for system in ("a", "b"):
            for r in range(4):
                alone, split_ = _dcd(tmp_path / "w1", system, r), _dcd(tmp_path / f"w{w}", system, r)
                assert alone.shape == split_.shape == (5, 5, 3)
                np.testing.assert_allclose(split_, alone, rtol=0, atol=ATOL)
    # the check has teeth: replicas differ from one another by far more than the tolerance
    assert np.abs(_dcd(tmp_path / "w1", "a", 2) - _dcd(tmp_path / "w1", "a", 3)).max() > 100 * ATOL


@pytest.mark.slow
def test_a_restart_may_change_the_number_of_workers(checkpoint, tiny_dataset, tmp_path):
    """80 steps on two workers, continued to 120 on one, equal 120 steps on one worker."""
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "whole", 120, ["--workers", "1"]) == 0
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "parts", 80, ["--workers", "2"]) == 0
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "parts", 120, ["--workers", "1"]) == 0
    for r in range(4):
        whole, parts = _dcd(tmp_path / "whole", "ala2", r), _dcd(tmp_path / "parts", "ala2", r)
        assert whole.shape == parts.shape == (6, 5, 3)
        np.testing.assert_allclose(parts, whole, rtol=0, atol=ATOL)
    summary = json.loads((tmp_path / "parts/simulation.json").read_text())
    assert summary["systems"]["ala2"]["steps"] == 120 and summary["settings"]["workers"] == 1


@pytest.mark.slow
def test_a_replica_that_blows_up_in_one_worker_is_reported_and_the_rest_go_on(network_checkpoint, tmp_path):
    """Replica 3 (worker 2 of 2) starts from a broken frame; it is stopped and reported under its
    own number, its block-mate replica 2 and worker 1's replicas run to the end."""
    import h5py

    from cglight.data import keys
    from tests.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "ds", {"a": [4]}, temperature=300.0)  # 4 frames for 4 replicas: replica r = frame r
    with h5py.File(data / "a/shard-00000.h5", "r+") as f:
        pos = f[keys.POS][...]
        pos[3, 2] = np.nan
        f[keys.POS][...] = pos
    masses = ["--masses", "[12.0, 14.0, 12.0, 12.0, 14.0]"]
    assert _simulate(network_checkpoint, data, tmp_path / "sim", 80, [*masses, "--workers", "2"]) == 0
    summary = json.loads((tmp_path / "sim/simulation.json").read_text())["systems"]["a"]
    assert summary["alive"] == 3 and list(summary["stopped"]) == ["3"] and "NaN" in summary["stopped"]["3"]
    assert summary["steps"] == 80 and summary["frames"] == 3 * 4
    for r in range(3):
        x = _dcd(tmp_path / "sim", "a", r)
        assert x.shape == (4, 5, 3) and np.isfinite(x).all()
    assert not (tmp_path / "sim/a/replica-003.dcd").exists()  # never saved: it failed at its first step


@pytest.mark.slow
def test_a_model_that_cannot_evaluate_a_system_fails_before_any_file_is_written(checkpoint, tmp_path, capsys):
    """The workers load the model themselves; the parent still tries it on every system first."""
    from tests.data.synthetic import write_synthetic

    data = write_synthetic(tmp_path / "ds", {"a": [4], "b": [4]}, temperature=300.0)  # bead types the ala2 priors never saw
    masses = ["--masses", "[12.0, 14.0, 12.0, 12.0, 14.0]"]
    assert _simulate(checkpoint, data, tmp_path / "sim", 40, [*masses, "--workers", "2"]) == 2
    assert "no fitted parameters" in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()


def test_negative_workers_is_refused_on_one_line(tmp_path, capsys):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    assert main(["simulate", "--checkpoint", str(ckpt), "--starts", str(tmp_path), "--workers", "-1"]) == 2
    assert "'workers' must be >= 0" in capsys.readouterr().err
