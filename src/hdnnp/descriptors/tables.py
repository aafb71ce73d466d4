"""Typed parameter tables of the numba symmetry-function kernels (built by
``SymmetryFunctionSet``, read by ``hdnnp.descriptors.kernels``).

The column constants name the columns of the 2-D/3-D parameter arrays; ``KernelTables`` holds
all arrays under their names (a NamedTuple, which numba passes to compiled functions as one
typed argument).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hdnnp.descriptors.plan import GroupKey, KindKey
from hdnnp.descriptors.symmetry_functions import angle_radians

# columns of the per-SF float parameter table
P_ETA, P_RS, P_RC, P_LAMBDA, P_ZETA, P_PREF, P_RL, P_CR, P_SR, P_CA, P_SA, P_AL, P_AR, P_ALPHA = range(14)
N_FPARAM = 14
# columns of the per-SF int parameter table
I_TYPE, I_E1, I_E2, I_ZINT, I_CORE, I_ASYM, I_CUT = range(7)
N_IPARAM = 7

# radial groups of angular SFs: float / int columns
GF_ETA, GF_RS, GF_RC, GF_ALPHA, GF_RL, GF_CR, GF_SR = range(7)
N_GF = 7
GI_COMPACT, GI_CUT, GI_CORE, GI_ASYM, GI_NARROW = range(5)
N_GI = 5
# groups of one block (flat over blocks): int / float columns
QI_G, QI_NARROW, QI_COMPACT, QI_NEWFC, QI_CORE, QI_ASYM, QI_CUT, QI_E0, QI_E1 = range(9)
N_QI = 9
QF_C, QF_RC, QF_ETA, QF_RS, QF_RL, QF_CR, QF_SR, QF_ALPHA = range(8)
N_QF = 8
# angular kinds: float / int columns
KF_LAMBDA, KF_ZETA, KF_PREF, KF_AL, KF_AR, KF_CA, KF_SA = range(7)
N_KF = 7
KI_COMPACT, KI_ZINT, KI_CORE = range(3)
N_KI = 3


class KernelTables(NamedTuple):
    """All parameter arrays of the numba kernels (built by ``SymmetryFunctionSet``).

    Shapes: E elements, S = max SFs per element, R = max radial SFs per (element, neighbour
    element), NG = max radial groups per element, B blocks, Q group rows (all blocks), K kind rows
    (all blocks), N SF entries (all blocks). int arrays are int64, float arrays float64.
    """

    #: (E,) number of SFs per element
    n_sf: np.ndarray
    #: (E, S, N_IPARAM) per-SF integer parameters (columns I_*)
    iparams: np.ndarray
    #: (E, S, N_FPARAM) per-SF float parameters (columns P_*)
    fparams: np.ndarray
    #: (E, E, R) radial SFs of central element e seen by a neighbour of element a ...
    rad_idx: np.ndarray
    #: (E, E, R) ... their weights (Z_a for types 12/23, else 1) ...
    rad_coef: np.ndarray
    #: (E, E) ... and how many there are
    rad_cnt: np.ndarray
    #: (E,) radial groups of the angular SFs per element
    grp_n: np.ndarray
    #: (E, NG, N_GI) group integer parameters (columns GI_*)
    grp_i: np.ndarray
    #: (E, NG, N_GF) group float parameters (columns GF_*)
    grp_f: np.ndarray
    #: (E, E, E) block index of (central e, neighbour elements ea <= eb), -1 if none
    blk_id: np.ndarray
    #: (B,) first row of the block's groups in q_i/q_f
    blk_q0: np.ndarray
    #: (B,) number of the block's groups
    blk_nq: np.ndarray
    #: (B,) first row of the block's kinds in kind_i/kind_f
    blk_k0: np.ndarray
    #: (B,) number of the block's kinds
    blk_nk: np.ndarray
    #: (B,) first SF entry of the block in ent_*
    blk_e0: np.ndarray
    #: (B,) number of SF entries of the block
    blk_ne: np.ndarray
    #: (B,) flags: 1 some narrow group, 2 only narrow groups, 4 some compact kind
    blk_flag: np.ndarray
    #: (B,) largest cutoff of the narrow groups (0 if none)
    blk_rcn: np.ndarray
    #: (Q, N_QI) block group integer rows (columns QI_*)
    q_i: np.ndarray
    #: (Q, N_QF) block group float rows (columns QF_*), with the weight c
    q_f: np.ndarray
    #: (K, N_KI) angular kind integer rows (columns KI_*)
    kind_i: np.ndarray
    #: (K, N_KF) angular kind float rows (columns KF_*)
    kind_f: np.ndarray
    #: (N,) SF column of each entry
    ent_s: np.ndarray
    #: (N,) group (relative to the block's first) of each entry
    ent_q: np.ndarray
    #: (N,) kind (relative to the block's first) of each entry
    ent_k: np.ndarray


# ----------------------------------------------------------------------------- building
def build_kernel_tables(sf_set) -> KernelTables:
    """The kernels' tables of a ``SymmetryFunctionSet`` from its SF plan (``sf_set.plan``).

    Radial SFs: per-SF rows plus, per (central element, neighbour element), the SF list
    and its weight (Z_j for types 12/23, else 1). Angular SFs are split into radial
    groups (same per-neighbour factor R and narrowness) and angular kinds (same factor A),
    and listed per block (central element, neighbour elements ea <= eb) with the weight
    c = Z_a Z_b of weighted types folded into the block's group entry.
    """
    ne = len(sf_set.elements)
    plan = sf_set.plan
    ip, fp = _sf_rows(sf_set)
    rad_lists = [[plan.elements[e].radial.get(a, []) for a in range(ne)] for e in range(ne)]
    # radial groups in the kernels' order: (compact, r_cut, cutoff, ...), so that consecutive
    # groups share the cutoff function
    groups = [sorted((_numba_group(g) for g in plan.elements[e].groups)) for e in range(ne)]
    kinds = [_numba_kind(k) for k in plan.kinds]
    kind_index = {k: i for i, k in enumerate(plan.kinds)}
    # blocks[e][(ea, eb)] -> {(group, coef): [(s, kind)]}
    blocks = [{ab: {(_numba_group(g), c): [(s_, kind_index[k]) for s_, k in ents]
                    for (g, c), ents in blk.items()}
               for ab, blk in plan.elements[e].angular.items()} for e in range(ne)]
    rad_idx, rad_coef, rad_cnt = _radial_rows(rad_lists)
    grp_n, grp_i, grp_f = _group_rows(groups)
    kind_i, kind_f = _kind_rows(kinds)
    return _block_rows(ne, groups, kinds, kind_i, kind_f, blocks, KernelTables(
        n_sf=np.array([len(sf_set.functions[e]) for e in sf_set.elements], dtype=np.int64),
        iparams=ip, fparams=fp, rad_idx=rad_idx, rad_coef=rad_coef, rad_cnt=rad_cnt,
        grp_n=grp_n, grp_i=grp_i, grp_f=grp_f, **{f: None for f in KernelTables._fields[9:]}))


def _sf_rows(sf_set):
    """Per-SF parameter rows (iparams, fparams)."""
    ne = len(sf_set.elements)
    ms = sf_set.max_sf
    ip = np.zeros((ne, ms, N_IPARAM), dtype=np.int64)
    fp = np.zeros((ne, ms, N_FPARAM), dtype=np.float64)
    for e, el in enumerate(sf_set.elements):
        for s, sf in enumerate(sf_set.functions[el]):
            ip[e, s, I_TYPE] = sf.code
            ip[e, s, I_CUT] = sf.cutoff_type
            ip[e, s, I_CORE] = sf.core
            ip[e, s, I_ASYM] = int(sf.asymmetric)
            ip[e, s, I_ZINT] = _zeta_int(sf.zeta) if sf.angular and not sf.compact else -1
            fp[e, s, P_ETA] = sf.eta
            fp[e, s, P_RS] = sf.r_shift
            fp[e, s, P_RC] = sf.r_cut
            fp[e, s, P_LAMBDA] = sf.lambda_
            fp[e, s, P_ZETA] = sf.zeta
            fp[e, s, P_PREF] = math.pow(2.0, 1.0 - sf.zeta)
            fp[e, s, P_RL] = sf.r_low
            fp[e, s, P_ALPHA] = sf.cutoff_alpha
            if sf.compact:
                fp[e, s, P_CR] = (sf.r_cut + sf.r_low) / 2.0
                fp[e, s, P_SR] = 1.0 / ((sf.r_cut - sf.r_low) / 2.0)
                if sf.angular:
                    left, right = angle_radians(sf.angle_left), angle_radians(sf.angle_right)
                    fp[e, s, P_AL], fp[e, s, P_AR] = left, right
                    fp[e, s, P_CA] = (right + left) / 2.0
                    fp[e, s, P_SA] = 1.0 / ((right - left) / 2.0)
    return ip, fp


def _radial_rows(rad_lists):
    """rad_idx, rad_coef, rad_cnt from the radial SF lists [e][a] -> [(s, w)]."""
    ne = len(rad_lists)
    # radial tables
    mr = max(1, max(len(x) for r in rad_lists for x in r))
    rad_idx = np.zeros((ne, ne, mr), dtype=np.int64)
    rad_coef = np.zeros((ne, ne, mr), dtype=np.float64)
    rad_cnt = np.zeros((ne, ne), dtype=np.int64)
    for e in range(ne):
        for a in range(ne):
            lst = rad_lists[e][a]
            rad_cnt[e, a] = len(lst)
            for q, (s, c) in enumerate(lst):
                rad_idx[e, a, q], rad_coef[e, a, q] = s, c
    return rad_idx, rad_coef, rad_cnt


def _group_rows(groups):
    """grp_n, grp_i, grp_f from the sorted radial groups per element."""
    ne = len(groups)
    mg = max(1, max(len(g) for g in groups))
    grp_n = np.array([len(g) for g in groups], dtype=np.int64)
    grp_i = np.zeros((ne, mg, N_GI), dtype=np.int64)
    grp_f = np.zeros((ne, mg, N_GF), dtype=np.float64)
    for e in range(ne):
        for g, (comp, rc, cut, alpha, eta, rs_or_rl, core, asym, narrow) in enumerate(groups[e]):
            grp_i[e, g] = (comp, cut, core, asym, narrow)
            grp_f[e, g, GF_RC] = rc
            if comp:
                rl = rs_or_rl
                grp_f[e, g, GF_RL] = rl
                grp_f[e, g, GF_CR] = (rc + rl) / 2.0
                grp_f[e, g, GF_SR] = 1.0 / ((rc - rl) / 2.0)
            else:
                grp_f[e, g, GF_ETA] = eta
                grp_f[e, g, GF_RS] = rs_or_rl
                grp_f[e, g, GF_ALPHA] = alpha
    return grp_n, grp_i, grp_f


def _kind_rows(kinds):
    """kind_i, kind_f (all kinds) from the kinds' row sources."""
    nk_all = max(1, len(kinds))
    kind_i = np.zeros((nk_all, N_KI), dtype=np.int64)
    kind_f = np.zeros((nk_all, N_KF), dtype=np.float64)
    for k, (comp, lam, zeta, zint, pref, al, ar, ca, sa, core) in enumerate(kinds):
        kind_i[k] = (comp, zint, core)
        kind_f[k] = (lam, zeta, pref, al, ar, ca, sa)
    return kind_i, kind_f


def _block_rows(ne, groups, kinds, kind_i, kind_f, blocks, tables: KernelTables) -> KernelTables:
    """The block tables (blk_*, q_*, per-block kind rows, ent_*) added to ``tables``."""
    # blocks (e, ea <= eb): their groups (with weight), kinds and SF entries, flat
    blk_id = -np.ones((ne, ne, ne), dtype=np.int64)
    blk_rows = []  # q0, nq, k0, nk, e0, ne, flag, rcn
    q_rows_i, q_rows_f, k_rows_i, k_rows_f = [], [], [], []
    ent = []  # (s, q, k)
    for e in range(ne):
        for (a, b), blk in sorted(blocks[e].items()):
            klist = sorted({k for ents in blk.values() for _, k in ents})
            keys = sorted(blk, key=lambda gc: (groups[e].index(gc[0]), gc[1]))
            q0, k0, e0 = len(q_rows_i), len(k_rows_i), len(ent)
            prev_fc = None
            narrow_rc = []
            for q, (gkey, coef) in enumerate(keys):
                comp, rc, cut, alpha, eta, rs_or_rl, core, asym, narrow = gkey
                newfc = 0
                if narrow and not comp:
                    newfc = int((rc, cut, alpha) != prev_fc)
                    prev_fc = (rc, cut, alpha)
                if narrow:
                    narrow_rc.append(rc)
                row_f = np.zeros(N_QF)
                row_f[QF_C], row_f[QF_RC] = coef, rc
                if comp:
                    row_f[QF_RL] = rs_or_rl
                    row_f[QF_CR] = (rc + rs_or_rl) / 2.0
                    row_f[QF_SR] = 1.0 / ((rc - rs_or_rl) / 2.0)
                else:
                    row_f[QF_ETA], row_f[QF_RS], row_f[QF_ALPHA] = eta, rs_or_rl, alpha
                q_rows_f.append(row_f)
                qe0 = len(ent)
                for s_, k in blk[(gkey, coef)]:
                    ent.append((s_, q, klist.index(k)))
                q_rows_i.append((groups[e].index(gkey), narrow, comp, newfc, core, asym, cut, qe0, len(ent)))
            for k in klist:
                k_rows_i.append(kind_i[k])
                k_rows_f.append(kind_f[k])
            flag = (1 if narrow_rc else 0) | (2 if len(narrow_rc) == len(keys) else 0) \
                | (4 if any(kinds[k][0] == 1 for k in klist) else 0)
            blk_id[e, a, b] = len(blk_rows)
            blk_rows.append((q0, len(keys), k0, len(klist), e0, len(ent) - e0, flag,
                             max(narrow_rc) if narrow_rc else 0.0))
    nb = max(1, len(blk_rows))
    brow = np.zeros((nb, 8))
    if blk_rows:
        brow[: len(blk_rows)] = np.array(blk_rows, dtype=np.float64)
    bi = brow[:, :7].astype(np.int64)
    q_i = np.array(q_rows_i, dtype=np.int64).reshape(-1, N_QI)
    q_f = np.array(q_rows_f, dtype=np.float64).reshape(-1, N_QF)
    k_i = np.array(k_rows_i, dtype=np.int64).reshape(-1, N_KI)
    k_f = np.array(k_rows_f, dtype=np.float64).reshape(-1, N_KF)
    ent_a = np.array(ent, dtype=np.int64).reshape(-1, 3)
    blk_cols = [np.ascontiguousarray(bi[:, c]) for c in range(7)]
    return tables._replace(
        blk_id=blk_id, blk_q0=blk_cols[0], blk_nq=blk_cols[1], blk_k0=blk_cols[2], blk_nk=blk_cols[3],
        blk_e0=blk_cols[4], blk_ne=blk_cols[5], blk_flag=blk_cols[6], blk_rcn=np.ascontiguousarray(brow[:, 7]),
        q_i=q_i, q_f=q_f, kind_i=k_i, kind_f=k_f,
        ent_s=np.ascontiguousarray(ent_a[:, 0]), ent_q=np.ascontiguousarray(ent_a[:, 1]),
        ent_k=np.ascontiguousarray(ent_a[:, 2]),
    )


def _zeta_int(zeta: float) -> int:
    """zeta as an int when it is one (the kernels then use integer powers), else -1."""
    return int(round(zeta)) if abs(zeta - round(zeta)) <= 2.2250738585072014e-308 else -1


def _numba_group(g: GroupKey) -> tuple:
    """A radial group as the kernels' sort key and row source
    (compact, r_cut, cutoff, alpha, eta, r_shift or r_low, core, asym, narrow)."""
    if g.compact:
        return (1, g.r_cut, 0, 0.0, 0.0, g.r_low, int(g.core), int(g.asymmetric), int(g.narrow))
    return (0, g.r_cut, g.cutoff_type, g.cutoff_alpha, g.eta, g.r_shift, 0, 0, int(g.narrow))


def _numba_kind(k: KindKey) -> tuple:
    """An angular kind as the kernels' row source (compact, lambda, zeta, zint, 2^(1-zeta),
    left, right, center, 1/half-width, core)."""
    if k.compact:
        return (1, 0.0, 0.0, 0, 0.0, k.left, k.right, (k.right + k.left) / 2.0, 1.0 / ((k.right - k.left) / 2.0),
                int(k.core))
    return (0, k.lambda_, k.zeta, _zeta_int(k.zeta), math.pow(2.0, 1.0 - k.zeta), 0.0, 0.0, 0.0, 0.0, 0)
