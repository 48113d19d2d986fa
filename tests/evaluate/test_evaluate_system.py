"""The evaluation pipeline on synthetic ensembles whose answer is known, and its input checks."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from cglight.cli import main
from cglight.evaluate.run import EvaluateConfig, evaluate_system


def _two_state_chain(rng, frames: int, states: tuple[int, ...], stay: float = 0.99) -> np.ndarray:
    """Four beads; bead 3 sits 5 Å (state 0) or 9 Å (state 1) from bead 0, switching rarely
    between the allowed ``states``; every bead jitters by 0.2 Å."""
    s, seq = states[0], []
    for _ in range(frames):
        if rng.random() > stay:
            s = states[rng.integers(len(states))]
        seq.append(s)
    base = np.zeros((frames, 4, 3))
    base[:, 1, 0], base[:, 2, 0], base[:, 2, 1] = 3.8, 3.8, 3.8
    base[:, 3, 0] = np.where(np.asarray(seq) == 0, 5.0, 9.0)
    base[:, 3, 1] = 1.0
    return base + rng.normal(0, 0.2, base.shape)


def test_kl_in_the_pipeline_is_reference_first(tmp_path):
    """The reference visits two states equally, the model only one: KL(reference ‖ model) is
    large (half the reference's weight where the model has none), the reverse direction would be
    about ln 2 (the model's one state holds half the reference's weight). JS is bounded by ln 2."""
    rng = np.random.default_rng(0)
    ref = [_two_state_chain(rng, 3000, (0, 1)) for _ in range(4)]
    mod = [_two_state_chain(rng, 3000, (0,)) for _ in range(4)]
    info = SimpleNamespace(temperature=300.0, bonds=[[0, 1], [1, 2], [2, 3]], n_beads=4, bead_names=["A", "B", "C", "D"])
    m = evaluate_system("toy", info, ref, mod, EvaluateConfig(lag=5, bootstrap=20), tmp_path / "toy")
    assert m["kl_tic1"]["plugin"] > 3.0  # ~ 0.5 ln(0.5 / 1e-6-smoothed empty bins)
    assert 0.2 < m["js_tic1"]["plugin"] <= math.log(2)
    assert m["transitions_tic1"]["model"] == 0 and m["transitions_tic1"]["reference"] > 20
    boot = m["bootstrap"]
    assert boot["model"]["tau_tic1_frames"] < 5 < boot["reference"]["tau_tic1_frames"]  # the model never switches
    assert boot["reference"]["block_frames"] == math.ceil(3 * boot["reference"]["tau_tic1_frames"])


def test_the_model_is_resampled_in_its_own_blocks(tmp_path):
    """The reference switches states every few frames (short blocks suffice); each model
    trajectory stays in one state for good, half in each: its frames are only as independent as
    its trajectories, so its interval must come from resampling whole trajectories (wide), not
    from the reference's short blocks (which would make it look sharp)."""
    rng = np.random.default_rng(1)
    ref = [_two_state_chain(rng, 2000, (0, 1), stay=0.5) for _ in range(4)]
    mod = [_two_state_chain(rng, 2000, (k % 2,)) for k in range(4)]
    info = SimpleNamespace(temperature=300.0, bonds=[[0, 1], [1, 2], [2, 3]], n_beads=4, bead_names=["A", "B", "C", "D"])
    m = evaluate_system("toy", info, ref, mod, EvaluateConfig(lag=1, bootstrap=50), tmp_path / "toy")
    boot = m["bootstrap"]
    assert boot["reference"]["block_frames"] < 20 and boot["model"]["block_frames"] >= 2000  # whole trajectories
    assert m["js_tic1"]["plugin"] < 0.01  # both half and half
    assert m["js_tic1"]["high"] - m["js_tic1"]["low"] > 0.1  # a draw of 4 trajectories may hold one state only


def test_every_divergence_stands_next_to_its_finite_sample_floor(tmp_path):
    """A perfect model (the same two-state process, sampled as 16 short runs) lands inside its floor;
    a model missing a state lands far above it; the plug-in interval has the bootstrap's widths."""
    rng = np.random.default_rng(2)
    ref = [_two_state_chain(rng, 3000, (0, 1)) for _ in range(4)]
    perfect = [_two_state_chain(rng, 300, (0, 1)) for _ in range(16)]
    missing = [_two_state_chain(rng, 300, (0,)) for _ in range(16)]
    info = SimpleNamespace(temperature=300.0, bonds=[[0, 1], [1, 2], [2, 3]], n_beads=4, bead_names=["A", "B", "C", "D"])
    config = EvaluateConfig(lag=5, bootstrap=20, floor_draws=60)
    good = evaluate_system("toy", info, ref, perfect, config, tmp_path / "good")
    bad = evaluate_system("toy", info, ref, missing, config, tmp_path / "bad")
    for key in ("kl_tic1", "js_tic1", "kl_tic12"):
        floor = good[key]["floor"]
        assert floor["frames"] == 4800 and floor["trajectories"] == 16 and floor["draws"] == 60
        assert floor["low"] <= good[key]["plugin"] <= floor["high"], key
        assert bad[key]["plugin"] > 2 * bad[key]["floor"]["high"], key
        m = good[key]
        assert m["plugin_high"] - m["plugin"] == pytest.approx(m["high"] - m["value"])
        assert m["plugin_low"] == pytest.approx(max(0.0, m["plugin"] - (m["value"] - m["low"])))
    assert good["kl_tic1"]["floor"]["median"] > 0.005  # a perfect model does not score zero
    assert "floor" not in evaluate_system("toy", info, ref, perfect, EvaluateConfig(lag=5, bootstrap=5, floor_draws=0),
                                                tmp_path / "off")["kl_tic1"]


def _fake_simulation(tmp_path, name: str):
    sim = tmp_path / "sim"
    (sim / name).mkdir(parents=True)
    (sim / "simulation.json").write_text(json.dumps({"systems": {}}))
    (sim / name / "topology.pdb").write_text("")
    return sim


def test_evaluate_refuses_a_lag_longer_than_the_reference_and_writes_nothing(tiny_dataset, tmp_path, capsys):
    sim, out = _fake_simulation(tmp_path, "ala2"), tmp_path / "eval"
    assert main(["evaluate", "--reference", str(tiny_dataset), "--simulation", str(sim), "--out", str(out), "--lag", "100"]) == 2
    err = capsys.readouterr().err
    assert "'lag' 100 frames" in err and "system 'ala2'" in err and "has 40 frames" in err
    assert not out.exists()


@pytest.mark.parametrize("key", ["skip_frames", "block_frames"])
def test_evaluate_refuses_negative_counts(tiny_dataset, tmp_path, capsys, key):
    sim = _fake_simulation(tmp_path, "ala2")
    assert main(["evaluate", "--reference", str(tiny_dataset), "--simulation", str(sim), "--out", str(tmp_path / "e"), f"--{key}", "-3"]) == 2
    assert f"'{key}' must be >= 0" in capsys.readouterr().err
