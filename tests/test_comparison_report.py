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
              "bonded": {"bonds": {"js_mean": bond}, "angles": {"js_mean": 2 * bond}}}
    return {"seed": seed, "systems": {"ala2": system}, "held_out": {"test/force": force},
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
    text = markdown(results(), {"250-full": ["--data.train_frames", "250"], "8000-full": []}, stage_seconds(results()))
    assert "## 250-full: `--data.train_frames 250`" in text and "## 8000-full: `(no extra fit options)`" in text
    # every seed with its bootstrap interval, the failed one named and counted
    assert "| `force+hvp_cov` | 0.500 [0.400, 0.600], 1.000 [0.900, 1.100], seed 2 failed | 0.050 [0.020, 0.150] | 40/41 | 1 |" in text
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
