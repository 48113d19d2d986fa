"""The end of ``cglight evaluate``: the headline with its interval and floor, where the report went, what next."""

from __future__ import annotations

import json
import logging

from cglight.cli import main
from cglight.evaluate.bonded import bonded_text
from tests.evaluate.fake_simulation import fake_simulation


def test_evaluate_ends_with_the_headline_where_it_wrote_and_the_next_step(tiny_dataset, tmp_path, caplog):
    sim = fake_simulation(tiny_dataset, tmp_path / "sim")
    out = tmp_path / "eval"
    with caplog.at_level(logging.INFO, logger="cglight"):
        assert main(["evaluate", "--reference", str(tiny_dataset), "--simulation", str(sim), "--out", str(out), "--lag", "2",
                     "--bootstrap", "5", "--floor_draws", "5"]) == 0
    lines = [r.getMessage() for r in caplog.records][-4:]
    written = json.loads((out / "metrics.json").read_text())["systems"]["ala2"]  # what was written, read back
    m = written["kl_tic1"]
    f = m["floor"]
    assert lines[0] == (f"ala2: KL(ref‖model) along TIC1, nats: {m['plugin']:.3f} [{m['plugin_low']:.3f}, "
                        f"{m['plugin_high']:.3f}] (plug-in, 95% interval); a perfect model sampled as much scores "
                        f"{f['median']:.3f} [{f['low']:.3f}, "
                        f"{f['high']:.3f}] (finite-sample floor, 5 subsamples); bias-corrected {m['value']:.3f}")
    bonds = written["bonded"]["bonds"]
    assert lines.pop(1) == (f"ala2: bonded geometry, bonds: JS mean {bonds['js_mean']:.4f} (floor {bonds['floor_mean']:.4f}), "
                            f"{bonds['above_floor']} of 4 above their floor's range; worst {bonds['worst']['name']} "
                            f"{bonds['worst']['js']:.4f}; angles: " + bonded_text(written["bonded"]).split("; angles: ")[1])
    pngs = sorted(p.name for p in (out / "ala2").glob("*.png"))
    assert pngs == sorted(["tic1.png", "tic12.png", "phi_psi.png", "geometry.png"])
    assert lines[1] == (f"wrote {out}/metrics.json and {out}/report.md (every divergence with its interval and floor, warnings), "
                        f"pictures {out}/ala2/{{tic1.png, tic12.png, phi_psi.png, geometry.png}}")
    assert (out / "report.md").is_file() and lines[2] == f"next: open {out}/report.md"
