"""Typed parameter tables of the numba symmetry-function kernels (built by
``SymmetryFunctionSet``, read by ``hdnnp.descriptors.kernels``).

The column constants name the columns of the 2-D/3-D parameter arrays; ``KernelTables`` holds
all arrays under their names (a NamedTuple, which numba passes to compiled functions as one
typed argument).
"""

from __future__ import annotations

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
