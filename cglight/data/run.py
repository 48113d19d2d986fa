"""``cglight data``: the subcommands that inspect and join datasets (``info``, ``verify``, ``merge``, ``combine``).

Its parser is jsonargparse's, as every other command's: each subcommand takes its positional arguments on the
command line or from ``--config FILE`` and has ``--print_config``; ``--help`` imports nothing heavy.
"""

from __future__ import annotations

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
POSITIONALS = {  # per subcommand: (name, nargs, help) of each positional argument
    "info": [("dir", None, "dataset directory")],
    "verify": [("dir", None, "dataset directory")],
    "merge": [("out", None, "dataset directory to create (or complete)"),
              ("parts", "+", "directories written by `cglight prepare --part I/N`")],
    "combine": [("out", None, "dataset directory to create (or complete, after an interruption)"),
                ("datasets", "+", "finished datasets (each with a manifest.json), of one or more systems")],
}


def parser():
    """The parser of ``cglight data`` (jsonargparse): one subcommand per entry of :data:`SUBCOMMANDS`."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    p = ArgumentParser(prog="cglight data", description="inspect and join cglight datasets", default_env=False)
    sub = p.add_subcommands(required=True, dest="command")
    for name, (_, text) in SUBCOMMANDS.items():
        s = ArgumentParser(description=text, default_env=False)
        s.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the arguments below")
        for argument, nargs, help in POSITIONALS[name]:
            s.add_argument(argument, type=str, nargs=nargs, help=help)
        sub.add_subcommand(name, s, help=text)
        s.prog = f"cglight data {name}"  # not jsonargparse's "cglight data [options] NAME": -h is the only option there
    return p


def main(argv: list[str]) -> int:
    values = parser().parse_args(argv)
    return SUBCOMMANDS[values.command][0](values[values.command])
