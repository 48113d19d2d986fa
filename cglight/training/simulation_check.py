"""Validation by simulation: a short batched CG simulation every few epochs, judged by its slow mode.

Losses say how well forces and curvatures are matched frame by frame; they do not say whether the
model's ensemble is right. With ``enabled: true`` this callback, after every ``every_n_epochs``-th
validation epoch, starts ``replicas`` replicas of every system from reference frames, integrates
``steps`` Langevin steps, projects the frames on TIC1 of the reference (TICA fitted once, on the
reference dataset's trajectories) and logs, per system and averaged over systems:

    val/sim_kl_tic1   KL(reference ‖ model) along TIC1 (nats)
    val/sim_js_tic1   Jensen–Shannon along TIC1 (nats, ≤ ln 2)
    val/sim_stopped   fraction of replicas stopped (NaN or a bond stretched past ``max_bond_factor`` × its
                      longest in the reference, simulate's default: LangevinSettings)

Short runs only see the neighbourhood of the starting frames, so the numbers are a trend to
watch, not a converged evaluation (that is ``cglight evaluate``).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from cglight.data.manifest import read_manifest
from cglight.data.reader import reference_trajectories
from cglight.evaluate.divergence import js_samples, kl_samples
from cglight.evaluate.tica import SlowCoordinates
from cglight.simulate.block import bond_check, force_function
from cglight.simulate.langevin import LangevinIntegrator
from cglight.simulate.masses import bead_masses
from cglight.simulate.settings import LangevinSettings

log = logging.getLogger("cglight")


class SimulationValidation(Callback):
    """A short batched CG simulation every few validation epochs, judged along the reference's TIC1.

    Args:
        enabled: run the check.
        reference: dataset directory with the reference ensemble (linked to ``data.path`` by the CLI).
        every_n_epochs: run after every n-th validation epoch.
        replicas: replicas per system.
        steps: Langevin steps per check.
        save_every: steps between analysed frames.
        timestep_fs: integration step (fs); default: ``cglight simulate``'s.
        friction_per_ps: Langevin collision rate (1/ps); default: ``cglight simulate``'s.
        lag: TICA lag in reference frames.
        seed: seed of the starting frames and the integrator.
    """

    def __init__(
        self,
        enabled: bool = False,
        reference: str | None = None,
        every_n_epochs: int = 1,
        replicas: int = 16,
        steps: int = 2000,
        save_every: int = 20,
        timestep_fs: float = LangevinSettings.timestep_fs,
        friction_per_ps: float = LangevinSettings.friction_per_ps,
        lag: int = 10,
        seed: int = 0,
    ) -> None:
        from cglight.errors import ConfigError

        if enabled and not reference:
            raise ConfigError("simulation_check.reference: a dataset directory is needed when simulation_check.enabled is true")
        for name, value in (("every_n_epochs", every_n_epochs), ("replicas", replicas), ("steps", steps), ("save_every", save_every), ("lag", lag)):
            if value < 1:
                raise ConfigError(f"simulation_check.{name} must be >= 1, got {value}")
        try:  # the bond factor too: simulate's default
            self.langevin = LangevinSettings(timestep_fs=timestep_fs, friction_per_ps=friction_per_ps)
        except ConfigError as exc:
            raise ConfigError(f"simulation_check: {exc}") from None
        self.enabled, self.reference = enabled, reference
        self.every, self.replicas, self.steps, self.save_every = every_n_epochs, replicas, steps, save_every
        self.lag, self.seed = lag, seed
        self._cache: dict | None = None

    def _prepare(self) -> dict:
        from pathlib import Path

        root = Path(self.reference)
        manifest = read_manifest(root)
        systems = {}
        for name, info in manifest.systems.items():
            trajs = reference_trajectories(root, manifest, name)
            tica = SlowCoordinates(self.lag, dim=1).fit(trajs)
            frames = np.concatenate(trajs)
            bonds = np.asarray(info.bonds, dtype=np.int64).reshape(-1, 2)
            longest = float(np.linalg.norm(frames[:, bonds[:, 0]] - frames[:, bonds[:, 1]], axis=-1).max()) if len(bonds) else np.inf
            systems[name] = dict(info=info, tica=tica, ref_tic1=np.concatenate([tica.transform(t)[:, 0] for t in trajs]),
                                 frames=frames, masses=bead_masses(root, name, info), bonds=bonds,
                                 limit=self.langevin.bond_limit(longest))
        return systems

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking or (trainer.current_epoch + 1) % self.every:
            return
        if self._cache is None:
            self._cache = self._prepare()
        metrics: dict[str, list[float]] = {"kl": [], "js": [], "stopped": []}
        rng = np.random.default_rng([self.seed, trainer.current_epoch])
        for name, s in self._cache.items():
            info = s["info"]
            start = torch.as_tensor(s["frames"][rng.choice(len(s["frames"]), self.replicas)], dtype=torch.float32, device=pl_module.device)
            types = torch.tensor(info.bead_types, device=pl_module.device)

            masses = torch.tensor(s["masses"], dtype=torch.float32)
            integ = LangevinIntegrator(force_function(pl_module.core, types, info.bonds), masses,
                                       self.langevin.at(info.temperature), seed=self.seed + trainer.current_epoch,
                                       check_fn=bond_check(s["bonds"], s["limit"], pl_module.device))
            state = integ.init_state(start)
            frames = []
            for _ in range(self.steps // self.save_every):
                integ.run(state, self.save_every)
                frames.append(state.pos[state.alive].detach().cpu().numpy().astype(np.float64))
            model_frames = np.concatenate(frames) if frames else np.zeros((0, info.n_beads, 3))
            stopped = 1.0 - float(state.alive.float().mean())
            if len(model_frames) == 0:
                kl, js = float("inf"), float(np.log(2))
            else:
                tic1 = s["tica"].transform(model_frames)[:, 0]
                kl, js = kl_samples(s["ref_tic1"], tic1), js_samples(s["ref_tic1"], tic1)
            for key, value in (("kl", kl), ("js", js), ("stopped", stopped)):
                metrics[key].append(value)
                pl_module.log(f"val/sim_{key}_tic1/{name}" if key != "stopped" else f"val/sim_stopped/{name}", value, rank_zero_only=True)
        pl_module.log("val/sim_kl_tic1", float(np.mean(metrics["kl"])), rank_zero_only=True)
        pl_module.log("val/sim_js_tic1", float(np.mean(metrics["js"])), rank_zero_only=True)
        pl_module.log("val/sim_stopped", float(np.mean(metrics["stopped"])), rank_zero_only=True)
