"""What a new user sees around ``cglight simulate``: ``checkpoint: latest``, the estimate before the run,
a steady rate on the progress bar, and the closing summary with the next command."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cglight.cli import main
from cglight.newest_checkpoint import resolve
from cglight.simulate import run as simulate_run
from cglight.simulate.run import FrameRate, SimulateConfig, duration, ns_per_day, slowdown
from cglight.simulate.settings import LangevinSettings

ROOT = Path(__file__).resolve().parents[2]


def _two_runs(tmp: Path, ckpt: Path) -> tuple[Path, Path]:
    """``runs/cglight/version_{0,1}/checkpoints/last.ckpt`` under ``tmp``, version_0 written first."""
    paths = []
    for version, stamp in ((0, 1_000_000), (1, 2_000_000)):
        path = tmp / "runs" / "cglight" / f"version_{version}" / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        shutil.copyfile(ckpt, path)
        os.utime(path, (stamp, stamp))
        paths.append(path)
    return paths[0], paths[1]


def test_latest_is_the_newest_last_ckpt_by_time_not_by_name(tmp_path, monkeypatch, caplog, checkpoint):
    old, new = _two_runs(tmp_path, checkpoint)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="cglight"):
        assert resolve("latest") == "runs/cglight/version_1/checkpoints/last.ckpt"
    assert "checkpoint latest: runs/cglight/version_1/checkpoints/last.ckpt (the newest last.ckpt" in caplog.text
    os.utime(old, (3_000_000, 3_000_000))  # version_0 saved again since (a resumed run): it is the newest now
    assert resolve("latest") == "runs/cglight/version_0/checkpoints/last.ckpt"
    # latest:DIR looks at any depth under DIR (a fit with --trainer.default_root_dir elsewhere)
    other = tmp_path / "elsewhere" / "cglight" / "version_0" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    shutil.copyfile(checkpoint, other)
    assert resolve("latest:elsewhere") == str(Path("elsewhere") / "cglight/version_0/checkpoints/last.ckpt")
    assert resolve("some/file.ckpt") == "some/file.ckpt"  # a file name is taken as it is


@pytest.mark.parametrize("spec, says", [
    ("latest", "checkpoint latest: there is no last.ckpt in runs/cglight (at any depth) (no such directory; "),
    ("latest:empty", "checkpoint latest:empty: there is no last.ckpt in empty (at any depth) (no run of `cglight fit` saved one"),
    ("latest:", "checkpoint latest:: give a directory after 'latest:'"),
])
def test_latest_without_a_checkpoint_is_one_line(tmp_path, monkeypatch, capsys, tiny_dataset, spec, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["simulate", "--checkpoint", spec, "--starts", str(tiny_dataset), "--out", "sim"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cglight: error: {says}"), err
    assert "Traceback" not in "\n".join(err) and not (tmp_path / "sim").exists()


def test_the_bar_rate_moves_only_when_a_frame_completes_and_averages_from_the_first():
    rate = FrameRate(timestep_ps=0.002)
    assert rate.update(100, 10.0) is None  # the first completed frame: the clock starts (after the workers' start-up)
    first = rate.update(200, 12.0)  # 100 steps of 2 fs = 0.2 ps in 2 s: 0.2e-3 ns / 2 s × 86400 s/day
    assert first == pytest.approx(0.2e-3 / 2.0 * 86400)
    # a slower worker still at the same frame: other ticks (later wall time) do not move the value
    assert rate.update(200, 13.0) == first and rate.update(200, 13.9) == first
    # the next frame: the average over the whole run since the first frame (300 steps in 6 s), not the last interval
    assert rate.update(400, 16.0) == pytest.approx(0.6e-3 / 6.0 * 86400)
    assert rate.seconds_left(1000) == pytest.approx(600 * 6.0 / 300)  # 600 steps at 300 steps per 6 s


def test_rate_and_duration_units():
    assert ns_per_day(1_000_000, 86400.0, 0.001) == pytest.approx(1.0)  # 10⁶ steps of 1 fs = 1 ns, in one day
    assert [duration(x) for x in (0.4, 42, 185, 7620)] == ["0.4 s", "42 s", "3 min 05 s", "2 h 07 min"]


def test_estimate_comes_from_the_timed_warm_up_and_the_share_of_the_cores(monkeypatch):
    seen = {}

    def timed(model, job, untimed, steps):
        seen["args"] = (job.count, untimed, steps)
        return 0.02  # s per step

    monkeypatch.setattr(simulate_run, "time_steps", timed)
    monkeypatch.setattr(simulate_run, "cores", lambda: 2)
    monkeypatch.setattr(simulate_run, "_load", lambda: None)
    job = simulate_run.BlockJob(0, 0, 16, "m.ckpt", "cpu", LangevinSettings(1.0), 10, 10, 100, [])
    line = simulate_run.estimate(None, job, 9000, 1)  # 9000 steps × 0.02 s = 3 min
    assert line == ("estimated wall time: about 3 min 00 s for 9000 steps (4.32 ns/day per replica; from 30 timed warm-up steps "
                    "of 16 replica(s), not saved; the measured rate follows after the first frames)")
    assert seen["args"] == (16, *simulate_run.WARMUP_STEPS)
    assert "about 6 min 00 s" in simulate_run.estimate(None, job, 9000, 4)  # 4 workers on 2 cores share them
    monkeypatch.setattr(simulate_run, "_load", lambda: 4.0)  # this process and 3 other jobs: 2 workers get 2/5 of the cores
    assert "about 7 min 30 s for 9000 steps (1.73 ns/day per replica; " in simulate_run.estimate(None, job, 9000, 2)
    assert "the cores shared with other jobs (load average 4.0 on 2 cores)" in simulate_run.estimate(None, job, 9000, 2)


def test_slowdown_counts_the_workers_and_the_other_jobs():
    assert slowdown(2, 2, 1.0) == 1.0  # idle machine (the load is this process): a core each
    assert slowdown(1, 2, None) == 1.0 and slowdown(4, 2, None) == 2.0
    assert slowdown(2, 2, 4.75) == pytest.approx((2 + 3.75) / 2)


def test_simulate_with_latest_estimates_then_summarises(checkpoint, tiny_dataset, tmp_path, monkeypatch, caplog, capsys):
    _, new = _two_runs(tmp_path, checkpoint)
    monkeypatch.chdir(tmp_path)
    args = ["simulate", "--checkpoint", "latest", "--starts", str(tiny_dataset), "--out", "sim", "--replicas", "2",
            "--steps", "40", "--save_every", "20", "--flush_every", "20"]
    with caplog.at_level(logging.INFO, logger="cglight"):
        assert main(args) == 0
    lines = [r.getMessage() for r in caplog.records]
    settings = json.loads((tmp_path / "sim" / "simulation.json").read_text())["settings"]
    assert settings["checkpoint"] == "runs/cglight/version_1/checkpoints/last.ckpt"  # the file, recorded
    picked = next(i for i, line in enumerate(lines) if line.startswith("checkpoint latest: runs/cglight/version_1/"))
    estimated = next(i for i, line in enumerate(lines) if line.startswith("estimated wall time: about "))
    done = next(i for i, line in enumerate(lines) if line.startswith("simulated 0.04 ps per replica (40 steps of 1 fs) in "))
    assert picked < estimated < done
    assert lines[done].endswith(" ns/day per replica); ala2: 2 of 2 replicas ran to the end")
    assert lines[done + 1] == ("wrote sim/ala2/replica-000.dcd … replica-001.dcd (2 frames each, one every 0.02 ps) and "
                               "topology.pdb; sim/simulation.json and sim/restart.pt (rerun with more steps to continue)")
    assert sorted(p.name for p in (tmp_path / "sim" / "ala2").iterdir()) == ["replica-000.dcd", "replica-001.dcd", "topology.pdb"]
    assert lines[done + 2] == f"next: cglight evaluate --reference {tiny_dataset} --simulation sim --out evaluations/sim"
    # the same command again: the newest last.ckpt is the same file, the run is complete
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cglight"):
        assert main(args) == 0
    assert "sim holds 40 steps already" in caplog.text and "next: cglight evaluate" in caplog.text
    # another fit since: latest names another file, and continuing the run with it is refused, naming both
    os.utime(tmp_path / "runs/cglight/version_0/checkpoints/last.ckpt", (3_000_000, 3_000_000))
    capsys.readouterr()
    assert main([*args[:-6], "--steps", "60", "--save_every", "20", "--flush_every", "20"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "cglight: error: simulate: sim holds a run with different ['checkpoint'] ('latest' is runs/cglight/version_0/checkpoints/"
        f"last.ckpt now, sim was simulated with {new.relative_to(tmp_path)}: give that file to continue it); keep them or "
        "choose another 'out'")


def test_next_command_uses_the_systems_evaluate_config_when_there_is_one(tmp_path, monkeypatch):
    (tmp_path / "configs" / "evaluate").mkdir(parents=True)
    (tmp_path / "configs" / "evaluate" / "ala2.yaml").write_text("lag: 40\n")
    monkeypatch.chdir(tmp_path)
    assert simulate_run.evaluate_command("data/ala2", Path("simulations/ala2"), ["ala2"]) == \
        "cglight evaluate --config configs/evaluate/ala2.yaml --reference data/ala2 --simulation simulations/ala2"


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "simulate").glob("*.yaml")), ids=lambda p: p.name)
def test_simulate_configs_are_valid_and_the_short_ones_take_the_latest_checkpoint(path):
    config = yaml.safe_load(path.read_text())
    SimulateConfig(**config)  # every key is a setting
    assert config["steps"] % config["save_every"] == 0 and config["flush_every"] % config["save_every"] == 0
    assert config["checkpoint"] == "latest"
    if "production" not in path.name:  # the examples: a few minutes on 2 cores (measured, docs/simulate.md)
        assert config["steps"] * config["replicas"] <= 32 * 10_000


def test_latest_refuses_a_model_of_another_molecule(network_checkpoint, tmp_path, monkeypatch, capsys):
    """configs/quickstart.yaml and configs/ala4.yaml both write runs/cglight: after fitting one, `latest`
    in the other's simulate config would take a model of the wrong molecule."""
    from tests.data.synthetic import write_synthetic

    _, new = _two_runs(tmp_path, network_checkpoint)  # fitted on the tiny dataset's 'ala2'
    data = write_synthetic(tmp_path / "other", {"chain": [8]})
    monkeypatch.chdir(tmp_path)
    args = ["--starts", str(data), "--replicas", "2", "--steps", "20", "--save_every", "10", "--masses", "[12, 12, 12, 12, 12]"]
    assert main(["simulate", "--checkpoint", "latest", "--out", "a", *args]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "cglight: error: simulate: checkpoint latest is runs/cglight/version_1/checkpoints/last.ckpt, "
        f"a model fitted on ['ala2'], not on ['chain'] of {data}; give the checkpoint of a run on these data "
        "(--checkpoint PATH or latest:DIR)")
    assert not (tmp_path / "a").exists()
    assert main(["simulate", "--checkpoint", str(new), "--out", "b", *args]) == 0  # named, the model is taken as it is
