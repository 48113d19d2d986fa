"""Wall time of ``cglight COMMAND --help`` for every command, each a fresh process.

    python benchmarks/help_time.py [--repeats 3]

``fit``, ``validate`` and ``test`` build LightningCLI's parser (torch, Lightning) the first time and
then print the kept text (``cglight.help_cache``): both are measured, in an empty cache directory
of their own ("first") and then with the kept text ("kept"). Prints the median of ``repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [["prepare"], ["fit"], ["validate"], ["test"], ["simulate"], ["evaluate"], ["diagnose"], ["plugins"], ["data"],
            ["data", "info"]]
LIGHTNING = ("fit", "validate", "test")


def seconds(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cglight.cli", *command, "--help"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    print(f"{'command':<16} {'seconds (median of ' + str(args.repeats) + ')':>28}")
    for command in COMMANDS:
        name = " ".join(command)
        if command[0] in LIGHTNING:
            first = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as cache:
                    first.append(seconds(command, {**env, "XDG_CACHE_HOME": cache}))
            with tempfile.TemporaryDirectory() as cache:
                seconds(command, {**env, "XDG_CACHE_HOME": cache})
                kept = [seconds(command, {**env, "XDG_CACHE_HOME": cache}) for _ in range(args.repeats)]
            print(f"{name + ' (first)':<16} {statistics.median(first):>28.2f}")
            print(f"{name + ' (kept)':<16} {statistics.median(kept):>28.2f}")
        else:
            print(f"{name:<16} {statistics.median(seconds(command, env) for _ in range(args.repeats)):>28.2f}")


if __name__ == "__main__":
    main()
