"""The tables of a loss comparison as Markdown (``OUT/tables.md``, written by ``compare_losses.py``).

Input: compare_losses' results, variant → loss set → one row per seed (a row: ``seed``, ``systems``
(evaluate's metrics per judged system), and where measured ``held_out`` (cglight test),
``pmf_hessian``, ``held_out_curvature``; ``failed`` when its simulation or evaluation failed).
Every number is a plug-in value: a mean over seeds with its 95 % t-interval, per-seed values with
their block-bootstrap intervals, the finite-sample floor next to the divergences, and paired
differences (same seed, same reference) against the first loss set.
"""

from __future__ import annotations

import numpy as np

T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
"""Student's t quantile (97.5 %) by degrees of freedom: the 95 % interval of a mean over a few seeds."""


def mean_interval(values: list[float], digits: int = 3) -> str:
    """``mean [95 % t-interval over the values]`` (one value per seed); ``–`` for none."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return "–"
    if len(v) < 2:
        return f"{v.mean():.{digits}f}"
    half = T_975.get(len(v) - 1, 1.96) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.{digits}f} [{v.mean() - half:.{digits}f}, {v.mean() + half:.{digits}f}]"


def _lookup(row: dict, path: tuple):
    """What lies at ``path`` in a run's row; None where the run lacks it."""
    value = row
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _kl(row: dict, system: str) -> dict | None:
    return _lookup(row, ("systems", system, "kl_tic1"))


def value_at(row: dict, path: tuple) -> float | None:
    """The number at ``path`` in a run's row; None where the run lacks it."""
    value = _lookup(row, path)
    return None if value is None else float(value)


def first_system(results: dict[str, dict[str, list[dict]]]) -> str | None:
    """The first judged system of a comparison (the learning curves are drawn for it)."""
    return next((s for table in results.values() for rows in table.values() for r in rows for s in r.get("systems", {})), None)


MEASURES: tuple[tuple[str, tuple, bool], ...] = (
    # name, the path to its value in a run's row ("{system}": the judged system), drawn on the learning curve
    ("KL TIC1", ("systems", "{system}", "kl_tic1", "plugin"), True),
    ("JS TIC1", ("systems", "{system}", "js_tic1", "plugin"), False),
    ("KL TIC1/2", ("systems", "{system}", "kl_tic12", "plugin"), False),
    ("KL (φ,ψ)", ("systems", "{system}", "kl_phi_psi", "plugin"), False),
    ("held-out force error", ("held_out", "test/force"), True),
    ("PMF Hessian, whole", ("pmf_hessian", "whole"), False),
    ("PMF Hessian, stiff", ("pmf_hessian", "stiff"), True),
    ("PMF Hessian, soft", ("pmf_hessian", "soft"), True),
    ("PMF soft trace", ("pmf_hessian", "soft_trace"), False),
    ("held-out stiff gap", ("held_out_curvature", "{system}", "stiff", "relative_gap"), True),
    ("held-out stiff z", ("held_out_curvature", "{system}", "stiff", "z"), False),
    ("held-out soft z", ("held_out_curvature", "{system}", "soft", "z"), False),
    ("bond JS", ("systems", "{system}", "bonded", "bonds", "js_mean"), True),
    ("angle JS", ("systems", "{system}", "bonded", "angles", "js_mean"), True),
)
"""Every measure of a run: the one list the tables, the learning-curve tables and the learning-curve figure
read (divergences are the paths ending in ``plugin``: they carry a finite-sample floor beside them)."""


def measures(system: str, curve_only: bool = False) -> dict[str, tuple]:
    """Measure name → the path to its value in a run's row, for one judged system."""
    return {name: tuple(system if k == "{system}" else k for k in path)
            for name, path, on_curve in MEASURES if on_curve or not curve_only}


def _floor(rows: list[dict], path: tuple) -> str:
    """A divergence's finite-sample floor over the runs: median of the medians [lowest low, highest high]."""
    floors = [f for r in rows if (f := _lookup(r, (*path[:-1], "floor")))]
    if not floors:
        return "–"
    return (f"{np.median([f['median'] for f in floors]):.3f} [{min(f['low'] for f in floors):.3f}, "
            f"{max(f['high'] for f in floors):.3f}]")


def _present(table: dict[str, list[dict]], cols: dict[str, tuple]) -> dict[str, tuple]:
    return {k: v for k, v in cols.items() if any(value_at(r, v) is not None for rows in table.values() for r in rows)}


def _above_floor(row: dict, system: str) -> str:
    """Bonds and angles above their floor's range, of how many (one run)."""
    bonded = row.get("systems", {}).get(system, {}).get("bonded", {})
    return " ".join(f"{k} {bonded[k]['above_floor']}/{bonded[k]['count']}" for k in ("bonds", "angles")
                    if "above_floor" in bonded.get(k, {})) or "–"


def system_tables(table: dict[str, list[dict]], system: str, first_system: bool) -> list[str]:
    """One judged system under one variant: KL along TIC1 per seed with its floor; every divergence next to
    its floor; every other measure; the paired differences against the first loss set."""
    names = list(table)
    cols = _present(table, {k: v for k, v in measures(system).items() if first_system or v[0] != "pmf_hessian"})
    divergences = {k: v for k, v in cols.items() if v[-1] == "plugin"}
    others = {k: v for k, v in cols.items() if k not in divergences}
    lines = ["| losses | KL TIC1 per seed [bootstrap 95 %] | floor: median [range] | transitions (ref " +
             _ref_transitions(table, system) + ") | bonds/angles above their floor, per seed | failed |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, rows in table.items():
        seeds = ", ".join(f"{k['plugin']:.3f} [{k['plugin_low']:.3f}, {k['plugin_high']:.3f}]" if (k := _kl(r, system)) else
                          f"seed {r['seed']} failed" for r in rows)
        trans = "/".join(str(r["systems"][system]["transitions_tic1"]["model"]) for r in rows if system in r.get("systems", {}))
        above = "; ".join(_above_floor(r, system) for r in rows if system in r.get("systems", {}))
        failed = sum("failed" in r for r in rows)
        lines.append(f"| `{name}` | {seeds} | {_floor(rows, ('systems', system, 'kl_tic1', 'plugin'))} | {trans} | {above} | {failed} |")
    for group in (divergences, others):
        if not group:
            continue
        lines += ["", "| losses | " + " | ".join(group) + " |", "|" + " --- |" * (len(group) + 1)]
        if group is divergences:
            every = [r for rows in table.values() for r in rows]
            lines.append("| floor: a perfect model sampled as much | " + " | ".join(_floor(every, p) for p in group.values()) + " |")
        for name, rows in table.items():
            lines.append(f"| `{name}` | " + " | ".join(mean_interval([value_at(r, p) for r in rows]) for p in group.values()) + " |")
    lines += _reference_notes(table, system, first_system)
    if len(names) > 1:
        lines += ["", f"Paired differences against `{names[0]}` (same seed): mean [95 % t-interval over seeds]; "
                  "KL TIC1 per seed ± the two bootstrap half-widths in quadrature.", "",
                  "| losses | " + " | ".join(f"Δ {c}" for c in cols) + " | Δ KL TIC1 per seed |",
                  "|" + " --- |" * (len(cols) + 2)]
        for name in names[1:]:
            pairs = [(a, b) for a in table[names[0]] for b in table[name] if a["seed"] == b["seed"]]
            cells = []
            for path in cols.values():
                diffs = [value_at(b, path) - value_at(a, path) for a, b in pairs if value_at(a, path) is not None and value_at(b, path) is not None]
                cells.append(mean_interval(diffs))
            per_seed = ", ".join(
                f"{kb['plugin'] - ka['plugin']:+.3f} ± "
                f"{np.hypot((ka['plugin_high'] - ka['plugin_low']) / 2, (kb['plugin_high'] - kb['plugin_low']) / 2):.3f}"
                for a, b in pairs if (ka := _kl(a, system)) and (kb := _kl(b, system)))
            lines.append(f"| `{name}` − `{names[0]}` | " + " | ".join(cells) + f" | {per_seed} |")
    failures = [f"- `{name}` seed {r['seed']}: {r['failed']}" for name, rows in table.items() for r in rows if "failed" in r]
    if failures:
        lines += ["", "Failed runs (left out of every mean above):", "", *failures]
    return lines


def _reference_notes(table: dict[str, list[dict]], system: str, first_system: bool) -> list[str]:
    """What the curvature measures are measured against: the PMF-Hessian reference's soft trace and the
    held-out ``hvp_cov`` target's block traces (kcal/mol/Å²)."""
    rows = [r for rs in table.values() for r in rs]
    notes = []
    pmf = next((r["pmf_hessian"] for r in rows if "pmf_hessian" in r), None) if first_system else None
    if pmf and "reference_soft_trace" in pmf:
        notes.append(f"PMF-Hessian reference soft trace {pmf['reference_soft_trace']:.1f}" +
                     (f" ± {pmf['reference_soft_trace_stderr']:.1f}" if "reference_soft_trace_stderr" in pmf else "") +
                     " (errors: relative Frobenius, mean over the reference configurations).")
    held = [r["held_out_curvature"][system] for r in rows if system in r.get("held_out_curvature", {})]
    if held:
        notes.append("Held-out `hvp_cov` (centered) target, block trace mean ± stderr: " + ", ".join(
            f"{block} {np.mean([h[block]['target'] for h in held]):.4g} ± {np.mean([h[block]['stderr'] for h in held]):.2g}"
            for block in ("stiff", "soft") if all(block in h for h in held)) +
            " (gap: |model − target| / |target|; z: (model − target) / stderr).")
    return ["", *notes] if notes else []


def _ref_transitions(table: dict[str, list[dict]], system: str) -> str:
    for rows in table.values():
        for r in rows:
            if system in r.get("systems", {}):
                return str(r["systems"][system]["transitions_tic1"]["reference"])
    return "?"


def pooled_lines(table: dict[str, list[dict]], systems: list[str]) -> list[str]:
    """KL TIC1 differences against the first loss set pooled over judged systems: per seed the mean over
    systems (one model judges them all), then a t-interval over seeds."""
    names = list(table)
    lines = [f"Pooled over {', '.join(systems)}: KL TIC1, loss set − `{names[0]}`, per seed the mean over systems, "
             "then mean [95 % t-interval over seeds]; lower on how many (system, seed) pairs.", ""]
    for name in names[1:]:
        per_seed, lower, pairs = [], 0, 0
        for a, b in ((a, b) for a in table[names[0]] for b in table[name] if a["seed"] == b["seed"]):
            both = [s for s in systems if _kl(a, s) and _kl(b, s)]
            if both:
                diffs = [_kl(b, s)["plugin"] - _kl(a, s)["plugin"] for s in both]
                per_seed.append(float(np.mean(diffs)))
                lower += sum(d < 0 for d in diffs)
                pairs += len(diffs)
        seeds = ", ".join(f"{d:+.3f}" for d in per_seed)
        lines.append(f"- `{name}` − `{names[0]}`: {mean_interval(per_seed)} (per seed {seeds}); lower on {lower} of {pairs}")
    return lines


def learning_curve_lines(results: dict[str, dict[str, list[dict]]]) -> list[str]:
    """Per measure: variants (rows) × loss sets (columns), mean [95 % t], and the paired difference of
    each loss set against the first; for the first judged system."""
    names = list(dict.fromkeys(n for table in results.values() for n in table))
    lines = []
    first = first_system(results)
    if first is None:
        return lines
    for measure, path in measures(first, curve_only=True).items():
        if not any(value_at(r, path) is not None for t in results.values() for rows in t.values() for r in rows):
            continue
        lines += [f"**{measure}**, mean [95 % t-interval over seeds]", "",
                  "| variant | " + " | ".join(f"`{n}`" for n in names) + " | " +
                  " | ".join(f"`{n}` − `{names[0]}`" for n in names[1:]) + " |",
                  "|" + " --- |" * (2 * len(names))]
        for variant, table in results.items():
            cells = [mean_interval([value_at(r, path) for r in table[n]]) if n in table else "–" for n in names]
            for n in names[1:]:
                if n not in table or names[0] not in table:
                    cells.append("–")
                    continue
                pairs = [(value_at(a, path), value_at(b, path)) for a in table[names[0]] for b in table[n] if a["seed"] == b["seed"]]
                cells.append(mean_interval([y - x for x, y in pairs if x is not None and y is not None]))
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def markdown(results: dict[str, dict[str, list[dict]]], variant_args: dict[str, list[str]], seconds: dict | None = None,
             notes: list[str] = ()) -> str:
    """Every table of a comparison, in Markdown (``notes``: lines under the title)."""
    lines = ["# Tables", "", *notes, *([""] if notes else [])]
    if len(results) > 1:
        lines += ["## Learning curves", ""] + learning_curve_lines(results)
    for variant, table in results.items():
        if variant:
            lines += [f"## {variant}: `{' '.join(variant_args.get(variant, [])) or '(no extra fit options)'}`", ""]
        systems = list(dict.fromkeys(s for rows in table.values() for r in rows for s in r.get("systems", {})))
        for i, system in enumerate(systems):
            lines += [f"### {system}", ""] if len(systems) > 1 else []
            lines += system_tables(table, system, i == 0) + [""]
        if len(systems) > 1:
            lines += pooled_lines(table, systems) + [""]
    if seconds:
        lines += ["## Wall time of every stage (s)", "", "| stage | min | median | max | runs |", "| --- | --- | --- | --- | --- |"]
        for stage, values in seconds.items():
            lines.append(f"| {stage} | {min(values):.0f} | {np.median(values):.0f} | {max(values):.0f} | {len(values)} |")
    return "\n".join(lines) + "\n"


def stage_seconds(results: dict[str, dict[str, list[dict]]]) -> dict[str, list[float]]:
    """Stage → the wall times of every run that ran it (from the runs' ``seconds``)."""
    out: dict[str, list[float]] = {}
    for table in results.values():
        for rows in table.values():
            for r in rows:
                for stage, s in r.get("seconds", {}).items():
                    out.setdefault(stage, []).append(float(s))
    return out
