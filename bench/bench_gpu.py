"""Benchmark: energy + forces of a >= 10,000-atom water box with the torch symmetry-function backend
(issue 3, GPU part).

    python bench/bench_gpu.py                          # --device cuda if available, else cpu
    python bench/bench_gpu.py --device cpu --compare-numba --repeats 3
    python bench/bench_gpu.py --replicate 2 2 3 --dtypes float32 --stages

Structure: the 1080-atom liquid-water box of the H2O_RPBE-D3 anchor potential replicated
``--replicate`` times (default 2 x 2 x 3 = 12,960 atoms), with that potential (length unit bohr).

Times are the best of ``--repeats`` calls of ``Potential.compute`` (energy, forces, stress) after
one warm-up call, with ``torch.cuda.synchronize()`` around each call on a GPU. Printed per row:
time per call, ms/atom, atoms/s, the multiple of n2p2's one-core throughput (nnp-predict 0.46
ms/atom for H2O, anchors/n2p2/TIMINGS.md), the time of the neighbour list alone (part of every call:
vesin-torch on the GPU when installed and the device is CUDA, else vesin on the CPU) and the time
without it, and the peak memory of one call: GPU memory
(``torch.cuda.max_memory_allocated``, reset before the call) on a GPU, the increase of the
process's peak resident memory (VmHWM, reset through /proc/self/clear_refs) on the CPU.
``--compare-numba`` adds a row for the numba CPU kernels (float64 and float32 networks; their
symmetry functions are always float64). ``--stages`` times the steps of the torch path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_predict import ANCHORS, machine, peak_rss_kib, reset_peak_rss  # noqa: E402, F401

#: n2p2 v2.3.0 nnp-predict, one thread, H2O 1080 atoms (anchors/n2p2/TIMINGS.md), ms per atom
N2P2_MS_PER_ATOM = 0.46
EXAMPLE = "H2O_RPBE-D3"


def device_name(device) -> str:
    import torch

    if torch.device(device).type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    return f"CPU, {torch.get_num_threads()} torch threads"


def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn, repeats: int, device) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), times


_MEMORY_CHILD = r"""
import json, logging, sys
logging.getLogger("hdnnp").setLevel(logging.ERROR)  # the 24-atom warm-up extrapolates
sys.path.insert(0, {bench!r})
import torch
from bench_gpu import water_box, EXAMPLE, ANCHORS, reset_peak_rss, peak_rss_kib
from hdnnp.model.potential import Potential
from hdnnp.structure import Structure
torch.set_num_threads({threads})
pot = Potential.from_n2p2(ANCHORS / "potentials" / EXAMPLE, dtype=getattr(torch, {dtype!r}), sf_backend={backend!r})
pot.torch_max_triplets_per_chunk = {max_triplets!r}
pot.torch_graph_max_bytes = {graph!r}
s = water_box({replicate!r})
pot.compute(Structure(s.elements[:24], s.positions[:24], cell=s.cell))  # imports, compilation
how = reset_peak_rss()
base = peak_rss_kib()
pot.compute(s)
print(json.dumps(dict(mib=(peak_rss_kib() - base) / 1024, how=how)))
"""


def peak_memory(fn, device, child: dict) -> tuple[float, str]:
    """(MiB, what) of one call: GPU memory in this process on a GPU; on the CPU the increase of the
    peak resident memory of a fresh process (after a warm-up on 24 atoms) running the same call,
    so that memory kept by the allocator from earlier calls does not hide the peak."""
    import subprocess

    import torch

    if torch.device(device).type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20, "GPU max_memory_allocated"
    code = _MEMORY_CHILD.format(bench=str(Path(__file__).resolve().parent), threads=torch.get_num_threads(), **child)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return float("nan"), "CPU peak RSS increase (failed)"
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res["mib"], "CPU peak RSS increase" + ("" if res["how"].startswith("VmHWM") else " (lower bound)")


def water_box(replicate):
    from hdnnp.io.n2p2_data import read_input_data

    s = read_input_data(ANCHORS / "potentials" / EXAMPLE / "input.data")[0]
    return s.repeat(tuple(replicate))


def run_row(label, pot, s, backend, device, repeats, t_nl, stages: bool, child: dict) -> dict:
    n = len(s)

    def call():
        return pot.compute(s, sf_backend=backend)

    call()  # warm-up: numba compilation, CUDA context and kernels, allocator caches
    wall, times = best_of(call, repeats, device)
    mem, mem_what = peak_memory(call, device, child)
    ms_atom = wall / n * 1e3
    row = dict(label=label, atoms=n, backend=backend, device=str(device), best_s=wall, all_s=times,
               ms_per_atom=ms_atom, atoms_per_s=n / wall, x_n2p2_one_core=N2P2_MS_PER_ATOM / ms_atom,
               neighbour_list_s=t_nl, without_nl_ms_per_atom=(wall - t_nl) / n * 1e3,
               peak_mib=mem, peak_what=mem_what, load=os.getloadavg()[0])
    print(f"{label:34s} {wall * 1e3:9.1f} ms  {ms_atom:8.4f} ms/atom  {n / wall:10.0f} atoms/s  "
          f"{row['x_n2p2_one_core']:7.2f}x n2p2 1 core  "
          f"| without nbr list {row['without_nl_ms_per_atom']:8.4f} ms/atom  "
          f"| peak {mem:8.1f} MiB ({mem_what})  [load {row['load']:.2f}]", flush=True)
    if stages and backend == "torch":
        row["stages_ms"] = time_stages(pot, s, device, repeats)
        for name, ms in row["stages_ms"].items():
            print(f"      {name:40s} {ms:9.1f} ms", flush=True)
    return row


def time_stages(pot, s, device, repeats) -> dict:
    """Best time (ms) of each step of the torch path (chunked gradients, as used above for large boxes)."""
    import torch

    from hdnnp.descriptors.torch_backend import forces_and_virial

    sfs = pot.sf_set
    tsf = pot.torch_symmetry_functions()
    species = sfs.species_of(s)
    nl = sfs.neighbors(s)
    data = tsf.prepare(nl, species)
    sp_t = torch.as_tensor(species, device=data.vectors.device)
    with torch.no_grad():
        G = tsf.values(data)

    def nets():
        with torch.enable_grad():
            g = G.detach().requires_grad_(True)
            e = pot.atomic_energies_from_G(g, sp_t)
            return torch.autograd.grad(e.sum(), g)[0]

    dEdG = nets()
    pg = tsf.pair_gradients(data, dEdG)

    def values():
        with torch.no_grad():
            tsf.values(data)

    steps = {
        "neighbour list (vesin, CPU)": lambda: sfs.neighbors(s),
        "transfer + triplet planning (prepare)": lambda: tsf.prepare(nl, species),
        "SF values": values,
        "networks + dE/dG": nets,
        "SF gradients (chunked autograd)": lambda: tsf.pair_gradients(data, dEdG),
        "forces + virial": lambda: forces_and_virial(data, pg),
    }
    out = {name: best_of(fn, repeats, device)[0] * 1e3 for name, fn in steps.items()}
    print(f"      {data.n_triplets} triplets generated in {data.n_chunks} chunks "
          f"(max_triplets_per_chunk {tsf.max_triplets_per_chunk})", flush=True)
    return out


def main(argv=None) -> int:
    import numba
    import torch

    default_dev = "cuda" if torch.cuda.is_available() else "cpu"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=default_dev, help=f"torch device (default here: {default_dev})")
    ap.add_argument("--replicate", type=int, nargs=3, default=[2, 2, 3], help="supercell of the 1080-atom box")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compare-numba", action="store_true", help="also time the numba CPU kernels")
    ap.add_argument("--max-triplets", type=int, default=None, help="torch_max_triplets_per_chunk (default: backend's)")
    ap.add_argument("--graph-max-gib", type=float, default=None,
                    help="torch_graph_max_bytes in GiB: one autograd pass when the graph fits (default: "
                         "half the free GPU memory, 2 GiB on the CPU; 0 forces the chunked gradients)")
    ap.add_argument("--threads", type=int, default=None, help="torch and numba CPU threads (default: torch's)")
    ap.add_argument("--stages", action="store_true", help="time each step of the torch path")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args(argv)
    from hdnnp.model.potential import Potential

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    s = water_box(args.replicate)
    n = len(s)
    print(f"machine: {machine()}")
    print(f"device:  {args.device}: {device_name(args.device)}; torch {torch.__version__}")
    print(f"system:  {EXAMPLE} water box 1080 x {args.replicate[0]}x{args.replicate[1]}x{args.replicate[2]} = "
          f"{n} atoms; energy + forces + stress; best of {args.repeats} after a warm-up; "
          f"n2p2 one core = {N2P2_MS_PER_ATOM} ms/atom")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    pot64 = Potential.from_n2p2(ANCHORS / "potentials" / EXAMPLE)
    t_nl, _ = best_of(lambda: pot64.sf_set.neighbors(s), args.repeats, "cpu")
    nl = pot64.sf_set.neighbors(s)
    print(f"neighbour list (vesin on the CPU, in every call below): {t_nl * 1e3:.1f} ms, {nl.n_pairs} pairs "
          f"({nl.n_pairs / n:.0f} per atom)", flush=True)
    rows = []
    for dt in args.dtypes:
        dtype = getattr(torch, dt)
        pot = Potential.from_n2p2(ANCHORS / "potentials" / EXAMPLE, device=args.device, dtype=dtype, sf_backend="torch")
        pot.torch_max_triplets_per_chunk = args.max_triplets
        graph = None if args.graph_max_gib is None else int(args.graph_max_gib * 2**30)
        pot.torch_graph_max_bytes = graph
        tsf = pot.torch_symmetry_functions()
        from hdnnp.neighbors import vesin_torch_available

        on_device = torch.device(args.device).type == "cuda" and vesin_torch_available()
        t_nl_row = t_nl
        if on_device:  # the torch backend builds its list with vesin-torch on the GPU
            pot._torch_neighbors(s)
            t_nl_row, _ = best_of(lambda: pot._torch_neighbors(s), args.repeats, args.device)
        print(f"torch {dt}: neighbour list {'vesin-torch on ' + args.device if on_device else 'vesin on the CPU'}"
              f" {t_nl_row * 1e3:.1f} ms per call", flush=True)
        data = tsf.prepare(nl, pot.sf_set.species_of(s))
        budget = pot._graph_budget(data.vectors.device)
        one_pass = tsf.graph_bytes(data) <= budget
        print(f"torch {dt}: {data.n_triplets} triplets in {data.n_chunks} chunks of <= {tsf.max_triplets_per_chunk}; "
              f"graph estimate {tsf.graph_bytes(data) / 2**30:.1f} GiB vs budget {budget / 2**30:.1f} GiB -> "
              f"{'one autograd pass' if one_pass else 'values, then chunked gradients'}", flush=True)
        del data
        child = dict(dtype=dt, max_triplets=args.max_triplets, graph=graph, replicate=list(args.replicate))
        rows.append(run_row(f"torch SFs on {torch.device(args.device).type}, {dt}", pot, s, "torch", args.device,
                            args.repeats, t_nl_row, args.stages, dict(child, backend="torch")))
        if args.compare_numba:
            pot_cpu = Potential.from_n2p2(ANCHORS / "potentials" / EXAMPLE, dtype=dtype)
            rows.append(run_row(f"numba SFs (CPU, {numba.get_num_threads()} thr), {dt} nets", pot_cpu, s, "numba",
                                "cpu", args.repeats, t_nl, False, dict(child, backend="numba")))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(machine=machine(), device=device_name(args.device),
                                                   atoms=n, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
