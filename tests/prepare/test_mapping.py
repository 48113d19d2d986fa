"""Map algebra against closed forms, built-in maps against the topology, map-file errors."""

from __future__ import annotations

import numpy as np
import pytest
from openmm import app

from cglight.errors import ConfigError
from cglight.prepare.mapping import CGMap, make_map
from cglight.prepare.peptide import build_alanine_dipeptide


@pytest.fixture(scope="module")
def ala2():
    topology, _ = build_alanine_dipeptide(app.ForceField("amber99sbildn.xml"))
    masses = np.array([a.element.mass._value for a in topology.atoms()])
    return topology, masses


def _random_map(rng, n_atoms, n_beads):
    atoms, weights = [], []
    own = rng.permutation(n_atoms)[:n_beads]  # one atom per bead that no other bead uses: full rank
    others = np.setdiff1d(np.arange(n_atoms), own)
    for i in range(n_beads):
        a = np.concatenate([[own[i]], rng.choice(others, size=rng.integers(0, 5), replace=False)])
        w = rng.uniform(0.1, 1.0, size=len(a))
        atoms.append(a.tolist())
        weights.append((w / w.sum()).tolist())
    return CGMap("random", atoms, weights, ["B"] * n_beads, [1] * n_beads, [], n_atoms)


@pytest.mark.parametrize("seed", range(5))
def test_force_map_is_a_right_inverse_of_any_linear_map(seed):
    rng = np.random.default_rng(seed)
    cg = _random_map(rng, n_atoms=30, n_beads=int(rng.integers(2, 8)))
    m, b = cg.matrix(), cg.force_matrix()
    np.testing.assert_allclose(m @ b, np.eye(cg.n_beads), atol=1e-12)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)  # rows are weights: a translation moves every bead alike
    np.testing.assert_allclose(b, np.linalg.pinv(m), atol=1e-10)  # the least-norm right inverse


def test_a_slice_map_reduces_to_selecting_atoms(ala2):
    topology, masses = ala2
    cg = make_map(topology, masses, "backbone")
    b = cg.force_matrix()
    selected = [a[0] for a in cg.atoms]
    names = [a.name for a in topology.atoms()]
    assert [names[i] for i in selected] == ["C", "N", "CA", "C", "N"]
    forces = np.random.default_rng(0).normal(size=(topology.getNumAtoms(), 3))
    np.testing.assert_array_equal(b.T @ forces, forces[selected])
    assert np.array_equal(b, cg.matrix().T)


def test_builtin_maps(ala2):
    topology, masses = ala2
    com = make_map(topology, masses, "residue-com")
    residues = list(topology.residues())
    assert com.bead_names == [r.name for r in residues] == ["ACE", "ALA", "NME"]
    for r, atoms, w in zip(residues, com.atoms, com.weights, strict=True):
        m = np.array([a.element.mass._value for a in r.atoms()])
        assert atoms == [a.index for a in r.atoms()]
        np.testing.assert_allclose(w, m / m.sum())
    with pytest.raises(ConfigError, match="mapping 'ca' gives 1 bead"):  # the old name reaches the same map
        make_map(topology, masses, "ca-slice")


def test_map_file_by_index_and_name(ala2, tmp_path):
    topology, masses = ala2
    path = tmp_path / "map.yaml"
    path.write_text("beads:\n  - {name: X, type: 5, atoms: ['2:N', '2:CA'], weights: [0.25, 0.75]}\n  - {atoms: [1, 4]}\nbonds: [[0, 1]]\n")
    cg = make_map(topology, masses, str(path))
    n_ala = {a.name: a.index for a in list(topology.residues())[1].atoms()}
    assert cg.atoms == [[n_ala["N"], n_ala["CA"]], [1, 4]]
    np.testing.assert_allclose(cg.weights[1], masses[[1, 4]] / masses[[1, 4]].sum())
    assert cg.bead_names == ["X", "B1"] and cg.bead_types == [5, 1] and cg.bonds == [[0, 1]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("beads:\n  - {atoms: ['7:CA']}\n  - {atoms: [0]}\n", r"no residue '7' in the topology"),
        ("beads:\n  - {atoms: ['2:CX']}\n  - {atoms: [0]}\n", r"residue ALA2 has no atom named 'CX'"),
        ("beads:\n  - {atoms: [0, 99]}\n  - {atoms: [1]}\n", r"atom 99 is out of range \[0, 22\)"),
        ("beads:\n  - {atoms: [0, 1], weights: [0.5, 0.6]}\n  - {atoms: [2]}\n", r"weights sum to 1\.1, not 1; normalise them"),
        ("beads:\n  - {atoms: [0, 1], weights: [0.5]}\n  - {atoms: [2]}\n", r"'weights' must be a list of 2 numbers"),
        ("beads: []\n", r"needs a non-empty list 'beads'"),
    ],
)
def test_bad_map_file_names_the_file_and_the_fix(ala2, tmp_path, text, message):
    topology, masses = ala2
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        make_map(topology, masses, str(path))
    assert str(path) in str(err.value)


def test_unknown_mapping_name(ala2):
    with pytest.raises(ConfigError, match="unknown mapping 'martini'; use one of ca, backbone, residue-com"):
        make_map(*ala2, "martini")


def test_ca_map_of_two_chains_has_no_bond_between_them():
    from openmm import unit

    from cglight.prepare.peptide import build_peptide

    topology, positions = build_peptide("YYDPETGTWY", app.ForceField("amber99sbildn.xml"))
    modeller = app.Modeller(topology, positions)
    modeller.add(topology, [p + unit.Quantity((3.0, 0, 0), unit.nanometer) for p in positions])
    masses = np.array([a.element.mass._value for a in modeller.topology.atoms()])
    cg = make_map(modeller.topology, masses, "ca")
    assert cg.n_beads == 20 and cg.bonds == [[i, i + 1] for i in range(19) if i != 9]
    assert cg.bead_types[:2] == [4 + 18, 4 + 18]  # TYR is the 19th amino acid alphabetically
