"""``CGEnergy``: the CG energy ``U(R) = U_priors(R) + U_net(R)`` as a plain ``nn.Module``.

The one object that training (wrapped by ``cglight.training.CGPotential``), simulation and evaluation
use; it imports neither Lightning nor the losses, and a checkpoint restores it on its own
(:meth:`CGEnergy.from_checkpoint`).

**Topology.** The priors need the CG bonds of the molecule. The model keeps the topology (bead
types, bonds, temperature) of every system it was fitted on (:meth:`set_systems`, saved in the
checkpoint), and ``energy(pos, bead_types)`` looks the molecule up by its bead types. Pass
``bonds=[[i, j], ...]`` to evaluate a molecule the model has not seen (or whose bead types are
shared by systems with different bonds). Without priors no topology is needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from cglight.energy.backbone import BackboneConfig, backbone_config, build_backbone, check_trusted
from cglight.energy.output import ModelOutput
from cglight.energy.prior_fit import FitCurve, GeometrySamples
from cglight.energy.priors import PRIOR_KINDS, PriorsConfig, build_priors, priors_config
from cglight.energy.topology import Topology, canonical
from cglight.errors import ConfigError
from cglight.units import KB_KCAL_PER_MOL_K

TERMS = (*PRIOR_KINDS, "network")
"""The keys of :meth:`CGEnergy.energy_terms`."""


class SystemLike(Protocol):
    """What the model needs to know of a system (``cglight.data.manifest.SystemInfo`` has it)."""

    temperature: float
    bead_types: list[int]
    bonds: list[list[int]]


class CGEnergy(nn.Module):
    """Priors plus a backbone network: energy, forces and Hessian-vector products of CG coordinates.

    Args:
        backbone: the network (see :class:`~cglight.energy.backbone.BackboneConfig`).
        priors: the prior kinds to use, each with its options, or ``None`` for none.
    """

    def __init__(self, backbone: BackboneConfig | dict[str, Any] | None = None, priors: PriorsConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone_config = backbone_config(backbone)
        self.priors_config = priors_config(priors)
        self.net = build_backbone(self.backbone_config)
        self.priors = build_priors(self.priors_config)
        self.register_buffer("priors_fitted", torch.tensor(False))
        self.systems: dict[str, dict[str, Any]] = {}
        self._compiled: dict[tuple, dict[str, tuple[Tensor, Tensor]]] = {}

    # ------------------------------------------------------------ checkpoint
    def get_extra_state(self) -> dict[str, Any]:
        return {"systems": self.systems}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.systems = {name: dict(s) for name, s in state.get("systems", {}).items()}
        self._compiled.clear()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu", prefix: str = "core.",
                        trusted_backbones: Collection[str] | None = None) -> CGEnergy:
        """The energy model of a ``cglight fit`` checkpoint, in evaluation mode, without Lightning.

        Reads the checkpoint's hyper-parameters (``backbone``, ``priors``) and the ``core.*``
        entries of its state dict with plain ``torch.load(weights_only=True)``. A backbone given
        by dotted class path is imported only if that path is in ``trusted_backbones`` (importing
        runs the module's code); the built-in names (``graph-network``, ...) always load.
        """
        ckpt = load_plain(path, map_location, "cglight reads checkpoints as plain data only")
        hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if not isinstance(hp, dict) or "backbone" not in hp or "state_dict" not in ckpt:
            raise ConfigError(f"{path}: not a cglight checkpoint (no hyper_parameters.backbone or state_dict)")
        backbone = backbone_config(hp["backbone"])
        check_trusted(backbone.name, trusted_backbones, str(path))
        model = cls(backbone, hp.get("priors"))
        state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            reason = " ".join(str(exc).split())
            raise ConfigError(f"{path}: its weights do not fit its hyper-parameters ({reason[:300]})") from None
        return model.eval()

    # ------------------------------------------------------------ topology
    def set_systems(self, systems: Mapping[str, SystemLike]) -> None:
        """Record (or update) the topologies of ``systems``: name → bead types, bonds, temperature."""
        for name, s in systems.items():
            self.systems[name] = {"bead_types": [int(t) for t in s.bead_types], "bonds": [list(map(int, b)) for b in s.bonds],
                                  "temperature": float(s.temperature)}
        self._compiled.clear()

    def check_bead_types(self, systems: Mapping[str, SystemLike]) -> None:
        """Every bead type must fit the backbone's embedding table (``max_z``)."""
        max_z = self.backbone_config.max_z
        for name, s in systems.items():
            if max(s.bead_types) >= max_z:
                raise ConfigError(f"system '{name}' has bead type {max(s.bead_types)} but model.backbone.max_z is {max_z}; set max_z above every bead type")

    def topology(self, bead_types: Sequence[int], bonds: Sequence[Sequence[int]] | None = None) -> Topology:
        """The bonds of the molecule with these bead types (``bonds`` if given, else a fitted system's)."""
        n = len(bead_types)
        if bonds is not None:
            return Topology.from_bonds(n, bonds)
        types = [int(t) for t in bead_types]
        found = {tuple(map(tuple, s["bonds"])) for s in self.systems.values() if s["bead_types"] == types}
        if len(found) != 1:
            known = {name: s["bead_types"] for name, s in self.systems.items()}
            why = "no known system has" if not found else "several known systems with different bonds have"
            raise ConfigError(
                f"the priors need the CG bonds of the molecule, but {why} bead types {types} (known: {known or 'none'}); "
                "pass bonds=[[i, j], ...]"
            )
        return Topology.from_bonds(n, found.pop())

    def _terms(self, types: list[int], bonds, device: torch.device) -> dict[str, tuple[Tensor, Tensor]]:
        key = (tuple(types), None if bonds is None else tuple(tuple(int(i) for i in b) for b in bonds), str(device))
        if key not in self._compiled:
            topology = self.topology(types, bonds)
            compiled = {}
            for kind, term in self.priors.items():
                terms = term.terms(topology)
                index = torch.tensor(terms, dtype=torch.long).reshape(len(terms), term.arity)
                rows = term.rows([canonical(tuple(types[i] for i in t)) for t in terms])
                compiled[kind] = (index.to(device), rows.to(device))
            self._compiled[key] = compiled
        return self._compiled[key]

    # ------------------------------------------------------------ fitting
    def fit_priors(self, frames: Iterable[tuple[Tensor, Tensor]], systems: Mapping[str, SystemLike]) -> list[FitCurve]:
        """Fit every enabled prior by Boltzmann inversion on ``frames`` (training frames only).

        ``frames`` yields ``(pos [B, n, 3], bead_types [n] or [B, n])``, one molecule per item.
        ``systems`` (name → temperature, bead types, bonds) gives each item's topology (looked up by
        its bead types) and the temperature; all systems must share one temperature. Returns the
        fitted curves against the data's free energy (for :func:`cglight.energy.prior_plot.plot_priors`).
        """
        self.set_systems(systems)
        temperatures = sorted({float(s.temperature) for s in systems.values()})
        if len(temperatures) != 1:
            raise ConfigError(f"priors are fitted at one temperature, but the systems have {temperatures} K; fit one temperature's data")
        samples = GeometrySamples(self.priors)
        for pos, types in frames:
            types = torch.as_tensor(types)
            types = (types[0] if types.dim() == 2 else types).tolist()
            samples.add(pos, types, self.topology(types))
        if samples.frames == 0:
            raise ConfigError("cannot fit the priors: the training data yielded no frame")
        curves = samples.fit(KB_KCAL_PER_MOL_K * temperatures[0])
        self.priors_fitted.fill_(True)
        self._compiled.clear()
        return curves

    @property
    def needs_fit(self) -> bool:
        return len(self.priors) > 0 and not bool(self.priors_fitted)

    # ------------------------------------------------------------ energy
    def _prepare(self, pos: Tensor, bead_types: Tensor) -> tuple[Tensor, Tensor, bool]:
        single = pos.dim() == 2
        if single:
            pos = pos.unsqueeze(0)
        if pos.dim() != 3 or pos.shape[-1] != 3:
            raise ValueError(f"pos must be [F, n, 3] or [n, 3], got {tuple(pos.shape)}")
        frames, n, _ = pos.shape
        bead_types = torch.as_tensor(bead_types, device=pos.device)
        if bead_types.shape not in ((n,), (frames, n)):
            raise ValueError(f"bead_types must be [n] or [F, n] with n={n}, got {tuple(bead_types.shape)}")
        if not self.training and (bead_types.min() < 0 or bead_types.max() >= self.backbone_config.max_z):
            raise ValueError(f"bead types must lie in [0, {self.backbone_config.max_z}) (model.backbone.max_z), got {bead_types.tolist()}")
        return pos, bead_types, single

    def _prior_parts(self, pos: Tensor, bead_types: Tensor, bonds) -> dict[str, Tensor]:
        """The enabled priors' energies of one molecule's frames ``pos [F, n, 3]``, ``[F]`` each."""
        parts = {}
        if len(self.priors):
            if not bool(self.priors_fitted):
                raise RuntimeError("the priors are not fitted yet: call fit_priors (CGPotential.fit_to_data) first")
            types = (bead_types[0] if bead_types.dim() == 2 else bead_types).tolist()
            for kind, (index, rows) in self._terms(types, bonds, pos.device).items():
                parts[kind] = self.priors[kind].energy(pos, index, rows)
        return parts

    def _parts(self, pos: Tensor, bead_types: Tensor, bonds) -> tuple[dict[str, Tensor], bool]:
        """The enabled priors' energies and the network's, ``[F]`` each (and whether ``pos`` was one frame)."""
        pos, bead_types, single = self._prepare(pos, bead_types)
        frames, n, _ = pos.shape
        parts = self._prior_parts(pos, bead_types, bonds)
        z = bead_types.expand(frames, n).reshape(-1).long()
        batch = torch.arange(frames, device=pos.device).repeat_interleave(n)
        parts["network"] = self.net(z, pos.reshape(-1, 3), batch, frames)
        return parts, single

    def energy_terms(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> dict[str, Tensor]:
        """Energy (kcal/mol) split into ``bonds``, ``angles``, ``dihedrals``, ``repulsion`` (zero when a
        kind is off) and ``network``; they sum to :meth:`energy`. Shapes as for :meth:`energy`."""
        parts, single = self._parts(pos, bead_types, bonds)
        zero = torch.zeros_like(parts["network"])
        terms = {kind: parts.get(kind, zero) for kind in TERMS}
        return {k: v[0] for k, v in terms.items()} if single else terms

    def energy(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """Energy (kcal/mol) of ``pos [F, n, 3]`` → ``[F]`` or ``[n, 3]`` → scalar; differentiable in ``pos``.

        ``bead_types [n]`` (or ``[F, n]``, one molecule per call). ``bonds`` overrides the topology
        looked up by bead types (see the module docstring)."""
        parts, single = self._parts(pos, bead_types, bonds)
        total = sum(parts.values())
        return total[0] if single else total

    def evaluate(self, pos: Tensor, bead_types: Tensor, create_graph: bool = True, bonds: Sequence[Sequence[int]] | None = None) -> ModelOutput:
        """Energy and forces at ``pos [F, n, 3]``, ready for Hessian-vector products (exact or by
        finite differences through ``force_fn``).

        With ``create_graph=True`` the returned HVPs are themselves differentiable in the
        parameters (training); with ``False`` they are plain values (evaluation).
        """
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            energy = self.energy(pos, bead_types, bonds)
            (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return ModelOutput(energy, -grad, pos, create_graph, self._force_fn(torch.as_tensor(bead_types, device=pos.device), bonds))

    def _force_fn(self, types: Tensor, bonds) -> Callable[[Tensor], Tensor]:
        """``ModelOutput.force_fn`` of one molecule with bead types ``types [n]`` or ``[F, n]``."""

        def force_fn(p: Tensor) -> Tensor:
            t = types if types.dim() == 1 else types.repeat(p.shape[0] // types.shape[0], 1)
            with torch.enable_grad():
                p = p.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self.energy(p, t, bonds).sum(), p, create_graph=True)
            return -g

        return force_fn

    def evaluate_groups(self, groups: Sequence[tuple[Tensor, Tensor, Sequence[Sequence[int]] | None]],
                        create_graph: bool = True) -> list[ModelOutput]:
        """:meth:`evaluate` for several molecules at once, in ONE call of the backbone.

        ``groups`` holds ``(pos [F_g, n_g, 3], bead_types [n_g] or [F_g, n_g], bonds or None)``,
        one molecule (bead count) each. The frames of all groups are concatenated into one flat
        batch (torch-geometric's layout: every frame its own graph) for the backbone; the priors
        are applied per group. Returns one :class:`ModelOutput` per group, as :meth:`evaluate`
        would: its ``pos`` is the group's own leaf tensor, so forces and exact HVPs by autograd
        are per group (the total energy is a sum over frames, so no frame's forces depend on
        another frame's positions), and ``force_fn`` evaluates that group alone.
        """
        if not groups:
            return []
        with torch.enable_grad():
            leaves, types, energies = self._group_energies(groups)
            grads = torch.autograd.grad(sum(e.sum() for e in energies), leaves, create_graph=True)
        return [ModelOutput(e, -g, leaf, create_graph, self._force_fn(t, bonds))
                for e, g, leaf, t, (_, _, bonds) in zip(energies, grads, leaves, types, groups, strict=True)]

    def forces_groups(self, groups: Sequence[tuple[Tensor, Tensor, Sequence[Sequence[int]] | None]]) -> list[Tensor]:
        """Forces (kcal/mol/Å, detached, no graph kept) of several molecules in one backbone call:
        ``groups`` as for :meth:`evaluate_groups`; one ``[F_g, n_g, 3]`` per group (simulation)."""
        if not groups:
            return []
        with torch.enable_grad():
            leaves, _, energies = self._group_energies(groups)
            grads = torch.autograd.grad(sum(e.sum() for e in energies), leaves)
        return [-g for g in grads]

    def _group_energies(self, groups) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Leaf positions, bead types and energies ``[F_g]`` of every group, the backbone called once."""
        leaves, types, z, beads = [], [], [], []
        for pos, bead_types, _ in groups:
            if pos.dim() != 3:
                raise ValueError(f"a group's pos must be [F, n, 3], got {tuple(pos.shape)}")
            pos, bead_types, _ = self._prepare(pos, bead_types)
            frames, n, _ = pos.shape
            leaves.append(pos.detach().requires_grad_(True))
            types.append(bead_types)
            z.append(bead_types.expand(frames, n).reshape(-1).long())
            beads.append(torch.full((frames,), n, dtype=torch.long, device=pos.device))
        counts = [leaf.shape[0] for leaf in leaves]
        total = sum(counts)
        batch = torch.arange(total, device=leaves[0].device).repeat_interleave(torch.cat(beads))
        flat = torch.cat([leaf.reshape(-1, 3) for leaf in leaves])
        network = self.net(torch.cat(z), flat, batch, total).split(counts)
        energies = [sum(self._prior_parts(leaf, t, bonds).values()) + net
                    for leaf, t, (_, _, bonds), net in zip(leaves, types, groups, network, strict=True)]
        return leaves, types, energies

    def forces(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """Forces (kcal/mol/Å), detached: one backward pass without a graph (what simulation needs)."""
        with torch.enable_grad():
            p = pos.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(p, bead_types, bonds).sum(), p)
        return -g

    def hvp(self, pos: Tensor, bead_types: Tensor, v: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """``∇²U(pos) v`` (kcal/mol/Å² × [v]) by double back-propagation, detached."""
        out = self.evaluate(pos, bead_types, create_graph=False, bonds=bonds)
        with torch.enable_grad():
            return out.hvp(v).detach()

    def hessian(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """``∇²U`` of every frame of ``pos [F, n, 3]``, ``[F, 3n, 3n]`` (kcal/mol/Å²), symmetrised and detached:
        ``3n`` Hessian-vector products of one evaluation. For analysis of small molecules (diagnostics,
        reference comparisons); training never forms it."""
        out = self.evaluate(pos, bead_types, create_graph=False, bonds=bonds)
        frames, n = out.pos.shape[:2]
        unit = torch.eye(3 * n, dtype=out.pos.dtype, device=out.pos.device)
        with torch.enable_grad():
            columns = [out.hvp(unit[k].expand(frames, -1).reshape(frames, n, 3)).reshape(frames, -1) for k in range(3 * n)]
        h = torch.stack(columns, -1).detach()
        return 0.5 * (h + h.transpose(-1, -2))


def load_plain(path: str | os.PathLike, map_location: str | torch.device, why: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings, lists and dicts only, never
    code; a file that holds anything else (or is not a torch file) is refused in one line saying ``why``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, EOFError, RuntimeError (not a zip), ...
        found = re.search(r"Unsupported (global: GLOBAL \S+|operand \d+)", str(exc))
        reason = found.group(0) if found else type(exc).__name__
        raise ConfigError(f"{path}: not loaded: it is not plain data (tensors, numbers, strings, lists, dicts) that "
                          f"torch.load(weights_only=True) reads ({reason}); {why}") from None
