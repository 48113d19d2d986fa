"""The comparison protocols as configs (configs/compare/): every file they name exists, and each parses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cglight.cli import main
from cglight.evaluate.config import EvaluateConfig
from cglight.simulate.config import SimulateConfig

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ["peptides", "chignolin", "trpcage", "villin"]


@pytest.mark.parametrize("name", PROTOCOLS)
def test_protocol_config_names_files_that_parse(name, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    compare = yaml.safe_load((ROOT / "configs/compare" / f"{name}.yaml").read_text())
    for key in ("fit", "simulate", "evaluate"):
        assert (ROOT / compare[key]).is_file(), compare[key]
    SimulateConfig(**yaml.safe_load((ROOT / compare["simulate"]).read_text()))
    evaluate = EvaluateConfig(**yaml.safe_load((ROOT / compare["evaluate"]).read_text()))
    fit_args = [a for a in compare["fit_args"] if a != "--trainer.enable_progress_bar" and a != "false"]
    assert main(["fit", "--config", compare["fit"], *fit_args, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["path"] == yaml.safe_load((ROOT / compare["simulate"]).read_text())["starts"]
    if name == "peptides":
        assert printed["data"]["mix_systems"] and len(printed["data"]["holdout_systems"]) >= 2
        assert set(evaluate.systems) == set(printed["data"]["holdout_systems"])  # judged on held-out peptides only
    else:
        assert printed["trainer"]["strategy"] == "ddp" and str(printed["trainer"]["devices"]) == "4"
        assert evaluate.reference == f"data/{name}-reference" and (ROOT / f"configs/prepare/{name}-reference.yaml").is_file()
        assert printed["data"]["build"] == f"configs/prepare/{name}.yaml"


@pytest.mark.parametrize("name", ["ala2-learning", "ala4-learning"])
def test_learning_curve_variants_parse_with_the_fit_config(name, capsys, monkeypatch):
    """Every variant's fit options (training frames, priors) parse together with the comparison's fit config,
    and every loss set a variant names is one of the comparison's."""
    import sys

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from compare_losses import variant_runs

    compare = yaml.safe_load((ROOT / "configs/compare" / f"{name}.yaml").read_text())
    runs = variant_runs(compare)
    assert {loss for _, losses in runs.values() for loss in losses} == set(compare["losses"])
    for variant, (args, _) in runs.items():
        frames, _, group = variant.partition("-")
        assert main(["fit", "--config", compare["fit"], *args, "--print_config"]) == 0, variant
        printed = yaml.safe_load(capsys.readouterr().out)
        # a variant without options is the whole training split (its name says how many frames that is)
        assert printed["data"]["train_frames"] == (int(frames) if args else None), variant
        assert (printed["model"]["priors"]["bonds"] is None) == (group == "repulsion"), variant
    compare["variants"]["250-full"] = {"args": [], "losses": ["force", "hvp"]}
    with pytest.raises(SystemExit, match="'250-full'.*\\['hvp'\\]"):
        variant_runs(compare)
    sys.modules.pop("compare_losses", None)
