"""`cglight data verify` and `info` on real datasets, damaged on purpose."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from cglight.cli import main
from cglight.data.info import integrated_autocorrelation_time


@pytest.fixture
def copy(tiny_dataset, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(tiny_dataset, dst)
    return dst


def test_verify_passes_a_good_dataset(tiny_dataset, capsys):
    assert main(["data", "verify", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok    ") == 3 and "all shards verified" in out


def test_verify_names_the_shard_after_one_byte_is_flipped(copy, capsys):
    path = copy / "ala2/shard-00001.h5"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    assert main(["data", "verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"FAULT {path}: sha256 does not match the manifest" in out
    assert "ok    " + str(copy / "ala2/shard-00000.h5") in out and "ok    " + str(copy / "ala2/shard-00002.h5") in out


def test_verify_names_every_frame_holding_nan(copy, capsys):
    path = copy / "ala2/shard-00002.h5"
    with h5py.File(path, "r+") as f:
        f["forces"][3, 1, 0] = np.nan
        f["hessian"][5, 0, 0] = np.inf
        f["hessian"][6, 2, 1] = np.nan
    assert main(["data", "verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: dataset 'forces' holds NaN or inf at frame 3\n" in out
    assert f"{path}: dataset 'hessian' holds NaN or inf at frames 5, 6\n" in out


def test_verify_reports_a_missing_reference_file(copy, capsys):
    (copy / "ala2/reference/system.xml").unlink()
    assert main(["data", "verify", str(copy)]) == 1
    assert "system.xml: reference file of system 'ala2' is missing" in capsys.readouterr().out


def _table(out: str) -> list[str]:
    """The table of ``cglight data info``'s output: its lines before the blank line that opens the legend."""
    return out.strip().split("\n\n")[0].splitlines()


def test_info_table(tiny_dataset, capsys):
    assert main(["data", "info", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    header, rule, row = _table(out)
    assert header.split()[:7] == ["system", "beads", "frames", "hessian", "T", "(K)", "size"]
    cells = row.split()
    assert cells[:5] == ["ala2", "5", "40", "full", "300"] and "KiB" in row and " ESS" in header
    # the legend under the table explains the sampling columns, each on its own line
    legend = out.strip().split("\n\n")[1].splitlines()
    for column in ("slowest feature", "tau", "ESS"):
        assert column in header
        assert any(line.startswith(f"{column}:") for line in legend), column
    # a dihedral is named by its beads (φ/ψ on this backbone map), not by a number
    assert "dihedral 0" not in out and "dihedral 1" not in out


def test_dihedrals_are_named_by_their_beads_and_as_phi_psi_where_the_map_allows():
    from cglight.data.info import dihedral_names, features
    from cglight.evaluate.geometry import phi_psi_beads

    ala2 = ["C", "N", "CA", "C", "N"]
    assert dihedral_names(ala2) == ["φ (C0-N1-CA2-C3)", "ψ (N1-CA2-C3-N4)"]
    # oracle: the (φ, ψ) quadruples cglight evaluate uses for this map
    phi, psi = phi_psi_beads(ala2)
    names = dihedral_names(ala2)
    assert names[phi[0]].startswith("φ ") and names[psi[0]].startswith("ψ ")
    # a longer backbone: φ and ψ numbered by residue, the ω between them named by its beads only
    ala4 = ["C"] + ["N", "CA", "C"] * 4 + ["N"]
    assert dihedral_names(ala4)[:4] == ["φ1 (C0-N1-CA2-C3)", "ψ1 (N1-CA2-C3-N4)", "CA2-C3-N4-CA5", "φ2 (C3-N4-CA5-C6)"]
    assert [n.split()[0] for n in dihedral_names(ala4) if n[0] in "φψ"] == ["φ1", "ψ1", "φ2", "ψ2", "φ3", "ψ3", "φ4", "ψ4"]
    # a Cα map has neither
    assert dihedral_names(["CA"] * 5) == ["CA0-CA1-CA2-CA3", "CA1-CA2-CA3-CA4"]
    pos = np.random.default_rng(0).normal(size=(10, 5, 3))
    assert set(features(pos, ala2)) == {"end-to-end", "Rg", "cos φ (C0-N1-CA2-C3)", "sin φ (C0-N1-CA2-C3)",
                                        "cos ψ (N1-CA2-C3-N4)", "sin ψ (N1-CA2-C3-N4)"}


def test_autocorrelation_time_of_an_ar1_process():
    """x_t = a x_{t−1} + noise has τ = (1 + a) / (1 − a) exactly."""
    rng = np.random.default_rng(0)
    for a in (0.0, 0.5, 0.9):
        x = np.zeros(200_000)
        noise = rng.normal(size=x.size)
        for t in range(1, x.size):
            x[t] = a * x[t - 1] + noise[t]
        assert integrated_autocorrelation_time(x) == pytest.approx((1 + a) / (1 - a), rel=0.08)


def test_info_and_verify_read_a_version_1_dataset_written_by_hand(tmp_path, capsys):
    """No replica, fd_asymmetry or trajectories fields: the format as first fixed."""
    from cglight.data import Manifest, ShardInfo, SystemInfo, keys, write_manifest
    from cglight.data.shards import write_shard

    rng = np.random.default_rng(0)
    shards = []
    for i in range(2):
        arrays = {keys.POS: rng.normal(size=(50, 4, 3)), keys.FORCES: rng.normal(size=(50, 4, 3)),
                  keys.HESSIAN: rng.normal(size=(50, 12, 12)), keys.FRAME_INDEX: np.arange(50 * i, 50 * i + 50)}
        digest = write_shard(tmp_path / f"toy/shard-{i:05d}.h5", arrays)
        shards.append(ShardInfo(f"toy/shard-{i:05d}.h5", "toy", 50, digest))
    write_manifest(tmp_path, Manifest({"toy": SystemInfo(300.0, [1, 2, 2, 1], list("ABBA"), [[0, 1]], "custom", "full")}, shards))
    assert main(["data", "verify", str(tmp_path)]) == 0
    assert main(["data", "info", str(tmp_path)]) == 0
    row = _table(capsys.readouterr().out)[-1].split()
    assert row[:5] == ["toy", "4", "100", "full", "300"]
    assert float(row[-1]) > 50  # independent random frames: an effective sample size near 100


def test_dihedrals_agree_with_mdtraj():
    import mdtraj

    from cglight.data.info import dihedrals

    pos = np.random.default_rng(1).normal(size=(7, 6, 3))
    top = mdtraj.Topology()
    residue = top.add_residue("X", top.add_chain())
    for _ in range(6):
        top.add_atom("C", mdtraj.element.carbon, residue)
    traj = mdtraj.Trajectory(pos / 10.0, top)
    expected = mdtraj.compute_dihedrals(traj, [[i, i + 1, i + 2, i + 3] for i in range(3)], periodic=False)
    np.testing.assert_allclose(dihedrals(pos), expected, atol=1e-5)


def test_data_takes_its_arguments_from_a_config_file_as_every_command_does(tiny_dataset, tmp_path, capsys):
    """Oracle: the same subcommand with its argument on the command line."""
    assert main(["data", "info", str(tiny_dataset)]) == 0
    direct = capsys.readouterr().out
    config = tmp_path / "info.yaml"
    config.write_text(f"dir: {tiny_dataset}\n")
    assert main(["data", "info", "--config", str(config)]) == 0
    assert capsys.readouterr().out == direct
    assert main(["data", "merge", "out", "p1", "p2", "--print_config"]) == 0
    assert capsys.readouterr().out == "out: out\nparts:\n- p1\n- p2\n"


def test_data_refuses_a_missing_config_file_and_an_unknown_subcommand(tmp_path, capsys):
    assert main(["data", "verify", "--config", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"cglight: error: config file {tmp_path / 'none.yaml'} does not exist\n"
    assert main(["data", "check", str(tmp_path)]) == 2
    assert "invalid choice: 'check' (choose from 'info', 'verify', 'merge', 'combine')" in capsys.readouterr().err
    assert main(["data", "merge", str(tmp_path)]) == 2  # no part given
    assert "merge.parts" in capsys.readouterr().err
