"""``cglight.units``: the conversions by hand, and none spelled out elsewhere in cglight/."""

from __future__ import annotations

import re
from pathlib import Path

from cglight.units import FS_TO_PS, fs_to_ps, steps_in

ROOT = Path(__file__).resolve().parents[1]
BARE = re.compile(r"[*/]\s*(10\.0|0\.1|1000\.0|1e-3|1e3|4\.184|418\.4)\b(?!\s*\*\*)|86400|0\.0019872|(?<!self)\._value\b")
"""A nm↔Å, fs↔ps, kJ↔kcal factor, seconds per day, k_B, or an OpenMM quantity's raw value."""
KNOWN = {
    # Å → nm for OpenMM's writers; simulate's output format moves into one class (issue 15, formats part)
    "cglight/simulate/trajectory.py": 2,
}


def test_conversions_by_hand():
    # exactly as a manifest stores it as text (9 × 4 fs × 1e-3 would give 0.036000000000000004)
    assert fs_to_ps(2.0 * 500) == 1.0 and str(fs_to_ps(4.0 * 9)) == "0.036"
    assert steps_in(0.1, 2.0) == 50 and steps_in(1.0, 3.0) == 333 and steps_in(0.0, 2.0) == 0
    assert abs(fs_to_ps(7.0) - 7.0 * FS_TO_PS) < 1e-15


def test_no_bare_conversion_outside_units_py():
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "cglight").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name == "cglight/units.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if BARE.search(code) and not code.lstrip().startswith(('"', "'")):
                found.setdefault(name, []).append(f"{name}:{number}: {line.strip()}")
    unexpected = [hit for name, hits in found.items() if len(hits) != KNOWN.get(name, 0) for hit in hits]
    assert not unexpected, "unit conversions belong in cglight/units.py:\n" + "\n".join(unexpected)
