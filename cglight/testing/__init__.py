"""Conformance tests for loss plugins and backbones, reusable from a plugin's own test suite.

Two suites: ``LossPluginTests`` (loss plugins, :mod:`cglight.testing.losses`) and ``BackboneTests``
(backbones, :mod:`cglight.testing.backbones`), the assertions ``assert_grad_matches_fd`` and
``assert_hvp_matches_fd`` (:mod:`cglight.testing.derivatives`), and the float64 pair potential and
synthetic batch the loss suite runs on (:mod:`cglight.testing.potential`).

Usage in a plugin repository (pytest)::

    import pytest
    from cglight.testing import LossPluginTests
    from my_plugin import MyLoss

    class TestMyLoss(LossPluginTests):
        entry_point = "my_loss"          # name registered in 'cglight.losses' (optional)

        @pytest.fixture
        def loss(self):
            return MyLoss(some_option=2.0)

The inherited tests run the loss in float64 on a small differentiable pair potential and a
synthetic batch with every standard field, and check: it is a ``LossTerm`` with typed,
keyword-only-friendly arguments; it returns a finite scalar and finite parts; its parameter
gradient equals a central finite difference (skip with ``target_depends_on_model = True`` for
losses whose target holds detached model outputs, like ``hvp_cov``); it declares the batch keys
it needs and fails with a message naming them; its normalisation, if any, is positive; its
buffers survive a state-dict round trip; the entry point, if named, resolves to it; and float32
gives the same value, parts and gradient as float64 within :data:`FLOAT32_TOLERANCES`.

A backbone (``model.backbone.name: my_package.MyNet``) is checked the same way::

    from cglight.testing import BackboneTests

    class TestMyNet(BackboneTests):
        @pytest.fixture
        def backbone(self):
            return MyNet(hidden=16)

which runs it on a random chain of beads: one energy per frame, frames independent, rotation and
translation invariance, forces and Hessian-vector products against float64 finite differences,
and float32 against float64 within :data:`FLOAT32_TOLERANCES` (``backbone``).
"""

from cglight.testing.backbones import BackboneTests, backbone_energy
from cglight.testing.derivatives import assert_grad_matches_fd, assert_hvp_matches_fd
from cglight.testing.losses import LossPluginTests, LossPrecisionTests
from cglight.testing.potential import PairPotential, synthetic_batch
from cglight.testing.tolerances import FLOAT32_TOLERANCES

__all__ = ["FLOAT32_TOLERANCES", "BackboneTests", "LossPluginTests", "LossPrecisionTests", "PairPotential",
           "assert_grad_matches_fd", "assert_hvp_matches_fd", "backbone_energy", "synthetic_batch"]
