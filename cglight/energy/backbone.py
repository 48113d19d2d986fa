"""Backbones: the network part of the CG energy, ``U_net(R, types)``.

Two ways to choose one (``model.backbone``):

- a torchmd-net representation model by registry name (``graph-network``,
  ``equivariant-transformer``, ``tensornet``), configured by the common fields of
  :class:`BackboneConfig` (torchmd-net's own argument names) plus ``options`` for the arguments
  only that model has (e.g. ``{equivariance_invariance_group: SO(3)}`` for ``tensornet``);
- any ``nn.Module`` by dotted class path (``name: mypackage.nets.MyNet``), built as
  ``MyNet(**options)``. It must implement the backbone interface::

      forward(z: LongTensor [N], pos: Tensor [N, 3], batch: LongTensor [N], n_graphs: int) -> Tensor [n_graphs]

  ``z`` are the bead types (embedding indices, all below ``max_z``), ``pos`` the bead
  coordinates in Å of all frames concatenated, ``batch`` the frame of each bead, and the result
  the energy of each frame in kcal/mol, twice differentiable in ``pos`` (three times for exact
  Hessian-vector losses; :func:`cglight.energy.autograd_probe.check_autograd_order` checks this
  at start-up). The common torchmd-net fields are ignored for such a module, except ``max_z``.

Importing a module runs its code. A config the user writes may name any class; a checkpoint is a
file that may come from elsewhere, so a model built FROM A CHECKPOINT imports a dotted class path
only when the user trusts it (:func:`check_trusted`, ``trusted_backbones``); the names of the
table above always work.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cglight.errors import ConfigError


@dataclass
class BackboneConfig:
    """A backbone: a torchmd-net model by name, or an ``nn.Module`` by dotted class path."""

    # the fields are the model.backbone schema of LightningCLI (typed, with defaults), spelled out one by one

    name: str = "graph-network"
    """A registry name (graph-network, equivariant-transformer, tensornet) or a dotted class path."""
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
    """graph-network and equivariant-transformer."""
    num_heads: int = 8
    """equivariant-transformer only."""
    options: dict[str, Any] = field(default_factory=dict)
    """Further keyword arguments of the chosen class (checked against its signature)."""


def _common(c: BackboneConfig) -> dict[str, Any]:
    return dict(
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


@dataclass(frozen=True)
class TorchMDNetModel:
    """How to build one torchmd-net representation model: its class, whether its output has
    vector features (then the energy head is ``EquivariantScalar``), and its own extra arguments."""

    target: str
    equivariant: bool
    extra: Callable[[BackboneConfig], dict[str, Any]]


BACKBONES: dict[str, TorchMDNetModel] = {
    "graph-network": TorchMDNetModel(
        "torchmdnet.models.torchmd_gn:TorchMD_GN", False,
        lambda c: {"num_filters": c.embedding_dimension, "neighbor_embedding": c.neighbor_embedding},
    ),
    "equivariant-transformer": TorchMDNetModel(
        "torchmdnet.models.torchmd_et:TorchMD_ET", True,
        lambda c: {"num_heads": c.num_heads, "neighbor_embedding": c.neighbor_embedding},
    ),
    "tensornet": TorchMDNetModel("torchmdnet.models.tensornet:TensorNet", False, lambda c: {"static_shapes": False}),
}
"""The torchmd-net models by name: the one table the ``name`` key is looked up in."""


def check_trusted(name: Any, trusted: Collection[str] | None, source: str) -> None:
    """Refuse a backbone ``name`` read from ``source`` (a file) unless it is a table name or in ``trusted``:
    a dotted class path would be imported, running that module's code."""
    if isinstance(name, str) and (name in BACKBONES or name in (trusted or ())):
        return
    raise ConfigError(
        f"{source}: its backbone is the class {name!r}, which cglight would import (running that module's code); "
        f"if you trust it, pass trusted_backbones=[{name!r}] (cglight simulate: --trusted_backbones '[{name}]')"
    )


def _import(target: str, key: str) -> type:
    module, _, attr = target.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{key}: cannot import {target!r} ({exc}); use one of {', '.join(BACKBONES)} or a dotted class path "
            "of an nn.Module that is importable"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"{key}: {target!r} is not an nn.Module subclass")
    return cls


def _check_options(cls: type, given: dict[str, Any], reserved: set[str], key: str) -> None:
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in list(params)[1:] if p not in reserved and params[p].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}: {cls.__name__} has no option(s) {unknown}; allowed: {', '.join(allowed) or '(none)'}")


class TorchMDNetBackbone(nn.Module):
    """A torchmd-net representation model plus its scalar head, summed per frame."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        from cglight.console import init_warp

        init_warp()  # before torchmd-net starts it with a banner
        from torchmdnet.models.output_modules import EquivariantScalar, Scalar

        spec = BACKBONES[config.name]
        cls = _import(spec.target, "model.backbone.name")
        fixed = {**_common(config), **spec.extra(config)}
        _check_options(cls, config.options, set(fixed), "model.backbone.options")
        self.representation = cls(**fixed, **config.options)
        head = EquivariantScalar if spec.equivariant else Scalar
        self.head = head(config.embedding_dimension, activation=config.activation)
        if isinstance(self.head, Scalar):
            # The last layer's bias only shifts the energy by a constant: no force or curvature loss
            # reaches it (and DDP refuses parameters that get no gradient), so it is not trained.
            last = [m for m in self.head.modules() if isinstance(m, nn.Linear)][-1]
            if last.bias is not None:
                last.bias.requires_grad_(False)

    def forward(self, z: Tensor, pos: Tensor, batch: Tensor, n_graphs: int) -> Tensor:
        x, v, z, pos, batch = self.representation(z, pos, batch)
        per_bead = self.head.pre_reduce(x, v, z, pos, batch).squeeze(-1)
        return torch.zeros(n_graphs, dtype=per_bead.dtype, device=per_bead.device).index_add(0, batch, per_bead)


def build_backbone(config: BackboneConfig) -> nn.Module:
    """The network ``config`` names (see the module docstring for the interface it follows)."""
    for key in ("embedding_dimension", "num_layers", "num_rbf", "max_z", "max_num_neighbors"):
        if getattr(config, key) < 1:
            raise ConfigError(f"model.backbone.{key} must be >= 1, got {getattr(config, key)}")
    if not 0 <= config.cutoff_lower < config.cutoff_upper:
        raise ConfigError(f"model.backbone: need 0 <= cutoff_lower < cutoff_upper, got {config.cutoff_lower}, {config.cutoff_upper}")
    if not isinstance(config.options, dict):
        raise ConfigError(f"model.backbone.options must be a mapping, got {config.options!r}")
    if config.name in BACKBONES:
        return TorchMDNetBackbone(config)
    if "." not in config.name:
        raise ConfigError(
            f"model.backbone.name: unknown backbone {config.name!r}; available: {', '.join(BACKBONES)}, "
            "or a dotted class path (package.module.Class) of an nn.Module with the backbone interface"
        )
    cls = _import(config.name, "model.backbone.name")
    _check_options(cls, config.options, set(), "model.backbone.options")
    return cls(**config.options)


def backbone_config(value: BackboneConfig | dict[str, Any] | None) -> BackboneConfig:
    """``model.backbone`` as given (a config, a mapping of its fields, or ``None`` for the defaults)."""
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


def backbone_dict(config: BackboneConfig) -> dict[str, Any]:
    """The config as plain data (what the checkpoint's hyper-parameters hold)."""
    return asdict(config)
