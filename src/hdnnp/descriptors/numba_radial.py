"""Numba kernels, radial part: radial SFs (types 2, 12, 20, 23) of one atom and the per-neighbour
radial factors R of the radial groups of angular SFs (see ``hdnnp.descriptors.kernels``)."""

from __future__ import annotations

import numba
import numpy as np

from hdnnp.descriptors.cutoff import core_value_derivative as _core
from hdnnp.descriptors.cutoff import cutoff_vec as _cutoff_vec
from hdnnp.descriptors.numba_math import _FASTMATH, _exp
from hdnnp.descriptors.tables import (
    GF_ALPHA, GF_CR, GF_ETA, GF_RC, GF_RL, GF_RS, GF_SR, GI_ASYM, GI_COMPACT, GI_CORE, GI_CUT,
    I_ASYM, I_CORE, I_CUT, I_TYPE, P_ALPHA, P_CR, P_ETA, P_RC, P_RL, P_RS, P_SR,
)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _compact(a, center, scale, core, asym):
    """Compact function on [left, right] = center -/+ 1/scale: value and d/da."""
    u = (a - center) * scale
    x = abs(u)
    if asym:
        f, df = _core((2.0 - x) * x, core)
        df *= 2.0 - 2.0 * x
    else:
        f, df = _core(x, core)
    return f, df * (scale if u >= 0.0 else -scale)

@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _gaussian_radial(n, d, rs, eta, fc, dfc, v, dv):
    """v[t] = exp(-eta (d[t] - r_s)^2) f_c[t] and dv[t] = dv/dd, t < n (fc, dfc: cutoff values)."""
    for t in range(n):
        x = d[t] - rs
        g = _exp(-eta * x * x)
        v[t] = g * fc[t]
        dv[t] = g * (dfc[t] - 2.0 * eta * x * fc[t])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _cutoff_cached(n, d, rc, cut, alpha, last, fc, dfc):
    """fc[t], dfc[t] = cutoff value and derivative at d[t], t < n, unless ``last`` == (rc, cut,
    alpha) says they are there already (consecutive SFs/groups share a cutoff); returns the new key."""
    if rc != last[0] or cut != last[1] or alpha != last[2]:
        _cutoff_vec(n, d, rc, cut, alpha, fc, dfc)
    return (rc, cut, alpha)


@numba.njit(cache=True, error_model="numpy")
def _compact_radial(n, d, rl, rc, center, scale, core, asym, f, df):
    """Compact radial function C_r(d[t]) on (rl, rc) and its derivative (0 outside), t < n
    (per pair, not per triplet: a plain loop is fast enough)."""
    for t in range(n):
        if d[t] <= rl or d[t] >= rc:
            f[t] = 0.0
            df[t] = 0.0
        else:
            f[t], df[t] = _compact(d[t], center, scale, core, asym)


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _radial_sfs(mode, ii, e, est, loc, lv, ld, linv, tables,
                w, G, D, pbase, lpg, tv, tdv, acc, fcv, dfcv):
    """Radial SFs of one atom (types 2, 12, 20, 23); neighbours in element order.

    Per SF, one loop over the neighbours of its element; consecutive SFs with the same cutoff
    share the cutoff values (fcv, dfcv). tv, tdv, acc: work arrays (>= neighbour count)."""
    iparams = tables.iparams
    fparams = tables.fparams
    rad_idx = tables.rad_idx
    rad_coef = tables.rad_coef
    rad_cnt = tables.rad_cnt
    n_el = rad_cnt.shape[0]
    for ej in range(n_el):
        cnt = rad_cnt[e, ej]
        a0 = est[ej]
        nb = est[ej + 1] - a0
        if cnt == 0 or nb == 0:
            continue
        # views of this element's neighbours, indexed from 0
        d = ld[a0:a0 + nb]
        v = tv[:nb]
        dv = tdv[:nb]
        ac = acc[:nb]
        fc = fcv[:nb]
        dfc = dfcv[:nb]
        if mode == 2:
            for t in range(nb):
                ac[t] = 0.0
        last = (-1.0, np.int64(-1), -1.0)  # (r_c, type, alpha) of the cutoff values in fc, dfc
        for q in range(cnt):
            s = rad_idx[e, ej, q]
            rc = fparams[e, s, P_RC]
            c = rad_coef[e, ej, q]
            if iparams[e, s, I_TYPE] >= 20:
                _compact_radial(nb, d, fparams[e, s, P_RL], rc, fparams[e, s, P_CR], fparams[e, s, P_SR],
                                iparams[e, s, I_CORE], iparams[e, s, I_ASYM] != 0, v, dv)
            else:
                last = _cutoff_cached(nb, d, rc, iparams[e, s, I_CUT], fparams[e, s, P_ALPHA], last, fc, dfc)
                _gaussian_radial(nb, d, fparams[e, s, P_RS], fparams[e, s, P_ETA], fc, dfc, v, dv)
            if mode == 2:
                ws = w[s] * c
                for t in range(nb):
                    ac[t] += ws * dv[t]
                continue
            tot = 0.0
            for t in range(nb):
                tot += v[t]
            G[ii, s] += tot * c
            if mode == 1:
                for t in range(nb):
                    a = a0 + t
                    f = dv[t] * c * linv[a]
                    pp = loc[a] - pbase
                    D[pp, s, 0] += f * lv[a, 0]
                    D[pp, s, 1] += f * lv[a, 1]
                    D[pp, s, 2] += f * lv[a, 2]
        if mode == 2:
            for t in range(nb):
                a = a0 + t
                f = ac[t] * linv[a]
                lpg[a, 0] += f * lv[a, 0]
                lpg[a, 1] += f * lv[a, 1]
                lpg[a, 2] += f * lv[a, 2]


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _group_factors(e, nn, ld, tables, RT, dRT, fcv, dfcv):
    """RT[g, a], dRT[g, a]: radial factor of group g at neighbour a (0 outside its support);
    groups sorted by cutoff share the cutoff values."""
    grp_i = tables.grp_i
    grp_f = tables.grp_f
    last = (-1.0, np.int64(-1), -1.0)  # (r_c, type, alpha) of the cutoff values in fcv, dfcv
    for g in range(tables.grp_n[e]):
        rc = grp_f[e, g, GF_RC]
        if grp_i[e, g, GI_COMPACT] != 0:
            _compact_radial(nn, ld, grp_f[e, g, GF_RL], rc, grp_f[e, g, GF_CR], grp_f[e, g, GF_SR],
                            grp_i[e, g, GI_CORE], grp_i[e, g, GI_ASYM] != 0, RT[g], dRT[g])
            continue
        last = _cutoff_cached(nn, ld, rc, grp_i[e, g, GI_CUT], grp_f[e, g, GF_ALPHA], last, fcv, dfcv)
        _gaussian_radial(nn, ld, grp_f[e, g, GF_RS], grp_f[e, g, GF_ETA], fcv, dfcv, RT[g], dRT[g])

