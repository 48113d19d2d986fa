"""The stream under training: exact mid-epoch resume, the test split, and DDP on two CPU ranks (gloo)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cglight.cli import main
from tests.data.synthetic import write_synthetic
from tests.data.test_stream import SHARDS, TEST, TRAIN, VAL

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp: Path, data: Path, run: str, callbacks: list[dict], workers: int = 0, batch_size: int = 8, window: int = 16,
            mix: bool = False) -> str:
    config = {
        "seed_everything": 0,
        "model": {"backbone": {"name": "graph-network", "embedding_dimension": 16, "num_layers": 1, "cutoff_upper": 8.0},
                  "losses": {"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 2}}},
        "data": {"path": str(data), "batch_size": batch_size, "num_workers": workers, "block_frames": 4, "window_frames": window,
                 "mix_systems": mix},
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False, "log_every_n_steps": 1, "default_root_dir": str(tmp / run),
                    "callbacks": [
                        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                         "init_args": {"every_n_train_steps": 10, "save_top_k": -1, "filename": "{step}"}},
                        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                         "init_args": {"every_n_epochs": 1, "save_top_k": -1, "filename": "{epoch}", "save_on_train_epoch_end": True}},
                        *callbacks]},
        "loss_curves": {"enabled": False},
    }
    path = tmp / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _recorder(out: Path) -> dict:
    return {"class_path": "tests.data.recorder.RecordFrames", "init_args": {"out": str(out)}}


def _ckpt(tmp: Path, run: str, name: str) -> Path:
    (path,) = (tmp / run).glob(f"cglight/version_*/checkpoints/{name}.ckpt")
    return path


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=False, map_location="cpu")["state_dict"]
    return {k: v for k, v in state.items() if torch.is_tensor(v)}  # the energy's extra state (topologies) is plain data


def _rows(path: Path) -> list:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted 2-epoch run (checkpoints every 10 steps) on an uneven synthetic dataset."""
    tmp = tmp_path_factory.mktemp("train")
    data = write_synthetic(tmp / "ds", SHARDS)
    assert main(["fit", "--config", _config(tmp, data, "A", [_recorder(tmp / "rec")])]) == 0
    return tmp, data


@pytest.mark.slow
def test_mid_epoch_resume_ends_with_the_same_weights(trained):
    tmp, data = trained
    final = _weights(_ckpt(tmp, "A", "epoch=1"))
    middle = _ckpt(tmp, "A", "step=20")  # epoch 1, after 6 of its 14 batches and one validation pass
    assert main(["fit", "--config", _config(tmp, data, "C", []), "--ckpt_path", str(middle)]) == 0
    resumed = _weights(_ckpt(tmp, "C", "epoch=1"))
    assert all(torch.allclose(resumed[k], final[k], rtol=1e-5, atol=1e-7) for k in final)
    # from the end of epoch 0 (after its validation pass) too
    assert main(["fit", "--config", _config(tmp, data, "E", []), "--ckpt_path", str(_ckpt(tmp, "A", "epoch=0"))]) == 0
    resumed = _weights(_ckpt(tmp, "E", "epoch=1"))
    assert all(torch.allclose(resumed[k], final[k], rtol=1e-5, atol=1e-7) for k in final)
    # without the probe generator's state the resumed run draws other probes and ends elsewhere
    assert main(["fit", "--config", _config(tmp, data, "D", []), "--random_state.enabled", "false", "--ckpt_path", str(middle)]) == 0
    other = _weights(_ckpt(tmp, "D", "epoch=1"))
    assert not all(torch.allclose(other[k], final[k], rtol=1e-5, atol=1e-7) for k in final)


@pytest.mark.slow
def test_fit_validates_on_val_and_test_reads_the_test_split(trained):
    tmp, data = trained
    rows = _rows(tmp / "rec" / "fit-rank0.json")
    orders = [[fs for stage, e, s, fs in rows if stage == "train" and e == epoch] for epoch in (0, 1)]
    assert orders[0] != orders[1]  # Lightning's epoch reaches the stream
    for epoch in (0, 1):
        train = [(s, f) for stage, e, s, fs in rows if stage == "train" and e == epoch for f in fs]
        assert sorted(train) == sorted(TRAIN)  # one rank: every training frame exactly once
        assert {(s, f) for stage, e, s, fs in rows if stage == "val" and e == epoch for f in fs} == VAL
    ckpt = str(_ckpt(tmp, "A", "epoch=1"))
    assert main(["test", "--config", _config(tmp, data, "T", [_recorder(tmp / "rec")]), "--ckpt_path", ckpt]) == 0
    assert {(s, f) for stage, e, s, fs in _rows(tmp / "rec" / "test-rank0.json") for f in fs} == TEST


@pytest.mark.slow
def test_mixed_batches_train_and_resume_mid_epoch_exactly(tmp_path):
    """data.mix_systems on molecules of 5 and 8 beads at 300 and 310 K: each epoch trains every
    training frame once, and a mid-epoch resume ends with the same weights."""
    data = write_synthetic(tmp_path / "ds", SHARDS, beads={"a": 5, "b": 8})
    assert main(["fit", "--config", _config(tmp_path, data, "A", [_recorder(tmp_path / "rec")], mix=True)]) == 0
    rows = _rows(tmp_path / "rec" / "fit-rank0.json")
    for epoch in (0, 1):
        assert sorted((s, f) for stage, e, s, fs in rows if stage == "train" and e == epoch for f in fs) == sorted(TRAIN)
    assert len({s for stage, e, s, fs in rows if stage == "train"}) == 2
    final = _weights(_ckpt(tmp_path, "A", "epoch=1"))
    # 13 batches an epoch: step 20 is batch 7 of epoch 1
    assert main(["fit", "--config", _config(tmp_path, data, "C", [], mix=True), "--ckpt_path", str(_ckpt(tmp_path, "A", "step=20"))]) == 0
    resumed = _weights(_ckpt(tmp_path, "C", "epoch=1"))
    assert all(torch.allclose(resumed[k], final[k], rtol=1e-5, atol=1e-7) for k in final)


def _ddp(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CGLIGHT_NUM_THREADS="1", CGLIGHT_PROGRESS="0")
    cmd = [sys.executable, "-m", "cglight.cli", *args, "--trainer.devices", "2", "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# batches of 10 in windows of 10: a: 82 training frames → 9 batches, b: 19 → 2; 11 in all, odd, so
# with two ranks each takes 6 and rank 1's last batch is the epoch's first one again ("pad")
DDP = {"workers": 1, "batch_size": 10, "window": 10}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A 2-epoch fit on two CPU ranks (gloo), one reading worker each, checkpoints every 10 steps."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = write_synthetic(tmp / "ds", SHARDS)  # shards of 37, 5, 60 and 23 frames
    r = _ddp(["fit", "--config", _config(tmp, data, "A", [_recorder(tmp / "rec")], **DDP)], tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, data


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ranks_share_every_frame_once_with_equal_batch_counts(ddp_run):
    tmp, _ = ddp_run
    ranks = [_rows(tmp / "rec" / f"fit-rank{i}.json") for i in (0, 1)]
    orders = []
    for epoch in (0, 1):
        batches = [[(s, tuple(fs)) for stage, e, s, fs in rows if stage == "train" and e == epoch] for rows in ranks]
        assert len(batches[0]) == len(batches[1]) == 6
        seen = collections.Counter((s, f) for s, fs in batches[0] + batches[1] for f in fs)
        assert set(seen) == TRAIN
        s, first = batches[0][0]
        assert batches[1][-1] == batches[0][0] and {k for k, n in seen.items() if n > 1} == {(s, f) for f in first}
        assert max(seen.values()) == 2
        orders.append(batches[0] + batches[1])
    assert orders[0] != orders[1]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ranks_resume_mid_epoch_exactly(ddp_run):
    tmp, data = ddp_run
    final = _weights(_ckpt(tmp, "A", "epoch=1"))
    # step 10 = batch 4 of 6 of epoch 1 on each rank
    r = _ddp(["fit", "--config", _config(tmp, data, "C", [], **DDP), "--ckpt_path", str(_ckpt(tmp, "A", "step=10"))], tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = _weights(_ckpt(tmp, "C", "epoch=1"))
    assert all(torch.allclose(resumed[k], final[k], rtol=1e-5, atol=1e-7) for k in final)
