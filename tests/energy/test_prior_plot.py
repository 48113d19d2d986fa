"""``priors.png``: panels named by the beads, labelled with units, dihedral curves drawn whole, and
the repulsion shown as the wall it is (not a fit)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from cglight.energy import BackboneConfig, CGEnergy
from cglight.energy.prior_fit import FitCurve
from cglight.energy.prior_plot import bead_type_names, priors_figure, term_name
from cglight.units import KB_KCAL_PER_MOL_K

KT = KB_KCAL_PER_MOL_K * 300.0
SMALL = BackboneConfig(embedding_dimension=8, num_layers=1, num_rbf=4, max_z=8)
ALA2 = SimpleNamespace(temperature=300.0, bead_types=[3, 1, 2, 3, 1], bead_names=["C", "N", "CA", "C", "N"],
                       bonds=[[0, 1], [1, 2], [2, 3], [3, 4]])


def test_bead_types_are_named_so_phi_and_psi_differ():
    names = bead_type_names({"ala2": ALA2})
    assert names == {3: "C", 1: "N", 2: "CA"}
    assert term_name((3, 1, 2, 3), names) == "C-N-CA-C (types 3-1-2-3)"  # φ
    assert term_name((1, 2, 3, 1), names) == "N-CA-C-N (types 1-2-3-1)"  # ψ
    other = SimpleNamespace(temperature=300.0, bead_types=[3, 2], bead_names=["CB", "CA"], bonds=[[0, 1]])
    assert bead_type_names({"ala2": ALA2, "x": other})[3] == "C/CB"
    assert term_name((3, 7), names) == "types 3-7"  # a type no system names


def _priors():
    """A dihedral prior 3 cos φ (6 kcal/mol from top to bottom) and a repulsion wall kT (σ/r)^6, σ = 3 Å."""
    priors = CGEnergy(SMALL, {"dihedrals": {"terms": 1}, "repulsion": {"min_bonds_apart": 3}}).priors
    priors["dihedrals"].set_parameters({(0, 1, 2, 3): [3.0, 0.0]})
    priors["repulsion"].set_parameters({(0, 3): [KT, 3.0]})
    x = torch.linspace(-math.pi, math.pi, 41, dtype=torch.float64)[:-1] + math.pi / 40
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    f = torch.where(x.abs() > 2.6, 0.2 * (math.pi - x.abs()), nan)  # data near ±π only
    r = torch.linspace(3.0, 6.0, 30, dtype=torch.float64)
    curves = [FitCurve("dihedrals", (0, 1, 2, 3), x, f, 500), FitCurve("repulsion", (0, 3), r, 2.0 - 0.3 * r, 500)]
    return priors, curves


def test_every_panel_has_units_names_and_the_whole_dihedral_curve():
    priors, curves = _priors()
    fig = priors_figure(priors, curves, {0: "C", 1: "N", 2: "CA", 3: "CB"})
    dihedral, repulsion = fig.axes[:2]
    for ax in (dihedral, repulsion):
        assert ax.get_ylabel() == "free energy (kcal/mol)"
    assert dihedral.get_xlabel() == "dihedral angle (rad)" and repulsion.get_xlabel() == "pair distance r (Å)"
    assert dihedral.get_title().startswith("dihedrals C-N-CA-CB (types 0-1-2-3)")
    lo, hi = dihedral.get_ylim()
    for line in dihedral.get_lines():  # the fitted curve (0 … 6 kcal/mol) and every data point inside the axes
        assert lo <= min(line.get_ydata()) and max(line.get_ydata()) <= hi, line.get_label()
    fit = next(line for line in dihedral.get_lines() if line.get_label() == "fitted prior")
    assert max(fit.get_ydata()) - min(fit.get_ydata()) == pytest.approx(6.0, abs=0.01)
    texts = [t.get_text() for t in dihedral.get_legend().get_texts()]
    assert texts == ["data: −k_BT ln p", "fitted prior"]


def test_the_repulsion_panel_says_it_is_a_wall_and_draws_it_unshifted():
    priors, curves = _priors()
    ax = priors_figure(priors, curves, {0: "C", 3: "CB"}).axes[1]
    assert "not a fit to the data" in ax.get_title() and "σ = 3.00 Å (the 0.005 quantile of r" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["data: −k_BT ln(p(r)/r²)", "prior: wall k_BT (σ/r)^p"]
    wall = next(line for line in ax.get_lines() if line.get_label() == "prior: wall k_BT (σ/r)^p")
    r, u = wall.get_xdata(), wall.get_ydata()
    i = abs(r - 3.0).argmin()
    assert u[i] == pytest.approx(KT * (3.0 / r[i]) ** 6, rel=1e-6)  # k_BT at σ: the wall as the model has it
    assert any(list(line.get_xdata()) == [3.0, 3.0] for line in ax.get_lines())  # σ marked


def test_fit_to_data_keeps_the_manifest_names_for_the_picture(tiny_dataset):
    from cglight.data import CGDataModule
    from cglight.training import CGPotential

    model = CGPotential(backbone={"embedding_dimension": 8, "num_layers": 1, "num_rbf": 8},
                        priors={"bonds": {}, "angles": {}, "dihedrals": {"min_samples": 5}})
    dm = CGDataModule(str(tiny_dataset), batch_size=8)
    model.fit_to_data(dm.calibration_batches(64), dm.systems)
    assert model.prior_type_names == {3: "C", 1: "N", 2: "CA"}  # the manifest: C N CA C N
    titles = [ax.get_title() for ax in priors_figure(model.core.priors, model.prior_curves, model.prior_type_names).axes]
    assert any(t.startswith("dihedrals C-N-CA-C ") for t in titles) and any(t.startswith("dihedrals N-CA-C-N ") for t in titles)
