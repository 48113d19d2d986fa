from __future__ import annotations

import pytest
import torch

from cglight.losses.probes import draw_probes


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_probe_estimator_is_unbiased(kind):
    """E_v ‖A v‖² = ‖A‖²_F for probes with E[v vᵀ] = I (docs/method.md §4)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(9, 9, generator=g, dtype=torch.float64)
    v = draw_probes((200_000, 9), kind, a, generator=g)
    sq = (v @ a.T).pow(2).sum(1)
    exact = a.pow(2).sum()
    se = sq.std() / len(sq) ** 0.5
    assert abs(sq.mean() - exact) < 5 * se
    cov = v.T @ v / len(v)
    assert torch.allclose(cov, torch.eye(9, dtype=torch.float64), atol=0.02)


def test_rademacher_has_lower_variance_than_gaussian():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(9, 9, generator=g, dtype=torch.float64)
    var = {k: (draw_probes((100_000, 9), k, a, generator=g) @ a.T).pow(2).sum(1).var() for k in ("rademacher", "gaussian")}
    assert var["rademacher"] < var["gaussian"]


def test_unknown_probe_kind():
    with pytest.raises(ValueError, match="rademacher, gaussian"):
        draw_probes((2, 3), "sobol", torch.zeros(1))
