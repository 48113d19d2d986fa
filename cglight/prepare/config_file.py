"""The ``cglight prepare`` options as a parser, and a prepare YAML read into a ``PrepareConfig``."""

from __future__ import annotations

import os
from pathlib import Path

from cglight.errors import ConfigError
from cglight.prepare.pipeline import PrepareConfig


def prepare_parser(description: str = "build a dataset"):
    """The argument parser of ``cglight prepare`` (every ``PrepareConfig`` field, plus --out, --overwrite, --part)."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="cglight prepare", description=description, default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below")
    parser.add_argument("--out", type=str, required=True, help="dataset directory to create")
    parser.add_argument("--overwrite", type=bool, default=False, help="replace an existing dataset at --out")
    parser.add_argument("--part", type=str, default="1/1", help="prepare the I-th of N slices of the work (I/N); join with `cglight data merge`")
    parser.add_class_arguments(PrepareConfig, as_group=True)
    return parser


def prepare_config(values) -> PrepareConfig:
    """The ``PrepareConfig`` of parsed ``cglight prepare`` options."""
    return PrepareConfig(**{k: values[k] for k in PrepareConfig.__dataclass_fields__})


def load_prepare_config(path: str | os.PathLike) -> PrepareConfig:
    """Read a ``cglight prepare`` YAML (the same keys as the command line) into a PrepareConfig."""
    if not Path(path).is_file():
        raise ConfigError(f"prepare config {path} does not exist")
    return prepare_config(prepare_parser().parse_args(["--config", str(path), "--out", "unused"]))
