"""The ``cglight prepare`` options as a parser, and a prepare YAML read into a ``PrepareConfig``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cglight.config_files import read_config_file
from cglight.errors import ConfigError
from cglight.prepare.config import PrepareConfig
from cglight.prepare.run import prepare_dataset

log = logging.getLogger("cglight")


def prepare_parser(description: str = "build a dataset", exit_on_error: bool = True):
    """The argument parser of ``cglight prepare`` (every ``PrepareConfig`` field, plus --out, --overwrite, --part);
    without ``exit_on_error`` a bad option raises instead of printing the usage and exiting."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="cglight prepare", description=description, default_env=False, exit_on_error=exit_on_error)
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
    """Read a ``cglight prepare`` YAML (the same keys as the command line) into a PrepareConfig;
    ConfigError naming the file if it is missing, not YAML, or holds a bad option."""
    from jsonargparse import ArgumentError

    read_config_file(path)
    try:
        values = prepare_parser(exit_on_error=False).parse_args(["--config", str(path), "--out", "unused"])
    except ArgumentError as exc:
        raise ConfigError(f"prepare config {path}: {' '.join(str(exc).split())}") from None
    return prepare_config(values)


def build_missing_dataset(build: str | os.PathLike, path: Path) -> None:
    """``data.build``: the dataset at ``path`` built from the prepare YAML ``build`` (``fit``/``validate``/``test``
    call it through ``CGDataModule.dataset_builder`` when ``path`` has no manifest)."""
    config = load_prepare_config(build)
    log.info("dataset %s not found: building it first from %s (%d frames)", path, build, config.frames)
    prepare_dataset(config, path, overwrite=False)
