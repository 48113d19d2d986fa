"""``cglight evaluate`` on simulations that cannot be judged as they are: stopped replicas, too few
frames, another molecule, an occupied output directory, broken files. Each is refused with one
line (exit 2) before anything is written, or evaluated with the fault named."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from cglight.cli import main
from tests.evaluate.fake_simulation import REASON, fake_simulation


def _evaluate(data: Path, sim: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "--reference", str(data), "--simulation", str(sim), "--out", str(out), "--lag", "2",
                 "--bootstrap", "5", *extra])


def _error(capsys) -> str:
    """The one error line (a traceback or a second error line fails the test)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("cglight: error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


# --- stopped replicas, too few frames ---------------------------------------------------------


def test_a_simulation_whose_replicas_all_stopped_is_refused_naming_them(tiny_dataset, tmp_path, capsys):
    """Every replica blew up after 10 saved frames: those frames are the approach to a blow-up, not
    the model's ensemble (this once gave KL 8.72, exit 0, and no word of the stopped replicas)."""
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", frames=10, stopped=(0, 1, 2, 3))
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval") == 2
    line = _error(capsys)
    assert "every replica of system 'ala2' stopped" in line and "replica 0" in line and "replica 3" in line and REASON in line
    assert not (tmp_path / "eval").exists()


def test_stopped_replicas_are_named_in_the_log_metrics_and_report(tiny_dataset, tmp_path, capsys):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", stopped=(1, 3))
    out = tmp_path / "eval"
    assert _evaluate(tiny_dataset, sim, out) == 0
    m = json.loads((out / "metrics.json").read_text())["systems"]["ala2"]
    assert m["replicas"] == {"model": 4, "stopped": {"1": REASON, "3": REASON}}
    named = f"2 of 4 replicas stopped (replica 1 at {REASON}; replica 3 at {REASON})"
    assert any(named in w for w in m["warnings"])
    assert named in (out / "report.md").read_text()
    assert named in capsys.readouterr().err


def test_a_model_giving_one_bootstrap_block_is_refused(tiny_dataset, tmp_path, capsys):
    """One block: every bootstrap draw is that block, the interval has zero width and says nothing."""
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", replicas=1, frames=30)
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval", "--block_frames", "30") == 2
    line = _error(capsys)
    assert "the model of system 'ala2' gives 1 bootstrap block of 30 frames" in line and "at least 2" in line
    assert not (tmp_path / "eval").exists()
    # two blocks: evaluated (with the few-blocks caution)
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval", "--block_frames", "15") == 0


def test_a_simulation_with_no_frames_after_skip_frames_is_refused(tiny_dataset, tmp_path, capsys):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", replicas=2, frames=10)
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval", "--skip_frames", "10") == 2
    assert "no trajectory frames after skip_frames=10" in _error(capsys)


def test_a_simulation_without_simulation_json_is_evaluated_with_a_caution(tiny_dataset, tmp_path):
    """DCDs from elsewhere, laid out as simulate lays them out, need no simulation.json."""
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", record=False)
    out = tmp_path / "eval"
    assert _evaluate(tiny_dataset, sim, out) == 0
    m = json.loads((out / "metrics.json").read_text())["systems"]["ala2"]
    assert m["replicas"] == {"model": 4, "stopped": None} and m["temperature"]["model"] is None
    assert any("no simulation.json" in w for w in m["warnings"])


# --- another molecule ---------------------------------------------------------------------------


def test_a_simulation_of_another_bead_count_is_refused(tiny_dataset, tmp_path, capsys):
    """A 6-bead simulation against the 5-bead reference (5 against 3 once gave KL 17.2, exit 0)."""
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", extra_beads=1)
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval") == 2
    line = _error(capsys)
    assert str(sim / "ala2" / "topology.pdb") in line and str(tiny_dataset / "manifest.json") in line
    assert "6 beads" in line and "has 5" in line
    assert not (tmp_path / "eval").exists()


def test_a_simulation_with_other_bead_names_is_refused(tiny_dataset, tmp_path, capsys):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim", bead_names=["N", "C", "CA", "N", "C"])
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval") == 2
    line = _error(capsys)
    assert "beads N C CA N C" in line and "beads C N CA C N" in line


# --- the output directory -------------------------------------------------------------------------


def test_a_non_empty_output_directory_is_refused_before_anything_is_read(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # the simulation does not even exist: the output directory is checked first
    assert _evaluate(tiny_dataset, tmp_path / "no-such-sim", out) == 2
    line = _error(capsys)
    assert str(out) in line and "overwrite" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_evaluation(tiny_dataset, tmp_path):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text('{"stale": true}')
    (out / "report.md").write_text("stale")
    assert _evaluate(tiny_dataset, sim, out) == 2
    assert (out / "metrics.json").read_text() == '{"stale": true}'
    assert _evaluate(tiny_dataset, sim, out, "--overwrite", "true") == 0
    assert "ala2" in json.loads((out / "metrics.json").read_text())["systems"]
    assert "stale" not in (out / "report.md").read_text()


def test_an_overwrite_that_fails_midway_leaves_no_earlier_metrics_looking_current(tiny_dataset, tmp_path, monkeypatch, capsys):
    from cglight.evaluate import plots

    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    out = tmp_path / "eval"
    assert _evaluate(tiny_dataset, sim, out) == 0
    assert (out / "metrics.json").is_file() and (out / "ala2" / "tic1.png").is_file()

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(plots, "free_energy_1d", broken)
    assert _evaluate(tiny_dataset, sim, out, "--overwrite", "true") == 1  # a bug: its traceback, exit 1
    assert "RuntimeError: plotting failed" in capsys.readouterr().err
    assert not (out / "metrics.json").exists() and not (out / "report.md").exists()
    assert not (out / "ala2" / "tic1.png").exists()  # the earlier picture is not passed off as this run's


def test_an_empty_output_directory_is_used(tiny_dataset, tmp_path):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    (tmp_path / "eval").mkdir()
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval") == 0


# --- broken inputs ---------------------------------------------------------------------------------


def _truncate(path: Path, cut: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])


def _other_bead_count_dcd(sim: Path, data: Path) -> None:
    other = fake_simulation(data, sim.parent / "six", extra_beads=1)
    (sim / "ala2/replica-002.dcd").write_bytes((other / "ala2/replica-002.dcd").read_bytes())


UNREADABLE = "replica-001.dcd cannot be read as a DCD"
BROKEN = {
    "empty DCD": (lambda sim, data: (sim / "ala2/replica-001.dcd").write_bytes(b""), UNREADABLE),
    "garbage DCD": (lambda sim, data: (sim / "ala2/replica-001.dcd").write_bytes(b"\x07" * 3000), UNREADABLE),
    "truncated DCD": (lambda sim, data: _truncate(sim / "ala2/replica-001.dcd", 10),
                      "replica-001.dcd is truncated: its header says 40 frames, the file holds 39 complete ones"),
    "DCD of 6 beads": (_other_bead_count_dcd, "replica-002.dcd cannot be read as a DCD of 5 beads"),
    "empty topology": (lambda sim, data: (sim / "ala2/topology.pdb").write_text(""), "topology.pdb holds no beads"),
    "bad simulation.json": (lambda sim, data: (sim / "simulation.json").write_text("{"), "simulation.json is not valid JSON"),
    "simulation.json list": (lambda sim, data: (sim / "simulation.json").write_text("[]"),
                             "simulation.json is not a cglight simulate record"),
}


@pytest.mark.parametrize("fault", BROKEN)
def test_broken_simulation_files_are_one_line_errors(tiny_dataset, tmp_path, capsys, fault):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    breakage, expected = BROKEN[fault]
    breakage(sim, tiny_dataset)
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval") == 2
    line = _error(capsys)
    assert expected in line and str(sim) in line
    assert not (tmp_path / "eval").exists()


def test_a_missing_simulation_directory_is_one_line(tiny_dataset, tmp_path, capsys):
    assert _evaluate(tiny_dataset, tmp_path / "nope", tmp_path / "eval") == 2
    assert f"simulation directory {tmp_path / 'nope'} does not exist" in _error(capsys)


def test_an_unknown_system_is_one_line(tiny_dataset, tmp_path, capsys):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    assert _evaluate(tiny_dataset, sim, tmp_path / "eval", "--systems", "[ala9]") == 2
    assert "systems ['ala9'] are not in both" in _error(capsys)


def test_the_pipeline_refuses_model_frames_of_another_bead_count(tmp_path):
    """Behind the topology check: pairwise distances of the reference's pairs exist in a larger
    model too, so a mismatch would otherwise project silently."""
    import numpy as np

    from cglight.errors import ConfigError
    from cglight.evaluate.run import EvaluateConfig, evaluate_system

    rng = np.random.default_rng(0)
    ref, mod = [rng.normal(size=(200, 4, 3))], [rng.normal(size=(200, 5, 3))]
    info = SimpleNamespace(temperature=300.0, bonds=[[0, 1], [1, 2], [2, 3]], n_beads=4, bead_names=["A", "B", "C", "D"])
    with pytest.raises(ConfigError, match=r"different bead counts \[4, 5\]"):
        evaluate_system("toy", info, ref, mod, EvaluateConfig(lag=2, bootstrap=5), tmp_path / "toy")
    assert not (tmp_path / "toy").exists()
