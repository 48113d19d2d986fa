"""The training objective: loss terms looked up by name and combined by config weights.

``total = Σ_t w_t(step) · L_t / s_t`` where ``s_t`` is the term's target second moment
(estimated once from training data by :meth:`Objective.calibrate`) for normalised terms and 1
otherwise. Each term is logged on its own: ``<stage>/<name>`` (normalised, dimensionless: 1.0 is
as bad as predicting zero) and ``<stage>/<name>_raw`` (physical units, squared).

Weight schedule: besides ``weight``, every term takes ``warmup_steps`` (the term is off, weight 0,
for that many optimiser steps) and ``ramp_steps`` (then its weight rises linearly to ``weight``
over that many steps). The trainer reports the step through :meth:`Objective.set_step`;
evaluation (validation/test) always uses the full weights, so validation losses stay comparable.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cglight.errors import CGLightError, ConfigError, PluginError
from cglight.losses.base import LossResult, LossTerm, ModelOutput
from cglight.losses.registry import build_loss, is_builtin, origin

log = logging.getLogger(__name__)


def _key(name: str) -> str:
    return name.replace(".", "_").replace(":", "_")


class Objective(nn.Module):
    def __init__(self, config: Mapping[str, Mapping[str, Any] | None]) -> None:
        super().__init__()
        if not isinstance(config, Mapping) or not config:
            raise ConfigError(f"model.losses must map loss names to options, e.g. {{force: {{weight: 1.0}}}}; got {config!r}")
        self.names: list[str] = []
        self.terms = nn.ModuleDict()
        weights = []
        self.schedule: dict[str, tuple[int, int]] = {}
        for name, options in config.items():
            options = dict(options or {})
            if not isinstance(name, str):
                raise ConfigError(f"model.losses: loss names must be strings, got {name!r}")
            weight = options.pop("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"model.losses.{name}.weight must be a finite number >= 0, got {weight!r}")
            schedule = []
            for key in ("warmup_steps", "ramp_steps"):
                value = options.pop(key, 0)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"model.losses.{name}.{key} must be an integer >= 0 (optimiser steps), got {value!r}")
                schedule.append(value)
            self.terms[_key(name)] = build_loss(name, options)
            self.names.append(name)
            weights.append(float(weight))
            self.schedule[name] = (schedule[0], schedule[1])
        self.register_buffer("weights", torch.tensor(weights))
        self.step = 0
        self.scheduled = False
        """True while training: the weight schedule applies (:meth:`set_step` turns it on)."""
        terms = dict(zip(self.names, weights, strict=True))
        needy = [n for n, t in self.items() if t.needs_fitted_forces and terms[n] > 0]
        if needy and not any(t.fits_forces and terms[n] > 0 for n, t in self.items()):
            warnings.warn(
                f"loss(es) {needy} use the model's own forces in their target but no force-matching term "
                "has a positive weight: without one, training can collapse to U = 0 or run away from the PMF "
                "Hessian. Add e.g. 'force: {weight: 1.0}'.",
                UserWarning,
                stacklevel=2,
            )

    def items(self) -> list[tuple[str, LossTerm]]:
        return [(n, self.terms[_key(n)]) for n in self.names]

    @property
    def needs_hvp(self) -> bool:
        return any(t.needs_hvp for _, t in self.items())

    @property
    def autograd_order(self) -> int:
        """The highest autograd order any term needs (see :attr:`LossTerm.autograd_order`)."""
        return max(t.autograd_order for _, t in self.items())

    def set_step(self, step: int) -> None:
        """Tell the objective the optimiser step about to be taken (for weight schedules)."""
        self.step = int(step)
        self.scheduled = True

    def weight_factor(self, name: str) -> float:
        """The schedule's factor in [0, 1] on term ``name``'s weight at the current step."""
        warmup, ramp = self.schedule[name]
        if not self.training or not self.scheduled or self.step >= warmup + ramp:
            return 1.0
        if self.step < warmup:
            return 0.0
        return (self.step - warmup + 1) / (ramp + 1)

    @property
    def calibrated(self) -> bool:
        return all(t.calibrated or not t.normalize for _, t in self.items())

    def check_batch(self, batch: Mapping[str, Tensor]) -> None:
        for name, term in self.items():
            term.check_batch(batch, name)

    @torch.no_grad()
    def calibrate(self, batches: Iterable[Mapping[str, Tensor]]) -> dict[str, float]:
        """Estimate each normalised term's target second moment from ``batches`` (frame-weighted)."""
        sums: dict[str, float] = {}
        frames = 0
        for batch in batches:
            self.check_batch(batch)
            b = len(next(iter(batch.values())))
            for name, term in self.items():
                m = self._call(name, term, "calibration", term.target_second_moment, batch)
                if m is not None:
                    sums[name] = sums.get(name, 0.0) + float(m) * b
            frames += b
        if frames == 0:
            raise ConfigError("cannot calibrate the loss normalisation: the training data yielded no batch")
        scales = {}
        for name, term in self.items():
            if not term.normalize:
                continue
            if name not in sums:
                raise ConfigError(f"loss '{name}' has normalize=True but defines no target_second_moment; set normalize: false")
            scale = sums[name] / frames
            if not (math.isfinite(scale) and scale > 0):
                raise ConfigError(f"loss '{name}': target second moment is {scale} on the training data; cannot normalise")
            term.scale.fill_(scale)
            scales[name] = scale
        log.info("loss normalisation (target second moments over %d frames): %s", frames, ", ".join(
            f"{k}: {v:.4g} {self.terms[_key(k)].raw_unit}" for k, v in scales.items()))
        return scales

    def _when(self) -> str:
        return f"training step {self.step}" if self.training else f"evaluation (after training step {self.step})"

    @staticmethod
    def _call(name: str, term: LossTerm, when: str, fn, *args) -> LossResult | Tensor | None:
        """``fn(*args)``; an exception raised inside a plugin's code becomes a :class:`PluginError` naming the
        plugin, where it comes from, ``when`` and the cause (chained: the traceback stays in ``__cause__``).
        cglight's own terms are left alone: an error there is a bug of cglight, not bad input."""
        if is_builtin(term):
            return fn(*args)
        try:
            return fn(*args)
        except (CGLightError, torch.OutOfMemoryError):
            raise
        except Exception as exc:
            cause = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line
            raise PluginError(f"loss '{name}' ({origin(name)}) raised during {when}: {cause}") from exc

    def forward(self, batch: Mapping[str, Tensor], output: ModelOutput) -> tuple[Tensor, dict[str, Tensor]]:
        return self.combine([(batch, output)])

    def combine(self, groups: Sequence[tuple[Mapping[str, Tensor], ModelOutput]]) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective of a batch given as per-system groups ``(batch_g, output_g)`` (a mixed
        batch, split): every term, its raw loss and its logged parts are the frame-weighted mean
        over the groups, ``Σ_g B_g L_g / Σ_g B_g``, so the total is the frame-weighted mean of
        the groups' totals. The terms see one group at a time (the plugin contract is unchanged);
        the groups are evaluated in order, each with all its terms, so that probes are drawn
        as if the groups came one after the other."""
        if not groups:
            raise ValueError("Objective.combine needs at least one group")
        active = [(i, name, term) for i, (name, term) in enumerate(self.items()) if self.weight_factor(name) != 0]  # warming up: off
        frames = [output.energy.numel() for _, output in groups]
        results = []
        for batch, output in groups:
            self.check_batch(batch)
            results.append({name: self._call(name, term, self._when(), term, batch, output) for _, name, term in active})
        total = groups[0][1].energy.new_zeros(())
        logs: dict[str, Tensor] = {}
        for i, name, term in active:
            parts = [r[name] for r in results]
            raw = _weighted([p.loss for p in parts], frames)
            if term.normalize and not term.calibrated:
                raise RuntimeError(f"loss '{name}' is not calibrated; call Objective.calibrate first")
            value = raw / term.scale.to(raw.dtype) if term.normalize else raw
            total = total + self.weight_factor(name) * self.weights[i].to(raw.dtype) * value
            if self.schedule[name] != (0, 0):
                logs[f"{name}/weight"] = self.weights[i].detach() * self.weight_factor(name)
            logs[name] = value.detach()
            logs[f"{name}_raw"] = raw.detach()
            for part in parts[0].parts:
                logs[f"{name}/{part}"] = _weighted([p.parts[part] for p in parts], frames).detach()
        logs["loss"] = total.detach()
        return total, logs


def _weighted(values: list[Tensor], frames: list[int]) -> Tensor:
    """``Σ_g B_g x_g / Σ_g B_g`` (the value itself for one group)."""
    if len(values) == 1:
        return values[0]
    return sum(v * b for v, b in zip(values, frames, strict=True)) / sum(frames)
