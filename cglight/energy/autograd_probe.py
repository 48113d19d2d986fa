"""A one-step start-up probe: does this backbone differentiate correctly to the order training needs?

Force matching back-propagates through forces (second order: the parameter gradient of a position
gradient); exact Hessian-vector losses through Hessian-vector products (third order). Many network
kernels implement the first backward only, or a double backward that is silently wrong, so a static
list of "supported" backbones is not enough: the probe measures.

On a copy of the backbone in float64 and a tiny random chain of beads it compares, for every order
``k`` up to the one asked for, the ``k``-th directional derivative of the energy from autograd with a
central finite difference of the ``(k−1)``-th (all in positions):

- ``k = 1``: ``∇U · d``           against ``(U(R + εd) − U(R − εd)) / 2ε``
- ``k = 2``: ``(∇²U u) · d``       against the same difference of ``∇U · u``
- ``k = 3``: ``∇(u·∇²U w) · d``   against the same difference of ``u·∇²U w``

A derivative that raises, is missing from the graph, or disagrees by more than ``rtol`` (1e-4 of the
larger magnitude; the float64 difference is good to ~1e-9) is reported with its order and reason.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from cglight.errors import ConfigError

ORDER_NAMES = {1: "forces (first order)", 2: "Hessian-vector products (second order)", 3: "third order"}


def _chain(n: int, generator: torch.Generator) -> Tensor:
    line = torch.arange(n, dtype=torch.float64)[:, None] * torch.tensor([1.4, 0.5, 0.0], dtype=torch.float64)
    return line + 0.3 * torch.randn(n, 3, generator=generator, dtype=torch.float64)


def _derivative(energy, pos: Tensor, vectors: list[Tensor], order: int) -> Tensor:
    """``∂^order U / ∂R^order`` contracted with ``vectors[:order]`` (a scalar), built with create_graph."""
    pos = pos.detach().requires_grad_(True)
    value = energy(pos)
    for k in range(order):
        (g,) = torch.autograd.grad(value, pos, create_graph=True, allow_unused=True)
        if g is None:
            raise RuntimeError("the energy's derivative does not depend on the positions (missing from the graph)")
        value = (g * vectors[k]).sum()
    return value


def autograd_order_error(backbone: nn.Module, order: int, n_beads: int = 5, max_z: int = 8, eps: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """Why ``backbone`` fails derivatives up to ``order`` (``None`` if it passes)."""
    net = copy.deepcopy(backbone).double()
    g = torch.Generator().manual_seed(0)
    z = torch.arange(n_beads) % max(1, max_z)
    batch = torch.zeros(n_beads, dtype=torch.long)
    pos = _chain(n_beads, g)
    vectors = [torch.randn(n_beads, 3, generator=g, dtype=torch.float64) for _ in range(order)]

    def energy(p: Tensor) -> Tensor:
        return net(z, p, batch, 1).sum()

    for k in range(1, order + 1):
        d, rest = vectors[k - 1], vectors[: k - 1]
        try:
            exact = _derivative(energy, pos, rest + [d], k).item()
            up = _derivative(energy, pos + eps * d, rest, k - 1).item()
            down = _derivative(energy, pos - eps * d, rest, k - 1).item()
        except RuntimeError as exc:
            return f"{ORDER_NAMES.get(k, f'order {k}')}: autograd failed ({str(exc).splitlines()[0]})"
        fd = (up - down) / (2 * eps)
        if not (abs(exact - fd) <= rtol * max(abs(exact), abs(fd), 1e-8)):
            return f"{ORDER_NAMES.get(k, f'order {k}')}: autograd gives {exact:.6g}, a float64 finite difference {fd:.6g}"
    return None


def check_autograd_order(backbone: nn.Module, order: int, losses: str, name: str, max_z: int = 8) -> None:
    """Raise a :class:`ConfigError` naming the backbone, the losses and the reason if ``backbone``
    cannot give correct derivatives up to ``order`` (see the module docstring)."""
    with torch.enable_grad():
        reason = autograd_order_error(backbone, order, max_z=max_z)
    if reason is not None:
        raise ConfigError(
            f"model.backbone '{name}' cannot train {losses}, which need autograd to order {order}: the start-up probe "
            f"found {reason}. Use a backbone that passes (graph-network does), or losses of lower order "
            "(e.g. 'force' alone)."
        )
