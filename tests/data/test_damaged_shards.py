"""Damaged shards: a changed value behind a stale checksum, an absurd frame behind a valid one, a truncated file.

Each is refused with one line naming the file (and the frame), before anything trains on it or
evaluates it. The oracles are the damage the tests do themselves: which file, frame and value.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from cglight.cli import main
from cglight.data import CGDataModule, ShardDataset, keys, read_manifest
from cglight.data.calibration import check_calibration_frames
from cglight.data.shards import write_shard
from cglight.errors import DatasetError
from tests.data.synthetic import write_synthetic
from tests.data.test_training_stream import _config

# one system, 40 frames: 32 train (shard 0: 0-19, shard 1: 0-11), 4 validation, 4 test
SHARDS = {"a": [20, 20]}
SHARD = "a/shard-00001.h5"
FRAME = 3  # a training frame of shard 1


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("damaged") / "ds", SHARDS)


@pytest.fixture
def data(pristine, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(pristine, dst)
    return dst


def _fit(tmp: Path, data: Path, *extra: str) -> int:
    return main(["fit", "--config", _config(tmp, data, "run", []), "--trainer.max_epochs", "1", *extra])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("cglight: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _rewrite(data: Path, field: str, frame: int, value: float) -> None:
    """Rewrite shard 1 through the writer with one value of ``frame`` changed, and record its new checksum."""
    with h5py.File(data / SHARD, "r") as f:
        arrays = {name: f[name][:] for name in f}
    arrays[field][frame].flat[1] = value
    digest = write_shard(data / SHARD, arrays)
    raw = json.loads((data / "manifest.json").read_text())
    raw["shards"][1]["sha256"] = digest
    (data / "manifest.json").write_text(json.dumps(raw))


def _truncate(data: Path) -> Path:
    path = data / SHARD
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


# ---------------------------------------------------------------- 1. a value changed after the checksum was written
def _flip(data: Path) -> float:
    """One force value times 256 (an exponent bit flipped, as 19.45 → 4980), the checksum left as it was."""
    with h5py.File(data / SHARD, "r+") as f:
        f[keys.FORCES][FRAME, 1, 0] *= 256.0
        return float(f[keys.FORCES][FRAME, 1, 0])


def test_training_refuses_a_shard_changed_after_its_checksum_naming_it(data, tmp_path, capsys):
    _flip(data)
    assert _fit(tmp_path, data) == 2
    line = _one_line_error(capsys)
    assert f"{data / SHARD}: sha256" in line and "shards[1].sha256" in line and "data.verify_checksums" in line
    assert not list(tmp_path.glob("run/**/*.ckpt"))


def test_readers_verify_by_default_and_read_with_verification_off(data):
    flipped = _flip(data)
    with pytest.raises(DatasetError, match=rf"{data / SHARD}: sha256 .* does not match the manifest's shards\[1\]\.sha256"):
        ShardDataset(data)
    with pytest.raises(DatasetError, match="sha256"):
        CGDataModule(str(data), num_workers=0).setup()
    dm = CGDataModule(str(data), num_workers=0, verify_checksums=False)
    dm.setup()
    assert float(dm.dataset[20 + FRAME][keys.FORCES][1, 0]) == flipped


# ---------------------------------------------------------------- 2. an absurd frame behind a valid checksum
@pytest.mark.parametrize("field", [keys.FORCES, keys.HESSIAN])
def test_calibration_refuses_a_frame_250_times_the_others_naming_file_and_frame(data, tmp_path, capsys, field):
    with h5py.File(data / SHARD, "r") as f:
        rms = float(np.sqrt(np.mean(f[field][:].astype(np.float64) ** 2)))
    _rewrite(data, field, FRAME, 250 * rms)
    ShardDataset(data)  # the checksum matches: only the values give it away
    assert _fit(tmp_path, data) == 2
    line = _one_line_error(capsys)
    assert f"{data / SHARD}: frame {FRAME}: '{field}'" in line and "median" in line and "data.calibration_outliers" in line


def test_a_frame_whose_second_moment_overflows_is_named(data, tmp_path, capsys):
    """1e30 is a finite float32 whose square is not: the normalisation would be inf."""
    _rewrite(data, keys.FORCES, FRAME, 1e30)
    assert _fit(tmp_path, data) == 2
    line = _one_line_error(capsys)
    assert f"{data / SHARD}: frame {FRAME}: 'forces'" in line and "target second moment" not in line


def test_calibration_outliers_warn_reads_on_and_names_the_frame(data, caplog):
    _rewrite(data, keys.FORCES, FRAME, 1000.0)
    dm = CGDataModule(str(data), batch_size=8, num_workers=0, calibration_outliers="warn")
    with caplog.at_level(logging.WARNING, logger="cglight"):
        frames = sum(len(b[keys.POS]) for b in dm.calibration_batches(1024))
    assert frames == 32
    assert f"{data / SHARD}: frame {FRAME}: 'forces'" in caplog.text
    with pytest.raises(DatasetError, match=rf"{data / SHARD}: frame {FRAME}: 'forces'"):
        list(CGDataModule(str(data), batch_size=8, num_workers=0).calibration_batches(1024))


def test_a_clean_dataset_calibrates_without_a_word(data, caplog):
    with caplog.at_level(logging.WARNING, logger="cglight"):
        frames = sum(len(b[keys.POS]) for b in CGDataModule(str(data), batch_size=8, num_workers=0).calibration_batches(1024))
    assert frames == 32 and "median" not in caplog.text


def test_check_calibration_frames_flags_only_frames_far_above_the_median():
    origins = [("s.h5", i) for i in range(21)]
    quiet = {"forces": np.r_[np.ones(20), 50.0]}
    assert check_calibration_frames(quiet, origins) == []
    loud = {"forces": np.r_[np.ones(20), 150.0]}
    (outlier,) = check_calibration_frames(loud, origins)
    assert (outlier.path, outlier.frame, outlier.field) == ("s.h5", 20, "forces") and outlier.ratio == pytest.approx(150.0)
    assert "s.h5: frame 20: 'forces'" in str(outlier)
    overflow = {"forces": np.r_[np.ones(20), np.inf]}
    assert [o.frame for o in check_calibration_frames(overflow, origins)] == [20]
    few = {"forces": np.array([1.0, 1000.0])}
    assert check_calibration_frames(few, origins[:2]) == []  # two frames have no robust median


# ---------------------------------------------------------------- 3. a truncated shard
def test_data_info_reports_a_truncated_shard_in_one_line(data, capsys):
    path = _truncate(data)
    assert main(["data", "info", str(data)]) == 2
    assert f"{path}: truncated or not an HDF5 file" in _one_line_error(capsys)


def test_evaluate_reports_a_truncated_reference_shard_in_one_line(data, tmp_path, capsys):
    path = _truncate(data)
    sim = tmp_path / "sim"
    (sim / "a").mkdir(parents=True)
    (sim / "simulation.json").write_text(json.dumps({"systems": {}}))
    (sim / "a" / "topology.pdb").write_text("")
    out = tmp_path / "eval"
    assert main(["evaluate", "--reference", str(data), "--simulation", str(sim), "--out", str(out)]) == 2
    assert f"{path}: truncated or not an HDF5 file" in _one_line_error(capsys)
    assert not out.exists()


def test_training_reports_a_truncated_shard_in_one_line(data, tmp_path, capsys):
    path = _truncate(data)
    assert _fit(tmp_path, data) == 2
    assert f"{path}: truncated or not an HDF5 file" in _one_line_error(capsys)


def test_simulate_starts_from_a_truncated_shard_are_refused_naming_it(data):
    from cglight.data.reader import start_frames

    path = _truncate(data)
    with pytest.raises(DatasetError, match=rf"{path}: truncated or not an HDF5 file"):
        start_frames(data, read_manifest(data), "a", 40, 0)  # 40 replicas of 40 frames: shard 1 is read
