"""The peptide family recipe (configs/prepare/peptides/) and its transfer configs (configs/peptides.yaml, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from openmm import app

from cglight.energy.priors import PRIOR_TERMS, PriorsConfig, priors_config
from cglight.energy.topology import Topology, canonical
from cglight.prepare.config_file import prepare_config, prepare_parser
from cglight.prepare.mapping import make_map
from cglight.prepare.peptide import build_peptide

ROOT = Path(__file__).resolve().parents[2]
FAMILY = ROOT / "configs/prepare/peptides"
RECIPES = sorted(p for p in FAMILY.glob("[A-Z]*.yaml"))


def _recipe(path: Path):
    values = prepare_parser(exit_on_error=False).parse_args(
        ["--config", str(FAMILY / "base.yaml"), "--config", str(path), "--out", "unused"])
    return prepare_config(values)


@pytest.fixture(scope="module")
def fit_config():
    return yaml.safe_load((ROOT / "configs/peptides.yaml").read_text())


def test_family_is_capped_di_and_tri_peptides_over_eight_residues_with_one_map():
    configs = [_recipe(p) for p in RECIPES]
    sequences = [c.molecule.removeprefix("capped:") for c in configs]
    assert all(c.molecule.startswith("capped:") and c.system == p.stem for c, p in zip(configs, RECIPES, strict=True))
    assert {len(s) for s in sequences} == {2, 3} and len(set("".join(sequences))) >= 8
    shared = [{k: v for k, v in c.identity().items() if k not in ("system", "molecule")} for c in configs]
    assert all(s == shared[0] for s in shared) and shared[0]["mapping"] == "backbone-residue"


def _prior_keys(sequence: str, forcefield, priors: PriorsConfig) -> set[tuple[str, tuple[int, ...]]]:
    """Every (prior kind, canonical bead-type tuple) the priors need for ACE-sequence-NME."""
    top, _ = build_peptide(sequence, forcefield, caps=True)
    cg = make_map(top, np.array([a.element.mass._value for a in top.atoms()]), "backbone-residue")
    topology = Topology.from_bonds(cg.n_beads, cg.bonds)
    keys = set()
    for kind, options in vars(priors).items():
        if options is not None:
            for term in PRIOR_TERMS[kind](options).terms(topology):
                keys.add((kind, canonical(tuple(cg.bead_types[i] for i in term))))
    return keys


def test_every_prior_tuple_of_a_held_out_peptide_occurs_in_training(fit_config):
    """The priors are keyed by bead types: a held-out peptide with a tuple never trained on cannot be simulated."""
    forcefield = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
    priors = priors_config(fit_config["model"]["priors"])
    held_out = fit_config["data"]["holdout_systems"]
    sequences = {c.system: c.molecule.removeprefix("capped:") for c in map(_recipe, RECIPES)}
    assert len(held_out) >= 2 and set(held_out) <= set(sequences)
    keys = {name: _prior_keys(seq, forcefield, priors) for name, seq in sequences.items()}
    trained = set().union(*(k for name, k in keys.items() if name not in held_out))
    for name in held_out:
        missing = keys[name] - trained
        assert not missing, f"{name}: {sorted(missing)}"
    # the oracle sees the pair tuples: without GSV (G..V, the CA-CA repulsion of GDV) one is missing
    without = set().union(*(k for name, k in keys.items() if name not in held_out and name != "GSV"))
    assert keys["GDV"] - without
