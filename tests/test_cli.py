"""The console script, end to end: prepare, fit (LightningCLI), plugins, and its errors."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cglight.atomic import PARTIAL
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
    assert len(train) == 4 and len(val) == 1  # 32 training frames (4 validation, 4 test) in batches of 8; one validation pass
    for key in ("train/force", "train/hvp_cov", "train/hvp_cov_raw", "train/hvp_cov/target_sq"):
        assert float(train[0][key]) > 0, key
    assert 0 < float(val[0]["val/force"]) < 10 and 0 < float(val[0]["val/hvp_cov"]) < 10
    ckpt = tmp_path / "runs/cglight/version_0/checkpoints/last.ckpt"
    for name in ("loss_curves.png", "priors.png"):
        png = tmp_path / "runs/cglight/version_0" / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    from cglight import CGPotential, ShardDataset

    model = CGPotential.load_from_checkpoint(ckpt).eval()
    assert model.hparams.losses == {"force": {"weight": 1.0}, "hvp_cov": {"weight": 3.0, "probes": 1, "method": "finite_difference"}}
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
    assert "loss 'hvp_cov' has no option(s) ['probe']; allowed: weight, warmup_steps, ramp_steps, probes, probe_kind, method, fd_eps, fd_central, fd_probes_per_call, estimator, normalize" in capsys.readouterr().err


def test_dataset_without_manifest(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code = main(["fit", "--config", QUICKSTART, "--data.path", str(tmp_path / "empty"), "--data.build", "null"])
    err = capsys.readouterr().err
    assert code == 2 and "empty is not a cglight dataset: it has no manifest.json" in err


def test_malformed_config_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", QUICKSTART, "--model.backbone.cutof", "5.0"]) == 2
    err = capsys.readouterr().err
    assert "cutof" in err
    last = err.strip().splitlines()[-1]
    assert last == f"cglight: error: 'model.backbone' is set on the command line and in --config {QUICKSTART}"
    missing = tmp_path / "missing.yaml"
    missing.write_text("model:\n  lr: 1.0e-3\n")
    assert main(["fit", "--config", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "data.path" in err
    assert err.strip().splitlines()[-1] == f"cglight: error: 'data.path' is set in none of --config {missing}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  lr: fast\n")
    assert main(["fit", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and "fast" in err
    assert err.strip().splitlines()[-1] == f"cglight: error: 'model.lr' is set in --config {bad}"


def test_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("force", "hvp", "hvp_cov"):
        assert f"  {name} " in out


@pytest.mark.slow
def test_prepare_frames_override_resume_and_refuse_other_settings(tmp_path, monkeypatch, capsys, caplog):
    cfg = str(ROOT / "configs" / "prepare" / "ala2.yaml")
    args = ["prepare", "--config", cfg, "--out", "ds", "--frames", "6", "--stride_steps", "10", "--equilibration_ps", "0.1"]
    r = _run(args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert sum(s["frames"] for s in manifest["shards"]) == 6
    monkeypatch.chdir(tmp_path)
    assert main(args) == 0  # the same command again: the dataset is complete, nothing to do
    assert "complete already" in caplog.text
    assert main([*args, "--frames", "7"]) == 2  # other settings: refused, the dataset is kept
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("cglight: error: ") and "holds a different dataset (frames: 6 there, 7 now)" in last
    assert sum(s["frames"] for s in json.loads((tmp_path / "ds" / "manifest.json").read_text())["shards"]) == 6


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


# --- one error path for every command ---------------------------------------------------------------

TINY = ["--frames", "4", "--stride_steps", "10", "--equilibration_ps", "0.01", "--hessian", "none", "--workers", "1"]
BAD_YAML = {
    "empty": (b"", "is empty"),
    "comments": (b"# nothing but a comment\n", "is empty"),
    "binary": (bytes(range(128, 256)) * 4, "is not text"),
    "syntax": (b"frames: [1,\n", "is not valid YAML"),
    "tab": (b"frames: 5\n\tseed: 1\n", "is not valid YAML"),
    "list": (b"- 1\n- 2\n", "not a mapping"),
    "scalar": (b"hello\n", "not a mapping"),
}


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith("cglight: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", ["prepare", "fit", "simulate", "evaluate"])
@pytest.mark.parametrize("kind", sorted(BAD_YAML))
def test_bad_config_file_is_one_line_naming_it(tmp_path, capsys, monkeypatch, command, kind):
    monkeypatch.chdir(tmp_path)
    content, says = BAD_YAML[kind]
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(content)
    extra = ["--out", "ds"] if command == "prepare" else []
    assert main([command, "--config", str(path), *extra]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(path) in line and says in line
    assert not (tmp_path / "ds").exists()


def test_config_file_error_names_line_and_missing_file(tmp_path, capsys):
    path = tmp_path / "syntax.yaml"
    path.write_text("seed: 1\nframes: [1,\n")
    assert main(["prepare", "--config", str(path), "--out", str(tmp_path / "ds")]) == 2
    assert "line 3" in _one_error_line(capsys.readouterr().err)  # where PyYAML stops: after the open list
    assert main(["simulate", "--config", str(tmp_path / "nope.yaml")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "nope.yaml") in line and "does not exist" in line


@pytest.mark.parametrize("command", ["prepare", "simulate"])
def test_parser_error_in_config_file_names_the_file(tmp_path, capsys, command):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("seed: 3\n")
    bad.write_text("framez: 5\n")
    extra = ["--out", str(tmp_path / "ds")] if command == "prepare" else []
    assert main([command, "--config", str(good), "--config", str(bad), *extra]) == 2
    err = capsys.readouterr().err
    assert "Option 'framez' is not accepted" in err  # jsonargparse's own message is kept
    last = err.strip().splitlines()[-1]
    assert last == f"cglight: error: 'framez' is set in --config {bad}"


def test_parser_error_on_the_command_line_says_so(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("seed: 3\n")
    assert main(["prepare", "--config", str(good), "--out", str(tmp_path / "ds"), "--frames", "many"]) == 2
    err = capsys.readouterr().err
    assert "Got value: many" in err
    assert err.strip().splitlines()[-1] == "cglight: error: 'frames' is set on the command line"


def test_debug_shows_the_traceback_of_a_known_error(tmp_path, capsys):
    args = ["prepare", "--out", str(tmp_path / "ds"), "--part", "3/2"]
    assert main(args) == 2
    assert "--part 3/2: need 1 <= I <= N" in _one_error_line(capsys.readouterr().err)
    assert main(["--debug", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "Part.parse" in err
    assert err.strip().splitlines()[-1] == "cglight: error: --part 3/2: need 1 <= I <= N"
    assert main([*args, "--debug"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == "cglight: error: --debug goes before the command: cglight --debug prepare ..."


def test_a_bug_keeps_its_traceback_and_exits_1(capsys, monkeypatch):
    from cglight import cli

    def broken(argv):
        raise ZeroDivisionError("division by zero in a buggy command")

    monkeypatch.setitem(cli.COMMANDS, "plugins", ("list", broken))
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and 'in broken\n    raise ZeroDivisionError' in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("cglight: internal error (a bug): ZeroDivisionError: division by zero in a buggy command")


@pytest.mark.parametrize("code, text", [(errno.ENOENT, "No such file or directory"), (errno.EACCES, "Permission denied"),
                                        (errno.ENOSPC, "No space left on device")])
def test_os_errors_are_one_line_naming_the_file(capsys, monkeypatch, code, text):
    from cglight import cli

    def fails(argv):
        raise OSError(code, os.strerror(code), "/data/somewhere/file.h5")

    monkeypatch.setitem(cli.COMMANDS, "plugins", ("list", fails))
    assert main(["plugins"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"cglight: error: /data/somewhere/file.h5: {text}")


def test_h5py_style_os_error_is_one_line(capsys, monkeypatch):
    from cglight import cli

    def fails(argv):  # what h5py raises on a full disk: errno 28, a message over several lines, no filename
        raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: time = now\n, filename = 'x.h5', "
                                    "errno = 28, error message = 'No space left on device')")

    monkeypatch.setitem(cli.COMMANDS, "plugins", ("list", fails))
    assert main(["plugins"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "No space left on device" in line and "x.h5" in line


@pytest.mark.parametrize("where", ["trajectory", "shard"])
def test_disk_full_in_prepare_is_one_line_and_leaves_nothing_that_looks_complete(tmp_path, capsys, monkeypatch, where):
    import h5py
    from openmm import app

    out = tmp_path / "ds"
    if where == "trajectory":
        real = app.DCDFile.writeModel
        calls = []

        def write_model(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(app.DCDFile, "writeModel", write_model)
    else:
        def create_dataset(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(h5py.Group, "create_dataset", create_dataset)
    assert main(["prepare", "--out", str(out), *TINY]) == 2
    assert "No space left on device" in _one_error_line(capsys.readouterr().err)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.partial*"))  # the unfinished file is removed, not left to fill the disk
    assert not list(out.rglob("shard-*.h5"))
    if where == "trajectory":
        assert not list(out.rglob("*.dcd"))
    monkeypatch.undo()
    assert main(["prepare", "--out", str(out), *TINY]) == 0  # space again: the same command completes the dataset
    from cglight.data.verify import verify_dataset

    assert verify_dataset(out)[0] == []


def test_read_only_output_directory_is_one_line(tmp_path):
    """A real read-only file system (a read-only bind mount in a user namespace), in a subprocess."""
    ro = tmp_path / "ro"
    ro.mkdir()
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unshare -rm (user and mount namespaces) is not available")
    script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
              f"exec {sys.executable} -m cglight.cli prepare --out {ro}/ds {' '.join(TINY)}")
    env = dict(os.environ, CGLIGHT_PROGRESS="0", PYTHONPATH=str(ROOT))
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    line = _one_error_line(r.stderr)
    assert f"{ro}/" in line and "Read-only file system" in line


@pytest.mark.parametrize("content, says", [("framez: 5\n", "Option 'framez' is not accepted"), ("", "is empty")])
def test_bad_data_build_file_is_one_line_naming_it(tmp_path, capsys, monkeypatch, content, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prep.yaml").write_text(content)
    code = main(["fit", "--config", QUICKSTART, "--data.path", "built", "--data.build", "prep.yaml", *SMALL,
                 "--trainer.max_steps", "1"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and "prep.yaml" in line and says in line
    assert not (tmp_path / "built").exists()


def test_every_spelling_of_the_config_option_is_checked(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    for args in (["fit", "-c", str(empty)], ["simulate", f"--config={empty}"], ["validate", "--config", str(empty)]):
        assert main(args) == 2, args
        assert f"config file {empty} is empty" in _one_error_line(capsys.readouterr().err)


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    from cglight import cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "plugins", ("list", interrupted))
    assert main(["plugins"]) == 130
    assert capsys.readouterr().err == "cglight: interrupted\n"
# ----------------------------------------------------------------------------- checkpoints: last.ckpt, --ckpt_path


def _ckpt_config(tmp: Path, data: Path, run: str, callbacks: list[dict] | None = None) -> str:
    """A tiny quickstart-like run (best checkpoint by val_loss) writing under ``tmp/run``."""
    import yaml

    config = {
        "seed_everything": 0,
        "model": {"backbone": {"name": "graph-network", "embedding_dimension": 16, "num_layers": 1, "cutoff_upper": 8.0},
                  "losses": {"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 2}}},
        "data": {"path": str(data), "batch_size": 8, "block_frames": 4, "window_frames": 16},
        "trainer": {"max_epochs": 3, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "log_every_n_steps": 1, "default_root_dir": str(tmp / run),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"monitor": "val_loss", "filename": "best-{epoch}"}}, *(callbacks or [])]},
        "loss_curves": {"enabled": False},
    }
    path = tmp / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _last(tmp: Path, run: str) -> list[Path]:
    return sorted((tmp / run).glob("cglight/version_*/checkpoints/last.ckpt"))


def _state(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    ckpt = torch.load(path, weights_only=True, map_location="cpu")
    return ckpt["global_step"], {k: v for k, v in ckpt["state_dict"].items() if torch.is_tensor(v)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A synthetic two-system dataset and one uninterrupted 3-epoch run on it (run 'A')."""
    from tests.data.synthetic import write_synthetic

    tmp = tmp_path_factory.mktemp("ckpt")
    data = write_synthetic(tmp / "ds", {"a": [24, 16], "b": [20]})
    assert main(["fit", "--config", _ckpt_config(tmp, data, "A")]) == 0
    return tmp, data


@pytest.mark.slow
def test_sigterm_saves_last_and_ckpt_path_last_resumes_to_the_same_weights(uninterrupted):
    tmp, data = uninterrupted
    (final,) = _last(tmp, "A")
    steps, weights = _state(final)
    stop = steps // 2 + 1  # mid-epoch
    marker = tmp / "reached"
    waiter = {"class_path": "tests.training.interrupt.WaitForSignalAt", "init_args": {"step": stop, "marker": str(marker)}}
    env = dict(os.environ, PYTHONPATH=str(ROOT), CGLIGHT_PROGRESS="0")
    proc = subprocess.Popen([sys.executable, "-m", "cglight.cli", "fit", "--config", _ckpt_config(tmp, data, "B", [waiter])],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = 600
    while not marker.exists() and proc.poll() is None and deadline > 0:
        import time

        time.sleep(0.1)
        deadline -= 0.1
    proc.send_signal(signal.SIGTERM)  # from outside, as a scheduler's preemption
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err
    assert f"cglight: training interrupted by SIGTERM at step {stop}; saved " in err
    (saved,) = _last(tmp, "B")
    assert _state(saved)[0] == stop
    # resume: `--ckpt_path last` finds B's last.ckpt, finishes, and ends where the uninterrupted run ended
    assert main(["fit", "--config", _ckpt_config(tmp, data, "B"), "--ckpt_path", "last"]) == 0
    first, resumed = _last(tmp, "B")
    assert first == saved and _state(resumed)[0] == steps
    resumed_weights = _state(resumed)[1]
    assert all(torch.allclose(resumed_weights[k], weights[k], rtol=1e-5, atol=1e-7) for k in weights)


@pytest.mark.slow
def test_kill_9_loses_only_the_steps_since_the_last_epoch_and_resumes_to_the_same_weights(uninterrupted):
    """kill -9 (no handler can run) mid-way through the last epoch: last.ckpt holds the end of the
    epoch before, written atomically, and `--ckpt_path last` ends where the uninterrupted run ended."""
    tmp, data = uninterrupted
    (final,) = _last(tmp, "A")
    steps, weights = _state(final)
    per_epoch = steps // 3
    stop = 2 * per_epoch + 1
    marker = tmp / "reached-kill"
    waiter = {"class_path": "tests.training.interrupt.WaitForSignalAt", "init_args": {"step": stop, "marker": str(marker)}}
    env = dict(os.environ, PYTHONPATH=str(ROOT), CGLIGHT_PROGRESS="0")
    proc = subprocess.Popen([sys.executable, "-m", "cglight.cli", "fit", "--config", _ckpt_config(tmp, data, "K", [waiter])],
                            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    deadline = time.monotonic() + 600
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (saved,) = _last(tmp, "K")
    assert _state(saved)[0] == 2 * per_epoch  # the end of epoch 2: the steps of epoch 3 are lost, nothing else
    assert not list((tmp / "K").rglob(f"*{PARTIAL}*"))
    assert main(["fit", "--config", _ckpt_config(tmp, data, "K"), "--ckpt_path", "last"]) == 0
    resumed = _last(tmp, "K")[-1]
    assert _state(resumed)[0] == steps
    assert all(torch.allclose(_state(resumed)[1][k], weights[k], rtol=1e-5, atol=1e-7) for k in weights)


def test_ckpt_path_last_without_a_saved_run_fails_before_training(tmp_path, capsys, monkeypatch):
    from tests.data.synthetic import write_synthetic

    monkeypatch.chdir(tmp_path)
    data = write_synthetic(tmp_path / "ds", {"a": [24]})
    assert main(["fit", "--config", _ckpt_config(tmp_path, data, "R"), "--ckpt_path", "last"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"cglight: error: --ckpt_path last: there is no last.ckpt in {tmp_path}/R/cglight/*/checkpoints " \
                      "(no earlier run of this config saved one)"
    assert not (tmp_path / "R").exists()  # nothing trained, no new run directory


def test_ckpt_path_last_picks_the_newest_run(uninterrupted, caplog):
    from cglight.cli import _newest_last

    tmp, data = uninterrupted
    from jsonargparse import Namespace

    csv_logger = Namespace(class_path="lightning.pytorch.loggers.CSVLogger",
                           init_args=Namespace(save_dir="runs", name="cglight"))
    trainer = Namespace(default_root_dir=str(tmp / "A"), callbacks=[], logger=csv_logger)
    (only,) = _last(tmp, "A")
    newer = tmp / "A" / "cglight" / "version_7" / "checkpoints" / "last.ckpt"
    newer.parent.mkdir(parents=True)
    newer.write_bytes(only.read_bytes())
    os.utime(only, (1, 1))  # older than the copy
    try:
        assert _newest_last(trainer) == newer and str(newer) in caplog.text
    finally:
        import shutil

        shutil.rmtree(newer.parents[1])


@pytest.mark.parametrize("case", ["missing", "text", "foreign", "weights_only", "directory"])
def test_bad_checkpoint_is_one_line(uninterrupted, tmp_path, capsys, monkeypatch, case):
    tmp, data = uninterrupted
    monkeypatch.chdir(tmp_path)
    command = "validate" if case == "foreign" else "fit"
    path = tmp_path / f"{case}.ckpt"
    if case == "text":
        path.write_text("epoch: 3\n")
    elif case == "foreign":
        torch.save({"weights": torch.ones(3), "note": "not a model"}, path)
    elif case == "weights_only":
        ckpt = torch.load(_last(tmp, "A")[0], weights_only=True)
        torch.save({k: ckpt[k] for k in ("state_dict", "hyper_parameters", "epoch", "global_step")}, path)
    elif case == "directory":
        path.mkdir()
    code = main([command, "--config", _ckpt_config(tmp_path, data, "R"), "--ckpt_path", str(path)])
    err = capsys.readouterr().err
    expected = {"missing": "no such file",
                "text": "not a checkpoint (a checkpoint written by `cglight fit` is a torch zip archive)",
                "directory": "a directory, not a checkpoint file (e.g. <run>/checkpoints/last.ckpt)",
                "foreign": "not a Lightning checkpoint (it has no 'state_dict'; it holds ['note', 'weights'])",
                "weights_only": "holds weights only (no optimizer and loop state), so training cannot resume from it"}[case]
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"cglight: error: --ckpt_path {path}: {expected}"
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize("where", ["backbone", "loss"])
def test_a_checkpoint_naming_code_is_refused_unless_the_config_names_it(uninterrupted, tmp_path, capsys, monkeypatch, where):
    """`--ckpt_path` builds the model from the checkpoint's hyper-parameters: a class path planted there
    would be imported. Refused before anything is imported, unless the user's own config names it."""
    import yaml

    tmp, data = uninterrupted
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "imported"
    (tmp_path / "plantedmod.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nimport torch\nclass Net(torch.nn.Module):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = torch.load(_last(tmp, "A")[0], weights_only=True)
    if where == "backbone":
        ckpt["hyper_parameters"]["backbone"]["name"] = "plantedmod.Net"
    else:
        ckpt["hyper_parameters"]["losses"]["plantedmod:Net"] = {"weight": 1.0}
    path = tmp_path / "planted.ckpt"
    torch.save(ckpt, path)
    config = yaml.safe_load(Path(_ckpt_config(tmp_path, data, "R")).read_text())
    del config["model"]  # the model comes from the checkpoint, as for a user who gives none
    (tmp_path / "R.yaml").write_text(yaml.safe_dump(config))
    code = main(["fit", "--config", str(tmp_path / "R.yaml"), "--ckpt_path", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "importing" in err.strip().splitlines()[-1]
    assert not marker.exists() and "plantedmod" not in sys.modules


@pytest.mark.parametrize("flag, value, key", [
    ("--model.backbone.embedding_dimension", "32", "model.backbone.embedding_dimension: 32 here, 16 in the checkpoint"),
    ("--model.losses", "{force: {weight: 1.0}, hvp_cov: {weight: 0.5, probes: 2}}",
     "model.losses.hvp_cov.weight: 0.5 here, 0.1 in the checkpoint"),
    ("--model.losses", "{force: {weight: 1.0}}", "model.losses: ['force'] here, ['force', 'hvp_cov'] in the checkpoint"),
])
def test_model_settings_that_differ_from_the_checkpoint_are_refused(uninterrupted, tmp_path, capsys, monkeypatch, flag, value,
                                                                    key):
    tmp, data = uninterrupted
    monkeypatch.chdir(tmp_path)
    (ckpt,) = _last(tmp, "A")
    for command in ("fit", "validate"):
        assert main([command, "--config", _ckpt_config(tmp_path, data, "R"), flag, value, "--ckpt_path", str(ckpt)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        prefix = f"cglight: error: --ckpt_path {ckpt}: the model of the config differs from the checkpoint's"
        assert err.startswith(f"{prefix} ({key})")


@pytest.mark.slow
def test_validate_with_the_checkpoints_own_settings(uninterrupted, tmp_path, monkeypatch):
    tmp, data = uninterrupted
    monkeypatch.chdir(tmp_path)
    (ckpt,) = _last(tmp, "A")
    # the same settings, and the loss term spelled without its default weight: accepted
    losses = "{force: {}, hvp_cov: {weight: 0.1, probes: 2}}"
    config = _ckpt_config(tmp_path, data, "R")
    assert main(["validate", "--config", config, "--model.losses", losses, "--ckpt_path", str(ckpt)]) == 0


def test_ctrl_c_saves_last_and_exits_130(uninterrupted, tmp_path, monkeypatch, caplog):
    tmp, data = uninterrupted
    monkeypatch.chdir(tmp_path)
    ctrl_c = {"class_path": "tests.training.test_last_checkpoint.SignalAt", "init_args": {"step": 3, "signum": int(signal.SIGINT)}}
    assert main(["fit", "--config", _ckpt_config(tmp_path, data, "R", [ctrl_c])]) == 128 + signal.SIGINT
    (saved,) = _last(tmp_path, "R")
    assert _state(saved)[0] == 3 and f"training interrupted by SIGINT at step 3; saved {saved}" in caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
