"""Training benchmark against n2p2's nnp-train on the H2O_RPBE-D3 example (see TIMINGS.md).

Default: the 20-structure H2O set (Bohr/Hartree) of ``anchors/n2p2/train/input.data`` with the
architecture and symmetry functions of ``anchors/n2p2/train/H2O_RPBE-D3_np1/input.nn`` (its
normalisation included), 18 training / 2 validation structures (``set=`` tags drawn with a
fixed seed), forces used. Prints wall time and final RMSEs next to n2p2's 20-epoch figures
(Kalman filter, 38.3 s on this machine kind) as ratios, peak memory and the machine.

    python bench/bench_training.py                       # tuned defaults: L-BFGS, 15 epochs of 20 iterations
    python bench/bench_training.py --optimizer adam --batch-size 6 --lr 0.005 --epochs 120 --schedule plateau
    python bench/bench_training.py --synthetic 1000      # memory of a synthetic water set

``--synthetic N``: N random-but-sane water boxes of 200 atoms (66 molecules + 2 extra atoms,
O-H 0.97-1.0 Å, molecules on a jittered grid at ~1 g/cm³, in Bohr) with made-up energies and
forces, trained for one epoch with the H2O symmetry functions; reports peak RSS, the cache
size and the time per epoch, and extrapolates to 10,000 structures (the derivative cache of a
set that large cannot stay in 24 GiB, so it is recomputed per batch above the budget).

Numba compilation (first use of each kernel; cached on disk after the first run) and torch's
lazy import on the first optimizer are done before the clock starts and reported separately
(n2p2 is compiled ahead of time; python + torch start-up is not counted either).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchors import find_anchors  # noqa: E402

ANCHORS = find_anchors("train/input.data", "train/H2O_RPBE-D3_np1/input.nn")  # not in tests/data
TRAIN = ANCHORS / "train"

#: n2p2 nnp-train, 20 epochs, Kalman filter, 1 rank (TIMINGS.md; learning-curve.out epoch 20)
N2P2 = {"time_s": 38.3, "e_train": 2.27e-5, "e_test": 9.87e-5, "f_train": 1.016e-2, "f_test": 4.68e-3}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def machine() -> str:
    import torch

    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, python {platform.python_version()}")


def warm_up(input_nn: Path, data: list) -> float:
    """Start-up outside the timed run: compile (or load from numba's cache) every kernel, and
    torch's lazy import of its compiler stack on the first optimizer."""
    from hdnnp.io.input_nn import Settings
    from hdnnp.model.potential import Potential
    from hdnnp.training.dataset import DescriptorCache
    from hdnnp.training.force_kernels import batch_forces
    from hdnnp.training.statistics import energy_normalization

    t = time.perf_counter()
    pot = Potential.from_settings(Settings.read(input_nn))
    cache = DescriptorCache(pot.sf_set, data[:1], [0], True)
    cache.set_scaling(pot.scalings)
    cache.set_targets(np.zeros(1), np.zeros((data[0].n_atoms, 3)))
    import torch

    b = cache.batch([0], True)
    a = torch.zeros((b.n_rows, cache.max_sf), dtype=torch.float64, requires_grad=True)
    batch_forces(a, b.plan).sum().backward()
    energy_normalization(data[:2], {}, pot.elements)
    # torch imports torch._dynamo (~1.3 s) when the first optimizer is built: process start-up like import torch
    torch.optim.LBFGS([torch.nn.Parameter(torch.zeros(1))])
    return time.perf_counter() - t


def tagged_h2o(tmp: Path, n_test: int, seed: int) -> Path:
    """train/input.data with set=train/test tags: n_test validation structures drawn with ``seed``."""
    from hdnnp.io.n2p2_data import read_input_data, write_input_data

    data = read_input_data(TRAIN / "input.data")
    test = set(np.random.default_rng(seed).choice(len(data), size=n_test, replace=False).tolist())
    for k, s in enumerate(data):
        s.set_tag = "test" if k in test else "train"
    out = tmp / "input.data"
    write_input_data(out, data)
    return out


def run_h2o(args) -> None:
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.training.workflow import train

    input_nn = TRAIN / "H2O_RPBE-D3_np1" / "input.nn"
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_path = tagged_h2o(tmp, 2, args.split_seed)
        jit_s = warm_up(input_nn, read_input_data(data_path))
        overrides = {
            "optimizer": args.optimizer, "learning_rate": args.lr, "batch_size": args.batch_size,
            "force_weight": args.force_weight, "weight_init": args.init, "bias_init": args.init,
            "lr_schedule": args.schedule, "lr_decay": args.lr_decay, "early_stopping": 0,
            "plateau_patience": args.plateau_patience, "plateau_factor": 0.5, "seed": args.seed,
            "lbfgs_iterations": args.lbfgs_iterations, "cache_dtype": args.cache_dtype,
        }
        if args.lr is None:
            overrides.pop("learning_rate")
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Kalman keywords of the n2p2 input.nn
            r = train(input_nn, data=data_path, run_dir=tmp / "run", epochs=args.epochs, overrides=overrides,
                      progress=not args.quiet, console=not args.quiet)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        test_idx = sorted(k for k, s in enumerate(read_input_data(data_path)) if s.set_tag == "test")
    tr, te = r.train, r.test
    print("\n=== hdnnp train vs n2p2 nnp-train, H2O_RPBE-D3 (20 structures, 2064 atoms, Ha/Bohr) ===")
    print(f"split: {len(read_input_data(TRAIN / 'input.data')) - 2} training / 2 validation structures "
          f"(validation = structures {[k + 1 for k in test_idx]}); n2p2's run used 19 / 1")
    print(f"settings: {args.optimizer}, lr {r.history[1]['lr'] if len(r.history) > 1 else args.lr}, batch "
          f"{args.batch_size}, force_weight {args.force_weight}, init {args.init}, schedule {args.schedule}, "
          f"{len(r.history) - 1} epochs, best epoch {r.best_epoch}")
    print(f"{'':28s} {'hdnnp':>11s} {'n2p2':>11s} {'ratio':>8s}")
    rows = [("wall time [s]", wall, N2P2["time_s"]),
            ("E RMSE train [Ha/atom]", tr["rmse_epa"], N2P2["e_train"]),
            ("E RMSE valid [Ha/atom]", te["rmse_epa"], N2P2["e_test"]),
            ("F RMSE train [Ha/Bohr]", tr["rmse_f"], N2P2["f_train"]),
            ("F RMSE valid [Ha/Bohr]", te["rmse_f"], N2P2["f_test"])]
    for name, ours, ref in rows:
        print(f"{name:28s} {ours:11.4g} {ref:11.4g} {ours / ref:8.3f}")
    t = r.timings
    print(f"time split: preparation {t.get('prepare_s', 0):.2f} s (symmetry functions + derivatives "
          f"{t.get('descriptors_s', 0):.2f} s), epochs {t.get('epochs_s', 0):.2f} s, final evaluation + files + plots "
          f"{t.get('final_s', 0):.2f} s (plots {t.get('plots_s', 0):.2f} s), other "
          f"{wall - t.get('prepare_s', 0) - t.get('train_s', 0):.2f} s; start-up (numba kernels, torch.optim import; not "
          f"timed) {jit_s:.2f} s")
    print(f"CPU time of the run {cpu:.2f} s; load average before/after {load0:.2f}/{os.getloadavg()[0]:.2f} "
          "(other jobs share the machine)")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    print(f"machine: {machine()}")


# ---------------------------------------------------------------------------- synthetic
def synthetic_water(n_structures: int, n_atoms: int = 200, seed: int = 0) -> list:
    """Water-like boxes (Bohr): 66 molecules on a jittered cubic grid + 2 extra H, density ~1 g/cm³."""
    from hdnnp.structure import Structure

    BOHR = 0.529177210903
    rng = np.random.default_rng(seed)
    n_mol = n_atoms // 3
    vol_A3 = n_mol * 29.9  # ~1 g/cm³
    L = vol_A3 ** (1 / 3) / BOHR
    m = int(np.ceil(n_mol ** (1 / 3)))
    out = []
    for _ in range(n_structures):
        sites = (np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * (L / m)
        sites = sites[rng.permutation(len(sites))[:n_mol]] + rng.normal(0, 0.15, (n_mol, 3))
        pos, el = [], []
        for c in sites:
            u = rng.normal(size=(2, 3))
            u /= np.linalg.norm(u, axis=1)[:, None]
            # H-O-H ~ 104.5 deg: build the second H from the first
            v = u[1] - np.dot(u[1], u[0]) * u[0]
            v /= np.linalg.norm(v)
            ang = np.deg2rad(104.5)
            h2 = np.cos(ang) * u[0] + np.sin(ang) * v
            d1, d2 = rng.uniform(0.97, 1.0, 2) / BOHR
            pos += [c, c + d1 * u[0], c + d2 * h2]
            el += ["O", "H", "H"]
        while len(el) < n_atoms:  # pad with H2 fragments far from the rest of the grid
            pos.append(rng.uniform(0, L, 3))
            el.append("H")
        pos = np.array(pos)
        F = rng.normal(0, 0.03, (n_atoms, 3))
        E = -76.4 * n_mol - 0.5 * (n_atoms - 3 * n_mol) + rng.normal(0, 0.05)
        out.append(Structure(el, pos, cell=np.eye(3) * L, energy=E, forces=F).wrapped())
    return out


def run_synthetic(args) -> None:
    from hdnnp.io.n2p2_data import write_input_data
    from hdnnp.training.dataset import available_memory_bytes
    from hdnnp.training.trainer import MAX_RECOMPUTE_PAIRS
    from hdnnp.training.workflow import train

    n = args.synthetic
    input_nn = TRAIN / "H2O_RPBE-D3_np1" / "input.nn"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        data = synthetic_water(n, 200, seed=1)
        write_input_data(tmp / "input.data", data)
        gen_s = time.perf_counter() - t
        del data
        jit_s = warm_up(input_nn, synthetic_water(2, 200, seed=2))
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = train(input_nn, data=tmp / "input.data", run_dir=tmp / "run", epochs=args.epochs,
                      overrides={"batch_size": 32, "cache_memory_gb": args.cache_memory_gb,
                                 "cache_dtype": args.cache_dtype, "early_stopping": 0},
                      progress=not args.quiet, console=not args.quiet)
        wall = time.perf_counter() - t0
    peak = peak_rss_mib()
    t, c = r.timings, r.cache
    mib = 1 / 2**20
    per_pair = c["D_bytes"] / max(c["pairs_cached"], 1)
    pairs_per_struct = c["pairs"] / c["structures"]
    g_per_struct = c["G_bytes"] / c["structures"]
    transient = peak - rss0 - (c["G_bytes"] + c["D_bytes"]) * mib
    print(f"\n=== synthetic water: {n} structures x 200 atoms, H2O_RPBE-D3 symmetry functions ===")
    print(f"generation {gen_s:.1f} s (untimed), numba warm-up {jit_s:.1f} s (untimed)")
    print(f"{pairs_per_struct:.0f} pairs per structure; cache: G {c['G_bytes'] * mib:.0f} MiB, dG/dr for "
          f"{c['cached_D']} of {c['structures']} structures {c['D_bytes'] * mib:.0f} MiB (budget "
          f"{c['budget_bytes'] * mib:.0f} MiB, {per_pair:.0f} B per pair, {c['d_dtype']})")
    print(f"wall {wall:.1f} s: descriptors {t.get('descriptors_s', 0):.1f} s, {args.epochs} epoch(s) + "
          f"evaluation {t.get('epochs_s', 0):.1f} s")
    print(f"peak RSS {peak:.0f} MiB = before training {rss0:.0f} + cache {(c['G_bytes'] + c['D_bytes']) * mib:.0f} "
          f"+ data, batches and recomputed derivatives {transient:.0f}")
    # 10,000 structures: same per-structure sizes; this run's budget and the default one
    n10 = 10_000
    d_struct = per_pair * pairs_per_struct
    d_all = d_struct * n10
    g10 = g_per_struct * n10
    # structures in memory (positions, forces, charges, energies, symbols ~72 B/atom) + the cache's force
    # targets, species and pair offsets (~40 B/atom)
    data10 = n10 * 200 * (72 + 40) * mib
    n_recomp = n - c["cached_D"]
    per_recomp = t.get("epochs_s", 0) / max(n_recomp, 1)
    print(f"10,000 x 200 atoms (extrapolated, not run): G {g10 * mib:.0f} MiB; all dG/dr would need "
          f"{d_all / 2**30:.1f} GiB, so most are recomputed per batch ({MAX_RECOMPUTE_PAIRS} pairs at a time)")
    budgets = [("this run's budget", c["budget_bytes"]),
               ("default budget (half of MemAvailable now)", 0.5 * available_memory_bytes())]
    for name, budget in budgets:
        d_cached = min(budget, d_all)
        n_cached10 = int(d_cached / d_struct)
        est = rss0 + (g10 + d_cached) * mib + max(transient, 0) + data10
        line = (f"  {name} {budget / 2**30:.1f} GiB: {n_cached10} structures cached, peak RSS ~{est / 1024:.1f} GiB "
                f"(< 24 GiB)")
        if n_recomp:
            line += f", ~{per_recomp * (n10 - n_cached10) / 60:.0f} min per epoch"
        print(line)
    if n_recomp:
        print(f"  ({per_recomp:.2f} s per epoch and uncached structure here: training pass + evaluation; plus "
              f"~{t.get('descriptors_s', 0) / n * n10 / 60:.0f} min once for the descriptors)")
    print(f"machine: {machine()}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--optimizer", default="lbfgs", choices=["adam", "lbfgs", "sgd", "adagrad", "rmsprop"])
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the tuned one)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--force-weight", type=float, default=3.0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--init", default="torch")
    p.add_argument("--schedule", default="exponential", choices=["none", "plateau", "exponential"])
    p.add_argument("--lr-decay", type=float, default=0.97)
    p.add_argument("--plateau-patience", type=int, default=5)
    p.add_argument("--lbfgs-iterations", type=int, default=20)
    p.add_argument("--cache-dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--cache-memory-gb", type=float, default=None)
    p.add_argument("--seed", type=int, default=1234567)
    p.add_argument("--split-seed", type=int, default=2)
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="synthetic water set of N x 200 atoms")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.synthetic:
        args.epochs = args.epochs or 1
        run_synthetic(args)
    else:
        if args.epochs is None:
            args.epochs = 15 if args.optimizer == "lbfgs" else 100
        if args.lr is None and args.optimizer == "adam":
            args.lr = 3e-3
        run_h2o(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
