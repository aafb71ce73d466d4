"""Training of an HDNNP on energies and forces (``hdnnp train``; library entry point :func:`train`).

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
import functools
import json
import logging
import os
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers

from hdnnp.errors import HDNNPError, SettingsError
from hdnnp.io.input_nn import Settings
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.io.potential_directory import PotentialDirectory
from hdnnp.model.potential import Potential
from hdnnp.structure import Structure
from hdnnp.training import metrics as M
from hdnnp.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from hdnnp.training.config import TrainingConfig, config_from_settings, config_to_keywords
from hdnnp.training.dataset import DescriptorCache, Split, check_data, split_data
from hdnnp.training.force_kernels import batch_forces
from hdnnp.training.statistics import (
    NormalizationStats,
    apply_normalization,
    atom_energy_offsets,
    check_statistics,
    energy_normalization,
    merge_partials,
    normalization_log,
)

log = logging.getLogger("hdnnp.train")

#: most atoms evaluated in one pass (bounds autograd memory; larger batches are accumulated)
MAX_ATOMS_PER_PASS = 50_000
#: most pairs whose dG/dr is recomputed in one pass (compressed: 24 B x max_cols each in float64,
#: ~0.46 kB for water, so ~230 MB per pass)
MAX_RECOMPUTE_PAIRS = 500_000
#: batches (inputs gathered, force plans) are kept between epochs while the data set is this small
MEMO_MAX_ATOMS = 1_000_000


def _setup(title: str) -> None:
    log.info("\n*** %s %s", title, "*" * max(3, 74 - len(title)))


def _end() -> None:
    log.info("*" * 79)


# ---------------------------------------------------------------------------- distributed
class Distributed:
    """torch.distributed when launched by torchrun (WORLD_SIZE > 1), else a single process."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        self.comm_device = torch.device("cpu")
        if self.world > 1:
            import torch.distributed as dist

            self.dist = dist
            if not dist.is_initialized():
                backend = "nccl" if device.startswith("cuda") else "gloo"
                dist.init_process_group(backend=backend)
                self.owns_group = True
            self.world = dist.get_world_size()
            self.rank = dist.get_rank()
            if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
                self.comm_device = torch.device("cuda", torch.cuda.current_device())

    @property
    def main(self) -> bool:
        return self.rank == 0

    def owner(self, g: int) -> int:
        return g % self.world

    def allreduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (returns t)."""
        if self.world > 1:
            if t.device != self.comm_device:
                tmp = t.to(self.comm_device)
                self.dist.all_reduce(tmp)
                t.copy_(tmp.to(t.device))
            else:
                self.dist.all_reduce(t)
        return t

    def gather_objects(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        if self.world == 1:
            return obj
        lst = [obj]
        self.dist.broadcast_object_list(lst, src=0)
        return lst[0]

    def check(self, error: str | None) -> None:
        """Raise the same HDNNPError on every rank if rank 0 found one."""
        error = self.broadcast_object(error)
        if error:
            raise HDNNPError(error)

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


# ---------------------------------------------------------------------------- inputs
def is_prototype_config(path: Path) -> bool:
    """control.in of the prototype (``atom_type_N`` lines) rather than an n2p2 input.nn."""
    if path.suffix == ".in" and path.name != "input.nn":
        return True
    try:
        with open(path, encoding="utf-8") as fh:
            return any(line.lstrip().startswith("atom_type_") for line in fh)
    except OSError:
        return False


@dataclass
class Inputs:
    settings: Settings
    data_path: Path
    config_path: Path
    prototype: bool = False
    warnings: list[str] = field(default_factory=list)


def read_inputs(config: str | Path, data: str | Path | None = None) -> Inputs:
    """Settings (n2p2 input.nn, or the prototype's control.in converted) and the data path."""
    config = Path(config)
    if not config.is_file():
        raise HDNNPError(f"{config}: configuration file not found (expected an n2p2 input.nn or a control.in)")
    if is_prototype_config(config):
        from hdnnp.io.prototype import control_to_settings, read_control

        cf = read_control(config)
        settings, warns = control_to_settings(cf)
        if data is None:
            data = cf.resolve("atomic_data_path")
            if data is None:
                raise cf.error("atomic_data_path", "atomic_data_path (the input.data to train on) is missing; "
                                                   "add it or pass --data")
        return Inputs(settings, Path(data), config, prototype=True, warnings=warns)
    settings = Settings.read(config)
    if data is None:
        data = config.parent / "input.data"
    return Inputs(settings, Path(data), config)


# ---------------------------------------------------------------------------- helpers
def unit_labels(settings: Settings) -> tuple[str, str, float, float]:
    """(energy label, force label, factor to it from file units, force factor)."""
    from hdnnp import units

    lu, eu = settings.get_str("hdnnp_length_unit"), settings.get_str("hdnnp_energy_unit")
    if lu and eu:
        try:
            ef = units.energy_factor(eu) * 1000.0
            lf = units.length_factor(lu)
            return "meV/atom", "meV/Å", ef, ef / lf
        except ValueError:
            pass
    e = eu or "energy unit"  # n2p2 files carry no units: the data's own
    length = lu or "length unit"
    return f"{e}/atom", f"{e}/{length}", 1.0, 1.0


def initialize_weights(pot: Potential, cfg: TrainingConfig, seed: int) -> None:
    """Initial weights and biases (``torch``: nn.Linear's default, drawn in from_settings)."""
    if cfg.weight_init == "torch" and cfg.bias_init == "torch":
        return
    gen = torch.Generator().manual_seed(seed)
    if cfg.weight_init.startswith("n2p2_"):
        _n2p2_init(pot, cfg, gen)
        return

    def fill(t: torch.Tensor, how: str, fan_in: int, fan_out: int) -> None:
        if how == "torch":
            return
        shape, dt = t.shape, t.dtype
        if how == "uniform":
            v = torch.rand(shape, generator=gen, dtype=dt) * (cfg.weights_max - cfg.weights_min) + cfg.weights_min
        elif how == "random_uniform":  # Keras default range
            v = (torch.rand(shape, generator=gen, dtype=dt) * 2 - 1) * 0.05
        elif how == "random_normal":
            v = torch.randn(shape, generator=gen, dtype=dt) * 0.05
        elif how.endswith("_uniform"):
            lim = {"glorot": (6.0 / (fan_in + fan_out)) ** 0.5, "he": (6.0 / fan_in) ** 0.5,
                   "lecun": (3.0 / fan_in) ** 0.5}[how.split("_")[0]]
            v = (torch.rand(shape, generator=gen, dtype=dt) * 2 - 1) * lim
        elif how.endswith("_normal"):
            std = {"glorot": (2.0 / (fan_in + fan_out)) ** 0.5, "he": (2.0 / fan_in) ** 0.5}[how.split("_")[0]]
            v = torch.randn(shape, generator=gen, dtype=dt) * std
        elif how == "zeros":
            v = torch.zeros(shape, dtype=dt)
        elif how == "ones":
            v = torch.ones(shape, dtype=dt)
        else:  # pragma: no cover - validated in TrainingConfig
            raise SettingsError(f"unknown initialisation {how!r}")
        with torch.no_grad():
            t.copy_(v)

    for e in pot.elements:
        for lin in pot.networks[e].layers:
            fill(lin.weight, cfg.weight_init, lin.in_features, lin.out_features)
            fill(lin.bias, cfg.bias_init, lin.in_features, lin.out_features)


def _n2p2_init(pot: Potential, cfg: TrainingConfig, gen: torch.Generator) -> None:
    """n2p2's initial weights: uniform in [weights_min, weights_max) (weights and biases), then
    Nguyen-Widrow (hidden layers: each neuron's weights rescaled to norm 0.7 n^(1/n_prev), biases
    x 0.7 n^(1/n_prev), both x2 for tanh; the output neuron's first weight x0.5, as n2p2 does), or
    Glorot-Bengio (weights of tanh layers x sqrt(6/(n_prev+n)); all biases 0)."""
    lo, hi = cfg.weights_min, cfg.weights_max
    with torch.no_grad():
        for e in pot.elements:
            net = pot.networks[e]
            layers = list(net.layers)
            for k, lin in enumerate(layers):
                for t in (lin.weight, lin.bias):
                    t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * (hi - lo) + lo)
                tanh = net.activation_letters[k] == "t"
                n, n_prev = lin.out_features, lin.in_features
                if cfg.weight_init == "n2p2_nguyen_widrow":
                    if k < len(layers) - 1:
                        beta = 0.7 * n ** (1.0 / n_prev)
                        lin.weight.mul_(beta / lin.weight.norm(dim=1, keepdim=True))
                        lin.bias.mul_(beta)
                        if tanh:
                            lin.weight.mul_(2.0)
                            lin.bias.mul_(2.0)
                    else:
                        lin.weight[0, 0] *= 0.5
                else:
                    if tanh:
                        lin.weight.mul_((6.0 / (n_prev + n)) ** 0.5)
                    lin.bias.zero_()


def make_optimizer(params, cfg: TrainingConfig):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, betas=cfg.betas, eps=cfg.epsilon)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.learning_rate)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.learning_rate, eps=cfg.epsilon)
    if cfg.optimizer == "rmsprop":  # Keras' rho = 0.9
        return torch.optim.RMSprop(params, lr=cfg.learning_rate, alpha=0.9, eps=cfg.epsilon)
    if cfg.optimizer == "lbfgs":
        return torch.optim.LBFGS(params, lr=cfg.learning_rate, max_iter=cfg.lbfgs_iterations,
                                 history_size=cfg.lbfgs_history, line_search_fn="strong_wolfe",
                                 tolerance_grad=1e-12, tolerance_change=1e-14)
    raise SettingsError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(opt, cfg: TrainingConfig):
    """(scheduler, when): when is 'epoch' (stepped with the validation loss for plateau) or 'step'."""
    if cfg.optimizer in ("lbfgs", "kalman") or cfg.lr_schedule == "none":
        return None, None
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr), "epoch"
    if cfg.lr_schedule == "exponential":
        gamma = cfg.lr_decay if 0.0 < cfg.lr_decay <= 1.0 else 0.99
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma), "epoch"
    if cfg.lr_schedule == "inverse_time":  # Keras' decay: lr / (1 + decay * iterations)
        k = cfg.lr_decay
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + k * step)), "step"
    raise SettingsError(f"unknown lr schedule {cfg.lr_schedule!r}")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("hdnnp", "torch", "numpy", "numba", "ase", "vesin", "matplotlib", "tqdm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


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
        _setup("SETUP: DATA")
        elements = sorted(self.settings.require("elements").values, key=lambda e: atomic_numbers.get(e, 0))
        check_data(st, elements, cfg.use_forces, str(self.data_path))
        self.split = split or split_data(st, cfg.test_fraction, cfg.seed, str(self.data_path), cfg.split)
        n_at = sum(s.n_atoms for s in st)
        log.info("Data file: %s\nStructures: %d (%d atoms); training %d, validation %d (seed %d%s)",
                 self.data_path, len(st), n_at, len(self.split.train), len(self.split.test), cfg.seed,
                 ", set= tags honoured" if any(s.set_tag for s in st) else "")
        log.info("Forces used in training: %s (force_weight %g)", "yes" if cfg.use_forces else "no", cfg.force_weight)
        _end()

        _setup("DATA SET NORMALIZATION")
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
                # units; its Kalman settings (kalman_eta, force_weight) are tuned for them: train in them too,
                # with only the mean energy per atom removed (n2p2 learns that offset in its first updates)
                self.norm_stats = dataclasses.replace(self.norm_stats, sigma_energy=1.0, sigma_force=1.0)
                log.info("Kalman filter on an input.nn without normalisation: training in the data's units as "
                         "nnp-train does (conv_energy = conv_length = 1; mean energy per atom removed); add "
                         "normalize_data_set to train in normalised units.")
            apply_normalization(self.settings, self.norm_stats)
        _end()

        pot = Potential.from_settings(self.settings, dtype=self.dtype, seed=cfg.seed)
        self.pot = pot
        self.elements = pot.elements
        norm = pot.normalization
        self.ce, self.cl = norm.conv_energy, norm.conv_length
        sfs = pot.sf_set
        _setup("SETUP: SYMMETRY FUNCTIONS AND CACHE")
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
        _end()

        _setup("SYMMETRY FUNCTION SCALING")
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
        _end()

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
        """(E_int per structure, F_int per row or None) of a batch; differentiable if create_graph."""
        X = b.X.detach().requires_grad_(forces)
        outs = []
        for k, e in enumerate(self.elements):
            lo, hi = b.bounds[k], b.bounds[k + 1]
            if hi > lo:
                outs.append(self.pot.networks[e](X[lo:hi, : self.pot.sf_set.n_sf[e]]))
        E_rows = torch.cat(outs) if outs else X.new_zeros(0)
        E = torch.zeros(len(b.local), dtype=X.dtype, device=X.device).index_add(0, b.struct_of_row, E_rows)
        if not forces:
            return E, None
        (g,) = torch.autograd.grad(E_rows.sum(), X, create_graph=create_graph)
        a = g * b.factor * (1.0 / self.cl)
        F = batch_forces(a, b.plan, self.backend, getattr(b, "torch_pairs", None))
        return E, F

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
        if not self.dist.main:
            return
        d = self.run_dir
        el, fl, ef, ff = self.labels
        fu = self.cfg.use_forces
        lc = M.LearningCurve(fu, self.ce, self.cl)
        if fresh:
            M.write_text(d / "learning-curve.out", lc.header())
            M.write_text(d / "loss.out", M.loss_file_header("training", el, fl if fu else None))
            M.write_text(d / "val_loss.out", M.loss_file_header("validation", el, fl if fu else None))
        M.write_text(d / "learning-curve.out", lc.line(rec["epoch"], rec["train"], rec["test"]), append=True)
        M.write_text(d / "loss.out", M.loss_file_line(rec["epoch"], rec["loss_train"], rec["train"], ef, ff, fu),
                     append=True)
        M.write_text(d / "val_loss.out", M.loss_file_line(rec["epoch"], rec["loss_test"], rec["test"], ef, ff, fu),
                     append=True)

    def _rewrite_epoch_files(self) -> None:
        for k, rec in enumerate(self.history):
            self._write_epoch_files(rec, fresh=(k == 0))

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
        cfg, dist = self.cfg, self.dist
        t_start = time.perf_counter()
        el, fl, ef, ff = self.labels
        fu = cfg.use_forces
        if self.start_epoch == 0:
            _setup("TRAINING")
            n_tr = len(self.split.train)
            bs = n_tr if cfg.optimizer in ("lbfgs", "kalman") else min(cfg.batch_size, n_tr)
            if cfg.optimizer == "kalman":
                log.info("Optimizer kalman (n2p2's Kalman filter, eta %g); early stopping %s; %d epochs; %d "
                         "process(es), device %s, float%s", self.optimizer.kf.eta,
                         f"after {cfg.early_stopping} epochs without improvement" if cfg.early_stopping else "off",
                         cfg.epochs, dist.world, cfg.device, "64" if self.dtype == torch.float64 else "32")
            else:
                log.info("Optimizer %s, learning rate %g, %d structures per batch (%d per epoch), schedule %s, early "
                         "stopping %s; %d epochs; %d process(es), device %s, float%s", cfg.optimizer,
                         cfg.learning_rate, bs, -(-n_tr // bs), "none" if self.scheduler is None else cfg.lr_schedule,
                         f"after {cfg.early_stopping} epochs without improvement" if cfg.early_stopping else "off",
                         cfg.epochs, dist.world, cfg.device, "64" if self.dtype == torch.float64 else "32")
            train, test, _ = self.evaluate()
            rec = self._epoch_record(0, train, test, self.optimizer.param_groups[0]["lr"], 0.0)
            self.history.append(rec)
            self.best_loss = rec["loss_test"]
            self.best_state = copy.deepcopy(self.pot.state_dict())
            self._write_epoch_files(rec, fresh=True)
            if dist.main:
                self.write_weights(self.run_dir)
        else:
            _setup(f"TRAINING (resumed after epoch {self.start_epoch})")
            self._rewrite_epoch_files()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, initial=min(self.start_epoch, cfg.epochs), desc="train", unit="epoch",
                       dynamic_ncols=True, file=sys.stderr)
        stopped_early = False
        train_global = np.array(self.split.train, dtype=np.int64)
        n_tr = len(train_global)
        epoch = self.start_epoch
        for epoch in range(self.start_epoch + 1, cfg.epochs + 1):
            t_ep = time.perf_counter()
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
            train, test, _ = self.evaluate()
            rec = self._epoch_record(epoch, train, test, self.optimizer.param_groups[0]["lr"],
                                     time.perf_counter() - t_ep)
            if not np.isfinite(rec["loss_train"]):
                raise HDNNPError(f"training diverged in epoch {epoch} (loss {rec['loss_train']}); lower the learning "
                                 "rate (hdnnp_learning_rate) or the force_weight")
            self.history.append(rec)
            if self.sched_when == "epoch":
                if cfg.lr_schedule == "plateau":
                    self.scheduler.step(rec["loss_test"])
                else:
                    self.scheduler.step()
            improved = rec["loss_test"] < self.best_loss
            if improved:
                self.best_loss, self.best_epoch = rec["loss_test"], epoch
                self.best_state = copy.deepcopy(self.pot.state_dict())
                self.bad_epochs = 0
                if dist.main:
                    self.write_weights(self.run_dir)
            else:
                self.bad_epochs += 1
            self._write_epoch_files(rec, fresh=False)
            last = epoch == cfg.epochs or (stop_after is not None and epoch >= stop_after)
            if dist.main and (epoch % max(cfg.checkpoint_interval, 1) == 0 or last):
                save_checkpoint(self.run_dir / CHECKPOINT_NAME, self._checkpoint_state(epoch))
            if bar is not None:
                known = el.startswith("meV")
                post = {"loss": f"{rec['loss_train']:.3g}",
                        f"E[{el}]" if known else "E/atom": f"{train['rmse_epa'] * ef:.3g}"}
                if fu:
                    post[f"F[{fl}]" if known else "F"] = f"{train['rmse_f'] * ff:.3g}"
                post["val"] = f"{rec['loss_test']:.3g}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if stop_after is not None and epoch >= stop_after:
                break
            if cfg.early_stopping and self.bad_epochs >= cfg.early_stopping:
                stopped_early = True
                if dist.main and not (epoch % max(cfg.checkpoint_interval, 1) == 0 or last):
                    save_checkpoint(self.run_dir / CHECKPOINT_NAME, self._checkpoint_state(epoch))
                log.info("Early stopping after epoch %d: validation loss has not improved for %d epochs.",
                         epoch, cfg.early_stopping)
                break
        if bar is not None:
            bar.close()
        self.timings["epochs_s"] = time.perf_counter() - t_start
        # best weights, final errors, plots
        t_fin = time.perf_counter()
        self.pot.load_state_dict(self.best_state)
        train, test, pred = self.evaluate(collect=True)
        if dist.main:
            self.write_weights(self.run_dir)
            t_plot = time.perf_counter()
            self._final_outputs(pred)
            self.timings["plots_s"] = time.perf_counter() - t_plot
        self.timings["final_s"] = time.perf_counter() - t_fin
        self.timings["train_s"] = time.perf_counter() - t_start
        _end()
        _setup("RESULTS")
        log.info("Best epoch %d (validation loss %.6g); weights written to %s", self.best_epoch, self.best_loss,
                 self.run_dir)
        log.info("%s", M.write_table(train, test, el, fl if fu else None, ef, ff))
        _end()
        c = self.cache
        mem = c.memory_bytes()
        cache_info = {"structures": len(c.indices), "cached_D": c.n_cached_D, "pairs": int(c.n_pairs.sum()),
                      "pairs_cached": int(len(c.pair_j)), "G_bytes": mem["G"], "D_bytes": mem["D"],
                      "budget_bytes": c.memory_budget, "max_cols": c.max_cols, "d_dtype": str(c.d_dtype)}
        return TrainResult(self.run_dir, self.pot, self.best_epoch, train, test, self.history,
                           time.perf_counter() - t_start, dict(self.timings), stopped_early, cache_info)

    def _final_outputs(self, pred: dict) -> None:
        from hdnnp.training import plots

        el, fl, ef, ff = self.labels
        fu = self.cfg.use_forces
        d = self.run_dir
        try:
            plots.plot_loss(self.history, d / "loss.png")
            plots.plot_learning_curves(self.history, d / "learning-curves.png", el, fl if fu else None, ef, ff)
            scaled = {name: {"e_ref": p["e_ref"] * ef, "e_pred": p["e_pred"] * ef,
                             "f_ref": p["f_ref"] * ff if fu else None, "f_pred": p["f_pred"] * ff if fu else None}
                      for name, p in pred.items()}
            plots.plot_parity(scaled, d / "parity.png", el, fl if fu else None, seed=self.cfg.seed)
        except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose a finished run
            warnings.warn(f"could not write plots: {exc}", stacklevel=2)


# ---------------------------------------------------------------------------- workflow
def _check_run_dir(run_dir: Path) -> str | None:
    if run_dir.exists() and not run_dir.is_dir():
        return f"{run_dir} exists and is not a directory"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        return (f"run directory {run_dir} already exists and is not empty; choose a new one with -o, or continue "
                f"that run with --resume {run_dir}")
    return None


def _default_run_dir() -> Path:
    return Path(f"hdnnp-train-{time.strftime('%Y%m%d-%H%M%S')}")


class _LogToFile:
    """Attach a train.log file handler (and a console handler if logging is unconfigured)."""

    def __init__(self, path: Path | None, console: bool):
        self.handlers = []
        if path is not None:
            fh = logging.FileHandler(path, encoding="utf-8")
            fh.setFormatter(logging.Formatter("%(message)s"))
            self.handlers.append(fh)
        if console and not logging.getLogger().handlers:
            sh = logging.StreamHandler(sys.stdout)
            sh.setFormatter(logging.Formatter("%(message)s"))
            self.handlers.append(sh)

    def __enter__(self):
        for h in self.handlers:
            log.addHandler(h)
        self.old_level = log.level
        log.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        for h in self.handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(self.old_level)


def train(config: str | Path | None = None, data: str | Path | None = None, run_dir: str | Path | None = None,
          device: str = "cpu", epochs: int | None = None, resume: str | Path | None = None,
          overrides: dict | None = None, progress: bool = True, stop_after: int | None = None,
          console: bool = True, force_backend: str | None = None, extra_outputs=None,
          allow_existing: bool = False) -> TrainResult:
    """Train a potential and write an n2p2-compatible run directory.

    Parameters
    ----------
    config : n2p2 ``input.nn`` or the prototype's ``control.in`` (not needed with ``resume``).
    data : n2p2 ``input.data`` (default: ``input.data`` next to input.nn, or control.in's
        ``atomic_data_path``).
    run_dir : output directory; must be new or empty (default ``hdnnp-train-<date>-<time>``).
    device : "cpu" or "cuda[:n]".
    epochs : number of epochs (overrides the configuration; with ``resume``: the new total).
    resume : a run directory with a checkpoint to continue from (bit-for-bit the same as an
        uninterrupted run).
    overrides : TrainingConfig fields to override (e.g. ``{"learning_rate": 1e-3}``).
    stop_after : stop after this epoch as if interrupted (tests of ``resume``).
    extra_outputs : callable(trainer) run on rank 0 after the run directory exists
        (the prototype writes its ``function.data`` this way).
    allow_existing : accept a non-empty run_dir (the caller has removed what it replaces).
    """
    t0 = time.perf_counter()
    overrides = dict(overrides or {})
    if device and device != "cpu":
        overrides["device"] = device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HDNNPError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__})")
    dist = Distributed(overrides.get("device", "cpu"))
    if dist.world > 1 and device.startswith("cuda"):
        torch.cuda.set_device(dist.local_rank)
        overrides["device"] = f"cuda:{dist.local_rank}"
    try:
        if resume is not None:
            run_dir = Path(resume)
            state = load_checkpoint(run_dir / CHECKPOINT_NAME)
            if state["world_size"] != dist.world:
                warnings.warn(f"{run_dir}: checkpoint written by {state['world_size']} process(es), resumed with "
                              f"{dist.world}: the result will differ from an uninterrupted run in the last digits",
                              stacklevel=2)
            settings = PotentialDirectory(run_dir).read_settings()
            cfg = TrainingConfig.from_dict(state["config"])
            if epochs is not None:
                cfg.epochs = epochs
            cfg.device = overrides.get("device", device)  # a run may continue on another device
            data_path = Path(data) if data is not None else Path(state["data_path"])
            structures = read_input_data(data_path)
            split = Split(list(state["split"]["train"]), list(state["split"]["test"]))
            with _LogToFile(run_dir / "train.log" if dist.main else None, console and dist.main):
                log.info("\n*** RESUMING %s after epoch %d ***", run_dir, state["epoch"])
                trainer = Trainer(settings, cfg, structures, data_path, run_dir, dist, progress, force_backend)
                sf_set = Potential.from_settings(settings).sf_set
                stats = PotentialDirectory(run_dir).read_scaling([sf_set.n_sf[e] for e in sf_set.elements])
                trainer.prepare(split=split, scaling_stats=stats)
                trainer.init_training(state)
                result = trainer.run(stop_after=stop_after)
                result.wall_time_s = time.perf_counter() - t0
                return result

        if config is None:
            raise HDNNPError("no configuration given (an input.nn or control.in), and no --resume")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            inputs = read_inputs(config, data)
            if inputs.settings.nnp_generation() == 4:  # 4G training: not implemented yet
                raise HDNNPError(f"{inputs.settings.path}: a 4G-HDNNP (nnp_generation 4) is trained in n2p2's "
                                 "two stages: 'hdnnp train input.nn --stage 1|2|both -o RUN_DIR'")
            cfg = config_from_settings(inputs.settings, overrides=None)
        if epochs is not None:
            overrides["epochs"] = epochs
        if overrides:
            for k, v in overrides.items():
                if v is not None:
                    if not hasattr(cfg, k):
                        raise SettingsError(f"unknown training option {k!r}")
                    setattr(cfg, k, v)
                    cfg.sources[k] = "command line / argument"
        lr_src = cfg.sources.get("learning_rate", "")
        if cfg.optimizer == "lbfgs" and "hdnnp_learning_rate" not in lr_src and "command line" not in lr_src:
            cfg.learning_rate = 1.0  # L-BFGS' step is scaled by its line search; n2p2's Adam eta does not apply
        cfg.validate()
        warn_msgs = [str(w.message) for w in caught] + inputs.warnings
        run_dir = Path(run_dir) if run_dir is not None else _default_run_dir()
        dist.check(_check_run_dir(run_dir) if dist.main and not allow_existing else None)
        structures = read_input_data(inputs.data_path)
        settings = inputs.settings
        # bad data is reported before anything is written
        elements = sorted(settings.require("elements").values, key=lambda e: atomic_numbers.get(e, 0))
        check_data(structures, elements, cfg.use_forces, str(inputs.data_path))
        split = split_data(structures, cfg.test_fraction, cfg.seed, str(inputs.data_path), cfg.split)
        created = not run_dir.exists()
        if dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
        with _LogToFile(run_dir / "train.log" if dist.main else None, console and dist.main):
            _setup("SETUP: SETTINGS")
            log.info("Configuration: %s%s", inputs.config_path, " (prototype control.in, converted to n2p2 "
                     "settings)" if inputs.prototype else "")
            for msg in warn_msgs:  # one line each (train.log and the console), not also a UserWarning
                log.info("WARNING: %s", msg)
            if cfg.sources.get("optimizer", "").endswith("updater_type 1") and cfg.optimizer != "kalman":
                log.info("updater_type 1 (Kalman filter): hdnnp trains with %s, which reaches n2p2's Kalman accuracy "
                         "sooner (README, Training); add 'hdnnp_optimizer kalman' for n2p2's Kalman filter",
                         cfg.optimizer)
            _end()
            trainer = Trainer(settings, cfg, structures, inputs.data_path, run_dir, dist, progress, force_backend)
            try:
                trainer.prepare(split=split)
            except BaseException:
                # nothing trained yet: leave no half-made run directory behind
                if dist.main and created:
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
            if cfg.use_old_weights:
                for e in trainer.elements:
                    net = trainer.pot.networks[e]
                    net.set_weights(PotentialDirectory(inputs.config_path.parent).read_weights(e, net.layer_sizes))
            else:
                initialize_weights(trainer.pot, cfg, cfg.seed)
            # the run directory's input.nn: the user's lines + normalisation + resolved training keywords
            for key, values in config_to_keywords(cfg):
                settings.set(key, *values)
            if cfg.use_forces:
                settings.set("use_short_forces")
            else:
                settings.remove("use_short_forces")
            if dist.main:
                PotentialDirectory(run_dir).write_settings(settings)
                PotentialDirectory(run_dir).write_scaling(trainer.scaling_stats)
                meta = {
                    "config": cfg.to_dict(), "config_file": str(inputs.config_path),
                    "data_file": str(inputs.data_path), "prototype": inputs.prototype,
                    "normalization": {"mean_energy": trainer.pot.normalization.mean_energy,
                                      "conv_energy": trainer.ce, "conv_length": trainer.cl,
                                      "computed": trainer.norm_stats is not None},
                    "split": {"train": len(trainer.split.train), "test": len(trainer.split.test)},
                    "processes": dist.world, "torch_threads": cfg.torch_threads or torch.get_num_threads(),
                    "command": sys.argv, "versions": dict(package_versions()), "warnings": warn_msgs,
                }
                (run_dir / "config.json").write_text(json.dumps(meta, indent=2, default=str) + "\n",
                                                     encoding="utf-8")
                if extra_outputs is not None:
                    extra_outputs(trainer)
            trainer.init_training(None)
            result = trainer.run(stop_after=stop_after)
            result.wall_time_s = time.perf_counter() - t0
            result.timings["total_s"] = result.wall_time_s
            return result
    finally:
        dist.close()


def load_run(run_dir: str | Path) -> Potential:
    """The trained potential of a run directory (``Potential.from_n2p2``)."""
    return Potential.from_n2p2(run_dir)


__all__ = ["train", "Trainer", "TrainResult", "read_inputs", "NormalizationStats", "load_run"]
