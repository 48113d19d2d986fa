"""``CGPotential``: the LightningModule that trains a :class:`~cglight.energy.CGEnergy`.

It owns the energy model (``self.core``: priors + backbone) and the training objective, and does
nothing else a simulator would need: ``energy``/``forces``/``hvp``/``evaluate`` delegate to the core.

**The hand-over from data to model** is one public call, :meth:`CGPotential.fit_to_data`, made once
before the first step: it records the systems' topologies, fits the priors and calibrates the loss
normalisation, on training frames only. ``on_fit_start`` makes it automatically when the trainer's
DataModule has ``calibration_batches(frames)`` (about ``frames`` training frames from every system and
trajectory, the same on every rank) and ``systems`` (name → temperature, bead types, bonds), as ``CGDataModule`` does;
with another DataModule call it yourself before ``trainer.fit``. A checkpoint that is already
fitted and calibrated (resuming) is never refitted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from torch import Tensor

from cglight.data import keys, mixed
from cglight.energy import CGEnergy, ModelOutput
from cglight.energy.autograd_probe import check_autograd_order
from cglight.energy.backbone import BackboneConfig, backbone_config
from cglight.energy.core import SystemLike
from cglight.energy.prior_fit import FitCurve
from cglight.energy.prior_plot import bead_type_names
from cglight.energy.priors import PriorsConfig, priors_config
from cglight.errors import ConfigError
from cglight.losses.objective import Objective

log = logging.getLogger(__name__)


class CGPotential(L.LightningModule):
    """A CG potential ``U_θ(R) = U_priors(R) + U_net(R)`` trained with weighted, normalised loss terms.

    Args:
        backbone: the network (a torchmd-net model by name, or an ``nn.Module`` by dotted class path).
        priors: prior kinds fitted from the training data, e.g. ``{bonds: {}, angles: {}, dihedrals:
            {terms: 2}, repulsion: {}}``; ``null`` or absent turns a kind off (all off by default).
        losses: loss name → options; every entry takes ``weight`` plus the loss's own arguments,
            e.g. ``{"force": {"weight": 1.0}, "hvp_cov": {"weight": 0.1, "probes": 4}}``. Every
            loss applies to the total energy, priors included.
        lr: peak learning rate of AdamW.
        lr_min_ratio: the learning rate decays by a cosine to ``lr * lr_min_ratio`` at the end.
        weight_decay: AdamW weight decay.
        calibration_frames: training frames (spread over every system and trajectory) used once, before training, to fit the
            priors and to estimate each loss term's normalisation (its target's second moment).
    """

    def __init__(
        self,
        backbone: BackboneConfig | None = None,
        priors: PriorsConfig | None = None,
        losses: dict[str, dict[str, Any]] | None = None,
        lr: float = 1e-3,
        lr_min_ratio: float = 0.05,
        weight_decay: float = 0.0,
        calibration_frames: int = 1024,
    ) -> None:
        super().__init__()
        backbone = backbone_config(backbone)
        priors = priors_config(priors)
        losses = {"force": {"weight": 1.0}} if losses is None else losses
        if not (lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"model.lr must be a positive number, got {lr!r}")
        if not 0 <= lr_min_ratio <= 1:
            raise ConfigError(f"model.lr_min_ratio must be in [0, 1], got {lr_min_ratio!r}")
        if calibration_frames < 1:
            raise ConfigError(f"model.calibration_frames must be >= 1, got {calibration_frames}")
        # plain data only, so that the checkpoint loads with torch.load(weights_only=True)
        self.save_hyperparameters(
            {"backbone": asdict(backbone), "priors": asdict(priors), "losses": losses, "lr": lr, "lr_min_ratio": lr_min_ratio,
             "weight_decay": weight_decay, "calibration_frames": calibration_frames}
        )
        self.objective = Objective(losses)
        self.core = CGEnergy(backbone, priors)
        order_of = {n: t.autograd_order for n, t in self.objective.items()}
        needy = [n for n, o in order_of.items() if o == self.objective.autograd_order]
        check_autograd_order(self.core.net, self.objective.autograd_order, f"losses {needy}", backbone.name, backbone.max_z)
        self.prior_curves: list[FitCurve] = []
        """The fitted priors against the data, from :meth:`fit_to_data` in this process (for ``priors.png``,
        which the ``LossCurves`` callback draws)."""
        self.prior_type_names: dict[int, str] = {}
        """Bead type → the systems' bead names, from :meth:`fit_to_data` (for the picture's titles)."""

    # ----------------------------------------------------------------- public API (delegates)
    def energy(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """Energy (kcal/mol): see :meth:`CGEnergy.energy`."""
        return self.core.energy(pos, bead_types, bonds)

    def energy_terms(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> dict[str, Tensor]:
        """Energy split per prior kind and ``network``: see :meth:`CGEnergy.energy_terms`."""
        return self.core.energy_terms(pos, bead_types, bonds)

    def evaluate(self, pos: Tensor, bead_types: Tensor, create_graph: bool = True, bonds: Sequence[Sequence[int]] | None = None) -> ModelOutput:
        """Energy and forces ready for Hessian-vector products: see :meth:`CGEnergy.evaluate`."""
        return self.core.evaluate(pos, bead_types, create_graph, bonds)

    def forces(self, pos: Tensor, bead_types: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """Forces (kcal/mol/Å), detached."""
        return self.core.forces(pos, bead_types, bonds)

    def hvp(self, pos: Tensor, bead_types: Tensor, v: Tensor, bonds: Sequence[Sequence[int]] | None = None) -> Tensor:
        """``∇²U_θ(pos) v`` by double back-propagation, detached."""
        return self.core.hvp(pos, bead_types, v, bonds)

    # ----------------------------------------------------------------- the hand-over
    @property
    def fitted_to_data(self) -> bool:
        """Priors fitted and loss normalisation calibrated (true after :meth:`fit_to_data` or a resume)."""
        return not self.core.needs_fit and self.objective.calibrated

    def fit_to_data(self, batches: Iterable[Mapping[str, Tensor]], systems: Mapping[str, SystemLike]) -> None:
        """Prepare the model for training on a dataset, once, before the first step.

        Args:
            batches: batches of TRAINING frames only (dicts with at least ``pos``, ``bead_types``
                and the keys the losses read; one system per batch, or mixed batches), identical on every rank:
                e.g. ``datamodule.calibration_batches(model.hparams.calibration_frames)``.
            systems: name → an object with ``temperature`` (K), ``bead_types`` and ``bonds``
                (``cglight.data.manifest.SystemInfo``), for every system the batches come from.

        Checks every bead type against the backbone's ``max_z``, records the systems' topologies
        (saved in the checkpoint), fits the priors by Boltzmann inversion and calibrates the loss
        normalisation, in one pass over ``batches``. Parts already done (a resumed checkpoint)
        are kept, not redone.
        """
        self.core.check_bead_types(systems)
        self.core.set_systems(systems)
        if self.fitted_to_data:
            return
        seen: list[tuple[Tensor, Tensor]] = []

        def tap(stream: Iterable[Mapping[str, Tensor]]):
            for each in stream:
                for batch in mixed.split(each) if mixed.is_mixed(each) else [each]:  # one molecule at a time
                    seen.append((batch[keys.POS].detach().cpu(), batch[keys.BEAD_TYPES].cpu()))
                    yield {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}

        stream = tap(batches)
        if not self.objective.calibrated:
            self.objective.calibrate(stream)
        else:
            for _ in stream:
                pass
        if self.core.needs_fit:
            self.prior_curves = self.core.fit_priors(seen, systems)
            self.prior_type_names = bead_type_names(systems)
            log.info("priors fitted on %d frames: %s", sum(len(p) for p, _ in seen),
                     {kind: len(term.keys) for kind, term in self.core.priors.items()})

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        has_data = dm is not None and hasattr(dm, "calibration_batches") and hasattr(dm, "systems")
        if has_data:
            self.fit_to_data(dm.calibration_batches(self.hparams.calibration_frames), dm.systems)
        elif not self.fitted_to_data:
            raise ConfigError(
                "the model must be fitted to the training data before training (priors, loss normalisation): "
                "call model.fit_to_data(batches_of_training_frames, systems) before trainer.fit, or use a DataModule "
                "with calibration_batches(frames) and systems (as cglight.data.CGDataModule)"
            )

    def _require_fitted(self, stage: str) -> None:
        if not self.fitted_to_data:
            raise ConfigError(
                f"{stage} needs a model fitted to its training data (priors, loss normalisation): pass the checkpoint "
                "of a trained model (--ckpt_path), or call model.fit_to_data(...) first"
            )

    def on_validation_start(self) -> None:
        self._require_fitted("validation")

    def on_test_start(self) -> None:
        self._require_fitted("test")

    # ----------------------------------------------------------------- training
    def loss(self, batch: Mapping[str, Tensor], train: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective of ``batch`` (total, logged terms), as a training (``train``) or evaluation step computes it.

        A mixed batch (several systems, ``cglight.data.mixed``) is split per system; all systems
        are evaluated in one backbone call (:meth:`CGEnergy.evaluate_groups`) and every loss term
        sees one system at a time; terms combine as the frame-weighted mean over the systems
        (:meth:`Objective.combine`), i.e. the loss of the batch is the frame-weighted mean of
        the losses of its molecules taken one at a time.
        """
        with torch.enable_grad():
            if mixed.is_mixed(batch):
                groups = mixed.split(batch)
                outputs = self.core.evaluate_groups([(g[keys.POS], g[keys.BEAD_TYPES], None) for g in groups], create_graph=True)
            else:
                groups = [batch]
                outputs = [self.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES], create_graph=True)]
            for out in outputs:
                out.create_graph = train
            return self.objective.combine(list(zip(groups, outputs, strict=True)))

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        if torch.is_inference_mode_enabled():
            raise ConfigError("Hessian-vector products need autograd during evaluation: set trainer.inference_mode: false")
        train = stage == "train"
        total, logs = self.loss(batch, train=train)
        size = mixed.frames(batch)
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
