"""Training data: checks, the train/validation split, and the descriptor cache.

The cache computes the symmetry functions G of every structure once (numba kernel) and
keeps them (scaled, float64) for the whole run; the derivatives D = dG_i/dr_j per pair,
needed for forces, are kept for as many structures as fit into a memory budget
(``hdnnp_cache_memory_gb``, default half of the memory available at start, divided among
the processes of this node) and recomputed per batch for the rest. D may be stored in
float32 (``hdnnp_cache_dtype float32``) to halve its size.

Memory per atom: G 8 B x max_sf; D (8 or 4 B) x 3 x max_cols x neighbours, where max_cols
is the most SF columns one neighbour can change (D is stored compressed, see
``force_kernels``). For water with the H2O_RPBE-D3 symmetry functions (30 SFs, max_cols 19,
~103 neighbours within 12 Bohr) that is 0.24 kB + 47 kB (float64) per atom, so 10,000
structures x 200 atoms would need ~94 GB for D: such a set trains with D cached for the
structures that fit and recomputed per batch for the rest (G alone: 0.5 GB).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from hdnnp.errors import HDNNPError
from hdnnp.structure import Structure
from hdnnp.training.force_kernels import ForcePlan, Segment
from hdnnp.training.statistics import PartialStats, structure_partials

log = logging.getLogger("hdnnp.train")


# --------------------------------------------------------------------------- checks
def check_data(structures: list[Structure], elements: list[str], use_forces: bool, path: str) -> None:
    """One-line errors for data that cannot be trained on (raised before any training)."""
    known = set(elements)
    any_force = False
    for k, s in enumerate(structures):
        where = f"{path}: structure {k + 1}"
        for a, el in enumerate(s.elements):
            if el not in known:
                raise HDNNPError(f"{where}, atom {a + 1}: element {el} is not in the potential's elements "
                                 f"({' '.join(elements)}); add it (with symmetry functions) to the setup or "
                                 f"remove such structures")
        if s.energy is None:
            raise HDNNPError(f"{where}: no reference energy ('energy' line); every training structure needs one")
        if not math.isfinite(s.energy):
            raise HDNNPError(f"{where}: reference energy is {s.energy}; remove the structure or fix the value")
        bad = ~np.isfinite(s.positions)
        if bad.any():
            a = int(np.argwhere(bad)[0][0])
            raise HDNNPError(f"{where}, atom {a + 1}: position is {s.positions[a].tolist()} (not finite)")
        if s.cell is not None and not np.all(np.isfinite(s.cell)):
            raise HDNNPError(f"{where}: lattice vectors are not finite ({s.cell.tolist()})")
        if use_forces:
            if s.forces is None:
                raise HDNNPError(f"{where}: no reference forces, but forces are used in training "
                                 "(use_short_forces); supply forces or train on energies only")
            bad = ~np.isfinite(s.forces)
            if bad.any():
                a = int(np.argwhere(bad)[0][0])
                raise HDNNPError(f"{where}, atom {a + 1}: reference force is {s.forces[a].tolist()} (not finite)")
            if np.any(s.forces != 0.0):
                any_force = True
    if use_forces and not any_force:
        raise HDNNPError(f"{path}: all reference force components are 0 (forces missing?), but forces are used in "
                         "training (use_short_forces); supply forces or train on energies only")


# --------------------------------------------------------------------------- split
@dataclass
class Split:
    """Global structure indices of the training and validation sets (sorted)."""

    train: list[int]
    test: list[int]


def n2p2_draws(n_structures: int, seed: int, n_draws: int) -> np.ndarray:
    """The uniform numbers nnp-train (1 process) uses to split the data: n2p2 seeds a Mersenne
    twister (GSL mt19937, the same generator and seeding as numpy's legacy RandomState) with
    ``random_seed``, draws the global seed, one number per structure to distribute them, then one
    per untagged structure for the split (u < test_fraction: test)."""
    raw = np.random.RandomState(seed % 2**32).randint(0, 2**32, size=1 + n_structures + n_draws, dtype=np.uint32)
    return raw[1 + n_structures:] / 2.0**32


def split_data(structures: list[Structure], test_fraction: float, seed: int, path: str = "input.data",
               method: str = "hdnnp") -> Split:
    """Reproducible split: ``set=train``/``set=test`` tags are honoured; untagged structures go to
    the validation set with probability ``test_fraction``: one uniform draw per structure from a
    PCG64 stream seeded with ``seed``, in file order (``method`` "hdnnp"), or nnp-train's own
    draws (``method`` "n2p2", :func:`n2p2_draws`: the same split as n2p2 with the same seed)."""
    if method == "n2p2":
        untagged = [k for k, s in enumerate(structures) if not s.set_tag]
        draws = np.ones(len(structures))
        draws[untagged] = n2p2_draws(len(structures), seed, len(untagged))
    else:
        rng = np.random.Generator(np.random.PCG64(seed))
        draws = rng.random(len(structures))
    train, test = [], []
    for k, s in enumerate(structures):
        tag = (s.set_tag or "").lower()
        if tag == "train":
            train.append(k)
        elif tag == "test":
            test.append(k)
        elif tag:
            raise HDNNPError(f"{path}: structure {k + 1}: unknown set tag 'set={s.set_tag}' (expected set=train or "
                             "set=test)")
        elif draws[k] < test_fraction:
            test.append(k)
        else:
            train.append(k)
    if not train:
        raise HDNNPError(f"{path}: the training set is empty ({len(structures)} structures, {len(test)} for "
                         f"validation); lower test_fraction or tag structures with 'begin set=train'")
    if not test:
        raise HDNNPError(f"{path}: the validation set is empty ({len(structures)} structures, test_fraction "
                         f"{test_fraction}); raise test_fraction or tag structures with 'begin set=test'")
    return Split(train, test)


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory, else 8 GiB."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


# --------------------------------------------------------------------------- cache
def pair_columns(sf_set) -> tuple[np.ndarray, np.ndarray]:
    """SF columns of central element e_i that a neighbour of element e_j can change.

    Returns cols (n_el^2, max_cols) and ncols (n_el^2,), indexed by t = e_i n_el + e_j: an SF
    counts when it is weighted (all neighbours) or names e_j among its neighbour elements.
    Padding entries are column 0 (their stored derivative is 0).
    """
    els = sf_set.elements
    ne = len(els)
    lists = [[] for _ in range(ne * ne)]
    for ei, e in enumerate(els):
        for s, sf in enumerate(sf_set.functions[e]):
            for ej, f in enumerate(els):
                if sf.weighted or f in sf.neighbors:
                    lists[ei * ne + ej].append(s)
    max_cols = max(1, max(len(x) for x in lists))
    cols = np.zeros((ne * ne, max_cols), dtype=np.int64)
    ncols = np.zeros(ne * ne, dtype=np.int64)
    for t, x in enumerate(lists):
        cols[t, : len(x)] = x
        ncols[t] = len(x)
    return cols, ncols


def compress_D(D: np.ndarray, pair_type: np.ndarray, cols: np.ndarray, ncols: np.ndarray, out: np.ndarray) -> None:
    """out[p, :ncols[t]] = D[p, cols[t]] for t = pair_type[p] (out pre-zeroed or fully written)."""
    out[:] = 0.0
    for t in np.unique(pair_type):
        m = pair_type == t
        n = int(ncols[t])
        if n:
            out[m, :n] = D[m][:, cols[t, :n]]


class DescriptorCache:
    """Symmetry functions (and their derivatives within a memory budget) of a set of structures.

    structures : all structures (global indexing); indices : the global indices this
    process holds (all, or its shard under torch.distributed), in increasing order.
    After construction ``partials`` holds per-structure SF statistics for ``nnp-scaling``;
    call :meth:`set_scaling` before building batches.
    """

    def __init__(self, sf_set, structures: list[Structure], indices: list[int], derivatives: bool,
                 memory_budget: int | None = None, d_dtype=np.float64, progress: bool = False,
                 n_local_processes: int = 1):
        self.sf_set = sf_set
        self.structures = structures
        self.indices = list(indices)
        self.local_of = {g: k for k, g in enumerate(self.indices)}
        self.derivatives = derivatives
        self.max_sf = sf_set.max_sf
        self.elements = sf_set.elements
        self.n_sf = np.array([sf_set.n_sf[e] for e in self.elements], dtype=np.int64)
        n_local = len(self.indices)
        self.n_atoms = np.array([structures[g].n_atoms for g in self.indices], dtype=np.int64)
        self.atom_start = np.zeros(n_local + 1, dtype=np.int64)
        np.cumsum(self.n_atoms, out=self.atom_start[1:])
        n_tot = int(self.atom_start[-1])
        self.d_dtype = np.dtype(d_dtype)
        self.G = np.zeros((n_tot, self.max_sf))
        self.species = np.zeros(n_tot, dtype=np.int64)
        self.pair_start = np.zeros(n_tot + 1, dtype=np.int64)
        self.has_D = np.zeros(n_local, dtype=bool)
        self.n_pairs = np.zeros(n_local, dtype=np.int64)
        self.cols, self.ncols = pair_columns(sf_set)
        self.max_cols = self.cols.shape[1]
        self.n_el = len(self.elements)
        bytes_per_pair = self.max_cols * 3 * self.d_dtype.itemsize + 4 + 2
        if memory_budget is None:
            memory_budget = int(0.5 * available_memory_bytes() / max(1, n_local_processes)) - self.G.nbytes
        self.memory_budget = max(0, int(memory_budget))
        cap = self.memory_budget // bytes_per_pair if derivatives else 0
        # untouched pages of np.empty are never resident: the buffer costs what is filled
        D_buf = np.empty((cap, self.max_cols, 3), dtype=self.d_dtype)
        j_buf = np.empty(cap, dtype=np.int32)
        t_buf = np.empty(cap, dtype=np.int16)
        used = 0
        self.partials: list[list[PartialStats]] = []
        n_sf_list = [int(n) for n in self.n_sf]
        it = range(n_local)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="symmetry functions", unit="struct", leave=False)
        full = False
        for k in it:
            s = structures[self.indices[k]]
            a0, a1 = self.atom_start[k], self.atom_start[k + 1]
            nl = sf_set.neighbors(s)
            npairs = nl.n_pairs
            self.n_pairs[k] = npairs
            want_D = derivatives and not full and used + npairs <= cap
            if derivatives and not want_D:
                full = True  # keep the cached structures a prefix (simple bookkeeping, no fragmentation)
            # G always from the derivative pass when forces are trained: the kernel's value-only
            # pass may round differently, and G must not depend on what fitted into the cache
            d = sf_set.compute(s, derivatives=derivatives, nl=nl)
            self.G[a0:a1] = d.G
            self.species[a0:a1] = d.species
            self.partials.append(structure_partials(d.G, d.species, n_sf_list))
            if want_D:
                pt = (d.species[nl.i] * self.n_el + d.species[nl.j]).astype(np.int16)
                compress_D(d.D, pt, self.cols, self.ncols, D_buf[used:used + npairs])
                j_buf[used:used + npairs] = nl.j
                t_buf[used:used + npairs] = pt
                self.pair_start[a0:a1] = used + nl.start[:-1]
                used += npairs
                self.has_D[k] = True
            else:
                self.pair_start[a0:a1] = used
            self.pair_start[a1] = used
        self.D = D_buf[:used]
        self.pair_j = j_buf[:used]
        self.pair_type = t_buf[:used]
        self.scaled = False
        self.G_t = torch.from_numpy(self.G)

    # ------------------------------------------------------------------ info
    @property
    def n_cached_D(self) -> int:
        return int(self.has_D.sum())

    def memory_bytes(self) -> dict[str, int]:
        return {"G": self.G.nbytes, "D": self.D.nbytes + self.pair_j.nbytes + self.pair_type.nbytes,
                "index": self.pair_start.nbytes + self.species.nbytes}

    def set_targets(self, energy: np.ndarray, forces: np.ndarray | None) -> None:
        """Reference energies (n_local,) and forces (n_atoms, 3), in the units the loss uses."""
        self.E_target = torch.from_numpy(np.ascontiguousarray(energy, dtype=np.float64))
        self.F_target = None if forces is None else torch.from_numpy(np.ascontiguousarray(forces, dtype=np.float64))

    def set_scaling(self, scalings: dict) -> None:
        """Replace G by the scaled network inputs (in place; padding columns stay 0)."""
        for k, e in enumerate(self.elements):
            rows = self.species == k
            n = int(self.n_sf[k])
            sc = scalings[e]
            self.G[rows, :n] = sc.s_min + sc.factor * (self.G[rows, :n] - sc.shift)
        self.factor = np.zeros((len(self.elements), self.max_sf))
        for k, e in enumerate(self.elements):
            self.factor[k, : self.n_sf[k]] = scalings[e].factor
        self.scaled = True

    # ------------------------------------------------------------------ batches
    def structure_D(self, k: int, out: np.ndarray | None = None):
        """(pair_start (n+1,), pair_j, pair_type, compressed D) of local structure k, from the
        cache or recomputed (into ``out``, (n_pairs, max_cols, 3), when given)."""
        a0, a1 = self.atom_start[k], self.atom_start[k + 1]
        if self.has_D[k]:
            ps = self.pair_start[a0:a1 + 1]
            sl = slice(ps[0], ps[-1])
            return ps - ps[0], self.pair_j[sl], self.pair_type[sl], self.D[sl]
        s = self.structures[self.indices[k]]
        nl = self.sf_set.neighbors(s)
        d = self.sf_set.compute(s, derivatives=True, nl=nl)
        pt = (d.species[nl.i] * self.n_el + d.species[nl.j]).astype(np.int16)
        Dc = out if out is not None else np.empty((nl.n_pairs, self.max_cols, 3), dtype=self.d_dtype)
        compress_D(d.D, pt, self.cols, self.ncols, Dc)
        return nl.start, nl.j.astype(np.int32), pt, Dc

    def batch(self, local: list[int] | np.ndarray, forces: bool) -> "Batch":
        """Gather the scaled inputs of local structures ``local`` (element-sorted rows) and,
        with ``forces``, the force plan (recomputing D for structures outside the cache)."""
        local = np.asarray(local, dtype=np.int64)
        counts = self.n_atoms[local]
        base = np.zeros(len(local) + 1, dtype=np.int64)
        np.cumsum(counts, out=base[1:])
        n = int(base[-1])
        # atoms of the batch in structure order
        starts = self.atom_start[local]
        atoms = np.repeat(starts - base[:-1], counts) + np.arange(n)
        struct_of = np.repeat(np.arange(len(local)), counts)
        sp = self.species[atoms]
        order = np.argsort(sp, kind="stable")  # row r <- structure-order position order[r]
        local_rows = np.empty(n, dtype=np.int64)
        local_rows[order] = np.arange(n)
        rows_atoms = atoms[order]
        sp_rows = sp[order]
        bounds = np.searchsorted(sp_rows, np.arange(len(self.elements) + 1))
        X = self.G_t[torch.from_numpy(rows_atoms)]
        b = Batch(
            local=local, n_rows=n, X=X, bounds=[int(x) for x in bounds],
            struct_of_row=torch.from_numpy(struct_of[order]),
            n_atoms=torch.from_numpy(counts.astype(np.float64)),
            rows_atoms=rows_atoms,
            factor=torch.from_numpy(self.factor[sp_rows]),
            E_target=self.E_target[torch.from_numpy(local)],
            F_target=None if self.F_target is None or not forces else self.F_target[torch.from_numpy(rows_atoms)],
        )
        if forces:
            jbase_rows = base[struct_of[order]]
            struct_of_local = local[struct_of[order]]
            cached = self.has_D[struct_of_local]
            segments = []
            if cached.any():
                q = np.flatnonzero(cached)
                segments.append(Segment(rows=q.astype(np.int64), store_atom=rows_atoms[q], jrow_base=jbase_rows[q],
                                        pair_start=self.pair_start, pair_j=self.pair_j, pair_type=self.pair_type,
                                        cols=self.cols, ncols=self.ncols, D=self.D))
            if not cached.all():
                # temporary store for structures whose D is recomputed now
                todo = [int(k) for k in np.unique(struct_of_local[~cached])]
                D_tmp = np.empty((int(self.n_pairs[todo].sum()), self.max_cols, 3), dtype=self.d_dtype)
                ps_list, j_list, t_list = [], [], []
                tmp_atom_start = {}
                na = 0
                npair = 0
                for k in todo:
                    ps, pj, pt, _ = self.structure_D(k, out=D_tmp[npair:npair + int(self.n_pairs[k])])
                    ps_list.append(ps[:-1] + npair)
                    j_list.append(pj)
                    t_list.append(pt)
                    tmp_atom_start[k] = na
                    na += len(ps) - 1
                    npair += len(pj)
                ps_all = np.concatenate(ps_list + [np.array([npair], dtype=np.int64)])
                q = np.flatnonzero(~cached)
                k_of_q = struct_of_local[q]
                store_atom = np.array([tmp_atom_start[int(k)] for k in k_of_q], dtype=np.int64) + \
                    (rows_atoms[q] - self.atom_start[k_of_q])
                segments.append(Segment(rows=q.astype(np.int64), store_atom=store_atom, jrow_base=jbase_rows[q],
                                        pair_start=ps_all, pair_j=np.concatenate(j_list),
                                        pair_type=np.concatenate(t_list), cols=self.cols, ncols=self.ncols,
                                        D=D_tmp))
            b.plan = ForcePlan(n_rows=n, max_sf=self.max_sf, local_rows=local_rows, segments=segments)
        return b

    def micro_batches(self, local: list[int], max_atoms: int, max_recompute_pairs: int) -> list[list[int]]:
        """Split ``local`` into consecutive groups of at most ``max_atoms`` atoms, and at most
        ``max_recompute_pairs`` pairs of structures whose D must be recomputed."""
        groups, cur, atoms, rpairs = [], [], 0, 0
        for k in local:
            na = int(self.n_atoms[k])
            rp = 0 if self.has_D[k] or not self.derivatives else int(self.n_pairs[k])
            if cur and (atoms + na > max_atoms or rpairs + rp > max_recompute_pairs):
                groups.append(cur)
                cur, atoms, rpairs = [], 0, 0
            cur.append(int(k))
            atoms += na
            rpairs += rp
        if cur:
            groups.append(cur)
        return groups


@dataclass
class Batch:
    """Network inputs of a group of structures, rows sorted by element.

    X : (n_rows, max_sf) scaled SFs; bounds : rows of element k are bounds[k]:bounds[k+1];
    struct_of_row : (n_rows,) batch-structure index; n_atoms : (n_structures,) float;
    factor : (n_rows, max_sf) dGs/dG of each row's element (0 in padding columns);
    plan : the force plan (or None).
    """

    local: np.ndarray
    n_rows: int
    X: torch.Tensor
    bounds: list[int]
    struct_of_row: torch.Tensor
    n_atoms: torch.Tensor
    rows_atoms: np.ndarray
    factor: torch.Tensor
    E_target: torch.Tensor | None = None
    F_target: torch.Tensor | None = None
    plan: ForcePlan | None = None
