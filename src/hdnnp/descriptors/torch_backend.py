"""Symmetry functions in plain torch: the same values as the numba kernels, on any torch device.

``TorchSymmetryFunctions`` is built from a :class:`~hdnnp.descriptors.sf_set.SymmetryFunctionSet`
and evaluates G (n_atoms, max_sf) -- same column order and zero padding as
``SymmetryFunctionSet.compute(...).G`` -- as a differentiable function of the pair vectors
r_ij = r_j - r_i + S @ cell of a full neighbour list (``hdnnp.neighbors``). Gradients of the
energy with respect to the pair vectors, dE/dr_ij (n_pairs, 3), give the forces
(F_i += g_ij, F_j -= g_ij) and the virial W = -sum_ij r_ij (x) g_ij in one pass, exactly like
``kernels.forces_from_pair_gradients``. Runs on CUDA when the tensors live there, on the CPU
otherwise, in float32 or float64.

Supported: every n2p2 type hdnnp reads (2, 3, 9, 12, 13, 20-25) with every cutoff type (0-8).
Semantics follow the numba kernels (``hdnnp.descriptors.kernels``): angular sums run over
unordered pairs of neighbour-list entries j<k of one central atom whose elements match the
SF's (e1, e2) in either order; type 3/13 (narrow) include exp(-eta (r_jk - r_s)^2) f_c(r_jk),
type 9 (wide) does not; compact types 21/24 include C_r(r_jk), 22/25 do not, and skip
collinear triples (|cos theta| = 1).

How the work is organised (vectorised; no Python loop over atoms)
-----------------------------------------------------------------
* radial SFs: per block (central element e, neighbour element a), the pairs of the block are
  selected once; one (n_pairs_block, n_sf_block) matrix of exp(-eta (r - r_s)^2) f_c(r) (or the
  compact C_r(r)) is formed by broadcasting, with each distinct cutoff function evaluated once,
  and scatter-added to the atoms (``index_add_``).
* the grouping of the SFs (blocks, radial groups, angular kinds) is the SF plan
  (``hdnnp.descriptors.plan``, ``sf_set.plan``), the same one the numba tables are built from.
* angular SFs: all have the form c * A(cos theta) * R(r_ij) R(r_ik) J(r_jk). SFs sharing the
  radial factor R (a *group*: eta, r_s, cutoff or the compact window, narrowness, weight c) and
  SFs sharing A (a *kind*: lambda, zeta, or the compact angular window) are evaluated once per
  triplet. Per block (e, a <= b) the pairs of the block are ordered by (atom, element); R of
  all groups is computed once per pair; triplets (j<k) are generated from the grouped pair
  list with ``repeat_interleave`` in chunks of at most ``max_triplets_per_chunk``, so peak memory
  is bounded. For purely narrow blocks triplets with r_jk >= max r_c are dropped before any
  arithmetic (about half of them in a dense liquid). Per atom the sums M[k, q] = sum_t A_k P_q
  (P_q = c R_q R_q J_q) come from one batched matrix product over the atoms of a chunk (triplets
  padded per atom) and G_s = M[k_s, q_s]; forming and scatter-adding the (triplets, SFs) product
  instead was about 10x slower on the CPU for Anisole (54 SFs per block). Per-triplet arrays are
  feature-major ((features, triplets)), which vectorises better than the transpose.
* gradients: ``values`` with ``vectors`` that require grad keeps one graph over all chunks (the
  fastest: one forward and one backward pass; memory ~``graph_bytes``). ``pair_gradients``
  bounds the memory instead: after a values pass and dE/dG, each chunk is recomputed with
  autograd and back-propagated on its own (the per-pair factors once per block); this costs
  1.2-1.8x the single pass (CPU). ``Potential.compute`` picks one by ``torch_graph_max_bytes``.

Not done: the moment expansion of wide type-9 SFs with integer zeta (sum over pairs of
R_j R_k (u_j . u_k)^m from per-atom moments, O(pairs) instead of O(triplets)): in the anchor
potentials wide groups share their triplets with narrow ones (Cu2S) or do not occur (H2O), so the
triplets are needed anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hdnnp.descriptors.cutoff import core_torch as _core  # noqa: F401 (re-export)
from hdnnp.descriptors.cutoff import cutoff_torch as cutoff  # noqa: F401 (re-export)
from hdnnp.descriptors.plan import GroupKey, KindKey, group_key
from hdnnp.descriptors.torch_basis import _AngularKinds, _RadialBasis

#: symmetry-function types this backend evaluates
SUPPORTED_TYPES = frozenset({2, 3, 9, 12, 13, 20, 21, 22, 23, 24, 25})

#: default bound on the triplets (and pair x SF entries of radial blocks) processed at once on
#: the CPU (measured on H2O/Anisole: 2^15..2^19 within ~10 %, 2^21 ~50 % slower: cache) and on a
#: GPU (larger chunks amortise kernel launches; not measured: no GPU was available; estimated
#: ~0.6 GB of temporaries per chunk in float64 for the H2O potential)
DEFAULT_MAX_TRIPLETS = 1 << 17
DEFAULT_MAX_TRIPLETS_GPU = 1 << 21


def default_max_triplets(device) -> int:
    """``DEFAULT_MAX_TRIPLETS_GPU`` on a CUDA device, else ``DEFAULT_MAX_TRIPLETS``."""
    return DEFAULT_MAX_TRIPLETS_GPU if torch.device(device).type == "cuda" else DEFAULT_MAX_TRIPLETS



class UnsupportedSymmetryFunctionError(NotImplementedError):
    """The torch backend cannot evaluate a symmetry-function type (use the numba backend)."""


# ------------------------------------------------------------------------------- blocks
@dataclass
class _RadialBlock:
    """Radial SFs of central element e seen by neighbours of element a."""

    e: int
    a: int
    cols: torch.Tensor  # (C,) SF columns
    basis: _RadialBasis
    coef: torch.Tensor | None  # (C,) weights (Z_a of weighted types), None if all 1
    r_low: float  # pairs with d <= r_low or d >= r_cut give nothing
    r_cut: float


@dataclass
class _AngularBlock:
    """Angular SFs of central element e over neighbour pairs of elements (a, b), a <= b."""

    e: int
    a: int
    b: int
    basis: _RadialBasis  # groups, narrow ones first: (N,) -> (N, nq)
    jbasis: _RadialBasis | None  # the narrow groups' r_jk factors: (T,) -> (T, n_narrow)
    n_narrow: int
    coef: torch.Tensor | None  # (nq,) group weights (Z_a Z_b of weighted types), None if all 1
    kinds: _AngularKinds
    cols: torch.Tensor  # (S,) SF columns
    q_of: torch.Tensor  # (S,) group of each SF
    k_of: torch.Tensor  # (S,) kind of each SF
    kq: torch.Tensor  # (S,) k_of * nq + q_of
    r_low: float
    r_cut: float
    narrow_only: bool
    r_cut_narrow: float


@dataclass
class PairData:
    """A neighbour list on the device, with the per-block pair selections and triplet plans.

    i, j : (n_pairs,) atom indices; vectors : (n_pairs, 3) r_j - r_i + S @ cell (dtype of the
    backend); shifts : (n_pairs, 3) integer cell shifts S (numpy, CPU: only ``pair_vectors`` needs them);
    radial : per radial block, the indices of its pairs; angular : per angular block, its plan.
    """

    n_atoms: int
    i: torch.Tensor
    j: torch.Tensor
    vectors: torch.Tensor
    shifts: np.ndarray
    radial: list = field(default_factory=list)
    angular: list = field(default_factory=list)

    @property
    def n_triplets(self) -> int:
        """Triplets generated (before the r_jk filter of narrow blocks), all blocks."""
        return sum(p.n_triplets for p in self.angular)

    @property
    def n_chunks(self) -> int:
        return sum(len(p.chunks) for p in self.angular) + sum(len(c) for _, c in self.radial)


@dataclass
class _AngularPlan:
    block: _AngularBlock
    L: torch.Tensor  # (n_L,) pair indices of the block, grouped by atom, element a before b
    iL: torch.Tensor  # (n_L,) central atom of each
    firstpos: torch.Tensor  # (F,) positions in L of the first pair j of triplets
    begin: torch.Tensor  # (F,) first partner position k in L
    count: torch.Tensor  # (F,) number of partners (k = begin .. begin + count - 1)
    excl: torch.Tensor  # (F,) exclusive cumulative count
    chunks: list  # [(f0, f1, n_triplets, atom_lo, atom_hi)]
    n_triplets: int


# ------------------------------------------------------------------------------- main class
class TorchSymmetryFunctions:
    """Symmetry functions of a ``SymmetryFunctionSet`` as torch operations on ``device``.

    Parameters
    ----------
    sf_set : the potential's symmetry functions (n2p2 order).
    device, dtype : where and in which precision to compute (float32 or float64).
    max_triplets_per_chunk : bound on the triplets (angular) or pair x SF entries (radial)
        processed at once; peak memory is roughly proportional to it. None: 2^17 on the CPU,
        2^21 on a GPU (``default_max_triplets``).

    Raises ``UnsupportedSymmetryFunctionError`` (naming the type) for types it cannot evaluate.
    """

    def __init__(self, sf_set, device="cpu", dtype: torch.dtype = torch.float64,
                 max_triplets_per_chunk: int | None = None):
        self.sf_set = sf_set
        self.device = torch.device(device)
        self.dtype = dtype
        if max_triplets_per_chunk is None:
            max_triplets_per_chunk = default_max_triplets(self.device)
        self.max_triplets_per_chunk = int(max_triplets_per_chunk)
        if self.max_triplets_per_chunk < 1:
            raise ValueError("max_triplets_per_chunk must be >= 1")
        self.n_elements = len(sf_set.elements)
        self.max_sf = sf_set.max_sf
        for el in sf_set.elements:
            for sf in sf_set.functions[el]:
                if sf.code not in SUPPORTED_TYPES:
                    raise UnsupportedSymmetryFunctionError(
                        f"symmetry-function type {sf.code} ({type(sf).__name__}, element {el}) is not "
                        f"supported by the torch backend (supported: {sorted(SUPPORTED_TYPES)})")
        self.radial_blocks: list[_RadialBlock] = []
        self.angular_blocks: list[_AngularBlock] = []
        self._build()

    # ------------------------------------------------------------------ tables
    def _build(self) -> None:
        """Radial and angular blocks from the SF plan (``sf_set.plan``): the plan's grouping, in
        the torch layout (narrow groups first, kinds in order of first use)."""
        sfs = self.sf_set
        dev, dt = self.device, self.dtype
        for e, el in enumerate(sfs.elements):
            ep = sfs.plan.elements[e]
            fns = sfs.functions[el]
            rad = {a: [(s, _spec(group_key(fns[s])), w) for s, w in lst] for a, lst in ep.radial.items()}
            ang = {ab: {(g.narrow, _spec(g), c): [(s, _kind(k)) for s, k in ents] for (g, c), ents in blk.items()}
                   for ab, blk in ep.angular.items()}
            for a, entries in sorted(rad.items()):
                cols = [s for s, _, _ in entries]
                specs = [sp for _, sp, _ in entries]
                coef = [c for _, _, c in entries]
                self.radial_blocks.append(_RadialBlock(
                    e=e, a=a, cols=torch.tensor(cols, device=dev), basis=_RadialBasis(specs, dev, dt),
                    coef=None if all(c == 1.0 for c in coef) else torch.tensor(coef, device=dev, dtype=dt),
                    r_low=_r_low(specs), r_cut=max(sp[3] if sp[0] == "g" else sp[2] for sp in specs)))
            for (a, b), groups in sorted(ang.items()):
                # narrow groups first (their r_jk factors are the first n_narrow columns)
                gkeys = sorted(groups, key=lambda g: (not g[0], str(g[1]), g[2]))
                kinds: list = []
                cols, q_of, k_of = [], [], []
                for q, g in enumerate(gkeys):
                    for s, kind in groups[g]:
                        if kind not in kinds:
                            kinds.append(kind)
                        cols.append(s)
                        q_of.append(q)
                        k_of.append(kinds.index(kind))
                specs = [g[1] for g in gkeys]
                n_narrow = sum(1 for g in gkeys if g[0])
                coef = [g[2] for g in gkeys]
                rcs = [sp[3] if sp[0] == "g" else sp[2] for sp in specs]
                self.angular_blocks.append(_AngularBlock(
                    e=e, a=a, b=b, basis=_RadialBasis(specs, dev, dt),
                    jbasis=_RadialBasis(specs[:n_narrow], dev, dt) if n_narrow else None, n_narrow=n_narrow,
                    coef=None if all(c == 1.0 for c in coef) else torch.tensor(coef, device=dev, dtype=dt),
                    kinds=_AngularKinds(kinds), cols=torch.tensor(cols, device=dev),
                    q_of=torch.tensor(q_of, device=dev), k_of=torch.tensor(k_of, device=dev),
                    kq=torch.tensor([k * len(gkeys) + q for k, q in zip(k_of, q_of)], device=dev),
                    r_low=_r_low(specs), r_cut=max(rcs), narrow_only=n_narrow == len(specs),
                    r_cut_narrow=max(rcs[:n_narrow]) if n_narrow else 0.0))

    # ------------------------------------------------------------------ preparation
    def prepare(self, nl, species) -> PairData:
        """Move a neighbour list (``hdnnp.neighbors.NeighborList``, CPU) to the device and plan the work.

        species : (n_atoms,) element indices (numpy or tensor).
        """
        dev, dt = self.device, self.dtype
        n = int(len(species))
        sp = torch.as_tensor(np.asarray(species), device=dev)
        i = torch.as_tensor(nl.i, device=dev)
        j = torch.as_tensor(nl.j, device=dev)
        vec = torch.as_tensor(nl.vectors, device=dev).to(dt)
        data = PairData(n_atoms=n, i=i, j=j, vectors=vec, shifts=nl.shifts)
        if len(i) == 0:
            return data
        d = torch.linalg.vector_norm(vec, dim=1)
        ei = sp[i]
        ej = sp[j]
        M = self.max_triplets_per_chunk
        for blk in self.radial_blocks:
            mask = (ei == blk.e) & (ej == blk.a) & (d < blk.r_cut) & (d > blk.r_low)
            idx = torch.nonzero(mask).squeeze(1)
            if len(idx) == 0:
                continue
            step = max(1, M // len(blk.cols))
            data.radial.append((blk, [idx[k:k + step] for k in range(0, len(idx), step)]))
        for blk in self.angular_blocks:
            plan = self._plan(blk, i, ei, ej, d, n, M)
            if plan is not None:
                data.angular.append(plan)
        return data

    def _plan(self, blk: _AngularBlock, i, ei, ej, d, n: int, M: int):
        """Pairs of an angular block grouped by atom (element a before b) and its triplet chunks."""
        mask = (ei == blk.e) & (d < blk.r_cut) & (d > blk.r_low)
        mask &= (ej == blk.a) if blk.a == blk.b else ((ej == blk.a) | (ej == blk.b))
        L = torch.nonzero(mask).squeeze(1)  # grouped by atom (the list is)
        if len(L) < 2:
            return None
        if blk.a != blk.b:
            key = i[L] * 2 + (ej[L] == blk.b).to(i.dtype)
            L = L[torch.sort(key, stable=True).indices]
        iL = i[L]
        seg_end = torch.cumsum(torch.bincount(iL, minlength=n), 0)  # end of each atom's pairs in L
        if blk.a == blk.b:
            firstpos = torch.arange(len(L), device=L.device)
            end = seg_end[iL]
            begin = firstpos + 1
        else:
            is_a = ej[L] == blk.a
            firstpos = torch.nonzero(is_a).squeeze(1)
            n_b = torch.bincount(iL[~is_a], minlength=n)
            at = iL[firstpos]
            end = seg_end[at]
            begin = end - n_b[at]
        count = end - begin
        keep = count > 0
        firstpos, begin, count = firstpos[keep], begin[keep], count[keep]
        if len(firstpos) == 0:
            return None
        cum = torch.cumsum(count, 0)
        total = int(cum[-1])
        n_ch = max(1, -(-total // M))
        bounds = torch.searchsorted(cum, torch.arange(1, n_ch, device=cum.device) * M, right=True)
        bounds = [0] + bounds.tolist() + [len(firstpos)]
        bounds = sorted(set(bounds))
        bt = torch.tensor(bounds, device=cum.device)
        cum0 = torch.cat([cum.new_zeros(1), cum])
        tot_at = cum0[bt].tolist()  # cumulative triplets at the bounds
        at_first = iL[firstpos[bt[:-1]]].tolist()  # atom range of each chunk
        at_last = iL[firstpos[bt[1:] - 1]].tolist()
        chunks = [(bounds[k], bounds[k + 1], tot_at[k + 1] - tot_at[k], at_first[k], at_last[k])
                  for k in range(len(bounds) - 1) if tot_at[k + 1] > tot_at[k]]
        return _AngularPlan(block=blk, L=L, iL=iL, firstpos=firstpos, begin=begin, count=count,
                            excl=cum - count, chunks=chunks, n_triplets=total)

    # ------------------------------------------------------------------ evaluation pieces
    @staticmethod
    def _radial_X(blk: _RadialBlock, v: torch.Tensor) -> torch.Tensor:
        """(C, N) radial SF terms of the pair vectors v (N, 3) of one block."""
        X = blk.basis(torch.linalg.vector_norm(v, dim=1))
        return X if blk.coef is None else X * blk.coef[:, None]

    def _triplets(self, plan: _AngularPlan, chunk, vLT: torch.Tensor):
        """Positions in the block's pair list of the triplets (j, k) of one chunk (no gradient).

        vLT (3, n_L): the block's pair vectors (for the r_jk filter of purely narrow blocks).
        """
        f0, f1, T = chunk[0], chunk[1], chunk[2]
        cnt = plan.count[f0:f1]
        rep = torch.repeat_interleave(torch.arange(f1 - f0, device=cnt.device), cnt, output_size=T)
        excl = plan.excl[f0:f1]
        local = torch.arange(T, device=cnt.device) - (excl - excl[0])[rep]
        first = plan.firstpos[f0:f1][rep]
        second = plan.begin[f0:f1][rep] + local
        blk = plan.block
        if blk.narrow_only:  # every group needs r_jk < its r_c
            with torch.no_grad():
                w = vLT.index_select(1, second) - vLT.index_select(1, first)
                keep = torch.nonzero((w * w).sum(0) < blk.r_cut_narrow ** 2).squeeze(1)
            first, second = first.index_select(0, keep), second.index_select(0, keep)
        return first, second

    #: per-atom padding (max / mean triplets per atom) above which a chunk is summed with
    #: index_add instead of batched matrix products
    MAX_PADDING = 3.0

    def _angular_terms(self, blk: _AngularBlock, first, second, rows, lo: int, hi: int,
                       vLT, invL, RT) -> torch.Tensor:
        """Angular SFs (hi - lo + 1, S) of atoms lo..hi from the triplets (first, second) of one block.

        vLT (3, n_L), invL (n_L,), RT (nq, n_L): pair vectors, inverse distances and group factors
        of the block's pairs; rows (T,) the (non-decreasing) central atom of each triplet.
        Arrays are feature-major ((features, T)): long contiguous rows vectorise best.
        Per atom, M[k, q] = sum_t A_k(t) P_q(t) (kinds x groups) by one batched matrix product over
        atoms (triplets padded per atom), and G_s = M[k_s, q_s]: no (T, S) array is formed.
        """
        va = vLT.index_select(1, first)
        vb = vLT.index_select(1, second)
        cos = (va * vb).sum(0) * invL.index_select(0, first) * invL.index_select(0, second)
        P = RT.index_select(1, first) * RT.index_select(1, second)
        if blk.coef is not None:
            P = P * blk.coef[:, None]
        nn = blk.n_narrow
        if nn:
            w = vb - va
            J = blk.jbasis(torch.sqrt((w * w).sum(0)))
            P = P * J if nn == P.shape[0] else torch.cat([P[:nn] * J, P[nn:]], dim=0)
        A = blk.kinds(cos)
        n_at = hi - lo + 1
        T = len(rows)
        r = rows - lo
        cnt = torch.bincount(r, minlength=n_at)
        t_max = int(cnt.max()) if T else 0
        if T == 0 or n_at * t_max > self.MAX_PADDING * T:
            X = A.index_select(0, blk.k_of) * P.index_select(0, blk.q_of)
            return X.new_zeros(X.shape[0], n_at).index_add_(1, r, X).T
        start = torch.cumsum(cnt, 0) - cnt
        pos = r * t_max + (torch.arange(T, device=r.device) - start.index_select(0, r))
        nk, nq = A.shape[0], P.shape[0]
        Ap = A.new_zeros(n_at * t_max, nk).index_copy(0, pos, A.T).view(n_at, t_max, nk)
        Pp = P.new_zeros(n_at * t_max, nq).index_copy(0, pos, P.T).view(n_at, t_max, nq)
        M = torch.bmm(Ap.transpose(1, 2), Pp).view(n_at, nk * nq)
        return M.index_select(1, blk.kq)

    @staticmethod
    def _pair_factors(blk: _AngularBlock, vLT: torch.Tensor):
        """1 / r (n_L,) and the group factors R (nq, n_L) of the block's pairs (vLT: (3, n_L))."""
        dL = torch.linalg.vector_norm(vLT, dim=0)
        return 1.0 / dL, blk.basis(dL)

    @staticmethod
    def _accumulate(G, rows, cols, X) -> None:
        """G[rows[p], cols[c]] += X[c, p] (X: (C, N))."""
        tmp = X.new_zeros(X.shape[0], G.shape[0]).index_add_(1, rows, X)
        G.index_add_(1, cols, tmp.T)

    # ------------------------------------------------------------------ public API
    def values(self, data: PairData, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """G (n_atoms, max_sf) in the backend's dtype on its device.

        vectors : (n_pairs, 3) pair vectors to use instead of ``data.vectors``; if they require
        grad, G is differentiable w.r.t. them (one graph over all chunks: memory grows with the
        structure; use ``pair_gradients`` for bounded memory).
        """
        vec = data.vectors if vectors is None else vectors
        n = data.n_atoms
        G = torch.zeros(n, self.max_sf, dtype=self.dtype, device=self.device)
        for blk, chunks in data.radial:
            for idx in chunks:
                X = self._radial_X(blk, vec.index_select(0, idx))
                self._accumulate(G, data.i.index_select(0, idx), blk.cols, X)
        for plan in data.angular:
            blk = plan.block
            vLT = vec.index_select(0, plan.L).T.contiguous()
            invL, RT = self._pair_factors(blk, vLT)
            for ch in plan.chunks:
                first, second = self._triplets(plan, ch, vLT.detach())
                lo, hi = ch[3], ch[4]
                rows = plan.iL.index_select(0, first)
                Gc = self._angular_terms(blk, first, second, rows, lo, hi, vLT, invL, RT)
                G[lo:hi + 1].index_add_(1, blk.cols, Gc)
        return G

    def pair_gradients(self, data: PairData, dEdG: torch.Tensor) -> torch.Tensor:
        """dE/dr_ij (n_pairs, 3) for E = sum dEdG * G (dEdG (n_atoms, max_sf), zero padded).

        Chunk by chunk (bounded memory): each chunk's terms are recomputed with autograd and
        back-propagated with the weights dE/dG of their atoms and SFs.
        """
        dEdG = dEdG.to(device=self.device, dtype=self.dtype).detach()
        pg = torch.zeros_like(data.vectors)
        with torch.enable_grad():
            for blk, chunks in data.radial:
                Wb = dEdG.index_select(1, blk.cols)
                for idx in chunks:
                    v = data.vectors.index_select(0, idx).requires_grad_(True)
                    X = self._radial_X(blk, v)
                    (g,) = torch.autograd.grad(X, v, Wb.index_select(0, data.i.index_select(0, idx)).T)
                    pg.index_add_(0, idx, g)
            for plan in data.angular:
                blk = plan.block
                Wb = dEdG.index_select(1, blk.cols)
                vLT = data.vectors.index_select(0, plan.L).T.contiguous().requires_grad_(True)
                invL, RT = self._pair_factors(blk, vLT)
                # the chunks' graphs start from detached copies of the per-pair quantities; their
                # gradients are accumulated and back-propagated to the pair vectors once per block
                leaves = [vLT.detach().requires_grad_(True), invL.detach().requires_grad_(True),
                          RT.detach().requires_grad_(True)]
                acc = [torch.zeros_like(x) for x in leaves]
                for ch in plan.chunks:
                    first, second = self._triplets(plan, ch, vLT.detach())
                    lo, hi = ch[3], ch[4]
                    rows = plan.iL.index_select(0, first)
                    Gc = self._angular_terms(blk, first, second, rows, lo, hi, *leaves)
                    grads = torch.autograd.grad(Gc, leaves, Wb[lo:hi + 1], allow_unused=True)
                    for a_, g in zip(acc, grads):
                        if g is not None:
                            a_ += g
                (gv,) = torch.autograd.grad([invL, RT], vLT, [acc[1], acc[2]])
                pg.index_add_(0, plan.L, (gv + acc[0]).T)
        return pg

    def graph_bytes(self, data: PairData) -> int:
        """Rough upper estimate of the memory (bytes) that ``values`` keeps for autograd when the
        pair vectors require grad (one graph over all chunks): per generated triplet, the gathered
        geometry, the group and kind factors, the padded per-atom arrays and the index tensors.
        Calibrated on the H2O and Anisole potentials (measured: 155 B/triplet in float32 and
        300 B in float64 for H2O; the estimate is about 1.5x that)."""
        item = torch.finfo(self.dtype).bits // 8
        total = 0
        for plan in data.angular:
            b = plan.block
            nq, nk = b.basis.n, b.kinds.n
            total += plan.n_triplets * (item * (12 + 5.5 * nq + 3 * b.n_narrow + 4.5 * nk) + 48)
        for blk, chunks in data.radial:
            total += sum(len(c) for c in chunks) * item * (6 + 4 * len(blk.cols))
        return int(total)

    def compute(self, nl, species) -> torch.Tensor:
        """G (n_atoms, max_sf) of a structure's neighbour list (no gradient)."""
        with torch.no_grad():
            return self.values(self.prepare(nl, species))

    @staticmethod
    def pair_vectors(positions: torch.Tensor, cell: torch.Tensor | None, data: PairData) -> torch.Tensor:
        """r_j - r_i + S @ cell (n_pairs, 3) from positions (n_atoms, 3) and cell (3, 3, rows):
        differentiable w.r.t. both, for G as a function of positions."""
        v = positions[data.j] - positions[data.i]
        if cell is not None:
            v = v + torch.as_tensor(data.shifts, device=positions.device).to(positions.dtype) @ cell
        return v


def forces_and_virial(data: PairData, pair_grad: torch.Tensor):
    """Forces (n_atoms, 3) = -dE/dr and virial W = -sum_p r_p (x) g_p (3, 3) from dE/dr_p (n_pairs, 3).

    Same convention as ``kernels.forces_from_pair_gradients`` (stress = -W / volume).
    """
    F = torch.zeros(data.n_atoms, 3, dtype=pair_grad.dtype, device=pair_grad.device)
    F.index_add_(0, data.i, pair_grad)
    F.index_add_(0, data.j, -pair_grad)
    W = -(data.vectors.to(pair_grad.dtype).T @ pair_grad)
    return F, W


def _r_low(specs) -> float:
    """Lower end of the support of a list of radial specs (-inf when a Gaussian is among them)."""
    lows = [sp[1] if sp[0] == "c" else -math.inf for sp in specs]
    return min(lows)


def _spec(g: GroupKey) -> tuple:
    """A radial group as a ``_RadialBasis`` spec."""
    if g.compact:
        return ("c", g.r_low, g.r_cut, g.core, g.asymmetric)
    return ("g", g.eta, g.r_shift, g.r_cut, g.cutoff_type, g.cutoff_alpha)


def _kind(k: KindKey) -> tuple:
    """An angular kind as an ``_AngularKinds`` spec (compact windows in radians)."""
    if k.compact:
        return ("c", k.left, k.right, k.core)
    return ("g", k.lambda_, k.zeta)
