"""``cglight simulate`` against hostile or broken inputs: restart files that carry code, checkpoints
that name modules, a checkpoint swapped under a run, runs whose replicas all blew up, and runs
killed before their first flush."""

from __future__ import annotations

import json
import shutil
import sys

import mdtraj as md
import numpy as np
import pytest
import torch

from cglight.cli import main
from cglight.simulate import output as simulate_output
from cglight.simulate import run as simulate_run
from tests.energy.test_backbones import write_checkpoint_naming, write_side_effect_backbone


def _simulate(ckpt, data, out, steps, extra=()):
    args = ["simulate", "--checkpoint", str(ckpt), "--starts", str(data), "--out", str(out), "--replicas", "3",
            "--steps", str(steps), "--save_every", "20", "--flush_every", "40", "--seed", "5", "--workers", "1", *extra]
    return main(args)


def _trajectories(out, replicas=3):
    top = str(out / "ala2/topology.pdb")
    return [md.load(str(out / f"ala2/replica-{r:03d}.dcd"), top=top).xyz for r in range(replicas)]


class _RunsCode:
    """Unpickling it opens (creates) ``marker``: the stand-in for any code in a pickle."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.slow
def test_a_restart_file_carrying_code_is_refused_and_the_code_never_runs(checkpoint, tiny_dataset, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "code-ran.txt"
    assert _simulate(checkpoint, tiny_dataset, out, 40) == 0
    state = torch.load(out / "restart.pt", weights_only=True)  # the state is plain data
    state["systems"]["ala2"]["extra"] = _RunsCode(marker)
    torch.save(state, out / "restart.pt")
    capsys.readouterr()
    assert _simulate(checkpoint, tiny_dataset, out, 80) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert f"{out / 'restart.pt'}" in err and "plain data" in err and len(err.strip().splitlines()) == 1
    # a restart state missing a key is refused with one line naming the file
    del state["systems"]["ala2"]["extra"], state["systems"]["ala2"]["frames"]
    torch.save(state, out / "restart.pt")
    assert _simulate(checkpoint, tiny_dataset, out, 80) == 2
    err = capsys.readouterr().err
    assert f"{out / 'restart.pt'}" in err and "frames" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_run_refuses_to_continue_with_another_model_at_the_same_path(checkpoint, network_checkpoint, tiny_dataset, tmp_path,
                                                                      capsys):
    ckpt = tmp_path / "model.ckpt"
    shutil.copy(checkpoint, ckpt)
    assert _simulate(ckpt, tiny_dataset, tmp_path / "run", 40) == 0
    # the same model saved again (another epoch count): the same weights, the run continues
    saved = torch.load(ckpt, weights_only=True)
    saved["epoch"] = saved.get("epoch", 0) + 7
    torch.save(saved, ckpt)
    assert _simulate(ckpt, tiny_dataset, tmp_path / "run", 80) == 0
    # another model at that path: refused, nothing appended
    frames = [len(x) for x in _trajectories(tmp_path / "run")]
    shutil.copy(network_checkpoint, ckpt)
    capsys.readouterr()
    assert _simulate(ckpt, tiny_dataset, tmp_path / "run", 120) == 2
    err = capsys.readouterr().err
    assert "is not the model" in err and str(ckpt) in err and "choose another 'out'" in err
    assert [len(x) for x in _trajectories(tmp_path / "run")] == frames


@pytest.mark.slow
def test_a_checkpoint_naming_a_module_is_simulated_only_when_trusted(tiny_dataset, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported.txt"
    module = write_side_effect_backbone(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = tmp_path / "model.ckpt"
    write_checkpoint_naming(ckpt, f"{module}.Net")
    assert _simulate(ckpt, tiny_dataset, tmp_path / "refused", 40) == 2
    err = capsys.readouterr().err
    assert f"'{module}.Net'" in err and "trusted_backbones" in err
    assert not marker.exists() and module not in sys.modules and not (tmp_path / "refused").exists()
    assert _simulate(ckpt, tiny_dataset, tmp_path / "trusted", 40, ["--trusted_backbones", f"[{module}.Net]"]) == 0
    assert marker.exists() and [len(x) for x in _trajectories(tmp_path / "trusted")] == [2, 2, 2]


@pytest.mark.slow
def test_a_run_whose_replicas_all_stopped_fails_after_writing_what_it_has(checkpoint, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    capsys.readouterr()
    assert _simulate(checkpoint, tiny_dataset, out, 80, ["--timestep_fs", "7.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([e for e in err if "error" in e]) == 1
    line = next(e for e in err if "error" in e)
    assert "every replica of system 'ala2' stopped (3 of 3" in line and "step " in line and "timestep_fs" in line
    summary = json.loads((out / "simulation.json").read_text())["systems"]["ala2"]
    assert summary["alive"] == 0 and len(summary["stopped"]) == 3 and summary["steps"] == 80
    state = torch.load(out / "restart.pt", weights_only=True)
    assert state["systems"]["ala2"]["state"]["step"] == 80
    for r, count in enumerate(state["systems"]["ala2"]["frames"]):  # the DCD holds what the restart state counts, good frames
        dcd = out / f"ala2/replica-{r:03d}.dcd"
        assert count == 0 and not dcd.exists() or len(x := md.load(str(dcd), top=str(out / "ala2/topology.pdb")).xyz) == count
        assert count == 0 or np.isfinite(x).all()
    # rerunning the finished run still fails: it holds no live replica
    assert _simulate(checkpoint, tiny_dataset, out, 80, ["--timestep_fs", "7.5"]) == 2
    assert "every replica of system 'ala2' stopped" in capsys.readouterr().err


def test_the_summary_names_the_stopped_replicas():
    from cglight.simulate.langevin import LangevinState

    alive = torch.tensor([True, False, True, False])
    state = LangevinState(torch.zeros(4, 2, 3), torch.zeros(4, 2, 3), torch.zeros(4, 2, 3), 60, alive,
                          {1: "step 12: positions or forces became NaN/inf", 3: "step 40: failed the physical check"},
                          torch.zeros(4, dtype=torch.int64))
    assert simulate_run.stopped_summary("ala2", state) == (
        "2 of 4 replicas of system 'ala2' stopped: replica 1 at step 12: positions or forces became NaN/inf; "
        "replica 3 at step 40: failed the physical check")
    state.alive[:] = False
    state.failures.update({0: "step 3: positions or forces became NaN/inf", 2: "step 3: positions or forces became NaN/inf"})
    assert simulate_run.stopped_summary("ala2", state).startswith("every replica of system 'ala2' stopped (4 of 4")


class _Killed(BaseException):  # not an Exception: like a kill, nothing in cglight handles it
    pass


@pytest.mark.slow
def test_a_run_killed_before_its_first_flush_reruns_from_scratch(checkpoint, tiny_dataset, tmp_path, monkeypatch):
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "whole", 80) == 0
    real, calls = simulate_output.append_frames, []

    def dies_on_second_replica(*args, **kwargs):  # killed in the middle of the first flush
        calls.append(args[0])
        if len(calls) == 2:
            raise _Killed
        real(*args, **kwargs)

    monkeypatch.setattr(simulate_output, "append_frames", dies_on_second_replica)
    with pytest.raises(_Killed):
        _simulate(checkpoint, tiny_dataset, tmp_path / "cut", 80)
    monkeypatch.setattr(simulate_output, "append_frames", real)
    assert not (tmp_path / "cut/restart.pt").exists() and (tmp_path / "cut/ala2/replica-000.dcd").exists()
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "cut", 80) == 0
    for a, b in zip(_trajectories(tmp_path / "whole"), _trajectories(tmp_path / "cut"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_an_out_holding_foreign_files_is_refused_and_kept(checkpoint, tiny_dataset, tmp_path, monkeypatch, capsys):
    def killed(*args, **kwargs):
        raise _Killed

    monkeypatch.setattr(simulate_output, "append_frames", killed)
    with pytest.raises(_Killed):
        _simulate(checkpoint, tiny_dataset, tmp_path / "cut", 40)
    monkeypatch.undo()
    for foreign in ("notes.txt", "ala2/analysis.npy", "ala2/replica-007.dcd"):
        (tmp_path / "cut" / foreign).write_text("mine")
        capsys.readouterr()
        assert _simulate(checkpoint, tiny_dataset, tmp_path / "cut", 40) == 2
        assert foreign in capsys.readouterr().err
        assert (tmp_path / "cut" / foreign).read_text() == "mine"
        (tmp_path / "cut" / foreign).unlink()
    # the beginnings of a run with other settings are not taken over either
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "cut", 40, ["--seed", "6"]) == 2
    assert "seed" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    assert _simulate(checkpoint, tiny_dataset, tmp_path / "other", 40) == 2
    assert (tmp_path / "other/notes.txt").read_text() == "mine"


def test_a_worker_refuses_a_checkpoint_that_changed_after_the_parent_loaded_it(network_checkpoint):
    from cglight.errors import ConfigError
    from cglight.simulate.block import BlockJob, SystemSpec, integrate_block, load_energy_model, model_fingerprint
    from cglight.simulate.settings import LangevinSettings

    spec = SystemSpec("a", [0, 1], [[0, 1]], [12.0, 12.0], 300.0, (0, 0), 10.0)
    job = BlockJob(0, 0, 1, str(network_checkpoint), "cpu", LangevinSettings(), 1, 1, 1, [spec],
                   starts=[np.array([[[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]]], dtype=np.float32)])
    messages = []
    with pytest.raises(ConfigError, match="changed while the run was starting"):
        integrate_block(BlockJob(**{**job.__dict__, "model_sha256": "0" * 64}), messages.append)
    assert messages == []
    fingerprint = model_fingerprint(load_energy_model(str(network_checkpoint), "cpu"))
    integrate_block(BlockJob(**{**job.__dict__, "model_sha256": fingerprint}), messages.append)
    assert [m[0] for m in messages] == ["tick", "flush"]
