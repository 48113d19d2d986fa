"""How far float32 may differ from float64 (training runs in float32; the oracles in float64)."""

from __future__ import annotations

from torch import Tensor

FLOAT32_TOLERANCES = {
    "exact": {"loss": 1e-5, "parts": 1e-5, "gradient": 1e-5},
    "finite_difference": {"loss": 1e-3, "parts": 1e-3, "gradient": 3e-3},
    "backbone": {"energy": 1e-5, "forces": 1e-4, "hvp": 1e-3},
}
"""Largest relative differences allowed between float32 and float64.

``backbone`` (:class:`BackboneTests`): of a backbone's energy, forces and HVP, relative to the largest
float64 magnitude of the quantity (float32 has ~7 digits; each derivative loses some).

``exact`` and ``finite_difference`` (:class:`LossPrecisionTests`), a loss computed in both (same
batch, model and probes): of the loss value, of each logged part, and of the parameter gradient
(in norm). ``finite_difference`` applies to losses with ``method = "finite_difference"`` (their
HVPs difference forces, which loses digits in float32), ``exact`` to all others. Measured on
the built-in losses (cglight.testing's pair potential): exact ≤ 3e-7 (value, parts) and 1e-7
(gradient); finite differences at the default ``fd_eps`` ≤ 1.7e-4 (value, parts) and 7.5e-4
(gradient). A plugin may override entries through :attr:`LossPrecisionTests.float32_tolerances`."""


def relative(a: Tensor, b: Tensor) -> float:
    """``‖a − b‖ / ‖b‖`` in float64 (the difference of ``a`` relative to the reference ``b``)."""
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300))
