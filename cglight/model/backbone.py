"""torchmd-net representation networks wrapped as CG energy functions ``U_θ(R, types)``.

The backbone is chosen by name; its arguments are the fields of :class:`BackboneConfig`
(torchmd-net's own names). Energies are sums of per-bead outputs of a scalar head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cglight.errors import ConfigError


@dataclass
class BackboneConfig:
    """A torchmd-net backbone: ``graph-network``, ``equivariant-transformer`` or ``tensornet``."""

    name: str = "graph-network"
    embedding_dimension: int = 64
    num_layers: int = 3
    num_rbf: int = 32
    rbf_type: str = "expnorm"
    trainable_rbf: bool = True
    activation: str = "silu"
    cutoff_lower: float = 0.0
    cutoff_upper: float = 8.0
    """Å."""
    max_z: int = 32
    """Size of the bead-type embedding table: every bead type must be smaller."""
    max_num_neighbors: int = 32
    neighbor_embedding: bool = True
    num_heads: int = 8
    """equivariant-transformer only."""


@dataclass(frozen=True)
class _Spec:
    third_order: bool
    equivariant: bool
    note: str = ""


BACKBONES = {
    "graph-network": _Spec(third_order=True, equivariant=False),
    "equivariant-transformer": _Spec(third_order=True, equivariant=True),
    "tensornet": _Spec(
        third_order=False,
        equivariant=False,
        note="its neighbour and tensor kernels have no double-backward formula, so the gradient of a "
        "Hessian-vector product is wrong or missing",
    ),
}


def supports_third_order(name: str) -> bool:
    return BACKBONES[name].third_order


def _representation(c: BackboneConfig) -> nn.Module:
    shared = dict(
        hidden_channels=c.embedding_dimension,
        num_layers=c.num_layers,
        num_rbf=c.num_rbf,
        rbf_type=c.rbf_type,
        trainable_rbf=c.trainable_rbf,
        activation=c.activation,
        cutoff_lower=float(c.cutoff_lower),
        cutoff_upper=float(c.cutoff_upper),
        max_z=c.max_z,
        max_num_neighbors=c.max_num_neighbors,
    )
    if c.name == "graph-network":
        from torchmdnet.models.torchmd_gn import TorchMD_GN

        return TorchMD_GN(num_filters=c.embedding_dimension, neighbor_embedding=c.neighbor_embedding, **shared)
    if c.name == "equivariant-transformer":
        from torchmdnet.models.torchmd_et import TorchMD_ET

        return TorchMD_ET(num_heads=c.num_heads, neighbor_embedding=c.neighbor_embedding, **shared)
    from torchmdnet.models.tensornet import TensorNet

    return TensorNet(static_shapes=False, **shared)


class Backbone(nn.Module):
    """``forward(z [N], pos [N, 3], batch [N], n_graphs) -> energy [n_graphs]``."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        if config.name not in BACKBONES:
            raise ConfigError(f"model.backbone.name: unknown backbone {config.name!r}; available: {', '.join(BACKBONES)}")
        for key in ("embedding_dimension", "num_layers", "num_rbf", "max_z", "max_num_neighbors"):
            if getattr(config, key) < 1:
                raise ConfigError(f"model.backbone.{key} must be >= 1, got {getattr(config, key)}")
        if not 0 <= config.cutoff_lower < config.cutoff_upper:
            raise ConfigError(f"model.backbone: need 0 <= cutoff_lower < cutoff_upper, got {config.cutoff_lower}, {config.cutoff_upper}")
        from torchmdnet.models.output_modules import EquivariantScalar, Scalar

        self.config = config
        self.representation = _representation(config)
        head = EquivariantScalar if BACKBONES[config.name].equivariant else Scalar
        self.head = head(config.embedding_dimension, activation=config.activation)

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor, n_graphs: int) -> Tensor:
        x, v, z, pos, batch = self.representation(z, pos, batch)
        per_bead = self.head.pre_reduce(x, v, z, pos, batch).squeeze(-1)
        return torch.zeros(n_graphs, dtype=per_bead.dtype, device=per_bead.device).index_add(0, batch, per_bead)


def backbone_config(value: BackboneConfig | dict[str, Any] | None) -> BackboneConfig:
    if value is None:
        return BackboneConfig()
    if isinstance(value, BackboneConfig):
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(BackboneConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"model.backbone: unknown key(s) {unknown}; allowed: {', '.join(BackboneConfig.__dataclass_fields__)}")
        return BackboneConfig(**value)
    raise ConfigError(f"model.backbone must be a mapping of backbone options, got {value!r}")
