"""4G-HDNNP speed: energy + forces of n2p2's H2O_RPBE-D3_4G water box (384 atoms) and supercells.

Usage (from the repository root; the potential is tests/data/n2p2_4g/potentials/H2O_RPBE-D3_4G):

    python bench/bench_4g.py                      # 384 atoms: warm time, 1 thread and default threads
    python bench/bench_4g.py --whole-process      # + 'hdnnp predict' as a whole process (like n2p2's figure)
    python bench/bench_4g.py --scaling 1 2 4 8    # supercells (x1, x2 = 2x1x1, x4 = 2x2x1, x8 = 2x2x2):
                                                  # time and peak memory, one subprocess per size
    python bench/bench_4g.py --device cuda        # the same on a GPU
    python bench/bench_4g.py --solver cg --ewald scaled --scaling 1 8 27 64 125   # matrix-free Qeq,
                                                  # Ewald width scaled for large cells, up to 48 000 atoms
    python bench/bench_4g.py --solver dense --scaling 1 2 4 --no-base   # the dense (n2p2) path only

--solver dense|cg|auto chooses the Qeq solver (``hdnnp_qeq_solver``), --ewald n2p2|scaled the Ewald
parameters (``hdnnp_ewald_parameters``). The scaling lines give the time split of one warm call
(SFs, chi networks, Qeq operator, CG solves, electrostatic energy and force terms, backward pass,
SF forces; the dense path reports Qeq + electrostatics as one figure) and the child's peak RSS.

Reference: n2p2 v2.3.0 nnp-predict, one thread, whole process, 1.63-1.74 s for this structure
(../shared/anchors/n2p2/TIMINGS.md, peak RSS 149 MB). Prints the machine load next to every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POT = REPO / "tests" / "data" / "n2p2_4g" / "potentials" / "H2O_RPBE-D3_4G"
N2P2_SECONDS = (1.63, 1.74)
DEFAULT_THREADS = __import__("torch").get_num_threads()
REPS = {1: (1, 1, 1), 2: (2, 1, 1), 4: (2, 2, 1), 8: (2, 2, 2), 12: (3, 2, 2), 16: (4, 2, 2), 27: (3, 3, 3),
        64: (4, 4, 4), 125: (5, 5, 5), 216: (6, 6, 6), 343: (7, 7, 7), 512: (8, 8, 8)}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_size(mult: int, device: str, threads: int | None, repeats: int, solver: str = "auto",
             ewald: str = "n2p2") -> dict:
    import torch

    import hdnnp.model.fourg as fourg
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.model.potential import Potential

    torch.set_num_threads(threads or DEFAULT_THREADS)
    pot = Potential.from_n2p2(POT, device=device)
    pot.qeq_solver = solver
    pot.ewald_scaled = ewald == "scaled"
    s = read_input_data(POT / "input.data")[0].repeat(REPS[mult]) if mult > 1 else read_input_data(POT / "input.data")[0]
    fourg.PROFILE = {}
    t0 = time.perf_counter()
    p = pot.compute(s)  # includes numba/JIT warm-up
    first = time.perf_counter() - t0
    times = [] if repeats else [first]  # 0 repeats (large sizes): the first call only
    for _ in range(repeats):
        fourg.PROFILE = {}
        t0 = time.perf_counter()
        p = pot.compute(s)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {"atoms": len(s), "first_s": first, "best_s": min(times), "median_s": sorted(times)[len(times) // 2],
           "split_s": fourg.PROFILE, "cg": getattr(pot.electrostatics, "last_cg", None), "solver": solver,
           "threads": torch.get_num_threads(), "device": device,
           "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "energy": p.energy,
           "ewald": [p.ewald.eta, p.ewald.r_cut, p.ewald.k_cut]}
    if device.startswith("cuda"):
        out["gpu_peak_MB"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def whole_process() -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hdnnp.cli", "predict", str(POT), str(POT / "input.data"), "-o", tmp],
                       check=True, env=env, capture_output=True)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--whole-process", action="store_true")
    ap.add_argument("--scaling", type=int, nargs="*", default=None, choices=sorted(REPS))
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process of --scaling
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--solver", choices=("auto", "dense", "cg"), default="auto", help="Qeq solver (default auto)")
    ap.add_argument("--ewald", choices=("n2p2", "scaled"), default="n2p2", help="Ewald parameters (default n2p2)")
    ap.add_argument("--scaling-repeats", type=int, default=2,
                    help="warm calls per scaling size (default 2; 0: report the first call, JIT warm-up included)")
    ap.add_argument("--no-base", action="store_true", help="skip the 384-atom comparison with n2p2")
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.device, args.threads, args.repeats, args.solver, args.ewald)))
        return 0
    lo, hi = N2P2_SECONDS
    for threads in () if args.no_base else (1, None):
        r = one_size(1, args.device, threads, args.repeats, args.solver, args.ewald)
        print(f"384 atoms, {r['threads']} thread(s), {args.device}, solver {args.solver}, Ewald {args.ewald}: "
              f"energy+forces warm median {r['median_s']:.3f} s "
              f"(best {r['best_s']:.3f}, first call {r['first_s']:.2f} s) = {r['median_s'] / hi:.2f}-"
              f"{r['median_s'] / lo:.2f}x n2p2 nnp-predict whole process; load {load()}")
    if args.whole_process:
        t = whole_process()
        print(f"384 atoms, hdnnp predict whole process (python + torch import, numba cache, 1 thread): {t:.2f} s "
              f"= {t / hi:.2f}-{t / lo:.2f}x n2p2; load {load()}")
    for mult in args.scaling or []:
        cmd = [sys.executable, __file__, "--one", str(mult), "--device", args.device,
               "--repeats", str(args.scaling_repeats), "--solver", args.solver, "--ewald", args.ewald]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
        if res.returncode != 0:
            print(f"x{mult}: failed ({res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode})")
            break
        r = json.loads(res.stdout.strip().splitlines()[-1])
        extra = f", GPU peak {r['gpu_peak_MB']:.0f} MB" if "gpu_peak_MB" in r else ""
        print(f"{r['atoms']:6d} atoms, solver {args.solver}, Ewald {args.ewald}: energy+forces {r['median_s']:.3f} s "
              f"(first call {r['first_s']:.2f} s, {r['threads']} threads), peak RSS {r['peak_rss_MB']:.0f} MB{extra}, "
              f"eta/r_c/k_c {r['ewald'][0]:.3f}/{r['ewald'][1]:.2f}/{r['ewald'][2]:.4f}; load {load()}")
        print("        split (s): " + ", ".join(f"{k.strip()} {v:.3f}" for k, v in r["split_s"].items()))
        if r["cg"]:
            c = r["cg"]
            print(f"        CG: {c['iterations']} iterations (charge and adjoint solves), {c['pairs']} real-space "
                  f"pairs "
                  f"({'stored' if c['stored'] else 'regenerated'}), {c['k_vectors']} k-vectors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
