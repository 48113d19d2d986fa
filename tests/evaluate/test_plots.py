"""The evaluation's pictures, inspected as matplotlib figures: TIC1 on the KL's own bins with
bootstrap bands and frame counts, one colour scale fitted to the data, every axis labelled with its
unit, angles named by their beads, and a caption per picture in the report."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

from cglight.evaluate import plots
from cglight.evaluate.divergence import histogram, shared_edges
from cglight.evaluate.run import CAPTIONS, PLOTS, EvaluateConfig, evaluate_system
from cglight.units import kt
from tests.evaluate.fake_simulation import fake_simulation
from tests.evaluate.test_evaluate_system import _two_state_chain

KT = kt(300.0)
INFO = SimpleNamespace(temperature=300.0, bonds=[[0, 1], [1, 2], [2, 3]], n_beads=4, bead_names=["A", "B", "C", "D"])


@pytest.fixture
def figures(monkeypatch):
    """name of every PNG the code writes → its Figure (written as usual)."""
    seen: dict[str, Figure] = {}
    save = Figure.savefig

    def record(self, path, *args, **kwargs):
        seen[str(path).rsplit("/", 1)[-1]] = self
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return seen


def _ensembles(seed=0):
    rng = np.random.default_rng(seed)
    ref = [_two_state_chain(rng, 1500, (0, 1)) for _ in range(4)]
    mod = [_two_state_chain(rng, 400, (0, 1), stay=0.95) * 1.05 for _ in range(3)]  # stretched: beyond the reference
    return ref, mod


def test_tic1_is_drawn_on_the_kl_bins_with_bands_and_frame_counts(tmp_path, figures):
    ref, mod = _ensembles()
    config = EvaluateConfig(lag=5, bootstrap=20, floor_draws=0, bins_1d=40)
    evaluate_system("toy", INFO, ref, mod, config, tmp_path / "toy")
    ax = figures["tic1.png"].axes[0]
    assert ax.get_xlabel() == "TIC1 (dimensionless)" and ax.get_ylabel() == "free energy (kcal/mol)"
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["reference: 5–95 % of 20 block-bootstrap draws", "reference (6000 frames)",
                     "model: 5–95 % of 20 block-bootstrap draws", "model (1200 frames)"]
    # oracle: the KL's own estimator (divergence.histogram, no pseudo-count) on the KL's edges
    from cglight.evaluate.run import project

    p = project("toy", ref, mod, config)
    r1, m1 = np.concatenate(p.reference)[:, 0], np.concatenate(p.model)[:, 0]
    (edges,) = shared_edges(r1, m1, 40)
    lines = {line.get_label(): line for line in ax.get_lines()}
    for name, x in (("reference (6000 frames)", r1), ("model (1200 frames)", m1)):
        with np.errstate(divide="ignore"):
            f = -KT * np.log(histogram(x, [edges], alpha=0.0))
        f -= f[np.isfinite(f)].min()
        line = lines[name]
        assert len(line.get_xdata()) == 42  # 40 bins over the reference's range + 2 overflow bins
        assert np.allclose(line.get_xdata(), 0.5 * (edges[1:] + edges[:-1]))
        assert np.allclose(np.nan_to_num(line.get_ydata(), nan=-1.0), np.where(np.isfinite(f), f, -1.0))
    assert m1.min() < edges[1] or m1.max() > edges[-2]  # the model does reach the overflow bins


def test_the_band_is_the_block_bootstrap_spread():
    """Identical blocks: every resample is the ensemble itself, the band is the curve; blocks that
    differ (one trajectory per state): the band opens."""
    rng = np.random.default_rng(3)
    same = [rng.normal(0, 1, 500)] * 4
    edges = np.linspace(-3, 3, 23)
    low, high = plots.bootstrap_free_energy(same, 500, edges, KT, 30, 0)
    f = plots.free_energy(np.concatenate(same), [edges], KT)
    finite = np.isfinite(f)
    assert np.allclose(low[finite], f[finite]) and np.allclose(high[finite], f[finite])
    split = [rng.normal(-1, 0.5, 500), rng.normal(1, 0.5, 500)]
    low, high = plots.bootstrap_free_energy(split, 500, edges, KT, 30, 0)
    assert (high - low).max() > 1.0


def test_the_2d_colour_scale_fits_the_data_and_is_shared(tmp_path, figures):
    ref, mod = _ensembles(1)
    config = EvaluateConfig(lag=5, bootstrap=5, floor_draws=0, bins_2d=12)
    evaluate_system("toy", INFO, ref, mod, config, tmp_path / "toy")
    fig = figures["tic12.png"]
    meshes = [c for ax in fig.axes[:2] for c in ax.collections if isinstance(c, QuadMesh)]  # axes[2]: the colour bar
    assert len(meshes) == 2
    from cglight.evaluate.run import project

    p = project("toy", ref, mod, config)
    r, m = np.concatenate(p.reference)[:, :2], np.concatenate(p.model)[:, :2]
    edges = shared_edges(r, m, 12)
    with np.errstate(divide="ignore"):
        surfaces = [-KT * np.log(histogram(x, edges, alpha=0.0)) for x in (r, m)]
    finite = np.concatenate([s[np.isfinite(s)] for s in surfaces])
    top = finite.max() - finite.min()
    assert top < 6.0  # a fixed 0–6 kcal/mol scale would wash this out
    for mesh in meshes:
        assert mesh.get_clim() == pytest.approx((0.0, top))
    for ax, mesh in zip(fig.axes[:2], meshes, strict=True):
        assert ax.get_xlabel() == "TIC1 (dimensionless)" and ax.get_ylabel() == "TIC2 (dimensionless)"
        assert np.allclose(mesh.get_coordinates()[0, :, 0], edges[0])  # the KL's bins


def test_geometry_panels_have_units_and_named_angles(tmp_path, figures):
    ref, mod = _ensembles(2)
    evaluate_system("toy", INFO, ref, mod, EvaluateConfig(lag=5, bootstrap=5, floor_draws=0), tmp_path / "toy")
    axes = [ax for ax in figures["geometry.png"].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["bond A0-B1", "bond B1-C2", "bond C2-D3", "angle A0-B1-C2", "angle B1-C2-D3"]
    for ax in axes:
        unit = "Å" if ax.get_title().startswith("bond") else "deg"
        assert ax.get_xlabel() == ("bond length (Å)" if unit == "Å" else "bond angle (deg)")
        assert ax.get_ylabel() == f"probability density (1/{unit})"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["reference (6000)", "model (1200)"]


def test_every_picture_in_the_report_has_its_caption(tiny_dataset, tmp_path):
    from cglight.cli import main

    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    out = tmp_path / "eval"
    assert main(["evaluate", "--reference", str(tiny_dataset), "--simulation", str(sim), "--out", str(out), "--lag", "2",
                 "--bootstrap", "5"]) == 0
    report = (out / "report.md").read_text()
    for png in PLOTS:
        if (out / "ala2" / png).is_file():
            assert f"![{png}](ala2/{png})\n\n*{CAPTIONS[png]}*" in report, png
            assert "Look for" in CAPTIONS[png] or "means" in CAPTIONS[png]
    assert (out / "ala2" / "phi_psi.png").is_file() and (out / "ala2" / "geometry.png").is_file()
