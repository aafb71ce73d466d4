"""The training loop of an HDNNP on energies and forces (:class:`Trainer`; the ``hdnnp train``
workflow around it, with the library entry point ``train``, is :mod:`hdnnp.training.workflow`).

Loss (normalised "training units" of n2p2: energies x conv_energy after subtracting
N mean_energy + offsets, lengths x conv_length, so that energies per atom and force
components of the data have unit spread):

    L = 1/S Σ_s ((E_s^pred - E_s^ref) / N_s)^2  +  force_weight · 1/C Σ_c (F_c^pred - F_c^ref)^2

over the S structures and C force components of a minibatch. Forces come from dE/dG
(autograd, ``create_graph=True``) contracted with the cached dG/dr (see
``hdnnp.training.force_kernels``); G and dG/dr are computed once (``DescriptorCache``).

Preparation (logged as n2p2-style SETUP blocks): data checks, the seeded split, the
``nnp-norm`` normalisation (unless input.nn already has one), the ``nnp-scaling`` statistics
(``scaling.data``), weight initialisation. Each epoch: shuffled minibatches (seeded
``torch.Generator``), then errors of the whole training and validation sets with the new
weights (as n2p2's ``learning-curve.out``), LR schedule, best-epoch weights
(``weights.XXX.data``), an atomic checkpoint, early stopping.

Data parallel (``torchrun --nproc_per_node P -m hdnnp.cli train ...``): structure g lives on
rank g mod P (only that rank computes and caches its descriptors); every rank draws the same
global minibatches, computes the loss terms of its own structures divided by the global
counts, and the gradients are summed with ``all_reduce`` before the optimizer step, so P
ranks follow the same trajectory as 1 rank with the same global batch (up to the order of
floating-point sums).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers

from hdnnp.errors import HDNNPError
from hdnnp.io.input_nn import Settings
from hdnnp.io.potential_directory import PotentialDirectory
from hdnnp.model.potential import Potential
from hdnnp.model.topology import atom_energy_offsets
from hdnnp.structure import Structure
from hdnnp.training import metrics as M
from hdnnp.training.checkpoint import CHECKPOINT_NAME, package_versions, save_checkpoint
from hdnnp.training.config import TrainingConfig, config_to_keywords
from hdnnp.training.dataset import DescriptorCache, check_data, split_data
from hdnnp.training.distributed import Distributed
from hdnnp.training.batch_model import predict_batch
from hdnnp.training.inputs import unit_labels
from hdnnp.training.optimizers import make_optimizer, make_scheduler
from hdnnp.training.run_files import RunFiles
from hdnnp.training.statistics import (
    check_statistics,
    energy_normalization,
    merge_partials,
    normalization_log,
    normalized_settings,
)

log = logging.getLogger("hdnnp.train")

#: most atoms evaluated in one pass (bounds autograd memory; larger batches are accumulated)
MAX_ATOMS_PER_PASS = 50_000
#: most pairs whose dG/dr is recomputed in one pass (compressed: 24 B x max_cols each in float64,
#: ~0.46 kB for water, so ~230 MB per pass)
MAX_RECOMPUTE_PAIRS = 500_000
#: batches (inputs gathered, force plans) are kept between epochs while the data set is this small
MEMO_MAX_ATOMS = 1_000_000


def log_section(title: str) -> None:
    """An n2p2-style block header in the log."""
    log.info("\n*** %s %s", title, "*" * max(3, 74 - len(title)))


def log_section_end() -> None:
    """The line closing a block opened by :func:`log_section`."""
    log.info("*" * 79)


# ---------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """What a run produced: the directory, the potential with the best weights, the metrics."""

    run_dir: Path
    potential: Potential
    best_epoch: int
    train: dict
    test: dict
    history: list[dict]
    wall_time_s: float
    timings: dict = field(default_factory=dict)
    stopped_early: bool = False
    cache: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- trainer
class Trainer:
    """One training run (see the module docstring). Use :func:`train` for the whole workflow."""

    def __init__(self, settings: Settings, cfg: TrainingConfig, structures: list[Structure], data_path: Path,
                 run_dir: Path, dist: Distributed, progress: bool = True, force_backend: str | None = None):
        self.settings = settings
        self.cfg = cfg
        self.structures = structures
        self.data_path = data_path
        self.run_dir = run_dir
        self.dist = dist
        self.progress = progress and dist.main
        self.device = torch.device(cfg.device)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.backend = force_backend or ("numba" if self.device.type == "cpu" else "torch")
        self.timings: dict[str, float] = {}
        self._memo: dict = {}

    # ------------------------------------------------------------------ setup
    def prepare(self, split=None, scaling_stats=None) -> None:
        """Checks, split, normalisation, potential, descriptor cache, scaling statistics."""
        t0 = time.perf_counter()
        cfg, st, dist = self.cfg, self.structures, self.dist
        log_section("SETUP: DATA")
        elements = sorted(self.settings.require("elements").values, key=lambda e: atomic_numbers.get(e, 0))
        check_data(st, elements, cfg.use_forces, str(self.data_path))
        self.split = split or split_data(st, cfg.test_fraction, cfg.seed, str(self.data_path), cfg.split)
        n_at = sum(s.n_atoms for s in st)
        log.info("Data file: %s\nStructures: %d (%d atoms); training %d, validation %d (seed %d%s)",
                 self.data_path, len(st), n_at, len(self.split.train), len(self.split.test), cfg.seed,
                 ", set= tags honoured" if any(s.set_tag for s in st) else "")
        log.info("Forces used in training: %s (force_weight %g)", "yes" if cfg.use_forces else "no", cfg.force_weight)
        log_section_end()

        log_section("DATA SET NORMALIZATION")
        if all(k in self.settings for k in ("mean_energy", "conv_energy", "conv_length")):
            log.info("Normalisation taken from %s (mean_energy, conv_energy, conv_length).", self.settings.path)
            self.norm_stats = None
        else:
            offsets = atom_energy_offsets(self.settings)
            self.norm_stats = energy_normalization(st, offsets, elements, use_forces=cfg.use_forces)
            log.info("Computed as nnp-norm does, over all %d structures:\n%s", len(st),
                     normalization_log(self.norm_stats).rstrip())
            if cfg.optimizer == "kalman" and not cfg.normalize:
                # n2p2 trains an input.nn without normalisation (and without normalize_data_set) in the data's
                # units, mean energy included: its Kalman settings (kalman_eta, kalman_epsilon, force_weight)
                # are tuned for that, and the filter's path depends on it (removing only the mean energy per
                # atom made hdnnp's filter trail n2p2's on examples/alho: 98.8 against 10.4 meV/atom held out
                # after epoch 1). Train exactly as nnp-train does: mean_energy 0, conv_energy = conv_length = 1.
                self.norm_stats = dataclasses.replace(self.norm_stats, mean_energy=0.0, sigma_energy=1.0,
                                                      sigma_force=1.0)
                log.info("Kalman filter on an input.nn without normalisation: training in the data's units as "
                         "nnp-train does (mean_energy 0, conv_energy = conv_length = 1); add "
                         "normalize_data_set to train in normalised units.")
            self.settings = normalized_settings(self.settings, self.norm_stats)
        log_section_end()
        self.settings = self._run_settings(self.settings)  # new objects: the caller's settings stay as read

        pot = Potential.from_settings(self.settings, dtype=self.dtype, seed=cfg.seed)
        self.pot = pot
        self.elements = pot.elements
        norm = pot.normalization
        self.ce, self.cl = norm.conv_energy, norm.conv_length
        sfs = pot.sf_set
        log_section("SETUP: SYMMETRY FUNCTIONS AND CACHE")
        log.info("Symmetry functions per element: %s (cutoff %g)",
                 ", ".join(f"{e} {sfs.n_sf[e]}" for e in self.elements), sfs.cutoff)
        owned = [g for g in range(len(st)) if dist.owner(g) == dist.rank]
        budget = None if cfg.cache_memory_gb is None else int(cfg.cache_memory_gb * (1 << 30) / dist.local_world)
        t1 = time.perf_counter()
        self.cache = DescriptorCache(sfs, st, owned, derivatives=cfg.use_forces, memory_budget=budget,
                                     d_dtype=np.float32 if cfg.cache_dtype == "float32" else np.float64,
                                     progress=self.progress, n_local_processes=dist.local_world)
        self.timings["descriptors_s"] = time.perf_counter() - t1
        mem = self.cache.memory_bytes()
        log.info("Computed in %.2f s on rank %d: %d structures, G %.1f MiB, dG/dr %.1f MiB (%s) for %d of %d "
                 "structures%s", self.timings["descriptors_s"], dist.rank, len(owned), mem["G"] / 2**20,
                 mem["D"] / 2**20, cfg.cache_dtype, self.cache.n_cached_D if cfg.use_forces else 0, len(owned),
                 "" if not cfg.use_forces or self.cache.n_cached_D == len(owned)
                 else f"; the rest are recomputed per batch (budget {self.cache.memory_budget / 2**30:.2f} GiB)")
        log_section_end()

        log_section("SYMMETRY FUNCTION SCALING")
        if scaling_stats is None:
            gathered = dist.gather_objects(list(zip(owned, self.cache.partials)))
            by_g = dict(item for part in gathered for item in part)
            n_sf = [sfs.n_sf[e] for e in self.elements]
            scaling_stats = merge_partials([by_g[g] for g in range(len(st))], n_sf)
            check_statistics(scaling_stats, self.elements)
            log.info("Statistics (min, max, mean, sigma) over all %d structures as nnp-scaling; written to "
                     "scaling.data.", len(st))
        else:
            log.info("Statistics read from the run directory's scaling.data.")
        self.cache.partials = []
        pot.set_scaling(scaling_stats)
        self.scaling_stats = scaling_stats
        self.cache.set_scaling(pot.scalings)
        log.info("Scaling mode: %s (Smin %g, Smax %g)", pot.scaling_mode,
                 self.settings.get_float("scale_min_short", 0.0), self.settings.get_float("scale_max_short", 1.0))
        log_section_end()

        # targets in training units
        E_int = np.array([(st[g].energy - pot.energy_shift(st[g])) * self.ce for g in owned])
        F_int = None
        if cfg.use_forces:
            F_int = (np.concatenate([st[g].forces for g in owned]) if owned else np.zeros((0, 3))) * (self.ce / self.cl)
        self.cache.set_targets(E_int, F_int)
        self.n_atoms_global = np.array([s.n_atoms for s in st], dtype=np.int64)
        self.train_local = [self.cache.local_of[g] for g in self.split.train if dist.owner(g) == dist.rank]
        self.test_local = [self.cache.local_of[g] for g in self.split.test if dist.owner(g) == dist.rank]
        self.memo_ok = int(self.cache.atom_start[-1]) <= MEMO_MAX_ATOMS
        pot.to(self.device)
        self.timings["prepare_s"] = time.perf_counter() - t0

    def _run_settings(self, settings: Settings) -> Settings:
        """The run directory's input.nn (a new object): ``settings`` (the user's lines and the
        normalisation) with the resolved training keywords."""
        for key, values in config_to_keywords(self.cfg):
            settings = settings.with_keyword(key, *values)
        if self.cfg.use_forces:
            return settings.with_keyword("use_short_forces")
        return settings.without("use_short_forces")

    # ------------------------------------------------------------------ model pieces
    def _batch(self, local: list[int], forces: bool, memo: bool):
        # keep batches between passes only while small, and never with recomputed derivatives
        memo = memo and self.memo_ok and (not forces or bool(self.cache.has_D[local].all()))
        key = (tuple(local), forces)
        if memo and key in self._memo:
            return self._memo[key]
        b = self.cache.batch(local, forces)
        if self.device.type != "cpu" or self.dtype != torch.float64:
            b.X = b.X.to(self.device, self.dtype)
            b.factor = b.factor.to(self.device, self.dtype)
            b.struct_of_row = b.struct_of_row.to(self.device)
            b.n_atoms = b.n_atoms.to(self.device, self.dtype)
            b.E_target = b.E_target.to(self.device, self.dtype)
            if b.F_target is not None:
                b.F_target = b.F_target.to(self.device, self.dtype)
        if forces and self.backend == "torch":
            b.torch_pairs = b.plan.torch_pairs(self.device, self.dtype)
        if memo:
            self._memo[key] = b
        return b

    def _predict(self, b, create_graph: bool, forces: bool):
        """(E_int per structure, F_int per row or None) of a batch; differentiable if create_graph
        (:func:`predict_batch`)."""
        return predict_batch(self.pot, b, forces, create_graph, self.backend)

    def _loss_pass(self, local: list[int], n_struct: int, n_comp: int, memo: bool) -> float:
        """Accumulate d(loss)/d(weights) of this rank's structures of one global batch."""
        cfg = self.cfg
        total = 0.0
        for mb in self.cache.micro_batches(local, MAX_ATOMS_PER_PASS, MAX_RECOMPUTE_PAIRS):
            b = self._batch(mb, cfg.use_forces, memo)
            E, F = self._predict(b, create_graph=True, forces=cfg.use_forces)
            loss = (((E - b.E_target) / b.n_atoms) ** 2).sum() / n_struct
            if cfg.use_forces and n_comp:
                loss = loss + cfg.force_weight * ((F - b.F_target) ** 2).sum() / n_comp
            loss.backward()
            total += float(loss.detach())
            del b, E, F, loss  # free recomputed derivatives before the next micro-batch is built
        return total

    def _allreduce_grads(self) -> None:
        params = [p for p in self.pot.parameters()]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.dist.world > 1:
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            self.dist.allreduce(flat)
            pos = 0
            for p in params:
                n = p.numel()
                p.grad.copy_(flat[pos:pos + n].view_as(p))
                pos += n

    def _global_batch(self, batch_global: list[int], memo: bool) -> float:
        """Zero grads, accumulate this rank's part of a global batch, all-reduce; returns the loss."""
        self.optimizer.zero_grad(set_to_none=False)
        n_struct = len(batch_global)
        n_comp = 3 * int(self.n_atoms_global[batch_global].sum())
        mine = [self.cache.local_of[g] for g in batch_global if self.dist.owner(g) == self.dist.rank]
        loss = self._loss_pass(mine, n_struct, n_comp, memo) if mine else 0.0
        self._allreduce_grads()
        if self.dist.world > 1:
            loss = float(self.dist.allreduce(torch.tensor([loss], dtype=torch.float64))[0])
        if self.cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.pot.parameters(), self.cfg.clip_value)
        return loss

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, collect: bool = False) -> tuple[dict, dict, dict | None]:
        """Errors of the whole training and validation sets (physical units), optionally predictions."""
        sums = np.zeros((2, len(M.SUM_KEYS)))
        pred = {"train": {"e_ref": [], "e_pred": [], "f_ref": [], "f_pred": []},
                "test": {"e_ref": [], "e_pred": [], "f_ref": [], "f_pred": []}} if collect else None
        fu = self.cfg.use_forces
        for si, (name, local) in enumerate((("train", self.train_local), ("test", self.test_local))):
            for mb in self.cache.micro_batches(local, MAX_ATOMS_PER_PASS, MAX_RECOMPUTE_PAIRS):
                b = self._batch(mb, fu, memo=True)
                with torch.enable_grad():
                    E, F = self._predict(b, create_graph=False, forces=fu)
                dE = ((E.detach() - b.E_target) / self.ce).double().cpu().numpy()
                n = b.n_atoms.double().cpu().numpy()
                s = sums[si]
                s[0] += len(dE)
                s[2] += np.sum((dE / n) ** 2)
                s[3] += np.sum(dE**2)
                s[4] += np.sum(np.abs(dE / n))
                s[5] += np.sum(np.abs(dE))
                if fu:
                    dF = ((F.detach() - b.F_target) * (self.cl / self.ce)).double().cpu().numpy()
                    s[1] += dF.size
                    s[6] += np.sum(dF**2)
                    s[7] += np.sum(np.abs(dF))
                if collect:
                    e_ref = b.E_target.double().cpu().numpy() / self.ce
                    p = pred[name]
                    p["e_ref"].append(e_ref / n)
                    p["e_pred"].append((e_ref + dE) / n)
                    if fu:
                        f_ref = b.F_target.double().cpu().numpy() * (self.cl / self.ce)
                        p["f_ref"].append(f_ref.ravel())
                        p["f_pred"].append((f_ref + dF).ravel())
                del b, E, F  # free recomputed derivatives before the next micro-batch is built
        t = self.dist.allreduce(torch.from_numpy(sums))
        train, test = M.sums_to_metrics(t[0].numpy()), M.sums_to_metrics(t[1].numpy())
        if collect:
            for p in pred.values():
                for k in list(p):
                    p[k] = np.concatenate(p[k]) if p[k] else np.zeros(0)
            parts = self.dist.gather_objects(pred)
            pred = {name: {k: np.concatenate([q[name][k] for q in parts]) for k in parts[0][name]}
                    for name in ("train", "test")}
        return train, test, pred

    def _epoch_record(self, epoch: int, train: dict, test: dict, lr: float, seconds: float) -> dict:
        c = self.cfg
        return {"epoch": epoch, "train": train, "test": test, "lr": lr, "seconds": seconds,
                "loss_train": M.loss_from_metrics(train, self.ce, self.cl, c.force_weight, c.use_forces),
                "loss_test": M.loss_from_metrics(test, self.ce, self.cl, c.force_weight, c.use_forces)}

    # ------------------------------------------------------------------ files
    def write_weights(self, directory: Path) -> None:
        for e in self.elements:
            PotentialDirectory(directory).write_weights(e, self.pot.networks[e].get_weights())

    def _write_epoch_files(self, rec: dict, fresh: bool) -> None:
        if self.dist.main:
            self.files.write_epoch(rec, fresh)

    def _checkpoint_state(self, epoch: int) -> dict:
        return {
            "epoch": epoch,
            "step": self.step_count,
            "model": {k: v.detach().cpu().clone() for k, v in self.pot.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "best": {"epoch": self.best_epoch, "loss": self.best_loss,
                     "model": {k: v.detach().cpu().clone() for k, v in self.best_state.items()}},
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "config": self.cfg.to_dict(),
            "split": {"train": list(self.split.train), "test": list(self.split.test)},
            "world_size": self.dist.world,
            "data_path": str(self.data_path),
            "hdnnp_version": package_versions()["hdnnp"],
        }

    # ------------------------------------------------------------------ loop
    def init_training(self, state: dict | None = None) -> None:
        cfg = self.cfg
        if cfg.optimizer == "kalman":
            from hdnnp.training.kalman_training import KalmanTraining

            self.optimizer = KalmanTraining(self)
        else:
            self.optimizer = make_optimizer(self.pot.parameters(), cfg)
        self.scheduler, self.sched_when = make_scheduler(self.optimizer, cfg)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.labels = unit_labels(self.settings)
        self.files = RunFiles(self.run_dir, self.labels, self.cfg.use_forces, self.ce, self.cl, self.cfg.seed)
        self.history: list[dict] = []
        self.best_epoch, self.best_loss = 0, float("inf")
        self.bad_epochs = 0
        self.step_count = 0
        self.start_epoch = 0
        if state is not None:
            self.pot.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            self.best_epoch = state["best"]["epoch"]
            self.best_loss = state["best"]["loss"]
            self.best_state = {k: v.to(self.device) for k, v in state["best"]["model"].items()}
            self.bad_epochs = state["bad_epochs"]
            self.history = list(state["history"])
            self.step_count = state["step"]
            self.start_epoch = state["epoch"]
        else:
            self.best_state = copy.deepcopy(self.pot.state_dict())

    def run(self, stop_after: int | None = None) -> TrainResult:
        """The epoch loop, then the best weights, final errors, plots and the summary table."""
        import numba

        old_torch, old_numba = torch.get_num_threads(), numba.get_num_threads()
        if self.cfg.torch_threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(self.cfg.torch_threads)
        if self.dist.local_world > 1:  # share the cores of a node among its ranks
            numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // self.dist.local_world))
        try:
            return self._run(stop_after)
        finally:
            torch.set_num_threads(old_torch)
            numba.set_num_threads(old_numba)

    def _run(self, stop_after: int | None) -> TrainResult:
        cfg = self.cfg
        t_start = time.perf_counter()
        self._start_or_resume()
        bar = self._progress_bar()
        stopped_early = False
        train_global = np.array(self.split.train, dtype=np.int64)
        for epoch in range(self.start_epoch + 1, cfg.epochs + 1):
            t_ep = time.perf_counter()
            self._update_weights(epoch, train_global)
            train, test, _ = self.evaluate()
            rec = self._epoch_record(epoch, train, test, self.optimizer.param_groups[0]["lr"],
                                     time.perf_counter() - t_ep)
            if not np.isfinite(rec["loss_train"]):
                raise HDNNPError(f"training diverged in epoch {epoch} (loss {rec['loss_train']}); lower the learning "
                                 "rate (hdnnp_learning_rate) or the force_weight")
            self._end_of_epoch(rec, stop_after)
            self._update_bar(bar, rec)
            if stop_after is not None and epoch >= stop_after:
                break
            if cfg.early_stopping and self.bad_epochs >= cfg.early_stopping:
                stopped_early = True
                if self.dist.main and not self._checkpoint_due(epoch, stop_after):
                    save_checkpoint(self.run_dir / CHECKPOINT_NAME, self._checkpoint_state(epoch))
                log.info("Early stopping after epoch %d: validation loss has not improved for %d epochs.",
                         epoch, cfg.early_stopping)
                break
        if bar is not None:
            bar.close()
        self.timings["epochs_s"] = time.perf_counter() - t_start
        return self._finish(t_start, stopped_early)

    def _start_or_resume(self) -> None:
        """A fresh run: the TRAINING header and epoch 0 (errors of the initial weights, the first
        files); a resumed one: the header and the epoch files rewritten from the history."""
        cfg, dist = self.cfg, self.dist
        if self.start_epoch > 0:
            log_section(f"TRAINING (resumed after epoch {self.start_epoch})")
            if self.dist.main:
                self.files.rewrite(self.history)
            return
        log_section("TRAINING")
        n_tr = len(self.split.train)
        bs = n_tr if cfg.optimizer in ("lbfgs", "kalman") else min(cfg.batch_size, n_tr)
        stopping = f"after {cfg.early_stopping} epochs without improvement" if cfg.early_stopping else "off"
        precision = "64" if self.dtype == torch.float64 else "32"
        if cfg.optimizer == "kalman":
            log.info("Optimizer kalman (n2p2's Kalman filter, eta %g); early stopping %s; %d epochs; %d "
                     "process(es), device %s, float%s", self.optimizer.kf.eta, stopping, cfg.epochs, dist.world,
                     cfg.device, precision)
        else:
            log.info("Optimizer %s, learning rate %g, %d structures per batch (%d per epoch), schedule %s, early "
                     "stopping %s; %d epochs; %d process(es), device %s, float%s", cfg.optimizer,
                     cfg.learning_rate, bs, -(-n_tr // bs), "none" if self.scheduler is None else cfg.lr_schedule,
                     stopping, cfg.epochs, dist.world, cfg.device, precision)
        train, test, _ = self.evaluate()
        rec = self._epoch_record(0, train, test, self.optimizer.param_groups[0]["lr"], 0.0)
        self.history.append(rec)
        self.best_loss = rec["loss_test"]
        self.best_state = copy.deepcopy(self.pot.state_dict())
        self._write_epoch_files(rec, fresh=True)
        if dist.main:
            self.write_weights(self.run_dir)

    def _update_weights(self, epoch: int, train_global: np.ndarray) -> None:
        """One epoch of weight updates: the Kalman filter, one L-BFGS step on the whole training set
        (also the Kalman warm-up), or shuffled minibatches of a gradient optimizer."""
        cfg = self.cfg
        n_tr = len(train_global)
        if cfg.optimizer == "kalman" and epoch > cfg.kalman_warmup:
            self.optimizer.epoch(epoch, self.history[-1]["train"])
            self.step_count += self.optimizer.n_updates["energy"] + self.optimizer.n_updates["force"]
        elif cfg.optimizer in ("lbfgs", "kalman"):  # kalman: hdnnp_kalman_warmup epochs of L-BFGS first
            batch = [int(g) for g in train_global]

            def closure():
                return torch.tensor(self._global_batch(batch, memo=True), dtype=torch.float64)

            opt = self.optimizer if cfg.optimizer == "lbfgs" else self.optimizer.warmup
            opt.step(closure)
            self.step_count += 1
        else:
            perm = torch.randperm(n_tr, generator=self.generator).numpy()
            bs = min(cfg.batch_size, n_tr)
            full = bs >= n_tr
            for i in range(0, n_tr, bs):
                batch = [int(g) for g in train_global[np.sort(perm[i:i + bs])]] if not full \
                    else [int(g) for g in train_global]
                self._global_batch(batch, memo=full)
                self.optimizer.step()
                self.step_count += 1
                if self.sched_when == "step":
                    self.scheduler.step()

    def _checkpoint_due(self, epoch: int, stop_after: int | None) -> bool:
        last = epoch == self.cfg.epochs or (stop_after is not None and epoch >= stop_after)
        return epoch % max(self.cfg.checkpoint_interval, 1) == 0 or last

    def _end_of_epoch(self, rec: dict, stop_after: int | None) -> None:
        """History, LR schedule, best weights (written to the run directory), epoch files, checkpoint."""
        epoch = rec["epoch"]
        self.history.append(rec)
        if self.sched_when == "epoch":
            if self.cfg.lr_schedule == "plateau":
                self.scheduler.step(rec["loss_test"])
            else:
                self.scheduler.step()
        if rec["loss_test"] < self.best_loss:
            self.best_loss, self.best_epoch = rec["loss_test"], epoch
            self.best_state = copy.deepcopy(self.pot.state_dict())
            self.bad_epochs = 0
            if self.dist.main:
                self.write_weights(self.run_dir)
        else:
            self.bad_epochs += 1
        self._write_epoch_files(rec, fresh=False)
        if self.dist.main and self._checkpoint_due(epoch, stop_after):
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, self._checkpoint_state(epoch))

    def _progress_bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.cfg.epochs, initial=min(self.start_epoch, self.cfg.epochs), desc="train",
                    unit="epoch", dynamic_ncols=True, file=sys.stderr)

    def _update_bar(self, bar, rec: dict) -> None:
        if bar is None:
            return
        el, fl, ef, ff = self.labels
        train = rec["train"]
        known = el.startswith("meV")
        post = {"loss": f"{rec['loss_train']:.3g}", f"E[{el}]" if known else "E/atom": f"{train['rmse_epa'] * ef:.3g}"}
        if self.cfg.use_forces:
            post[f"F[{fl}]" if known else "F"] = f"{train['rmse_f'] * ff:.3g}"
        post["val"] = f"{rec['loss_test']:.3g}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    def _finish(self, t_start: float, stopped_early: bool) -> TrainResult:
        """Best weights, final errors, plots, the RESULTS block and the result."""
        el, fl, ef, ff = self.labels
        t_fin = time.perf_counter()
        self.pot.load_state_dict(self.best_state)
        train, test, pred = self.evaluate(collect=True)
        if self.dist.main:
            self.write_weights(self.run_dir)
            t_plot = time.perf_counter()
            self.files.final_plots(self.history, pred)
            self.timings["plots_s"] = time.perf_counter() - t_plot
        self.timings["final_s"] = time.perf_counter() - t_fin
        self.timings["train_s"] = time.perf_counter() - t_start
        log_section_end()
        log_section("RESULTS")
        log.info("Best epoch %d (validation loss %.6g); weights written to %s", self.best_epoch, self.best_loss,
                 self.run_dir)
        log.info("%s", M.write_table(train, test, el, fl if self.cfg.use_forces else None, ef, ff))
        log_section_end()
        c = self.cache
        mem = c.memory_bytes()
        cache_info = {"structures": len(c.indices), "cached_D": c.n_cached_D, "pairs": int(c.n_pairs.sum()),
                      "pairs_cached": int(len(c.pair_j)), "G_bytes": mem["G"], "D_bytes": mem["D"],
                      "budget_bytes": c.memory_budget, "max_cols": c.max_cols, "d_dtype": str(c.d_dtype)}
        return TrainResult(self.run_dir, self.pot, self.best_epoch, train, test, self.history,
                           time.perf_counter() - t_start, dict(self.timings), stopped_early, cache_info)
