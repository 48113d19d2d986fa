"""The training's simulation check takes its Langevin settings from ``cglight simulate``'s, validated at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from cglight.cli import main
from cglight.errors import ConfigError

QUICKSTART = str(Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml")


@pytest.mark.parametrize("key, value", [("timestep_fs", 0.0), ("timestep_fs", float("nan")), ("friction_per_ps", -1.0)])
def test_a_bad_langevin_setting_is_refused_when_the_callback_is_built(key, value):
    """Once accepted, and found out only at the first check, epochs into a training."""
    from cglight.training.simulation_check import SimulationValidation

    with pytest.raises(ConfigError, match=f"^simulation_check: '{key}' must be"):
        SimulationValidation(**{key: value})


def test_a_bad_timestep_stops_fit_before_training_on_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code = main(["fit", "--config", QUICKSTART, "--data.path", str(tmp_path / "empty"), "--data.build", "null",
                 "--simulation_check.timestep_fs", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == "cglight: error: simulation_check: 'timestep_fs' must be a positive number, got 0.0", err[-3:]


def test_the_defaults_and_the_bond_factor_are_simulates():
    """Oracle: ``cglight simulate``'s own defaults (its config dataclass), not a second copy of the numbers."""
    from cglight.training.simulation_check import SimulationValidation
    from cglight.simulate.config import SimulateConfig

    simulate = SimulateConfig()
    check = SimulationValidation().langevin
    assert (check.timestep_fs, check.friction_per_ps) == (simulate.timestep_fs, simulate.friction_per_ps)
    assert check.max_bond_factor == simulate.max_bond_factor
    assert check.timestep_ps == simulate.timestep_fs / 1000
