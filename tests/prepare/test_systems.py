"""Built-in proteins, the user's own PDB and trajectory, and bad input (one line, exit 2, nothing lost)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import mdtraj
import numpy as np
import pytest

from cglight.cli import main
from cglight.data.verify import verify_dataset
from cglight.prepare import PrepareConfig, prepare_dataset
from cglight.prepare.mapping import residue_type
from cglight.prepare.peptide import ONE_LETTER

FF = ["amber99sbildn.xml", "amber99_obc.xml"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "molecule, sequence",
    [("tetra-alanine", "AAAA"), ("chignolin", "YYDPETGTWY"), ("trpcage", "NLYIQWLKDGGPSSGRPPPS"),
     ("villin", "LSDEDFKAVFGMTRSAFANLPLWKQHLKKEKGLF")],
)
def test_builtin_proteins_prepare_with_a_ca_map(tmp_path, molecule, sequence):
    config = PrepareConfig(system=molecule, molecule=molecule, mapping="ca", hessian="probes", hessian_probes=2, frames=2,
                           stride_steps=5, equilibration_ps=0.005, workers=1, md_platform="CPU")
    root = prepare_dataset(config, tmp_path / molecule)
    assert verify_dataset(root)[0] == []
    entry = json.loads((root / "manifest.json").read_text())["systems"][molecule]
    top = mdtraj.load_pdb(str(root / entry["reference"]["topology"])).topology
    residues = [r.name for r in top.residues]
    assert not {"HOH", "CL", "Cl"} & set(residues)  # villin: water and ions stripped
    if molecule != "villin":
        assert residues == [ONE_LETTER[c] for c in sequence]
    n = len(residues)
    assert entry["bead_names"] == ["CA"] * n and entry["bonds"] == [[i, i + 1] for i in range(n - 1)]
    assert entry["bead_types"] == [residue_type(r) for r in residues] and max(entry["bead_types"]) < 32
    assert [top.atom(a[0]).name for a in entry["map"]["atoms"]] == ["CA"] * n
    assert top.n_atoms > 10 * n  # hydrogens added


def _ala2_reference(tiny_dataset):
    entry = json.loads((tiny_dataset / "manifest.json").read_text())["systems"]["ala2"]
    return tiny_dataset / entry["reference"]["topology"], tiny_dataset / entry["reference"]["trajectory"]


def test_user_trajectory_is_re_evaluated_not_simulated(tiny_dataset, tmp_path):
    pdb, dcd = _ala2_reference(tiny_dataset)
    config = PrepareConfig(system="mine", pdb=str(pdb), forcefield=FF, trajectory=[str(dcd)], trajectory_stride=5,
                           frames=6, shard_frames=4, workers=1)
    root = prepare_dataset(config, tmp_path / "mine")
    with h5py.File(root / "mine/shard-00000.h5", "r") as f, h5py.File(tiny_dataset / "ala2/shard-00000.h5", "r") as g:
        assert f["frame_index"][:].tolist() == [0, 1, 2, 3]
        # frame k of the re-read trajectory is frame 5k of the original: the same forces and Hessian
        np.testing.assert_array_equal(f["forces"][:], g["forces"][[0, 5, 10, 15]])
        np.testing.assert_array_equal(f["hessian"][:], g["hessian"][[0, 5, 10, 15]])
    entry = json.loads((root / "manifest.json").read_text())["systems"]["mine"]
    assert entry["reference"]["forcefield"] == ", ".join(FF) and "frame_interval_ps" not in entry["reference"]


def test_user_trajectory_in_another_format(tiny_dataset, tmp_path):
    pdb, dcd = _ala2_reference(tiny_dataset)
    xtc = tmp_path / "run.xtc"
    mdtraj.load(str(dcd), top=str(pdb))[:6].save_xtc(str(xtc))  # XTC keeps 1e-3 nm
    config = PrepareConfig(system="mine", pdb=str(pdb), forcefield=FF, trajectory=str(xtc), frames=6, workers=1, hessian="none")
    root = prepare_dataset(config, tmp_path / "mine")
    with h5py.File(root / "mine/shard-00000.h5", "r") as f, h5py.File(tiny_dataset / "ala2/shard-00000.h5", "r") as g:
        np.testing.assert_allclose(f["pos"][:], g["pos"][:6], atol=6e-3)  # Å: within the XTC rounding
        assert f["frame_index"][:].tolist() == list(range(6))


def test_user_pdb_is_simulated(tiny_dataset, tmp_path):
    pdb, _ = _ala2_reference(tiny_dataset)
    config = PrepareConfig(system="mine", pdb=str(pdb), forcefield=FF, mapping="residue-com", hessian="none", frames=3,
                           stride_steps=5, equilibration_ps=0.0, workers=1)
    root = prepare_dataset(config, tmp_path / "mine")
    assert verify_dataset(root)[0] == []
    assert json.loads((root / "manifest.json").read_text())["systems"]["mine"]["bead_names"] == ["ACE", "ALA", "NME"]


def _cli_fails(tmp_path, capsys, *args) -> str:
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True, exist_ok=True)
    (out / "keep" / "mine.txt").write_text("precious")
    (tmp_path / "p.yaml").write_text("frames: 2\nstride_steps: 5\nequilibration_ps: 0.0\nworkers: 1\n")
    code = main(["prepare", "--config", str(tmp_path / "p.yaml"), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["keep", "keep/mine.txt"]  # nothing written
    return err


def test_bad_input_is_one_line_and_exit_2(tiny_dataset, tmp_path, capsys):
    pdb, dcd = _ala2_reference(tiny_dataset)
    short = tmp_path / "short.dcd"
    mdtraj.load(str(dcd), top=str(pdb)).atom_slice(range(21)).save_dcd(str(short))
    err = _cli_fails(tmp_path, capsys, "--pdb", str(pdb), "--forcefield", json.dumps(FF), "--trajectory", json.dumps([str(short)]))
    assert f"trajectory {short}" in err and "21 atoms but the topology has 22" in err
    err = _cli_fails(tmp_path, capsys, "--pdb", str(pdb), "--forcefield", '["amber99sbildn.xml", "nope/obc.xml"]')
    assert "force-field file 'nope/obc.xml' does not exist" in err and "'forcefield'" in err
    err = _cli_fails(tmp_path, capsys, "--constraints", "hbonds")
    assert "involves an atom that map 'backbone' uses" in err and "set constraints: none" in err
    err = _cli_fails(tmp_path, capsys, "--mapping", str(tmp_path / "missing.yaml"))
    assert "unknown mapping" in err and "missing.yaml" in err
    bad_map = tmp_path / "bad_map.yaml"
    bad_map.write_text("beads:\n  - {atoms: [0, 1], weights: [0.3, 0.3]}\n  - {atoms: [4]}\n")
    err = _cli_fails(tmp_path, capsys, "--mapping", str(bad_map))
    assert f"map file {bad_map}" in err and "weights sum to 0.6, not 1" in err
    err = _cli_fails(tmp_path, capsys, "--pdb", str(tmp_path / "none.pdb"), "--forcefield", json.dumps(FF))
    assert "pdb file" in err and "does not exist" in err
    assert Path(pdb).is_file()


def test_pdb_without_hydrogens_prepares_with_add_hydrogens(tmp_path, capsys):
    from openmm import app, unit

    from cglight.prepare.systems import build_system, pdb_text

    full = build_system("alanine-dipeptide", "vacuum")
    modeller = app.Modeller(full.topology, full.positions * unit.nanometer)
    modeller.delete([a for a in modeller.topology.atoms() if a.element.symbol == "H"])
    heavy = tmp_path / "heavy.pdb"
    heavy.write_text(pdb_text(modeller.topology, np.asarray(modeller.positions.value_in_unit(unit.nanometer))))
    assert modeller.topology.getNumAtoms() == 10
    args = ["prepare", "--pdb", str(heavy), "--forcefield", '["amber99sbildn.xml"]', "--frames", "2", "--stride_steps", "5",
            "--equilibration_ps", "0", "--hessian", "none", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "without")]) == 2  # refused, with the hint to add them
    assert "hydrogens missing? set add_hydrogens: true" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "with"), "--add_hydrogens", "true"]) == 0, capsys.readouterr().err
    entry = json.loads((tmp_path / "with/manifest.json").read_text())["systems"]["ala2"]
    top = mdtraj.load_pdb(str(tmp_path / "with" / entry["reference"]["topology"])).topology
    assert top.n_atoms == full.topology.getNumAtoms() == 22  # the 12 hydrogens of ACE-ALA-NME are back
    assert sorted(a.name for a in top.atoms) == sorted(a.name for a in full.topology.atoms())
    assert verify_dataset(tmp_path / "with")[0] == []
