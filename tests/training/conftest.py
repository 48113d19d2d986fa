from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from cglight.losses import registry


@pytest.fixture
def register_loss(monkeypatch):
    """``register_loss(name, "module:Class")`` adds a loss plugin next to the installed ones for one test."""
    installed = list(registry.entry_points(group=registry.GROUP))
    extra: list[EntryPoint] = []
    monkeypatch.setattr(registry, "entry_points", lambda group: [*installed, *extra] if group == registry.GROUP else [])

    def register(name: str, value: str) -> None:
        extra.append(EntryPoint(name=name, value=value, group=registry.GROUP))
        registry.discover.cache_clear()

    yield register
    registry.discover.cache_clear()
