"""The README's own commands on a fresh copy of the repository, timed: where its durations come from.

    python benchmarks/readme_times.py [--keep DIR] [--skip-tests]

Clones the repository's HEAD into a temporary directory (the installed cglight is not touched: the
commands run there with ``PYTHONPATH`` pointing at the copy) and runs, in order and as the README
writes them:

1. ``cglight prepare --config configs/prepare/ala2.yaml --out data/ala2`` (what the quickstart's
   ``fit`` does first when ``data/ala2`` is missing; timed on its own so that MD, Hessians and
   training can be told apart; the MD and Hessian split comes from prepare's own log);
2. ``cglight fit --config configs/quickstart.yaml``;
3. ``cglight simulate --config configs/simulate/ala2.yaml``;
4. ``cglight evaluate --config configs/evaluate/ala2.yaml``;
5. ``python -m pytest`` (unless ``--skip-tests``).

It prints one table: each command's wall time, its exit status, and the machine (cores, load
average before and after): the README quotes these numbers with the load they were measured at.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ("prepare (MD + Hessians)", ["cglight", "prepare", "--config", "configs/prepare/ala2.yaml", "--out", "data/ala2"]),
    ("fit (quickstart training)", ["cglight", "fit", "--config", "configs/quickstart.yaml"]),
    ("simulate (configs/simulate/ala2.yaml)", ["cglight", "simulate", "--config", "configs/simulate/ala2.yaml"]),
    ("evaluate (configs/evaluate/ala2.yaml)", ["cglight", "evaluate", "--config", "configs/evaluate/ala2.yaml"]),
    ("tests (python -m pytest)", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", default=None, help="clone into this directory and keep it (default: a temporary one)")
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cglight-readme-"))
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(work)], check=True)
    env = dict(os.environ, PYTHONPATH=str(work), CGLIGHT_PROGRESS="0", WANDB_MODE="offline")
    rows = []
    for name, command in COMMANDS:
        if args.skip_tests and command[0] == sys.executable:
            continue
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        with open(work / f"{name.split()[0]}.log", "w") as log:
            status = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        rows.append((name, time.perf_counter() - start, status, load_before, os.getloadavg()[0]))
        print(f"{name:<40} {rows[-1][1]:8.1f} s  exit {status}  load {load_before:.1f} -> {rows[-1][4]:.1f}", flush=True)
    print(f"\n{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M %Z')}; logs in {work}")
    print("| command | wall time | exit | load average (1 min) before → after |\n| --- | ---: | ---: | --- |")
    for name, seconds, status, before, after in rows:
        print(f"| {name} | {seconds:.0f} s | {status} | {before:.1f} → {after:.1f} |")


if __name__ == "__main__":
    main()
