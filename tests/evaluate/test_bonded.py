"""Bonded geometry against the reference: per bond and angle a Jensen–Shannon divergence next to its floor.

Oracles: chains built with known bond lengths and angles (the coordinates read back exactly), the JS
divergence of disjoint distributions (ln 2, its closed-form maximum), a model drawn from the
reference's own distribution (inside its floor), and one bond made 50 % too wide (above its floor,
named as the worst, the others not)."""

from __future__ import annotations

import numpy as np
import pytest

from cglight.evaluate.bonded import bonded_coordinates, bonded_divergences, bonded_text

NAMES = ["C", "N", "CA", "C"]
BONDS = [[0, 1], [1, 2], [2, 3]]


def chains(rng: np.random.Generator, frames: int, lengths: np.ndarray, widths: np.ndarray, angle_deg: float = 110.0,
           angle_width: float = 5.0) -> np.ndarray:
    """``[F, 4, 3]`` planar-ish chains with bond lengths ~ N(lengths, widths) and angles ~ N(angle, angle_width)."""
    out = np.zeros((frames, 4, 3))
    for f in range(frames):
        b = rng.normal(lengths, widths)
        theta = np.radians(rng.normal(angle_deg, angle_width, size=2))
        direction = np.array([1.0, 0.0, 0.0])
        out[f, 1] = out[f, 0] + b[0] * direction
        for k in range(2):  # turn by π − θ in a plane with a random tilt
            axis = np.array([0.0, np.sin(k + 0.3 * rng.normal()), np.cos(k + 0.3 * rng.normal())])
            axis -= axis.dot(direction) * direction
            axis /= np.linalg.norm(axis)
            turn = np.pi - theta[k]
            direction = np.cos(turn) * direction + np.sin(turn) * np.cross(axis, direction)
            out[f, k + 2] = out[f, k + 1] + b[k + 1] * direction
    return out


def test_coordinates_read_back_the_built_bonds_and_angles():
    rng = np.random.default_rng(0)
    traj = chains(rng, 5, np.array([1.3, 1.5, 1.6]), np.zeros(3), 111.0, 0.0)
    names, values = bonded_coordinates(4, BONDS, NAMES, [traj])
    assert names == [("bonds", "C0-N1"), ("bonds", "N1-CA2"), ("bonds", "CA2-C3"), ("angles", "C0-N1-CA2"), ("angles", "N1-CA2-C3")]
    np.testing.assert_allclose(values[0], np.tile([1.3, 1.5, 1.6, 111.0, 111.0], (5, 1)), atol=1e-9)


def test_disjoint_bond_distributions_score_ln2_and_identical_ones_zero():
    rng = np.random.default_rng(1)
    ref = [chains(rng, 400, np.array([1.3, 1.5, 1.6]), np.full(3, 0.02)) for _ in range(2)]
    far = [t.copy() for t in ref]
    for t in far:  # bond C0-N1 twice as long: no overlap with the reference's range
        t[:, 0] = t[:, 1] - 2 * (t[:, 1] - t[:, 0])
    same = bonded_divergences(4, BONDS, NAMES, ref, ref, floor_draws=0)
    assert all(c["js"] == pytest.approx(0.0, abs=1e-12) for c in same["coordinates"])
    moved = bonded_divergences(4, BONDS, NAMES, ref, far, floor_draws=0)
    # disjoint but for one reference frame: its longest bond lies on the edge of the overflow bin the model fills
    share = 1 / 800
    closed_form = 0.5 * ((1 - share) * np.log(2) + share * np.log(2 * share / (1 + share))) + 0.5 * np.log(2 / (1 + share))
    assert moved["coordinates"][0]["js"] == pytest.approx(closed_form, rel=1e-4)
    assert closed_form == pytest.approx(np.log(2), rel=0.01)
    assert moved["bonds"]["worst"]["name"] == "C0-N1"
    assert moved["coordinates"][1]["js"] == pytest.approx(0.0, abs=1e-12)


def test_a_perfect_model_sits_inside_its_floor_a_too_wide_bond_above():
    rng = np.random.default_rng(2)
    lengths, widths = np.array([1.33, 1.46, 1.52]), np.array([0.02, 0.025, 0.02])
    ref = [chains(rng, 2500, lengths, widths) for _ in range(4)]  # the model's frames 6 % of it: floors barely lowered
    perfect = [chains(rng, 150, lengths, widths) for _ in range(4)]
    wide = [chains(rng, 150, lengths, widths * np.array([1.0, 1.5, 1.0])) for _ in range(4)]
    good = bonded_divergences(4, BONDS, NAMES, ref, perfect, floor_draws=60)
    # a perfect model's value is a floor draw with the reference's own noise added (a few % more): within twice the
    # floor's median (the divergence of 600 frames on 50 bins spreads by ~20 % about its median)
    assert all(c["js"] < 2 * c["floor"]["median"] for c in good["coordinates"]), good["coordinates"]
    bad = bonded_divergences(4, BONDS, NAMES, ref, wide, floor_draws=60)
    assert [c["name"] for c in bad["coordinates"] if c["js"] > 2 * c["floor"]["high"]] == ["N1-CA2"]
    assert bad["bonds"]["worst"]["name"] == "N1-CA2" and bad["bonds"]["above_floor"] >= 1
    assert bad["coordinates"][1]["model_std"] == pytest.approx(1.5 * widths[1], rel=0.1)
    assert "bonds: JS mean" in bonded_text(bad) and f"{bad['bonds']['above_floor']} of 3 above their floor's range" in bonded_text(bad)
