"""``data.build``: the DataModule hands a missing dataset to the builder the command gives it (it does not
import ``prepare/`` itself: docs/architecture.md)."""

from __future__ import annotations

import pytest

from cglight.data import CGDataModule
from cglight.errors import ConfigError


def test_a_missing_dataset_goes_to_the_given_builder_once(tmp_path):
    calls = []
    dm = CGDataModule(str(tmp_path / "built"), build="prep.yaml")
    dm.dataset_builder = lambda build, path: calls.append((build, path))
    dm.prepare_data()
    assert calls == [("prep.yaml", tmp_path / "built")]


def test_an_existing_dataset_or_no_build_calls_no_builder(tiny_dataset, tmp_path):
    for dm in (CGDataModule(str(tiny_dataset), build="prep.yaml"), CGDataModule(str(tmp_path / "none"))):
        dm.dataset_builder = lambda build, path: pytest.fail("built although nothing was to be built")
        dm.prepare_data()


def test_without_a_builder_the_error_names_the_command(tmp_path):
    with pytest.raises(ConfigError, match=r"data.build: .*built holds no dataset.*cglight prepare --config prep.yaml"):
        CGDataModule(str(tmp_path / "built"), build="prep.yaml").prepare_data()
