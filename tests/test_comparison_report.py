"""The Markdown tables of a loss comparison (benchmarks/comparison_report.py), on results whose every
number is known: means and t-intervals by hand, paired differences seed by seed, failures counted."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from comparison_report import markdown, mean_interval, stage_seconds  # noqa: E402


def row(seed: int, kl: float, force: float, bond: float, half: float = 0.1) -> dict:
    system = {"kl_tic1": {"plugin": kl, "plugin_low": kl - half, "plugin_high": kl + half,
                          "floor": {"median": 0.05, "low": 0.02, "high": 0.15}},
              "js_tic1": {"plugin": kl / 10, "plugin_low": 0, "plugin_high": 1},
              "transitions_tic1": {"reference": 56, "model": 40 + seed},
              "bonded": {"bonds": {"js_mean": bond, "above_floor": seed, "count": 4},
                         "angles": {"js_mean": 2 * bond, "above_floor": 1, "count": 3}}}
    curvature = {"stiff": {"target": 8000.0 + seed, "stderr": 300.0, "z": -seed, "relative_gap": 0.1 * seed},
                 "soft": {"target": -100.0, "stderr": 100.0, "z": 0.5, "relative_gap": 1.0}}
    return {"seed": seed, "systems": {"ala2": system}, "held_out": {"test/force": force},
            "held_out_curvature": {"ala2": curvature},
            "pmf_hessian": {"stiff": 0.1 * (1 + seed), "soft": 1.0, "reference_soft_trace": -76.0, "reference_soft_trace_stderr": 100.0},
            "seconds": {"fit": 10.0 + seed, "simulate": 100.0}}


def results() -> dict:
    force = [row(0, 1.0, 0.5, 0.01), row(1, 2.0, 0.6, 0.02), row(2, 3.0, 0.7, 0.03)]
    cov = [row(0, 0.5, 0.5, 0.01), row(1, 1.0, 0.5, 0.01), {"seed": 2, "systems": {}, "failed": "every replica stopped",
                                                          "held_out": {"test/force": 0.4}}]
    return {"250-full": {"force": force, "force+hvp_cov": cov}, "8000-full": {"force": force}}


def test_mean_interval_is_the_t_interval_over_seeds():
    half = 4.30 * np.std([1.0, 2.0, 3.0], ddof=1) / np.sqrt(3)
    assert mean_interval([1.0, 2.0, 3.0]) == f"2.000 [{2 - half:.3f}, {2 + half:.3f}]"
    assert mean_interval([1.5]) == "1.500" and mean_interval([]) == "–" and mean_interval([None, 2.0]) == "2.000"


def test_tables_hold_every_seed_the_floor_failures_and_paired_differences():
    text = markdown(results(), {"250-full": ["--data.train_frames", "250"], "8000-full": []}, stage_seconds(results()),
                    ["PMF-Hessian reference: 4 configurations"])
    assert text.startswith("# Tables\n\nPMF-Hessian reference: 4 configurations\n")
    assert "## 250-full: `--data.train_frames 250`" in text and "## 8000-full: `(no extra fit options)`" in text
    # every seed with its bootstrap interval, the failed one named and counted
    assert ("| `force+hvp_cov` | 0.500 [0.400, 0.600], 1.000 [0.900, 1.100], seed 2 failed | 0.050 [0.020, 0.150] | 40/41 | "
            "bonds 0/4 angles 1/3; bonds 1/4 angles 1/3 | 1 |") in text
    assert "Failed runs (left out of every mean above):\n\n- `force+hvp_cov` seed 2: every replica stopped" in text
    # the divergences' floor row (JS has none here), the references of the curvature measures
    assert "| floor: a perfect model sampled as much | 0.050 [0.020, 0.150] | – |" in text
    assert "PMF-Hessian reference soft trace -76.0 ± 100.0" in text
    assert "target, block trace mean ± stderr: stiff 8001 ± 3e+02, soft -100 ± 1e+02" in text
    # paired KL differences over the two seeds both have: −0.5 and −1.0, each ± √2 · 0.1
    half = 12.71 * np.std([-0.5, -1.0], ddof=1) / np.sqrt(2)
    assert f"{-0.75:.3f} [{-0.75 - half:.3f}, {-0.75 + half:.3f}]" in text
    assert "-0.500 ± 0.141, -1.000 ± 0.141 |" in text
    # held-out force measured on all three seeds (the failed run's test still counts): 0.5, 0.5, 0.4 − 0.5, 0.6, 0.7
    diffs = [0.0, -0.1, -0.3]
    assert mean_interval(diffs) in text
    # the learning curve: a variant without the loss set shows a dash
    curve = text.split("## 250-full")[0]
    assert "**KL TIC1**" in curve and "| 8000-full | 2.000 [" in curve and "| – | – |" in curve
    assert "**angle JS**" in curve and "| fit | 10 | 11 | 12 | 8 |" in text  # fit: 3 + 2 + 3 runs carry a time
    # the learning curve holds the curve's measures only; the per-variant tables every measure
    assert "**held-out stiff z**" not in curve and "held-out stiff z" in text.split("## 250-full")[1]
    # the stiff PMF-Hessian error's paired difference over seeds 0 and 1: 0 and 0 (same models' values)
    assert "**PMF Hessian, stiff**" in curve and "| 8000-full | 0.200 [" in curve


def test_curve_points_follow_the_tables_measures():
    from compare_losses import curve_points

    points = curve_points(results())
    from comparison_report import measures

    assert list(points) == list(measures("ala2", curve_only=True))
    # the failed run has no KL but keeps its held-out force error
    assert dict(points["KL TIC1"]["force+hvp_cov"])["250-full"] == {0: 0.5, 1: 1.0}
    assert dict(points["held-out force error"]["force+hvp_cov"])["250-full"] == {0: 0.5, 1: 0.5, 2: 0.4}


def test_a_stage_resumed_after_a_stop_keeps_the_stopped_attempts_time(tmp_path, monkeypatch):
    import json
    import os
    import time

    import compare_losses

    monkeypatch.setattr(compare_losses, "run", lambda args, log, model_result=False: 5.0)
    log = tmp_path / "simulate.log"
    start = time.time() - 100
    (tmp_path / "seconds.json").write_text(json.dumps({"fit": 12.0, "begun": {"simulate": [start, 7.0]}}))
    log.write_text("step 30000\n")
    os.utime(log, (start + 30, start + 30))  # the stopped attempt's last write, 30 s after it began
    clock = compare_losses.StageClock(tmp_path / "seconds.json")
    clock.run("simulate", ["simulate"], log)
    # two stopped attempts (7 s recorded, 30 s to the log's last write) and this one (5 s)
    assert clock.finished() == {"fit": 12.0, "simulate": 42.0}
    assert json.loads((tmp_path / "seconds.json").read_text()) == {"fit": 12.0, "simulate": 42.0}

    def fails(args, log, model_result=False):
        raise compare_losses.StageFailed("every replica stopped")

    monkeypatch.setattr(compare_losses, "run", fails)
    with pytest.raises(compare_losses.StageFailed):
        clock.run("evaluate", ["evaluate"], tmp_path / "evaluate.log")
    assert json.loads((tmp_path / "seconds.json").read_text()) == {"fit": 12.0, "simulate": 42.0}  # nothing begun is left
