from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from cglight.errors import PluginError
from cglight.losses import registry
from cglight.losses.force import ForceLoss
from cglight.losses.hessian import CovarianceHVPLoss


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Replace the installed entry points by the given ones (and restore the cache after)."""

    def install(*eps):
        monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in eps if e.group == group])
        registry.discover.cache_clear()

    yield install
    registry.discover.cache_clear()


def _ep(name, value):
    return EntryPoint(name=name, value=value, group=registry.GROUP)


def test_builtins_are_registered_by_package_metadata():
    assert {"force", "hvp", "hvp_cov"} <= set(registry.available())
    assert registry.get_loss_class("hvp_cov") is CovarianceHVPLoss
    assert registry.discover()["force"].distribution == "cglight"


def test_broken_plugin_warns_and_lookup_names_cause(fake_entry_points):
    fake_entry_points(_ep("force", "cglight.losses.force:ForceLoss"), _ep("broken", "no_such_module_xyz:Loss"))
    with pytest.warns(RuntimeWarning, match="skipping loss plugin 'broken'.*No module named 'no_such_module_xyz'"):
        names = registry.available()
    assert names == ["force"]
    with pytest.raises(PluginError, match=r"loss 'broken' .*failed to load: ModuleNotFoundError.*available losses: force"):
        registry.get_loss_class("broken")


def test_non_loss_class_is_refused(fake_entry_points):
    fake_entry_points(_ep("weird", "collections:OrderedDict"))
    with pytest.warns(RuntimeWarning, match="not a subclass of cglight.losses.LossTerm"):
        registry.discover()


def test_duplicate_names_warn_and_keep_first(fake_entry_points):
    fake_entry_points(_ep("force", "cglight.losses.force:ForceLoss"), _ep("force", "cglight.losses.hessian:HVPLoss"))
    with pytest.warns(RuntimeWarning, match="registered twice"):
        assert registry.get_loss_class("force") is ForceLoss


def test_dotted_path_and_unknown_name():
    assert registry.get_loss_class("cglight.losses.force:ForceLoss") is ForceLoss
    assert registry.get_loss_class("cglight.losses.force.ForceLoss") is ForceLoss
    with pytest.raises(PluginError, match="cannot be imported"):
        registry.get_loss_class("cglight.losses.force:Nope")
    with pytest.raises(PluginError, match="unknown loss 'forse'; available losses: force"):
        registry.get_loss_class("forse")


def test_build_loss_checks_options():
    assert registry.build_loss("hvp_cov", {"probes": 2}).probes == 2
    with pytest.raises(PluginError, match=r"no option\(s\) \['probs'\]; allowed: weight, warmup_steps, ramp_steps, probes, probe_kind, method, fd_eps, fd_central, fd_probes_per_call, estimator, normalize"):
        registry.build_loss("hvp_cov", {"probs": 2})
    with pytest.raises(Exception, match="probes must be >= 1"):
        registry.build_loss("hvp_cov", {"probes": 0})
