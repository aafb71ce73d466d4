"""Typed parameter tables of the numba symmetry-function kernels (built by
``SymmetryFunctionSet``, read by ``hdnnp.descriptors.kernels``).

The column constants name the columns of the 2-D/3-D parameter arrays; ``KernelTables`` holds
all arrays under their names (a NamedTuple, which numba passes to compiled functions as one
typed argument).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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
