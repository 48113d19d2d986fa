"""``cglight data``: the subcommands that inspect and join datasets (``info``, ``verify``, ``merge``, ``combine``)."""

from __future__ import annotations

import argparse
import sys


def _info(args) -> int:
    from cglight.data.info import dataset_info

    print(dataset_info(args.dir))
    return 0


def _verify(args) -> int:
    from cglight.data.verify import verify_dataset

    faults, lines = verify_dataset(args.dir)
    for line in lines:
        print(line)
    if faults:
        print(f"{args.dir}: {len(faults)} fault(s)", file=sys.stderr)
        return 1
    print(f"{args.dir}: all shards verified")
    return 0


def _merge(args) -> int:
    from cglight.data.merge import merge_parts

    merge_parts(args.out, args.parts)
    return 0


def _combine(args) -> int:
    from cglight.data.combine import combine_datasets

    combine_datasets(args.out, args.datasets)
    return 0


SUBCOMMANDS = {
    "info": (_info, "print a table of the dataset's systems (beads, frames, Hessian mode, temperature, size, shards, sampling)"),
    "verify": (_verify, "check every shard's checksum, shapes, dtypes and finite values; exit status 0 only when all is well"),
    "merge": (_merge, "join the directories of `cglight prepare --part I/N` runs into one dataset"),
    "combine": (_combine, "join datasets of different systems (same temperature, Hessian mode and map kind) into one"),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cglight data", description="inspect and join cglight datasets")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (_, text) in SUBCOMMANDS.items():
        s = sub.add_parser(name, help=text, description=text)
        if name == "merge":
            s.add_argument("out", help="dataset directory to create (or complete)")
            s.add_argument("parts", nargs="+", help="directories written by `cglight prepare --part I/N`")
        elif name == "combine":
            s.add_argument("out", help="dataset directory to create (or complete, after an interruption)")
            s.add_argument("datasets", nargs="+", help="finished datasets (each with a manifest.json), of one or more systems")
        else:
            s.add_argument("dir", help="dataset directory")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return SUBCOMMANDS[args.command][0](args)
