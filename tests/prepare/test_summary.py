"""The end of ``cglight prepare``: what the dataset holds, where, and the next command."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cglight.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_ends_with_what_it_wrote_and_the_next_command(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    args = ["prepare", "--config", str(ROOT / "configs/prepare/ala2.yaml"), "--out", "ds", "--frames", "6",
            "--stride_steps", "10", "--equilibration_ps", "0.1"]
    for run in ("built", "complete already"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cglight"):
            assert main(args) == 0, run
        lines = [r.getMessage() for r in caplog.records][-3:]
        manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())  # the oracle: the file itself
        info = manifest["systems"]["ala2"]
        shards = [s for s in manifest["shards"] if s["system"] == "ala2"]
        assert info["hessian"] == "full" and info["reference"], run
        assert lines[0] == (f"dataset ds, system 'ala2': {sum(s['frames'] for s in shards)} frames of 5 beads (C N CA C N) at "
                            f"{info['temperature']:g} K, mapped forces and full projected Hessians, in {len(shards)} shards "
                            "ds/ala2/shard-*.h5; all-atom reference in ds/ala2/reference"), run
        assert lines[1] == ("manifest ds/manifest.json (units, bead types, CG bonds, the map); "
                            "`cglight data info ds` shows it as a table")
        assert lines[2] == "next: cglight fit --config configs/quickstart.yaml --data.path ds", run
