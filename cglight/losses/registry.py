"""Discovery of loss plugins through the ``cglight.losses`` entry-point group.

Built-in losses are registered the same way, by cglight's own package metadata. Discovery is
cached; a plugin that fails to import is skipped with a warning; asking for it by name then
raises an error naming the plugin, its distribution, the cause and every available name.
A dotted path (``package.module:Class`` or ``package.module.Class``) is accepted too.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from cglight.errors import PluginError
from cglight.losses.base import LossTerm

GROUP = "cglight.losses"
OBJECTIVE_KEYS = ("weight", "warmup_steps", "ramp_steps")
"""Per-term config keys the objective takes for itself (no loss may use them as arguments)."""


@dataclass(frozen=True)
class PluginEntry:
    name: str
    value: str
    distribution: str
    cls: type[LossTerm] | None
    error: str | None = None


def _load(ep) -> PluginEntry:
    dist = getattr(ep.dist, "name", None) or "unknown distribution"
    try:
        cls = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        return PluginEntry(ep.name, ep.value, dist, None, f"{type(exc).__name__}: {exc}")
    if not (isinstance(cls, type) and issubclass(cls, LossTerm)):
        return PluginEntry(ep.name, ep.value, dist, None, f"{ep.value} is not a subclass of cglight.losses.LossTerm")
    return PluginEntry(ep.name, ep.value, dist, cls)


@lru_cache(maxsize=1)
def discover() -> dict[str, PluginEntry]:
    """All registered loss plugins by name, including the ones that failed to load."""
    found: dict[str, PluginEntry] = {}
    for ep in entry_points(group=GROUP):
        entry = _load(ep)
        if entry.name in found:
            warnings.warn(
                f"loss plugin name '{entry.name}' is registered twice ({found[entry.name].distribution}: "
                f"{found[entry.name].value}, {entry.distribution}: {entry.value}); keeping the first",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        if entry.error:
            warnings.warn(f"skipping loss plugin '{entry.name}' from {entry.distribution}: {entry.error}", RuntimeWarning, stacklevel=2)
        found[entry.name] = entry
    return found


def available() -> list[str]:
    """Names of the loss plugins that loaded."""
    return sorted(n for n, e in discover().items() if e.cls is not None)


def _hint() -> str:
    names = available()
    listed = ", ".join(names) if names else "none (is cglight installed? run `pip install -e .`)"
    return f"available losses: {listed}. Third-party losses register in the '{GROUP}' entry-point group."


def _from_path(path: str) -> type[LossTerm]:
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"loss '{path}' cannot be imported ({type(exc).__name__}: {exc}); {_hint()}") from None
    if not (isinstance(cls, type) and issubclass(cls, LossTerm)):
        raise PluginError(f"loss '{path}' is not a subclass of cglight.losses.LossTerm")
    return cls


def get_loss_class(name: str) -> type[LossTerm]:
    """The loss class registered as ``name``, or imported from a dotted path."""
    entry = discover().get(name)
    if entry is None:
        if "." in name or ":" in name:
            return _from_path(name)
        raise PluginError(f"unknown loss '{name}'; {_hint()}")
    if entry.cls is None:
        raise PluginError(f"loss '{name}' (from {entry.distribution}, {entry.value}) failed to load: {entry.error}; {_hint()}")
    return entry.cls


def origin(name: str) -> str:
    """Where loss ``name`` comes from, for messages: ``from <distribution>, <module:Class>``."""
    entry = discover().get(name)
    if entry is not None:
        return f"from {entry.distribution}, {entry.value}"
    return "imported by its dotted path"


def is_builtin(term: LossTerm) -> bool:
    """Whether ``term`` is one of cglight's own losses (a failure inside it is a bug of cglight, not of a plugin)."""
    return type(term).__module__.split(".")[0] == "cglight"


def build_loss(name: str, options: dict[str, Any]) -> LossTerm:
    """Instantiate loss ``name`` with ``options``; unknown or badly typed options name the loss."""
    cls = get_loss_class(name)
    params = {p.name: p for p in list(inspect.signature(cls.__init__).parameters.values())[1:]}
    unknown = sorted(set(options) - set(params))
    if unknown:
        allowed = ", ".join([*OBJECTIVE_KEYS, *params])
        raise PluginError(f"loss '{name}' has no option(s) {unknown}; allowed: {allowed}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise PluginError(f"loss '{name}': bad options {options!r} ({exc})") from None
