"""Physical priors of the CG energy: harmonic bonds and angles, Fourier dihedrals, a repulsion.

Each prior kind is a :class:`PriorTerm`, a module whose parameters are buffers keyed by bead-type
tuples (``keys [P, arity]``, ``params [P, m]``); they are fitted from data once
(:mod:`cglight.energy.prior_fit`) and travel in the checkpoint. Forms (``x`` the term's internal
coordinate, see docs/method.md §7):

| kind | coordinate | energy | params |
| --- | --- | --- | --- |
| ``bonds`` | distance ``r`` (Å) of bonded beads | ``½ k (r − r₀)²`` | ``k, r₀`` |
| ``angles`` | angle ``θ`` (rad) of two bonds sharing a bead | ``½ k (θ − θ₀)²`` | ``k, θ₀`` |
| ``dihedrals`` | dihedral ``φ`` (rad) of three consecutive bonds | ``Σₙ aₙ cos nφ + bₙ sin nφ`` | ``a₁..a_N, b₁..b_N`` |
| ``repulsion`` | distance ``r`` of beads ≥ ``min_bonds_apart`` bonds apart | ``ε (σ / r)^p`` | ``ε, σ`` |

Energies in kcal/mol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from cglight.energy import geometry
from cglight.energy.topology import Topology
from cglight.errors import ConfigError


@dataclass
class HarmonicPriorConfig:
    """A harmonic prior fitted by Boltzmann inversion (bonds: Jacobian r², angles: sin θ)."""

    bins: int = 50
    """Most histogram bins; fewer when samples are scarce (one bin per 20 samples, at least 8)."""
    min_samples: int = 20
    """A bead-type tuple with fewer samples in the fitting frames is an error."""


@dataclass
class DihedralPriorConfig:
    """A Fourier series in the dihedral angle fitted by Boltzmann inversion (no Jacobian)."""

    terms: int = 2
    """Number of harmonics N (cos nφ and sin nφ for n = 1..N)."""
    bins: int = 36
    """Most histogram bins over (−π, π]; fewer when samples are scarce (one per 20 samples, at least 8)."""
    min_samples: int = 20
    """A bead-type tuple with fewer samples in the fitting frames is an error."""


@dataclass
class RepulsionPriorConfig:
    """``ε (σ/r)^p`` between beads at least ``min_bonds_apart`` bonds apart, ε = k_B T, σ from the data."""

    min_bonds_apart: int = 4
    """4: pairs more than 3 bonds apart (1–4 pairs are left to the dihedral prior)."""
    quantile: float = 0.005
    """σ is this quantile of the pair's distances in the fitting frames."""
    exponent: float = 6.0
    """p."""
    min_samples: int = 20
    """A bead-type pair with fewer samples in the fitting frames is an error."""


@dataclass
class PriorsConfig:
    """Which priors to fit and use; ``null`` (or absent) turns a kind off."""

    bonds: HarmonicPriorConfig | None = None
    angles: HarmonicPriorConfig | None = None
    dihedrals: DihedralPriorConfig | None = None
    repulsion: RepulsionPriorConfig | None = None


PRIOR_KINDS = ("bonds", "angles", "dihedrals", "repulsion")


class PriorTerm(nn.Module):
    """One prior kind: its terms on a topology, its coordinate, and its energy per parameter row."""

    kind: ClassVar[str]
    arity: ClassVar[int]

    def __init__(self, n_params: int) -> None:
        super().__init__()
        self.register_buffer("keys", torch.zeros(0, self.arity, dtype=torch.long))
        self.register_buffer("params", torch.zeros(0, n_params))
        # fitted tables have as many rows as bead-type tuples: take the shapes of what is loaded
        self.register_load_state_dict_pre_hook(_resize_to_loaded)

    def terms(self, topology: Topology) -> tuple[tuple[int, ...], ...]:
        raise NotImplementedError

    def coordinate(self, pos: Tensor, index: Tensor) -> Tensor:
        raise NotImplementedError

    def curve(self, params: Tensor, x: Tensor) -> Tensor:
        """Energy at coordinate ``x [..., T]`` with parameter rows ``params [T, m]``."""
        raise NotImplementedError

    def set_parameters(self, table: dict[tuple[int, ...], list[float]]) -> None:
        keys = sorted(table)
        device = self.params.device
        self.keys = torch.tensor(keys, dtype=torch.long, device=device).reshape(len(keys), self.arity)
        self.params = torch.tensor([table[k] for k in keys], dtype=self.params.dtype, device=device).reshape(len(keys), -1)

    def table(self) -> dict[tuple[int, ...], Tensor]:
        return {tuple(k.tolist()): p for k, p in zip(self.keys, self.params, strict=True)}

    def rows(self, type_keys: list[tuple[int, ...]]) -> Tensor:
        """Parameter rows of the given canonical type tuples; an error names any never fitted."""
        known = {tuple(k): i for i, k in enumerate(self.keys.tolist())}
        missing = sorted({k for k in type_keys if k not in known})
        if missing:
            raise ConfigError(
                f"prior '{self.kind}' has no fitted parameters for bead types {missing} (fitted: {sorted(known) or 'none'}); "
                "fit the priors on data that contains these bead-type combinations"
            )
        return torch.tensor([known[k] for k in type_keys], dtype=torch.long)

    def energy(self, pos: Tensor, index: Tensor, rows: Tensor) -> Tensor:
        """``[F]``: the sum of this prior over the terms ``index [T, arity]``."""
        if index.numel() == 0:
            return pos.new_zeros(pos.shape[0])
        return self.curve(self.params[rows].to(pos.dtype), self.coordinate(pos, index)).sum(-1)


def _resize_to_loaded(module: nn.Module, state_dict, prefix, *args) -> None:
    for name in ("keys", "params"):
        if prefix + name in state_dict:
            loaded = state_dict[prefix + name]
            setattr(module, name, torch.empty(loaded.shape, dtype=getattr(module, name).dtype, device=getattr(module, name).device))


class HarmonicBonds(PriorTerm):
    # each prior term implements PriorTerm's three hooks (terms, coordinate, curve), hence the alike shapes
    kind, arity = "bonds", 2

    def __init__(self, config: HarmonicPriorConfig) -> None:
        super().__init__(2)
        self.config = config

    def terms(self, topology: Topology):
        return topology.bonds

    def coordinate(self, pos: Tensor, index: Tensor) -> Tensor:
        return geometry.distances(pos, index)

    def curve(self, params: Tensor, x: Tensor) -> Tensor:
        return 0.5 * params[..., 0] * (x - params[..., 1]).pow(2)


class HarmonicAngles(HarmonicBonds):
    kind, arity = "angles", 3

    def terms(self, topology: Topology):
        return topology.angles

    def coordinate(self, pos: Tensor, index: Tensor) -> Tensor:
        return geometry.angles(pos, index)


class FourierDihedrals(PriorTerm):
    kind, arity = "dihedrals", 4

    def __init__(self, config: DihedralPriorConfig) -> None:
        if config.terms < 1:
            raise ConfigError(f"model.priors.dihedrals.terms must be >= 1, got {config.terms}")
        super().__init__(2 * config.terms)
        self.config = config

    def terms(self, topology: Topology):
        return topology.dihedrals

    def coordinate(self, pos: Tensor, index: Tensor) -> Tensor:
        return geometry.dihedrals(pos, index)

    def curve(self, params: Tensor, x: Tensor) -> Tensor:
        return self._series(params, torch.cos(x), torch.sin(x))

    def _series(self, params: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """``Σₙ aₙ cos nφ + bₙ sin nφ`` from ``cos φ``, ``sin φ`` by the angle-addition recurrence."""
        total, c, s = 0.0, cos, sin
        for n in range(self.config.terms):
            total = total + params[..., n] * c + params[..., self.config.terms + n] * s
            c, s = c * cos - s * sin, s * cos + c * sin
        return total

    def energy(self, pos: Tensor, index: Tensor, rows: Tensor) -> Tensor:
        if index.numel() == 0:
            return pos.new_zeros(pos.shape[0])
        return self._series(self.params[rows].to(pos.dtype), *geometry.dihedral_cos_sin(pos, index)).sum(-1)


class Repulsion(PriorTerm):
    kind, arity = "repulsion", 2

    def __init__(self, config: RepulsionPriorConfig) -> None:
        if config.min_bonds_apart < 2:
            raise ConfigError(f"model.priors.repulsion.min_bonds_apart must be >= 2 (bonded pairs have their own prior), got {config.min_bonds_apart}")
        if not 0 <= config.quantile < 1:
            raise ConfigError(f"model.priors.repulsion.quantile must be in [0, 1), got {config.quantile}")
        if not (config.exponent > 0 and math.isfinite(config.exponent)):
            raise ConfigError(f"model.priors.repulsion.exponent must be positive, got {config.exponent}")
        super().__init__(2)
        self.config = config

    def terms(self, topology: Topology):
        return topology.pairs(self.config.min_bonds_apart)

    def coordinate(self, pos: Tensor, index: Tensor) -> Tensor:
        return geometry.distances(pos, index)

    def curve(self, params: Tensor, x: Tensor) -> Tensor:
        return params[..., 0] * (params[..., 1] / x).pow(self.config.exponent)


PRIOR_TERMS: dict[str, type[PriorTerm]] = {
    "bonds": HarmonicBonds,
    "angles": HarmonicAngles,
    "dihedrals": FourierDihedrals,
    "repulsion": Repulsion,
}
"""Prior kind → its module, built from the kind's config."""

CONFIGS: dict[str, type] = {
    "bonds": HarmonicPriorConfig,
    "angles": HarmonicPriorConfig,
    "dihedrals": DihedralPriorConfig,
    "repulsion": RepulsionPriorConfig,
}


def priors_config(value: PriorsConfig | dict | None) -> PriorsConfig:
    """``model.priors`` as given: a config, a mapping ``kind → options | None``, or ``None`` (no priors)."""
    if value is None:
        return PriorsConfig()
    if isinstance(value, PriorsConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"model.priors must map prior kinds {PRIOR_KINDS} to options (or null), got {value!r}")
    unknown = sorted(set(value) - set(PRIOR_KINDS))
    if unknown:
        raise ConfigError(f"model.priors: unknown prior kind(s) {unknown}; allowed: {', '.join(PRIOR_KINDS)}")
    kinds = {}
    for kind, options in value.items():
        if options is None or isinstance(options, CONFIGS[kind]):
            kinds[kind] = options
            continue
        if not isinstance(options, dict):
            raise ConfigError(f"model.priors.{kind} must be a mapping of options or null, got {options!r}")
        bad = sorted(set(options) - set(CONFIGS[kind].__dataclass_fields__))
        if bad:
            raise ConfigError(f"model.priors.{kind}: unknown option(s) {bad}; allowed: {', '.join(CONFIGS[kind].__dataclass_fields__)}")
        kinds[kind] = CONFIGS[kind](**options)
    return PriorsConfig(**kinds)


def build_priors(config: PriorsConfig) -> nn.ModuleDict:
    """The enabled prior kinds, in the order of :data:`PRIOR_KINDS`."""
    modules = nn.ModuleDict()
    for kind in PRIOR_KINDS:
        options = getattr(config, kind)
        if options is None:
            continue
        for key in ("bins", "min_samples"):
            if hasattr(options, key) and getattr(options, key) < 1:
                raise ConfigError(f"model.priors.{kind}.{key} must be >= 1, got {getattr(options, key)}")
        modules[kind] = PRIOR_TERMS[kind](options)
    return modules
