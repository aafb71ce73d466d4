"""Benchmark: energy + forces per atom against n2p2 (issues 2 and 3).

    python bench/bench_predict.py                      # all three examples, 1 and 2 threads
    python bench/bench_predict.py --threads 1 --repeats 10 --examples H2O_RPBE-D3
    python bench/bench_predict.py --profile            # time per stage as well
    python bench/bench_predict.py --no-memory          # skip the memory runs

Times are the best of ``--repeats`` calls of ``Potential.compute`` (energy, forces, stress) after
a warm-up call, so numba compilation is excluded, like n2p2's figures (slope between an input
and the same input repeated, start-up excluded). Threads: ``numba.set_num_threads(n)`` and
``torch.set_num_threads(n)``. Also printed: CPU time of the process for the best call (a
second, less contention-sensitive measure on a shared machine), and the load average.

Peak memory: each size runs in a fresh subprocess; after a warm-up on a small structure of
the same potential (compilation, imports), the kernel's high-water mark of resident memory is
reset (``/proc/self/clear_refs``), and VmHWM (``/proc/self/status``) is read before and after
one ``compute`` on the target structure; the difference is reported. It counts every
allocation (numba's included, which tracemalloc does not see). The tracemalloc peak of the
allocations made through Python/numpy is printed as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchors import find_anchors  # noqa: E402

ANCHORS = find_anchors("potentials")

#: n2p2 v2.3.0 nnp-predict, one thread, this machine kind (anchors/n2p2/TIMINGS.md), ms per atom
N2P2_MS_PER_ATOM = {"H2O_RPBE-D3": 0.46, "Cu2S_PBE": 0.40, "Anisole_SCAN": 5.4}


def machine() -> str:
    u = platform.uname()
    cpu = platform.processor() or u.machine
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}; {u.system} {u.release}; {os.cpu_count()} CPUs; python {platform.python_version()}"


def load(example: str, device: str = "cpu"):
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.model.potential import Potential

    pot = Potential.from_n2p2(ANCHORS / "potentials" / example, device=device)
    structure = read_input_data(ANCHORS / "potentials" / example / "input.data")[0]
    return pot, structure


def set_threads(n: int) -> None:
    import numba
    import torch

    numba.set_num_threads(n)
    torch.set_num_threads(n)


def best_of(fn, repeats: int):
    """(best wall s, CPU s of that call, all wall times)."""
    walls, cpus = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    k = min(range(repeats), key=walls.__getitem__)
    return walls[k], cpus[k], walls


def profile_stages(pot, s, repeats: int) -> dict:
    """Best time (ms) of each stage of ``Potential.compute(derivative_mode="recompute")``."""
    from hdnnp.descriptors import kernels as K

    sfs = pot.sf_set
    species = sfs.species_of(s)
    nl = sfs.neighbors(s)
    G = sfs._run(s, nl, species, 0)[0]
    _, dEdG = pot._energies_and_gradients(G, species, True)
    pg = sfs._run(s, nl, species, 2, dEdG)[2]
    stages = {
        "neighbour list": lambda: sfs.neighbors(s),
        "SF values (kernel mode 0)": lambda: sfs._run(s, nl, species, 0),
        "networks + dE/dG (torch)": lambda: pot._energies_and_gradients(G, species, True),
        "SF gradients (kernel mode 2)": lambda: sfs._run(s, nl, species, 2, dEdG),
        "forces + virial": lambda: K.forces_from_pair_gradients(len(s), nl.i, nl.j, nl.vectors, pg),
        "extrapolation check": lambda: pot.check_extrapolation(G, species),
        "SF values + dG/dr (kernel mode 1, 'store')": lambda: sfs._run(s, nl, species, 1),
    }
    return {name: best_of(fn, repeats)[0] * 1e3 for name, fn in stages.items()}


def run_timing(args) -> list[dict]:
    rows = []
    for ex in args.examples:
        pot, s = load(ex, args.device)
        n = len(s)
        for nt in args.threads:
            set_threads(nt)
            for mode in args.modes:
                pot.compute(s, derivative_mode=mode)  # warm-up (compilation, caches)
                wall, cpu, walls = best_of(lambda: pot.compute(s, derivative_mode=mode), args.repeats)
                ms_atom = wall / n * 1e3
                ref = N2P2_MS_PER_ATOM[ex]
                row = dict(example=ex, atoms=n, threads=nt, mode=mode, wall_s=wall, cpu_s=cpu,
                           median_s=sorted(walls)[len(walls) // 2], ms_per_atom=ms_atom,
                           n2p2_ms_per_atom=ref, ratio=ms_atom / ref, load=os.getloadavg()[0])
                rows.append(row)
                print(f"{ex:14s} {n:5d} atoms  {nt} thread{'s' if nt > 1 else ' '}  {mode:9s}  "
                      f"best {wall * 1e3:8.1f} ms (median {row['median_s'] * 1e3:8.1f}, cpu {cpu * 1e3:8.1f})  "
                      f"{ms_atom:7.3f} ms/atom  n2p2 1 thread {ref:5.2f}  ratio {row['ratio']:5.2f}"
                      f"  [load {row['load']:.2f}]", flush=True)
            if args.profile:
                for name, ms in profile_stages(pot, s, args.repeats).items():
                    print(f"    {name:44s} {ms:8.2f} ms", flush=True)
    return rows


_MEMORY_CHILD = r"""
import json, resource, sys, tracemalloc
sys.path.insert(0, {bench!r})
from bench_predict import load, set_threads, reset_peak_rss, peak_rss_kib
from hdnnp.structure import Structure
pot, s = load({example!r}, {device!r})
set_threads({threads})
small = Structure(s.elements[:24], s.positions[:24], cell=s.cell)
pot.compute(small, derivative_mode={mode!r})      # compile / warm up on 24 atoms
target = s.repeat(({rep}, {rep}, {rep}))
method = reset_peak_rss()
base = peak_rss_kib()
tracemalloc.start()
r = pot.compute(target, derivative_mode={mode!r})
_, py_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
peak = peak_rss_kib()
print(json.dumps(dict(atoms=len(target), rss_delta_mib=(peak - base) / 1024, rss_peak_mib=peak / 1024,
                      tracemalloc_peak_mib=py_peak / 2**20, method=method)))
"""


def reset_peak_rss() -> str:
    """Reset the kernel's high-water mark of resident memory (Linux: /proc/self/clear_refs = 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return "VmHWM after reset (/proc/self/clear_refs)"
    except OSError:
        return "ru_maxrss (no reset possible: the delta is a lower bound)"


def peak_rss_kib() -> float:
    """Peak resident memory of this process in KiB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_memory(args) -> list[dict]:
    rows = []
    for mode in args.modes:
        for rep in (1, 2):
            code = _MEMORY_CHILD.format(bench=str(Path(__file__).parent), example="H2O_RPBE-D3", device=args.device,
                                        threads=max(args.threads), mode=mode, rep=rep)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row.update(example="H2O_RPBE-D3", mode=mode)
            rows.append(row)
            print(f"H2O_RPBE-D3 {row['atoms']:5d} atoms  {mode:9s}  peak RSS increase {row['rss_delta_mib']:8.1f} MiB  "
                  f"(tracemalloc peak {row['tracemalloc_peak_mib']:7.1f} MiB; method: {row['method']})", flush=True)
    for mode in args.modes:
        pair = [r for r in rows if r["mode"] == mode]
        if len(pair) == 2 and pair[0]["rss_delta_mib"] > 0:
            print(f"  {mode}: {pair[1]['atoms'] // pair[0]['atoms']}x atoms -> "
                  f"{pair[1]['rss_delta_mib'] / pair[0]['rss_delta_mib']:.1f}x peak RSS increase, "
                  f"{pair[1]['tracemalloc_peak_mib'] / max(pair[0]['tracemalloc_peak_mib'], 1e-9):.1f}x tracemalloc peak")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", nargs="+", default=list(N2P2_MS_PER_ATOM), choices=list(N2P2_MS_PER_ATOM))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--modes", nargs="+", default=["recompute"], choices=["recompute", "store"])
    ap.add_argument("--device", default="cpu", help="device of the networks (the SF kernels always run on the CPU)")
    ap.add_argument("--profile", action="store_true", help="also time each stage of compute")
    ap.add_argument("--no-memory", dest="memory", action="store_false")
    ap.add_argument("--json", help="write all results to this file")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("float64; time per atom = best of repeats / atoms; ratio = ours / n2p2 on ONE thread "
          "(targets: <= 1.0 with 1 thread, <= 0.5 with 2 threads)")
    results = {"machine": machine(), "timing": run_timing(args)}
    import numba

    print(f"numba threading layer: {numba.threading_layer()}")
    if args.memory:
        print("peak memory, H2O_RPBE-D3 1080 atoms and its 2x2x2 supercell (8640 atoms), "
              f"{max(args.threads)} thread(s):")
        results["memory"] = run_memory(args)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
