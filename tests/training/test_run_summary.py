"""The end of ``cglight fit``: checkpoints, final validation losses with units, the next command; and the
loss normalisation with its units."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pytest
import torch

from cglight.cli import main
from cglight.training.run_summary import fit_summary, losses_line
from tests.test_cli import _ckpt_config


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


@pytest.mark.slow
def test_fit_ends_with_checkpoints_losses_and_the_next_command(tmp_path, monkeypatch, caplog):
    from tests.data.synthetic import write_synthetic

    monkeypatch.chdir(tmp_path)
    data = write_synthetic(tmp_path / "ds", {"a": [24]})
    with caplog.at_level(logging.INFO, logger="cglight"):
        assert main(["fit", "--config", _ckpt_config(tmp_path, data, "S"), "--trainer.max_epochs", "1"]) == 0
    lines = _messages(caplog)
    run = tmp_path / "S" / "cglight" / "version_0"
    last, (best,) = run / "checkpoints" / "last.ckpt", list((run / "checkpoints").glob("best-*.ckpt"))
    with open(run / "metrics.csv") as f:  # the logger's own record of the last validation pass
        val = [row for row in csv.DictReader(f) if row.get("val/force")][-1]
    end = lines.index(f"run directory {run}: metrics.csv, config.yaml")  # loss curves off, no priors in this config
    assert lines[end + 1] == (f"checkpoints: {last} (the last step); {best} (the lowest val_loss, val_loss "
                              f"{float(val['val_loss']):.3g})")
    g = {k: f"{float(v):.3g}" for k, v in val.items() if v}
    assert lines[end + 2] == (
        "final validation losses, normalised (1 = as bad as predicting zero): "
        f"force {g['val/force']} (raw {g['val/force_raw']} (kcal/mol/Å)²), "
        f"hvp_cov {g['val/hvp_cov']} (raw {g['val/hvp_cov_raw']} (kcal/mol/Å²)²); val_loss {g['val_loss']} (weighted sum)")
    assert lines[end + 3] == f"next: cglight simulate --checkpoint {last} --starts {data} --out simulations/version_0"
    assert end + 3 == len(lines) - 1  # the last words of the command
    # the normalisation, with units: the values the checkpoint stores
    state = torch.load(last, weights_only=True, map_location="cpu")["state_dict"]
    scales = {name: float(v) for name in ("force", "hvp_cov")
              for k, v in state.items() if re.fullmatch(rf".*terms\.{name}\.scale", k)}
    line = next(m for m in lines if m.startswith("loss normalisation"))
    assert line.endswith(f": force: {scales['force']:.4g} (kcal/mol/Å)², hvp_cov: {scales['hvp_cov']:.4g} (kcal/mol/Å²)²")


def test_summary_points_at_checkpoint_latest_for_a_run_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "simulate").mkdir(parents=True)
    (tmp_path / "configs" / "simulate" / "ala2.yaml").write_text("checkpoint: latest\n")
    last = Path("runs/cglight/version_3/checkpoints/last.ckpt")
    lines = fit_summary(last, "", None, "runs/cglight/version_3", None, "data/ala2", ["ala2"])  # no such run directory here
    assert lines[-1] == ("next: cglight simulate --config configs/simulate/ala2.yaml --checkpoint "
                         "runs/cglight/version_3/checkpoints/last.ckpt --starts data/ala2 (or `checkpoint: latest`, "
                         "as configs/simulate/*.yaml have it: the newest last.ckpt, this one)")
    elsewhere = fit_summary(Path("other/cglight/version_0/checkpoints/last.ckpt"), "", None, None, None, "d", ["a", "b"])
    assert elsewhere == ["checkpoints: other/cglight/version_0/checkpoints/last.ckpt (the last step)",
                         "next: cglight simulate --checkpoint other/cglight/version_0/checkpoints/last.ckpt --starts d "
                         "--out simulations/version_0"]


def test_losses_line_without_validation_is_none():
    assert losses_line({}, {"force": "(kcal/mol/Å)²"}) is None
