"""``CGPotential``: the LightningModule that trains a torchmd-net CG potential.

Forces come from autograd with ``create_graph=True``; Hessian-vector products from a second
back-propagation through them, in training and in evaluation mode alike (gradients are
enabled explicitly; the trainer runs with ``inference_mode=False``).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from torch import Tensor

from cglight.data import keys
from cglight.errors import ConfigError
from cglight.losses.base import ModelOutput
from cglight.losses.objective import Objective
from cglight.model.backbone import BACKBONES, Backbone, BackboneConfig, backbone_config, supports_third_order

log = logging.getLogger(__name__)


class CGPotential(L.LightningModule):
    """A CG potential ``U_θ(R)`` trained with weighted, normalised loss terms.

    Args:
        backbone: the torchmd-net network (name and arguments).
        losses: loss name → options; every entry takes ``weight`` plus the loss's own arguments,
            e.g. ``{"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 4}}``.
        lr: peak learning rate of AdamW.
        lr_min_ratio: the learning rate decays by a cosine to ``lr * lr_min_ratio`` at the end.
        weight_decay: AdamW weight decay.
        calibration_frames: frames used once, before training, to estimate each loss term's
            normalisation (its target's second moment).
    """

    def __init__(
        self,
        backbone: BackboneConfig | None = None,
        losses: dict[str, dict[str, Any]] | None = None,
        lr: float = 1e-3,
        lr_min_ratio: float = 0.05,
        weight_decay: float = 0.0,
        calibration_frames: int = 1024,
    ) -> None:
        super().__init__()
        backbone = backbone_config(backbone)
        losses = {"force": {"weight": 1.0}} if losses is None else losses
        if not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"model.lr must be a positive number, got {lr!r}")
        if not 0 <= lr_min_ratio <= 1:
            raise ConfigError(f"model.lr_min_ratio must be in [0, 1], got {lr_min_ratio!r}")
        if calibration_frames < 1:
            raise ConfigError(f"model.calibration_frames must be >= 1, got {calibration_frames}")
        self.save_hyperparameters(
            {"backbone": asdict(backbone), "losses": losses, "lr": lr, "lr_min_ratio": lr_min_ratio,
             "weight_decay": weight_decay, "calibration_frames": calibration_frames}
        )
        self.objective = Objective(losses)
        if backbone.name in BACKBONES and self.objective.autograd_order >= 3 and not supports_third_order(backbone.name):
            hvp = [n for n, t in self.objective.items() if t.autograd_order >= 3]
            raise ConfigError(
                f"model.backbone.name '{backbone.name}' cannot train Hessian-vector losses {hvp} by exact autograd: "
                f"{BACKBONES[backbone.name].note}. Set 'method: finite_difference' on them, use 'graph-network' "
                "or 'equivariant-transformer', or train it with 'force' alone."
            )
        self.net = Backbone(backbone)

    # ----------------------------------------------------------------- public API
    def energy(self, pos: Tensor, bead_types: Tensor) -> Tensor:
        """Energy (kcal/mol) of ``pos [F, n, 3]`` → ``[F]`` or ``[n, 3]`` → scalar; differentiable in ``pos``."""
        single = pos.dim() == 2
        if single:
            pos = pos.unsqueeze(0)
        if pos.dim() != 3 or pos.shape[-1] != 3:
            raise ValueError(f"pos must be [F, n, 3] or [n, 3], got {tuple(pos.shape)}")
        frames, n, _ = pos.shape
        bead_types = torch.as_tensor(bead_types, device=pos.device)
        if bead_types.shape not in ((n,), (frames, n)):
            raise ValueError(f"bead_types must be [n] or [F, n] with n={n}, got {tuple(bead_types.shape)}")
        if not self.training and (bead_types.min() < 0 or bead_types.max() >= self.net.config.max_z):
            raise ValueError(f"bead types must lie in [0, {self.net.config.max_z}) (model.backbone.max_z), got {bead_types.tolist()}")
        z = bead_types.expand(frames, n).reshape(-1).long()
        batch = torch.arange(frames, device=pos.device).repeat_interleave(n)
        energy = self.net(z, pos.reshape(-1, 3), batch, frames)
        return energy[0] if single else energy

    def evaluate(self, pos: Tensor, bead_types: Tensor, create_graph: bool = True) -> ModelOutput:
        """Energy and forces at ``pos [F, n, 3]``, ready for Hessian-vector products.

        With ``create_graph=True`` the returned HVPs are themselves differentiable in the
        parameters (training); with ``False`` they are plain values (evaluation).
        """
        with torch.enable_grad():
            pos = pos.detach().requires_grad_(True)
            energy = self.energy(pos, bead_types)
            (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        types = torch.as_tensor(bead_types, device=pos.device)

        def force_fn(p: Tensor) -> Tensor:
            t = types if types.dim() == 1 else types.repeat(p.shape[0] // types.shape[0], 1)
            with torch.enable_grad():
                p = p.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self.energy(p, t).sum(), p, create_graph=True)
            return -g

        return ModelOutput(energy, -grad, pos, create_graph, force_fn)

    def forces(self, pos: Tensor, bead_types: Tensor) -> Tensor:
        """Forces (kcal/mol/Å), detached."""
        return self.evaluate(pos, bead_types, create_graph=False).forces.detach()

    def hvp(self, pos: Tensor, bead_types: Tensor, v: Tensor) -> Tensor:
        """``∇²U_θ(pos) v`` (kcal/mol/Å² × [v]) by double back-propagation, detached."""
        out = self.evaluate(pos, bead_types, create_graph=False)
        with torch.enable_grad():
            return out.hvp(v).detach()

    # ----------------------------------------------------------------- training
    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        dataset = getattr(dm, "dataset", None)
        if dataset is not None:
            for name, system in dataset.manifest.systems.items():
                if max(system.bead_types) >= self.net.config.max_z:
                    raise ConfigError(
                        f"system '{name}' has bead type {max(system.bead_types)} but model.backbone.max_z is "
                        f"{self.net.config.max_z}; set max_z above every bead type"
                    )
        if self.objective.calibrated:
            return
        if dm is not None and hasattr(dm, "calibration_batches"):
            batches = dm.calibration_batches(self.hparams.calibration_frames)
        else:
            batches = itertools.islice(self.trainer.fit_loop._data_source.dataloader(), 8)
        self.objective.calibrate(self.transfer_batch_to_device(b, self.device, 0) for b in batches)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        if torch.is_inference_mode_enabled():
            raise ConfigError("Hessian-vector products need autograd during evaluation: set trainer.inference_mode: false")
        with torch.enable_grad():
            out = self.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES], create_graph=True)
            out.create_graph = stage == "train"
            total, logs = self.objective(batch, out)
        size = batch[keys.POS].shape[0]
        train = stage == "train"
        # training terms per step (train/<name>), evaluation terms per epoch (val/<name>, test/<name>)
        self.log_dict({f"{stage}/{k}": v for k, v in logs.items()}, batch_size=size, on_step=train, on_epoch=not train, sync_dist=not train)
        self.log(f"{stage}_loss", logs["loss"], batch_size=size, on_step=False, on_epoch=True, prog_bar=True, sync_dist=not train)
        return total if train else total.detach()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self.objective.set_step(self.global_step)
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=hp.lr * hp.lr_min_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
