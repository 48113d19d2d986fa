"""Derivatives by autograd against central finite differences (float64)."""

from __future__ import annotations

import torch
from torch import Tensor


def assert_grad_matches_fd(fn, x: Tensor, direction: Tensor | None = None, eps: float = 1e-6, rtol: float = 1e-6) -> None:
    """``∇fn(x) · d`` by autograd equals the central difference ``(fn(x + εd) − fn(x − εd)) / 2ε``.

    ``fn`` maps a float64 tensor shaped like ``x`` to a scalar; ``d`` is random unless given.
    """
    d = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(101)) if direction is None else direction
    p = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(p), p)
    exact = (g * d).sum().item()
    with torch.no_grad():
        fd = (fn(x + eps * d).item() - fn(x - eps * d).item()) / (2 * eps)
    assert abs(exact - fd) <= rtol * max(abs(fd), abs(exact)) + 1e-12, f"gradient {exact!r} != finite difference {fd!r}"


def assert_hvp_matches_fd(fn, x: Tensor, v: Tensor | None = None, eps: float = 1e-5, rtol: float = 1e-6) -> None:
    """``∇²fn(x) v`` by double back-propagation equals ``(∇fn(x + εv) − ∇fn(x − εv)) / 2ε`` (every component)."""
    v = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(102)) if v is None else v

    def grad(p: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        p = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(fn(p), p, create_graph=create_graph)
        return p, g

    p, g = grad(x, True)
    assert g.requires_grad, "HVP differs from a finite difference: the gradient has no graph (no double backward)"
    (hv,) = torch.autograd.grad(g, p, grad_outputs=v)
    fd = (grad(x + eps * v, False)[1] - grad(x - eps * v, False)[1]) / (2 * eps)
    scale = float(fd.abs().max())
    assert scale > 0, "the Hessian-vector product is zero: nothing was checked"
    err = float((hv - fd).abs().max())
    assert err <= rtol * scale, f"HVP differs from a finite difference of gradients by {err:.3g} (scale {scale:.3g})"
