"""``cglight diagnose``: can the Hessian terms teach this model anything its forces do not?

For every system of a dataset (full projected Hessians needed), on ``frames`` frames spread evenly
over one split (``split``: the training frames by default, or the held-out test frames; the split
``cglight fit`` makes with the same fractions and held-out systems):

1. **Curvature by subspace** (:mod:`cglight.diagnose.information`): the model's Hessian (float64,
   by double back-propagation) against the mean of each target — ``hvp``, ``hvp_cov`` with the
   ``centered`` and the ``uncentered`` estimator — in the rigid, stiff and soft blocks: traces,
   standard errors, ``z``, and the squared signal-to-noise of one frame's target.
2. **Gradients at the checkpoint's weights**: on ``gradient_frames`` of those frames, the norm of
   the gradient in the network's parameters of each configured term (weight × normalised loss), its
   ratio to the force term's, and the effective weight on the raw loss (``weight / scale``, the
   scale being the term's calibrated target second moment).

It prints a table and one sentence per target, and writes everything to ``out`` (JSON) when given.
Works on any checkpoint written by ``cglight fit`` — after training, or one saved before the first
step (the priors and normalisation are fitted in ``on_fit_start``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from cglight.data import keys
from cglight.data.dataset import ShardDataset
from cglight.data.splits import split_dataset
from cglight.diagnose.config import DiagnoseConfig
from cglight.diagnose.information import as_dict, information, verdict
from cglight.errors import ConfigError
from cglight.units import beta as beta_of

log = logging.getLogger(__name__)


def _split_frames(dataset: ShardDataset, config: DiagnoseConfig) -> dict[str, tuple[np.ndarray, list[slice]]]:
    """Per system: global indices of ``frames`` evenly spaced frames of ``config.split``, and the slices
    of them that are contiguous in time (one per segment of the split)."""
    splits = split_dataset(dataset.manifest, config.val_fraction, config.test_fraction, config.holdout_systems,
                           where=str(dataset.root))
    out = {}
    for s, name in enumerate(dataset.system_names):
        segments = [seg for seg in getattr(splits, config.split) if seg.system == s]
        if not segments:
            continue
        pool = np.concatenate([np.arange(seg.start, seg.stop) + dataset.offsets[seg.shard] for seg in segments])
        segment_of = np.concatenate([np.full(seg.frames, k) for k, seg in enumerate(segments)])
        picks = np.unique(np.linspace(0, len(pool) - 1, min(config.frames, len(pool))).round().astype(int))
        bounds = np.flatnonzero(np.diff(segment_of[picks])) + 1
        starts, stops = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(picks)]])
        out[name] = (pool[picks], [slice(int(a), int(b)) for a, b in zip(starts, stops, strict=True)])
    return out


def _gradients(model, batch: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per configured term: the parameter-gradient norm of weight × normalised loss, and the weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        output = model.evaluate(batch[keys.POS], batch[keys.BEAD_TYPES], create_graph=True)
        out = {}
        for i, (name, term) in enumerate(model.objective.items()):
            raw = term(batch, output).loss
            scale = float(term.scale) if term.normalize else 1.0
            weight = float(model.objective.weights[i])
            grads = torch.autograd.grad(weight * raw / scale, params, retain_graph=True, allow_unused=True)
            norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None)))
            out[name] = {"weight": weight, "scale": scale, "effective_weight": weight / scale, "gradient_norm": norm,
                         "normalised_loss": float(raw.detach() / scale)}
    force = out.get("force", {}).get("gradient_norm")
    for entry in out.values():
        entry["ratio_to_force"] = entry["gradient_norm"] / force if force else None
    return out


def _load(config: DiagnoseConfig):
    """The LightningModule of the checkpoint (plain data only; a dotted backbone only when trusted), in float64."""
    from cglight.energy.backbone import backbone_config, check_trusted
    from cglight.energy.core import load_plain
    from cglight.training.potential import CGPotential

    ckpt = load_plain(config.checkpoint, "cpu", "cglight reads checkpoints as plain data only")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "backbone" not in hp or "losses" not in hp:
        raise ConfigError(f"{config.checkpoint}: not a checkpoint of cglight fit (no hyper_parameters.backbone / losses)")
    check_trusted(backbone_config(hp["backbone"]).name, config.trusted_backbones, config.checkpoint)
    return CGPotential.load_from_checkpoint(config.checkpoint, map_location="cpu", weights_only=True).double().eval()


def diagnose(config: DiagnoseConfig) -> dict:
    """Run the diagnostic; returns (and prints) its readings per system."""
    config.validate()
    dataset = ShardDataset(config.data)
    names = config.systems or dataset.system_names
    unknown = [n for n in names if n not in dataset.manifest.systems]
    if unknown:
        raise ConfigError(f"diagnose: systems {unknown} are not in {config.data} (it has {dataset.system_names})")
    for name in names:
        mode = dataset.manifest.systems[name].hessian
        if mode != "full":
            raise ConfigError(f"diagnose: system '{name}' of {config.data} has Hessian mode '{mode}'; the diagnostic needs "
                              "the full projected Hessian of every frame (prepare with 'hessian: full')")
    model = _load(config)
    torch.manual_seed(config.seed)
    picks = _split_frames(dataset, config)
    absent = [n for n in names if n not in picks]
    if absent:
        raise ConfigError(f"diagnose: systems {absent} have no {config.split} frames in {config.data} (val_fraction "
                          f"{config.val_fraction}, test_fraction {config.test_fraction}, holdout_systems {config.holdout_systems})")
    report: dict = {"checkpoint": str(config.checkpoint), "data": str(config.data), "systems": {}}
    for name in names:
        info = dataset.manifest.systems[name]
        index, pieces = picks[name]
        batch = {k: (v.double() if v.is_floating_point() else v) for k, v in dataset[index.tolist()].items()}
        pos, types = batch[keys.POS], batch[keys.BEAD_TYPES][0]
        model_forces = model.forces(pos, types).numpy()
        hessians = model.core.hessian(pos, types).numpy()
        readings = information(pos.numpy(), batch[keys.FORCES].numpy(), batch[keys.HESSIAN].numpy(), model_forces, hessians,
                               info.bonds, beta_of(info.temperature), pieces, config.threshold)
        entry = {"frames": len(index), "split": config.split, "readings": as_dict(readings), "verdict": verdict(readings, config.threshold)}
        if config.gradient_frames:
            sub = np.linspace(0, len(index) - 1, config.gradient_frames).round().astype(int)
            entry["gradients"] = _gradients(model, {k: v[sub] for k, v in batch.items()})
        report["systems"][name] = entry
        _print(name, entry)
    if config.out:
        path = Path(config.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        log.info("diagnostic written to %s", path)
    return report


def _print(name: str, entry: dict) -> None:
    print(f"\n{name}: {entry['frames']} {'training' if entry['split'] == 'train' else 'held-out'} frames; block traces (kcal/mol/Å²): model | target mean ± stderr | z | "
          "per-frame SNR²")
    for target, blocks in entry["readings"].items():
        for block, r in blocks.items():
            flag = "  <- information" if r["informative"] else ""
            print(f"  {target:<20} {block:<6} {r['model']:>11.4g} | {r['target']:>11.4g} ± {r['stderr']:<9.2g} | "
                  f"{r['z']:>+7.1f} | {r['snr2']:.2g}{flag}")
    for line in entry["verdict"]:
        print(f"  {line}")
    if "gradients" in entry:
        print("  gradient of weight × normalised loss in the network's parameters:")
        for term, g in entry["gradients"].items():
            ratio = "" if g["ratio_to_force"] is None else f", {g['ratio_to_force']:.3g} × the force term's"
            print(f"    {term:<10} weight {g['weight']:g}, effective weight {g['effective_weight']:.3g} per raw unit², "
                  f"|∇| {g['gradient_norm']:.3g}{ratio}")
