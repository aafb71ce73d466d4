"""Compiled (numba) kernels: symmetry functions and their derivatives on the CPU.

Modules: this one (the per-atom driver ``symmetry_functions``, pair-gradient contraction, forces
and virial), ``numba_radial`` (radial SFs, group factors), ``numba_angular`` (triplet lists of
angular SFs), ``numba_math`` (branch-free exp/acos), ``cutoff`` (cutoff and core functions of all
executors), ``tables`` (the typed parameter tables), ``plan`` (the SF grouping they come from).
numba's on-disk cache (``cache=True``) checks only the source file of the function it loads:
after editing a callee module (``numba_radial``, ``numba_angular``, ``cutoff``, ``numba_math``),
delete ``__pycache__`` (or touch this file) so that ``symmetry_functions`` is recompiled.

Conventions
-----------
* Pairs come from a full neighbour list sorted by central atom (CSR: ``pair_start``);
  ``pair_vec[p] = r_j - r_i + S @ cell`` (length unit of the potential), ``pair_dist[p]`` its norm.
  The order of the pairs of one atom does not matter (the kernel sorts them by element locally).
* ``G[i, s]``: raw (unscaled) value of symmetry function s of atom i (element-local order).
* ``D[p, s, :] = dG[i, s] / dr_j`` for pair p = (i, j). Translation invariance gives
  ``dG[i, s]/dr_i = -sum_p D[p, s, :]``; forces and the virial follow from D.
* Mode 2 never stores D: it contracts with ``dE/dG`` on the fly into per-pair gradients
  ``pair_grad[p] = sum_s dE/dG[i, s] D[p, s, :]`` (memory O(pairs), not O(pairs x SFs)).

How the work is organised (this is what makes the kernels fast)
---------------------------------------------------------------
Angular SFs (types 3, 9, 13, 21, 22, 24, 25) all have the form

    term(j, k) = c * A(cos theta_ijk) * R(r_ij) * R(r_ik) * J(r_jk)

with a per-neighbour radial factor R (exp(-eta (r - r_s)^2) f_c(r), or a compact C_r(r)), an
angular factor A (2^(1-zeta) (1 + lambda cos)^zeta, or a compact C_a(theta)), J = R for narrow
types and 1 for wide ones, and c = 1 or Z_j Z_k (weighted types: constant for a pair of
neighbour elements). SFs sharing R (and narrowness) form a radial *group* q, SFs sharing A an
angular *kind* k; SF s is the pair (q, k) (n2p2's SF groups share exp and cutoff terms the same
way). Per atom:

* neighbours are copied and ordered by element; R and dR/dr of every group are computed once
  per neighbour (one loop per group over the neighbours, cutoff values shared between groups);
* for every *block* of neighbour elements (ea <= eb) that has SFs, the triplets (a, b) that can
  contribute (both inside some group's support, and r_jk < r_c for purely narrow blocks) are
  listed and processed in chunks of up to ``TRIPLET_CHUNK``: every step is a long branch-free
  loop over the list that LLVM vectorises (cos theta, r_jk, J per narrow group, A and dA/dcos per
  kind, then the accumulation);
* values (mode 0): M[k, q] += sum_t A_k(t) P_q(t), P_q = c_q R_q(a) R_q(b) J_q, and G_s = M[k, q];
* contracted gradients (mode 2): W[k, q] = sum over s = (q, k) of c_q dE/dG_s; per triplet
  WA_q = sum_k W_kq A_k and WdA_q = sum_k W_kq dA_k give dE/dcos, dE/dr_ij, dE/dr_ik, dE/dr_jk
  with O(groups) work, which become the gradients on the two pairs (no D is stored);
* mode 1 writes D per SF (this is the expensive mode; used for training and derivative_mode
  "store").

Radial SFs are evaluated per SF as one loop over the neighbours of its element.

exp and acos are evaluated by branch-free inline versions (``_exp``, ``_acos``, ~1 ulp) that
vectorise, libm calls do not; the TANH cutoffs use tanh(x) = (1 - e^-2x)/(1 + e^-2x). The
kernels are compiled with ``fastmath={'reassoc', 'contract'}`` (reassociation for the vectorised
sums, FMA contraction), never with approximate functions or finite-math assumptions;
``error_model="numpy"`` removes the division-by-zero checks. Results agree with n2p2 to ~1e-15
relative (tests/model/test_n2p2_reference.py; the requirement is 1e-10 / 1e-8).

Work spaces are allocated once per call and thread (``numba.get_thread_id``), not per atom.
Atoms are independent: a thread computes each atom alone, so results do not depend on the
number of threads (bitwise).

Tables (``tables.KernelTables``, built from the SF plan ``plan.SymmetryFunctionPlan``): per-SF rows ``iparams``/``fparams``;
``rad_idx``/``rad_coef``/``rad_cnt``: radial SFs of central element e seen by a neighbour of
element ej, with the weight Z_j for types 12/23; ``grp_i``/``grp_f``: radial groups per element;
``blk_*``: per block (e, ea, eb) the range of its groups in ``q_i``/``q_f`` (with the weight c),
of its kinds in ``kind_i``/``kind_f`` and of its SF entries (s, q, k) in ``ent_s/q/k``.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import prange

from hdnnp.descriptors.cutoff import core_value_derivative as _core  # noqa: F401 (re-export)
from hdnnp.descriptors.cutoff import cutoff_value_derivative  # noqa: F401 (re-export)
from hdnnp.descriptors.cutoff import cutoff_value_derivative_fast as _cutoff  # noqa: F401 (re-export)
from hdnnp.descriptors.cutoff import cutoff_vec as _cutoff_vec  # noqa: F401 (re-export)
from hdnnp.descriptors.numba_angular import TRIPLET_CHUNK, _angular_block
from hdnnp.descriptors.numba_math import _FASTMATH, _acos, _exp, _ipow  # noqa: F401 (re-export)
from hdnnp.descriptors.numba_radial import _group_factors, _radial_sfs


_THREADS_READY = False


def select_threading_layer() -> None:
    """Choose numba's "workqueue" threading layer before its threads start (once; called when
    this module is imported), unless the user chose a layer (NUMBA_THREADING_LAYER) or numba's
    threads are already running.

    Why: numba's default "omp" layer resolves to the GNU OpenMP runtime that torch loads, whose
    threads spin after every parallel region (OMP_WAIT_POLICY is read when torch is imported,
    too early to change here). With as many threads as cores and any other work on the machine,
    the spinning thread takes the core from the thread it waits for: a 20 ms calculation took
    36 ms with two threads instead of one. workqueue threads sleep when idle; measured on
    an idle 2-core machine they are as fast as OpenMP's, and on a busy one two threads are no
    slower than one. Caveat (numba's): workqueue does not support launching parallel kernels
    from several Python threads at the same time; set NUMBA_THREADING_LAYER=omp (or tbb) for that.
    """
    global _THREADS_READY
    if _THREADS_READY:
        return
    _THREADS_READY = True
    from numba.np.ufunc import parallel

    if parallel._is_initialized or "NUMBA_THREADING_LAYER" in os.environ \
            or numba.config.THREADING_LAYER != "default":
        return
    numba.config.THREADING_LAYER = "workqueue"


select_threading_layer()  # at import: before user code can start numba's threads (numba.set_num_threads does)



@numba.njit(cache=True, error_model="numpy", parallel=True)
def symmetry_functions(species, pair_start, pair_j, pair_vec, pair_dist, atom_begin, atom_end,
                       tables, mode, dEdG, n_slots):
    """Compute G (modes 0, 1) and derivatives (mode 1: D; mode 2: per-pair gradients only).

    Parameters
    ----------
    species : (n_atoms,) int64 element index (atomic-number order).
    pair_start : (n_atoms + 1,) int64 CSR offsets into the pair arrays.
    pair_j : (n_pairs,) int64; pair_vec : (n_pairs, 3); pair_dist : (n_pairs,).
    atom_begin, atom_end : the central atoms treated, a range (chunks of a structure).
    tables : ``KernelTables`` (``SymmetryFunctionSet.kernel_tables``).
    mode : 0 values only, 1 values and D, 2 pair gradients only (needs dEdG; G is not computed).
    dEdG : (atom_end - atom_begin, max_sf) derivative of the energy w.r.t. raw G (mode 2);
        any (1, max_sf) array otherwise.
    n_slots : number of per-thread work spaces, >= numba's thread count
        (``numba.config.NUMBA_NUM_THREADS``).

    Returns
    -------
    G : (n, max_sf) with n = atom_end - atom_begin (zeros in mode 2);
    D : (m, max_sf, 3) or (0, max_sf, 3), m = pair_start[atom_end] - pair_start[atom_begin]
    (row r is pair pair_start[atom_begin] + r); pair_grad : (m, 3) or (0, 3).

    The per-thread work spaces are allocated here, before the ``prange`` loop that indexes them
    by thread id (numba cannot return a structure of them from a helper without a tuple of ~20
    arrays); the loop body is the per-atom driver: local neighbour copy sorted by element
    (:func:`_local_neighbours`), radial part, angular blocks.
    """
    n_el = tables.rad_cnt.shape[0]
    max_sf = tables.fparams.shape[1]
    blk_id = tables.blk_id
    grp_n = tables.grp_n
    n_at = atom_end - atom_begin
    pbase = pair_start[atom_begin]
    m_pairs = pair_start[atom_end] - pbase
    G = np.zeros((n_at if mode != 2 else 0, max_sf))
    D = np.empty((m_pairs if mode == 1 else 0, max_sf, 3))
    PG = np.empty((m_pairs if mode == 2 else 0, 3))
    mq, mk, mg, nnmax = _work_sizes(tables, pair_start, atom_begin, atom_end)
    cap = TRIPLET_CHUNK
    # per-thread work spaces (allocated once, not per atom)
    W_est = np.empty((n_slots, n_el + 1), dtype=np.int64)
    W_fill = np.empty((n_slots, n_el + 1), dtype=np.int64)
    W_loc = np.empty((n_slots, nnmax), dtype=np.int64)
    W_lv = np.empty((n_slots, nnmax, 3))
    W_ld = np.empty((n_slots, nnmax))
    W_linv = np.empty((n_slots, nnmax))
    W_lpg = np.empty((n_slots, nnmax, 3))
    W_RT = np.empty((n_slots, mg, nnmax))
    W_dRT = np.empty((n_slots, mg, nnmax))
    W_alive = np.empty((n_slots, nnmax), dtype=np.bool_)
    W_ta = np.empty((n_slots, cap), dtype=np.int64)
    W_tb = np.empty((n_slots, cap), dtype=np.int64)
    W_t1 = np.empty((n_slots, 6, max(cap, nnmax)))  # cos, r_jk, theta, 1/sin, f_c, df_c (also per neighbour)
    W_Jm = np.empty((n_slots, mq, cap))
    W_dJm = np.empty((n_slots, mq, cap))
    W_Am = np.empty((n_slots, mk, cap))
    W_dAm = np.empty((n_slots, mk, cap))
    W_P = np.empty((n_slots, mq, cap if mode != 2 else 1))
    W_WA = np.empty((n_slots, mq, cap if mode == 2 else 1))
    W_WdA = np.empty((n_slots, mq, cap if mode == 2 else 1))
    W_sv = np.empty((n_slots, 4, cap if mode == 2 else 1))
    W_M = np.empty((n_slots, mk, mq))
    for ii_ in prange(n_at):
        ii = np.int64(ii_)  # one integer type for the callees (one compilation each)
        tid = numba.get_thread_id()
        i = atom_begin + ii
        e = species[i]
        p0 = pair_start[i]
        p1 = pair_start[i + 1]
        nn = p1 - p0
        est = W_est[tid]
        loc = W_loc[tid]
        lv = W_lv[tid]
        ld = W_ld[tid]
        linv = W_linv[tid]
        lpg = W_lpg[tid]
        _local_neighbours(species, pair_j, pair_vec, pair_dist, p0, p1, n_el, est, W_fill[tid], loc, lv, ld, linv)
        _clear_derivatives(mode, p0, p1, pbase, D, lpg)
        w = dEdG[0]
        if mode == 2:
            w = dEdG[i - atom_begin]
        t1 = W_t1[tid]
        _radial_sfs(mode, ii, e, est, loc, lv, ld, linv, tables,
                    w, G, D, pbase, lpg, t1[0], t1[1], t1[2], t1[4], t1[5])
        if grp_n[e] > 0 and nn >= 2:
            RT = W_RT[tid]
            dRT = W_dRT[tid]
            _group_factors(e, nn, ld, tables, RT, dRT, t1[4], t1[5])
            for ea in range(n_el):
                for eb in range(ea, n_el):
                    blk = blk_id[e, ea, eb]
                    if blk < 0:
                        continue
                    _angular_block(mode, ii, ea, eb, est, loc, lv, linv, RT, dRT, w, G, D, pbase, lpg,
                                   blk, tables,
                                   W_alive[tid], W_ta[tid], W_tb[tid], t1[0], t1[1], t1[2], t1[3], t1[4], t1[5],
                                   W_Jm[tid], W_dJm[tid], W_Am[tid], W_dAm[tid], W_P[tid], W_WA[tid],
                                   W_WdA[tid], W_sv[tid], W_M[tid])
        if mode == 2:
            for a in range(nn):  # back from the local (sorted) order to the pair order
                PG[loc[a] - pbase] = lpg[a]
    return G, D, PG


@numba.njit(cache=True, error_model="numpy")
def _clear_derivatives(mode, p0, p1, pbase, D, lpg):
    """Zero one atom's rows of D (mode 1) or its local pair gradients (mode 2)."""
    if mode == 1:
        for p in range(p0, p1):
            for s in range(D.shape[1]):
                D[p - pbase, s, 0] = 0.0
                D[p - pbase, s, 1] = 0.0
                D[p - pbase, s, 2] = 0.0
    elif mode == 2:
        for a in range(p1 - p0):
            lpg[a, 0] = 0.0
            lpg[a, 1] = 0.0
            lpg[a, 2] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _work_sizes(tables, pair_start, atom_begin, atom_end):
    """(most groups, most kinds of an angular block, groups per element (>= 1), most neighbours
    of an atom in [atom_begin, atom_end)): the sizes of the per-thread work spaces."""
    mq = 1
    mk = 1
    for b_ in range(tables.blk_nq.shape[0]):
        mq = max(mq, tables.blk_nq[b_])
        mk = max(mk, tables.blk_nk[b_])
    mg = max(1, tables.grp_i.shape[1])
    nnmax = 1
    for i in range(atom_begin, atom_end):
        nnmax = max(nnmax, pair_start[i + 1] - pair_start[i])
    return mq, mk, mg, nnmax


@numba.njit(cache=True, error_model="numpy")
def _local_neighbours(species, pair_j, pair_vec, pair_dist, p0, p1, n_el, est, fill, loc, lv, ld, linv):
    """A local copy of the pairs p0..p1 of one atom sorted by neighbour element: est[k] is the
    first local index of element k (est[n_el] = number of neighbours), loc the pair indices,
    lv/ld/linv their vectors, distances and inverse distances."""
    for k in range(n_el + 1):
        est[k] = 0
    for p in range(p0, p1):
        est[species[pair_j[p]] + 1] += 1
    for k in range(n_el):
        est[k + 1] += est[k]
    for k in range(n_el):
        fill[k] = est[k]
    for p in range(p0, p1):
        ej = species[pair_j[p]]
        loc[fill[ej]] = p
        fill[ej] += 1
    for a in range(p1 - p0):
        p = loc[a]
        ld[a] = pair_dist[p]
        linv[a] = 1.0 / pair_dist[p]
        lv[a, 0] = pair_vec[p, 0]
        lv[a, 1] = pair_vec[p, 1]
        lv[a, 2] = pair_vec[p, 2]


@numba.njit(cache=True, error_model="numpy", parallel=True)
def contract_pair_gradients(pair_start, atom_begin, atom_end, D, dEdG):
    """pair_grad[p] = sum_s dEdG[i, s] D[p, s, :] for the pairs of atoms [atom_begin, atom_end).

    D rows are relative to pair_start[atom_begin]; dEdG rows to atom_begin."""
    pbase = pair_start[atom_begin]
    m = pair_start[atom_end] - pbase
    out = np.empty((m, 3))
    n_sf = D.shape[1]
    for ii in prange(atom_end - atom_begin):
        i = atom_begin + ii
        for p in range(pair_start[i] - pbase, pair_start[i + 1] - pbase):
            x = 0.0
            y = 0.0
            z = 0.0
            for s in range(n_sf):
                wgt = dEdG[ii, s]
                x += wgt * D[p, s, 0]
                y += wgt * D[p, s, 1]
                z += wgt * D[p, s, 2]
            out[p, 0] = x
            out[p, 1] = y
            out[p, 2] = z
    return out


@numba.njit(cache=True, error_model="numpy")
def forces_from_pair_gradients(n_atoms, pair_i, pair_j, pair_vec, pair_grad):
    """F_i = -dE/dr_i from per-pair gradients g_p = dE_i/dr_j (pair p = (i, j)).

    Returns forces (n_atoms, 3) and the virial W = -sum_p r_p (x) g_p (3, 3), so that the
    stress is -W / V (energy/length^3) with the sign convention of ASE.
    """
    F = np.zeros((n_atoms, 3))
    W = np.zeros((3, 3))
    for p in range(pair_j.shape[0]):
        i = pair_i[p]
        j = pair_j[p]
        for c in range(3):
            F[j, c] -= pair_grad[p, c]
            F[i, c] += pair_grad[p, c]
            for c2 in range(3):
                W[c, c2] -= pair_vec[p, c] * pair_grad[p, c2]
    return F, W
