"""The console script, end to end: prepare, fit (LightningCLI), plugins, and its errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cglight.cli import main
from cglight.data import keys

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
SMALL = ["--model.backbone.embedding_dimension", "16", "--model.backbone.num_layers", "1", "--data.batch_size", "8"]


def _run(args, cwd):
    env = dict(os.environ, CGLIGHT_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "cglight.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _metrics(root: Path) -> list[dict]:
    (path,) = root.glob("runs/cglight/version_*/metrics.csv")
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_smoke_fit_through_the_cli_then_load_checkpoint(tiny_dataset, tmp_path):
    r = _run(["fit", "--config", QUICKSTART, "--data.path", str(tiny_dataset), "--data.build", "null",
              "--trainer.max_epochs", "1", "--trainer.log_every_n_steps", "1", *SMALL], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _metrics(tmp_path)
    train = [row for row in rows if row.get("train/force")]
    val = [row for row in rows if row.get("val/hvp_cov")]
    assert len(train) == 5 and len(val) == 1  # 36 training frames in batches of 8 (last one partial); one validation pass
    for key in ("train/force", "train/hvp_cov", "train/hvp_cov_raw", "train/hvp_cov/target_sq"):
        assert float(train[0][key]) > 0, key
    assert 0 < float(val[0]["val/force"]) < 10 and 0 < float(val[0]["val/hvp_cov"]) < 10
    ckpt = tmp_path / "runs/cglight/version_0/checkpoints/last.ckpt"
    for name in ("loss_curves.png", "priors.png"):
        png = tmp_path / "runs/cglight/version_0" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    from cglight import CGPotential, ShardDataset

    model = CGPotential.load_from_checkpoint(ckpt).eval()
    assert model.hparams.losses == {"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 4}}
    assert model.objective.calibrated and model.fitted_to_data
    assert set(model.core.priors) == {"bonds", "angles", "dihedrals", "repulsion"}  # the quickstart's priors
    batch = ShardDataset(tiny_dataset).__getitems__([0, 1])
    e = model.energy(batch[keys.POS], batch[keys.BEAD_TYPES][0])
    assert e.shape == (2,) and torch.isfinite(e).all()
    hv = model.hvp(batch[keys.POS], batch[keys.BEAD_TYPES][0], torch.ones_like(batch[keys.POS]))
    assert hv.shape == (2, 5, 3) and torch.isfinite(hv).all()


@pytest.mark.slow
def test_losses_override_and_validate(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--config", QUICKSTART, "--data.path", str(tiny_dataset), "--data.build", "null", *SMALL]
    losses = "{force: {weight: 1.0}, hvp: {weight: 0.5, probes: 1}}"
    assert main(["fit", *args, "--model.losses", losses, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]) == 0
    rows = _metrics(tmp_path)
    assert any(r.get("val/hvp") for r in rows) and not any(r.get("val/hvp_cov") for r in rows)
    ckpt = tmp_path / "runs/cglight/version_0/checkpoints/last.ckpt"
    assert main(["validate", *args, "--model.losses", losses, "--ckpt_path", str(ckpt)]) == 0
    # resuming keeps the normalisation estimated by the first run (it lives in the checkpoint)
    before = torch.load(ckpt, weights_only=False)["state_dict"]["objective.terms.hvp.scale"]
    assert main(["fit", *args, "--model.losses", losses, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
                 "--ckpt_path", str(ckpt)]) == 0
    after = torch.load(tmp_path / "runs/cglight/version_2/checkpoints/last.ckpt", weights_only=False)  # 1: validate
    assert after["epoch"] == 1 and torch.equal(after["state_dict"]["objective.terms.hvp.scale"], before)


def test_unknown_loss_lists_available(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "--config", QUICKSTART, "--data.path", str(tiny_dataset), "--data.build", "null",
                 "--model.losses", "{force: {weight: 1.0}, hvp_covv: {weight: 0.1}}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown loss 'hvp_covv'; available losses: force, " in err
    assert "hvp, hvp_cov. Third-party losses register in the 'cglight.losses' entry-point group" in err
    assert "Traceback" not in err


def test_bad_loss_option_names_the_loss(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "--config", QUICKSTART, "--data.path", str(tiny_dataset), "--data.build", "null",
                 "--model.losses", "{hvp_cov: {weight: 0.1, probe: 4}}"])
    assert code == 2
    assert "loss 'hvp_cov' has no option(s) ['probe']; allowed: weight, probes, probe_kind, normalize" in capsys.readouterr().err


def test_dataset_without_manifest(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code = main(["fit", "--config", QUICKSTART, "--data.path", str(tmp_path / "empty"), "--data.build", "null"])
    err = capsys.readouterr().err
    assert code == 2 and "empty is not a cglight dataset: it has no manifest.json" in err


def test_malformed_config_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", QUICKSTART, "--model.backbone.cutof", "5.0"])
    assert exc.value.code == 2
    assert "cutof" in capsys.readouterr().err
    missing = tmp_path / "missing.yaml"
    missing.write_text("model:\n  lr: 1.0e-3\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(missing)])
    assert "data.path" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  lr: fast\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(bad)])
    err = capsys.readouterr().err
    assert "lr" in err and "fast" in err


def test_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("force", "hvp", "hvp_cov"):
        assert f"  {name} " in out


@pytest.mark.slow
def test_prepare_frames_override_and_refuses_to_overwrite(tmp_path):
    cfg = str(ROOT / "configs" / "prepare" / "ala2.yaml")
    args = ["prepare", "--config", cfg, "--out", "ds", "--frames", "6", "--stride_steps", "10", "--equilibration_ps", "0.1"]
    r = _run(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert sum(s["frames"] for s in manifest["shards"]) == 6
    r = _run(args, cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_fit_builds_missing_dataset_first_then_reuses_it(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prep.yaml").write_text("frames: 20\nstride_steps: 20\nequilibration_ps: 0.1\n")
    args = ["fit", "--config", QUICKSTART, "--data.path", "built", "--data.build", "prep.yaml", *SMALL, "--trainer.fast_dev_run", "true",
            "--model.priors", "null"]  # 18 training frames: too few to fit priors
    assert main(args) == 0
    assert (tmp_path / "built" / "manifest.json").is_file()
    stamp = (tmp_path / "built" / "manifest.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (tmp_path / "built" / "manifest.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_wandb_logger_works_offline(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = ["fit", "--config", QUICKSTART, "--config", str(ROOT / "configs" / "loggers" / "wandb.yaml"),
            "--data.path", str(tiny_dataset), "--data.build", "null", *SMALL, "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "2", "--trainer.log_every_n_steps", "1"]
    assert main(args) == 0
    (run,) = tmp_path.glob("runs/wandb/offline-run-*")
    assert list(run.glob("*.wandb")), "wandb wrote no offline run file"
    assert _metrics(tmp_path)  # the CSV log is kept alongside


def test_bead_types_beyond_embedding_table(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "--config", QUICKSTART, "--data.path", str(tiny_dataset), "--data.build", "null", *SMALL,
                 "--model.backbone.max_z", "3", "--trainer.fast_dev_run", "true"])
    err = capsys.readouterr().err
    assert code == 2 and "system 'ala2' has bead type 3 but model.backbone.max_z is 3" in err
