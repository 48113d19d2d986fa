"""``hvp`` and ``hvp_cov``: Hessian matching through random probes (docs/method.md §3–4)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from cglight.data import keys
from cglight.errors import ConfigError, PluginError
from cglight.losses.base import LossResult, LossTerm, ModelOutput
from cglight.losses.probes import PROBE_KINDS, draw_probes
from cglight.losses.targets import covariance_correction, projected_hvp


class HVPLoss(LossTerm):
    """Match ``∇²U_θ v`` to the projected all-atom Hessian ``(BᵀHB) v`` alone.

    This is the naive variant (an ablation): without the covariance correction its optimum is
    the bare curvature ``E[BᵀHB|R]``, not the PMF Hessian.

    Formula: ``L_H = mean_{frames, probes, components} (∇²U_θ(R) v − (BᵀHB) v)²`` with ``probes``
    fresh probe vectors per frame and step (``rademacher`` ±1 or ``gaussian``), units
    (kcal/mol/Å²)². With a ``hessian: probes`` dataset the stored probes are used instead.
    Normalised by the target's second moment ``‖BᵀHB‖²_F / 3n`` unless ``normalize: false``.
    Batch keys: ``hessian`` (or ``probes`` and ``hvp``). Config::

        model:
          losses:
            hvp: {weight: 0.1, probes: 4}
    """

    needs_hvp = True
    covariance = False

    def __init__(self, probes: int = 4, probe_kind: str = "rademacher", normalize: bool = True) -> None:
        super().__init__(normalize=normalize)
        if probes < 1:
            raise ConfigError(f"loss '{self._name()}': probes must be >= 1, got {probes}")
        if probe_kind not in PROBE_KINDS:
            raise ConfigError(f"loss '{self._name()}': probe_kind must be one of {PROBE_KINDS}, got {probe_kind!r}")
        self.probes = probes
        self.probe_kind = probe_kind

    def _name(self) -> str:
        return "hvp_cov" if self.covariance else "hvp"

    def check_batch(self, batch: Mapping[str, Tensor], name: str | None = None) -> None:
        super().check_batch(batch, name or self._name())
        if keys.HESSIAN not in batch and not (keys.PROBES in batch and keys.HVP in batch):
            raise PluginError(
                f"loss '{name or self._name()}' needs a projected Hessian: batch key '{keys.HESSIAN}' "
                f"(or '{keys.PROBES}' and '{keys.HVP}'); the batch has {sorted(batch)}. "
                "Was the dataset prepared with hessian: none?"
            )

    def _probe_pairs(self, batch: Mapping[str, Tensor], like: Tensor):
        """Yield ``(v, (BᵀHB) v)`` as flat ``[B, 3n]`` tensors."""
        if keys.HESSIAN in batch:
            hessian = batch[keys.HESSIAN]
            for _ in range(self.probes):
                v = draw_probes(like.shape, self.probe_kind, like)
                yield v, projected_hvp(hessian, v)
        else:
            for k in range(batch[keys.PROBES].shape[1]):
                yield batch[keys.PROBES][:, k], batch[keys.HVP][:, k]

    def _target(self, hv: Tensor, v: Tensor, batch: Mapping[str, Tensor], model_forces: Tensor | None) -> Tensor:
        if not self.covariance:
            return hv
        f = batch[keys.FORCES].flatten(1)
        m = torch.zeros_like(f) if model_forces is None else model_forces
        return hv - covariance_correction(f, m, v, batch[keys.BETA])

    def forward(self, batch: Mapping[str, Tensor], output: ModelOutput) -> LossResult:
        pos_shape = output.pos.shape
        model_forces = output.forces.detach().flatten(1)
        errors, target_sq = [], []
        for v, hv in self._probe_pairs(batch, model_forces):
            target = self._target(hv, v, batch, model_forces)
            model_hv = output.hvp(v.reshape(pos_shape)).flatten(1)
            errors.append((model_hv - target).pow(2).mean())
            target_sq.append(target.detach().pow(2).mean())
        return LossResult(torch.stack(errors).mean(), {"target_sq": torch.stack(target_sq).mean()})

    def target_second_moment(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``E‖target v‖² / 3n``, with ``F_θ = 0`` in the covariance term (no model yet)."""
        if keys.HESSIAN in batch:
            a = batch[keys.HESSIAN]
            if self.covariance:
                f = batch[keys.FORCES].flatten(1)
                a = a - batch[keys.BETA][:, None, None] * f[:, :, None] * f[:, None, :]
            return a.pow(2).sum((1, 2)).mean() / a.shape[-1]
        like = batch[keys.FORCES].flatten(1)
        return torch.stack([self._target(hv, v, batch, None).pow(2).mean() for v, hv in self._probe_pairs(batch, like)]).mean()


class CovarianceHVPLoss(HVPLoss):
    """The full, covariance-corrected Hessian matching objective (the method's main loss).

    Target per frame and probe ``v``::

        Ĥ v = (BᵀHB) v − β [ (f·v) f − (F_θ·v) F_θ ],   F_θ = model forces, detached

    whose conditional mean at the force-matching optimum is the PMF Hessian ``∇²U(R) v``.
    The per-frame target is dominated by noise (its mean square is many times the square of its
    mean); ``<stage>/hvp_cov/target_sq`` logs its mean square so the noise stays visible.
    Normalised by ``‖BᵀHB − β f fᵀ‖²_F / 3n`` (the target with ``F_θ = 0``), estimated once.

    Use it together with a force term. Because the target holds the model's own forces, alone it
    has a spurious fixed point at ``U_θ = 0`` and its fixed point at the PMF Hessian is unstable
    (for a quadratic model ``A ← A P⁻¹ A``); force matching pins ``F_θ`` to the mean force and
    makes the PMF Hessian the stable optimum (tests/losses/test_gaussian_training.py). Keep its
    normalised weight moderate relative to the force term: in benchmarks/gaussian_curvature.py
    weights 1–3 improve the model Hessian and 30 diverges.
    Batch keys: ``hessian`` (or ``probes``/``hvp``), ``forces``, ``beta``. Config::

        model:
          losses:
            force: {weight: 1.0}
            hvp_cov: {weight: 0.1, probes: 4}
    """

    required_keys = (keys.FORCES, keys.BETA)
    covariance = True
    needs_fitted_forces = True
