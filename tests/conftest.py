from __future__ import annotations

import os

os.environ.setdefault("CGLIGHT_PROGRESS", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A real alanine-dipeptide dataset of 40 frames (OpenMM, Reference platform), built once."""
    from cglight.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("data") / "ala2"
    config = PrepareConfig(frames=40, stride_steps=50, equilibration_ps=1.0, shard_frames=16, seed=3)
    return prepare_dataset(config, out)
