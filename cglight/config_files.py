"""The YAML files a user gives with ``--config``: read and checked before a parser sees them.

An empty, binary or malformed file, or one whose YAML is not a mapping of options, is refused with one
line that names the file and says what is wrong (the parsers would say ``Unexpected config:`` or point
into ``<unicode string>``). ``key_sources`` names the files that set an option a parser refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cglight.errors import ConfigError


def config_arguments(argv: list[str], short: bool = False) -> list[str]:
    """The values of ``--config FILE`` / ``--config=FILE`` (and ``-c FILE`` when ``short``) in ``argv``."""
    flags = ("--config", "-c") if short else ("--config",)
    found = []
    for i, arg in enumerate(argv):
        if arg in flags and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--config="):
            found.append(arg.split("=", 1)[1])
    return [value for value in found if not value.lstrip().startswith("{")]  # inline YAML is the parser's business


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The options in YAML file ``path``; ConfigError naming the file if it holds none, or not as YAML."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {path} does not exist")
    if p.is_dir():
        raise ConfigError(f"config file {path} is a directory; give a YAML file")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not text (byte {exc.start} is not UTF-8); "
                          "give a YAML file of options") from None
    if "\x00" in text:
        raise ConfigError(f"config file {path} is not text (it holds NUL bytes); give a YAML file of options")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    if value is None:
        raise ConfigError(f"config file {path} is empty (no options); write options as `key: value` lines")
    if not isinstance(value, dict):
        shown = " ".join(str(value).split())[:60]
        raise ConfigError(f"config file {path} holds a YAML {type(value).__name__} ({shown}), not a mapping of options; "
                          "write options as `key: value` lines")
    return value


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def key_sources(key: str, configs: dict[str, dict]) -> list[str]:
    """The files among ``configs`` (path → options) that set the dotted option ``key``."""
    return [path for path, options in configs.items() if _has_key(options, key.split("."))]


def _has_key(options: Any, parts: list[str]) -> bool:
    if not isinstance(options, dict) or not parts:
        return False
    for n in range(len(parts), 0, -1):  # "a.b.c" may be written nested, flat, or half of each
        head = ".".join(parts[:n])
        if head in options:
            return n == len(parts) or _has_key(options[head], parts[n:])
    return False
