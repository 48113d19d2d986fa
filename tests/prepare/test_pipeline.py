from __future__ import annotations

import h5py
import numpy as np
import pytest

from cglight.errors import ConfigError
from cglight.prepare import PrepareConfig, prepare_dataset


def _arrays(root):
    with h5py.File(root / "ala2" / "shard-00000.h5", "r") as f:
        return {k: f[k][:] for k in ("pos", "forces", "hessian")}


def test_prepare_is_reproducible_from_its_seed(tmp_path):
    small = dict(frames=4, stride_steps=20, equilibration_ps=0.05)
    a = _arrays(prepare_dataset(PrepareConfig(seed=5, **small), tmp_path / "a"))
    b = _arrays(prepare_dataset(PrepareConfig(seed=5, **small), tmp_path / "b"))
    c = _arrays(prepare_dataset(PrepareConfig(seed=6, **small), tmp_path / "c"))
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["pos"], c["pos"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"frames": 0}, "'frames' must be >= 1"),
        ({"platform": "CPU", "hessian_eps_nm": 1e-5}, "hessian_eps_nm >= 3e-4"),
        ({"mapping": "martini"}, "unknown mapping 'martini'; use one of ca, backbone, residue-com, backbone-residue or the path"),
        ({"molecule": "ubiquitin"}, "unknown molecule 'ubiquitin'; available: alanine-dipeptide, tetra-alanine, chignolin, trpcage, villin"),
        ({"solvent": "tip3p"}, "unknown solvent 'tip3p'; available: vacuum, implicit-obc"),
        ({"platform": "Metal"}, "OpenMM platform 'Metal' is not available"),
    ],
)
def test_bad_config_fails_cleanly_and_leaves_nothing(tmp_path, change, message):
    config = PrepareConfig(**{"frames": 2, "stride_steps": 5, "equilibration_ps": 0.0, **change})
    with pytest.raises(ConfigError, match=message):
        prepare_dataset(config, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_with_another_system_in_the_same_process(tmp_path):
    small = dict(frames=2, stride_steps=5, equilibration_ps=0.0, workers=1)
    a = prepare_dataset(PrepareConfig(solvent="implicit-obc", **small), tmp_path / "ds")
    forces_obc = _arrays(a)["forces"]
    b = prepare_dataset(PrepareConfig(solvent="vacuum", **small), tmp_path / "ds", overwrite=True)
    fresh = prepare_dataset(PrepareConfig(solvent="vacuum", **small), tmp_path / "fresh")
    assert np.array_equal(_arrays(b)["forces"], _arrays(fresh)["forces"])  # no stale OpenMM context reused
    assert not np.array_equal(_arrays(b)["forces"], forces_obc)
