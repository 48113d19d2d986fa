"""``hvp`` and ``hvp_cov``: Hessian matching through random probes (docs/method.md §3–4)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from cglight.data import keys
from cglight.errors import ConfigError, PluginError
from cglight.losses.base import LossResult, LossTerm, ModelOutput
from cglight.losses.probes import PROBE_KINDS, draw_probes

HVP_METHODS = ("autograd", "finite_difference")
ESTIMATORS = ("uncentered", "centered")
FD_EPS_ONE_SIDED = 3.0e-4
"""Å; the float32 optimum measured by benchmarks/hvp_fd_bias.py (docs/hvp.md)."""
FD_EPS_CENTRAL = 1.0e-3


def covariance_correction(forces: Tensor, model_forces: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """``β [(f·v) f − (F_θ·v) F_θ]`` with ``F_θ`` detached (no gradient flows through it).
    Shapes: vectors ``[B, 3n]``, ``beta [B]``."""
    model_forces = model_forces.detach()
    fv = (forces * v).sum(-1, keepdim=True)
    mv = (model_forces * v).sum(-1, keepdim=True)
    return beta[:, None] * (fv * forces - mv * model_forces)


def centered_covariance_correction(forces: Tensor, model_forces: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """``β ((f − F_θ)·v) (f − F_θ)`` with ``F_θ`` detached: the covariance of the mapped force about
    the model's mean force. Its conditional mean differs from that of :func:`covariance_correction`
    only by ``β (F̄ − F_θ)(F̄ − F_θ)ᵀ v``, second order in the model's force error."""
    d = forces - model_forces.detach()
    return beta[:, None] * (d * v).sum(-1, keepdim=True) * d


def hvp_cov_target(hv: Tensor, forces: Tensor, model_forces: Tensor, v: Tensor, beta: Tensor,
                   estimator: str = "centered") -> Tensor:
    """The per-frame ``hvp_cov`` target (docs/method.md §3–4) given ``hv = (BᵀHB) v``: ``hv`` minus the
    ``centered`` or ``uncentered`` covariance correction."""
    correction = centered_covariance_correction if estimator == "centered" else covariance_correction
    return hv - correction(forces, model_forces, v, beta)


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

    ``method`` picks how the model side ``∇²U_θ v`` is computed (docs/hvp.md):
    ``autograd`` (exact, double back-propagation per probe; training it needs third-order
    autograd through the backbone) or ``finite_difference`` (the default:
    ``−(F_θ(R + εv) − F_θ(R))/ε`` reusing ``F_θ(R)``, ``fd_eps`` in Å; ``fd_central: true`` for
    ``−(F_θ(R + εv) − F_θ(R − εv))/2ε``; needs only second-order autograd, so it also trains
    backbones such as ``tensornet``). The default ``fd_eps`` (3e-4 Å one-sided, 1e-3 Å central)
    minimises the float32 error; ``fd_probes_per_call`` probes share one forward pass of the model
    (1 is fastest on a CPU, where the backbone's neighbour search grows faster than linearly with
    the beads per call; try more on a GPU). The defaults (finite differences, one probe per frame)
    gave the lowest model-Hessian error per unit of training cost (benchmarks/hvp_probes.py).
    """

    needs_hvp = True
    covariance = False
    estimator = "uncentered"

    # typed arguments spelled out: they are the LightningCLI schema of model.losses.<name> (CovarianceHVPLoss repeats them)
    def __init__(
        self,
        probes: int = 1,
        probe_kind: str = "rademacher",
        method: str = "finite_difference",
        fd_eps: float | None = None,
        fd_central: bool = False,
        fd_probes_per_call: int = 1,
        normalize: bool = True,
    ) -> None:
        super().__init__(normalize=normalize)
        # one check per argument, each naming its key and what is allowed (alike in shape to other validators only)
        if probes < 1:
            raise ConfigError(f"loss '{self._name()}': probes must be >= 1, got {probes}")
        if probe_kind not in PROBE_KINDS:
            raise ConfigError(f"loss '{self._name()}': probe_kind must be one of {PROBE_KINDS}, got {probe_kind!r}")
        if method not in HVP_METHODS:
            raise ConfigError(f"loss '{self._name()}': method must be one of {HVP_METHODS}, got {method!r}")
        if fd_eps is None:
            fd_eps = FD_EPS_CENTRAL if fd_central else FD_EPS_ONE_SIDED
        if isinstance(fd_eps, bool) or not isinstance(fd_eps, (int, float)) or not 0 < fd_eps < 1:
            raise ConfigError(f"loss '{self._name()}': fd_eps must be a step in Å in (0, 1), got {fd_eps!r}")
        if fd_probes_per_call < 1:
            raise ConfigError(f"loss '{self._name()}': fd_probes_per_call must be >= 1, got {fd_probes_per_call}")
        self.probes = probes
        self.probe_kind = probe_kind
        self.method = method
        self.fd_eps = float(fd_eps)
        self.fd_central = bool(fd_central)
        self.fd_probes_per_call = fd_probes_per_call

    @property
    def autograd_order(self) -> int:
        """3 for the exact method; 2 for finite differences (a parameter gradient of forces)."""
        return 3 if self.method == "autograd" else 2

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

    def _probe_pairs(self, batch: Mapping[str, Tensor], like: Tensor) -> tuple[Tensor, Tensor]:
        """``(v, (BᵀHB) v)`` for every probe as ``[K, B, 3n]`` tensors (fresh probes on every call)."""
        if keys.HESSIAN in batch:
            v = draw_probes((self.probes, *like.shape), self.probe_kind, like)
            return v, torch.einsum("bij,kbj->kbi", batch[keys.HESSIAN], v)
        return batch[keys.PROBES].transpose(0, 1), batch[keys.HVP].transpose(0, 1)

    def _model_hvp(self, output: ModelOutput, v: Tensor) -> Tensor:
        """``∇²U_θ v`` for ``v [K, B, 3n]`` → ``[K, B, 3n]`` by the configured method."""
        shape = (v.shape[0], *output.pos.shape)
        if self.method == "finite_difference":
            v = v.reshape(shape)
            step = self.fd_probes_per_call
            chunks = [output.hvp_fd(v[k : k + step], self.fd_eps, self.fd_central) for k in range(0, len(v), step)]
            return torch.cat(chunks).flatten(2)
        return torch.stack([output.hvp(vk.reshape(output.pos.shape)).flatten(1) for vk in v])

    def _target(self, hv: Tensor, v: Tensor, batch: Mapping[str, Tensor], model_forces: Tensor | None) -> Tensor:
        if not self.covariance:
            return hv
        f = batch[keys.FORCES].flatten(1)
        m = torch.zeros_like(f) if model_forces is None else model_forces
        return hvp_cov_target(hv, f, m, v, batch[keys.BETA], self.estimator)

    def forward(self, batch: Mapping[str, Tensor], output: ModelOutput) -> LossResult:
        model_forces = output.forces.flatten(1)  # detached by the target functions above, and only there
        v, hv = self._probe_pairs(batch, model_forces)
        target = torch.stack([self._target(hv[k], v[k], batch, model_forces) for k in range(len(v))])
        model_hv = self._model_hvp(output, v)
        return LossResult((model_hv - target).pow(2).mean(), self._diagnostics(batch, v, hv, target, model_hv.detach()))

    def _diagnostics(
        self, batch: Mapping[str, Tensor], v: Tensor, hv: Tensor, target: Tensor, model_hv: Tensor
    ) -> dict[str, Tensor]:
        """Logged parts (docs/hvp.md): ``target_sq`` and ``model_sq``, the mean squares of the
        target and of the model's HVP; ``noise_sq = target_sq − model_sq``, the loss left when
        the model equals the target's conditional mean (its irreducible noise); for ``hvp_cov``
        also ``force_noise``, the mapped-force noise per component estimated from the
        fluctuation identity ``β E[Var(f|R)] = tr⟨BᵀHB⟩ − tr ∇²U`` with the model's Hessian
        (Hutchinson traces ``vᵀ(BᵀHB)v`` and ``vᵀ∇²U_θ v``): the floor of ``force_raw``."""
        target_sq, model_sq = target.detach().pow(2).mean(), model_hv.pow(2).mean()
        parts = {"target_sq": target_sq, self.MODEL_SQ: model_sq, "noise_sq": target_sq - model_sq}
        if self.covariance:
            trace_gap = ((hv - model_hv) * v).sum(-1).mean(0)  # [B]
            parts["force_noise"] = (trace_gap / (batch[keys.BETA] * v.shape[-1])).mean().detach()
        return parts

    def target_second_moment(self, batch: Mapping[str, Tensor]) -> Tensor:
        """``E‖target v‖² / 3n``, with ``F_θ = 0`` in the covariance term (no model yet)."""
        if keys.HESSIAN in batch:
            a = batch[keys.HESSIAN]
            if self.covariance:
                f = batch[keys.FORCES].flatten(1)
                a = a - batch[keys.BETA][:, None, None] * f[:, :, None] * f[:, None, :]
            return a.pow(2).sum((1, 2)).mean() / a.shape[-1]
        v, hv = self._probe_pairs(batch, batch[keys.FORCES].flatten(1))
        return torch.stack([self._target(hv[k], v[k], batch, None).pow(2).mean() for k in range(len(v))]).mean()


class CovarianceHVPLoss(HVPLoss):
    """The full, covariance-corrected Hessian matching objective (the method's main loss).

    Target per frame and probe ``v``, with ``F_θ`` the model's forces, detached::

        centered (default):  Ĥ v = (BᵀHB) v − β ((f − F_θ)·v) (f − F_θ)
        uncentered:          Ĥ v = (BᵀHB) v − β [ (f·v) f − (F_θ·v) F_θ ]

    Both have the PMF Hessian ``∇²U(R) v`` as conditional mean when ``F_θ`` is the mean force.
    Away from it the uncentered target errs to first order in the model's force error, and for a
    quadratic model its mean is ``A P⁻¹ A``: the model's curvature feeds back into its own target
    and training runs away above a weight (docs/hvp.md). The centered target errs only to second
    order (``−β δδᵀ v``, ``δ`` the force error) and trained stably at every weight measured.
    The per-frame target is dominated by noise; ``<stage>/hvp_cov/target_sq``, ``model_sq``,
    ``noise_sq`` and ``force_noise`` make it visible (docs/hvp.md). Normalised by
    ``‖BᵀHB − β f fᵀ‖²_F / 3n`` (the target with ``F_θ = 0``), estimated once.

    Use it together with a force term: alone it has a spurious fixed point at ``U_θ = 0``.
    Batch keys: ``hessian`` (or ``probes``/``hvp``), ``forces``, ``beta``. Config::

        model:
          losses:
            force: {weight: 1.0}
            hvp_cov: {weight: 3.0}
    """

    required_keys = (keys.FORCES, keys.BETA)
    covariance = True
    needs_fitted_forces = True

    # the arguments repeat HVPLoss's on purpose: typed __init__ arguments are the LightningCLI schema of
    # model.losses.hvp_cov (--help, --print_config), and the conformance suite refuses **kwargs
    def __init__(
        self,
        probes: int = 1,
        probe_kind: str = "rademacher",
        method: str = "finite_difference",
        fd_eps: float | None = None,
        fd_central: bool = False,
        fd_probes_per_call: int = 1,
        estimator: str = "centered",
        normalize: bool = True,
    ) -> None:
        super().__init__(probes, probe_kind, method, fd_eps, fd_central, fd_probes_per_call, normalize)
        if estimator not in ESTIMATORS:
            raise ConfigError(f"loss 'hvp_cov': estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
