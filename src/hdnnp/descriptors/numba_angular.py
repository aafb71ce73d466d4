"""Numba kernels, angular part: the angular SFs of one atom for one block of neighbour elements
(types 3, 9, 13, 21, 22, 24, 25), processed as lists of triplets (see ``hdnnp.descriptors.kernels``
for the organisation)."""

from __future__ import annotations

import math

import numba
import numpy as np

from hdnnp.descriptors.cutoff import core_value_derivative as _core
from hdnnp.descriptors.cutoff import cutoff_vec as _cutoff_vec
from hdnnp.descriptors.numba_math import _FASTMATH, _acos, _exp, _ipow
from hdnnp.descriptors.numba_radial import _compact
from hdnnp.descriptors.tables import (
    KF_CA, KF_LAMBDA, KF_PREF, KF_SA, KF_ZETA, KI_COMPACT, KI_CORE, KI_ZINT,
    QF_ALPHA, QF_C, QF_CR, QF_ETA, QF_RC, QF_RL, QF_RS, QF_SR, QI_ASYM, QI_COMPACT, QI_CORE, QI_CUT,
    QI_E0, QI_E1, QI_G, QI_NARROW, QI_NEWFC,
)


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gaussian_rjk(n, djk, rs, eta, rc, fc, dfc, J, dJ):
    """J = exp(-eta (r_jk - r_s)^2) f_c(r_jk) and dJ/dr_jk (0 for r_jk >= r_c), n values."""
    for t in range(n):
        d = djk[t]
        x = d - rs
        gg = _exp(-eta * x * x)
        inside = d < rc
        J[t] = gg * fc[t] if inside else 0.0
        dJ[t] = gg * (dfc[t] - 2.0 * eta * x * fc[t]) if inside else 0.0


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _gaussian_kind(n, cosv, lam, zeta, pref, zi, A, dA):
    """A = 2^(1-zeta) (1 + lambda cos)^zeta and dA/dcos (0 where 1 + lambda cos <= 0), n values."""
    if zi == 1:
        for t in range(n):
            plam = 1.0 + lam * cosv[t]
            pos = plam > 0.0
            A[t] = pref * plam if pos else 0.0
            dA[t] = pref * zeta * lam if pos else 0.0
    elif zi >= 0:
        for t in range(n):
            plam = 1.0 + lam * cosv[t]
            if plam <= 0.0:
                A[t] = 0.0
                dA[t] = 0.0
            else:
                pm1 = _ipow(plam, zi - 1)
                A[t] = pref * pm1 * plam
                dA[t] = pref * zeta * lam * pm1
    else:
        for t in range(n):
            plam = 1.0 + lam * cosv[t]
            if plam <= 0.0:
                A[t] = 0.0
                dA[t] = 0.0
            else:
                pm1 = plam ** (zeta - 1.0)
                A[t] = pref * pm1 * plam
                dA[t] = pref * zeta * lam * pm1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _compact_kind_core(n, theta, isin, center, scale, core, A, dA):
    for t in range(n):
        # inside the window (left, right) <=> |theta - center| * scale < 1
        u = (theta[t] - center) * scale
        x = abs(u)
        inside = x < 1.0
        x = x if inside else 0.0
        f, df = _core(x, core)
        A[t] = f if inside else 0.0
        dA[t] = -(df * (scale if u >= 0.0 else -scale)) * isin[t] if inside else 0.0


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _compact_kind(n, theta, isin, center, scale, core, A, dA):
    """Compact angular factor C_a(theta) and dC_a/dcos = -C_a'(theta) / sin(theta), n values.

    One loop per core type so that every loop is branch-free (vectorisable)."""
    if core == 1:
        _compact_kind_core(n, theta, isin, center, scale, 1, A, dA)
    elif core == 2:
        _compact_kind_core(n, theta, isin, center, scale, 2, A, dA)
    elif core == 3:
        _compact_kind_core(n, theta, isin, center, scale, 3, A, dA)
    elif core == 4:
        _compact_kind_core(n, theta, isin, center, scale, 4, A, dA)
    else:
        _compact_kind_core(n, theta, isin, center, scale, 5, A, dA)



@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _flush(mode, n, ta, tb, loc, lv, linv, RT, dRT, G, ii, D, pbase, lpg,
           q0, nq, k0, nk, flag, tables,
           cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M):
    """Process a list of n triplets (neighbour pairs ta[t] < tb[t] of one block).

    Every step is a loop over the list (long, branch-free: vectorised): cos theta, r_jk and the
    r_jk factors J of narrow groups, angular factors of the kinds, then
    mode 0/1: M[k, q] += sum_t A_k P_q with P_q = c_q R_q(a) R_q(b) J_q;
    mode 2: with W = M (c_q dE/dG summed over the SFs of (k, q)), WA_q = sum_k W_kq A_k and
    WdA_q = sum_k W_kq dA_k, the four derivatives of sum_s w_s G_s w.r.t. cos, r_ij, r_ik, r_jk
    of every triplet, turned into gradients on the two pairs.

    Kept as one function (~200 lines): it is the kernels' innermost hot loop, its steps share
    a dozen per-triplet work arrays that helpers would all have to take as arguments, and the
    three modes share the first steps (cos, r_jk, J, A). Measured (issue 10): split into seven
    helpers (also with ``inline="always"``, also with only the mode-1/mode-2 tails moved out and
    the chain rule to the pair vectors shared), dG/dr and the mode-2 pair gradients change in the
    last bit (up to 7e-18 in D, 3.5e-17 in H2O forces): with fastmath reassociation and
    contraction LLVM rounds the split code differently, so the split was not kept.
    """
    q_i = tables.q_i
    q_f = tables.q_f
    kind_i = tables.kind_i
    kind_f = tables.kind_f
    ent_s = tables.ent_s
    ent_k = tables.ent_k
    narrow = (flag & 1) != 0
    narrow_only = (flag & 2) != 0
    compact_kinds = (flag & 4) != 0
    for t in range(n):
        a = ta[t]
        b = tb[t]
        cosv[t] = (lv[a, 0] * lv[b, 0] + lv[a, 1] * lv[b, 1] + lv[a, 2] * lv[b, 2]) * linv[a] * linv[b]
    if narrow:
        if narrow_only:  # the list step stored r_jk^2
            for t in range(n):
                djkv[t] = math.sqrt(djkv[t])
        else:
            for t in range(n):
                a = ta[t]
                b = tb[t]
                wx = lv[b, 0] - lv[a, 0]
                wy = lv[b, 1] - lv[a, 1]
                wz = lv[b, 2] - lv[a, 2]
                djkv[t] = math.sqrt(wx * wx + wy * wy + wz * wz)
        # r_jk factors of the narrow groups (consecutive groups sharing a cutoff share f_c)
        for q in range(nq):
            qq = q0 + q
            if q_i[qq, QI_NARROW] == 0:
                continue
            rc = q_f[qq, QF_RC]
            if q_i[qq, QI_COMPACT] != 0:
                rl = q_f[qq, QF_RL]
                cr = q_f[qq, QF_CR]
                sr = q_f[qq, QF_SR]
                core = q_i[qq, QI_CORE]
                asym = q_i[qq, QI_ASYM] != 0
                for t in range(n):
                    djk = djkv[t]
                    if djk <= rl or djk >= rc:
                        Jm[q, t] = 0.0
                        dJm[q, t] = 0.0
                    else:
                        Jm[q, t], dJm[q, t] = _compact(djk, cr, sr, core, asym)
            else:
                if q_i[qq, QI_NEWFC] != 0:
                    _cutoff_vec(n, djkv, rc, q_i[qq, QI_CUT], q_f[qq, QF_ALPHA], fcv, dfcv)
                _gaussian_rjk(n, djkv, q_f[qq, QF_RS], q_f[qq, QF_ETA], rc, fcv, dfcv, Jm[q], dJm[q])
    # angular factors per kind
    if compact_kinds:
        for t in range(n):
            c = cosv[t]
            # collinear (|cos| >= 1): compact kinds give nothing (n2p2 skips the triplet)
            inside = -1.0 < c < 1.0
            cc = c if inside else 0.0
            theta[t] = _acos(cc) if inside else 1e300
            isin[t] = 1.0 / math.sqrt(1.0 - cc * cc) if inside else 0.0
    for k in range(nk):
        kk = k0 + k
        if kind_i[kk, KI_COMPACT] == 0:
            _gaussian_kind(n, cosv, kind_f[kk, KF_LAMBDA], kind_f[kk, KF_ZETA], kind_f[kk, KF_PREF],
                           kind_i[kk, KI_ZINT], Am[k], dAm[k])
        else:
            _compact_kind(n, theta, isin, kind_f[kk, KF_CA], kind_f[kk, KF_SA], kind_i[kk, KI_CORE],
                          Am[k], dAm[k])
    if mode != 2:
        # P_q = c_q R_q(a) R_q(b) J_q and M[k, q] += sum_t A_k P_q
        for q in range(nq):
            qq = q0 + q
            g = q_i[qq, QI_G]
            c = q_f[qq, QF_C]
            if q_i[qq, QI_NARROW] != 0:
                for t in range(n):
                    P[q, t] = c * RT[g, ta[t]] * RT[g, tb[t]] * Jm[q, t]
            else:
                for t in range(n):
                    P[q, t] = c * RT[g, ta[t]] * RT[g, tb[t]]
            for k in range(nk):
                acc = 0.0
                for t in range(n):
                    acc += Am[k, t] * P[q, t]
                M[k, q] += acc
    if mode == 2:
        for t in range(n):
            sv[0, t] = 0.0
            sv[1, t] = 0.0
            sv[2, t] = 0.0
            sv[3, t] = 0.0
        for q in range(nq):
            for t in range(n):
                WA[q, t] = 0.0
                WdA[q, t] = 0.0
            for k in range(nk):
                m = M[k, q]
                if m != 0.0:
                    for t in range(n):
                        WA[q, t] += m * Am[k, t]
                        WdA[q, t] += m * dAm[k, t]
            qq = q0 + q
            g = q_i[qq, QI_G]
            if q_i[qq, QI_NARROW] != 0:
                for t in range(n):
                    ra = RT[g, ta[t]]
                    rb = RT[g, tb[t]]
                    J = Jm[q, t]
                    wa = WA[q, t]
                    rbj = rb * J
                    sv[0, t] += ra * rbj * WdA[q, t]            # d/dcos
                    sv[1, t] += dRT[g, ta[t]] * rbj * wa        # d/dr_ij
                    sv[2, t] += ra * dRT[g, tb[t]] * J * wa     # d/dr_ik
                    sv[3, t] += ra * rb * dJm[q, t] * wa        # d/dr_jk
            else:
                for t in range(n):
                    ra = RT[g, ta[t]]
                    rb = RT[g, tb[t]]
                    wa = WA[q, t]
                    sv[0, t] += ra * rb * WdA[q, t]
                    sv[1, t] += dRT[g, ta[t]] * rb * wa
                    sv[2, t] += ra * dRT[g, tb[t]] * wa
        for t in range(n):
            a = ta[t]
            b = tb[t]
            ia = linv[a]
            ib = linv[b]
            vax = lv[a, 0]
            vay = lv[a, 1]
            vaz = lv[a, 2]
            vbx = lv[b, 0]
            vby = lv[b, 1]
            vbz = lv[b, 2]
            c = cosv[t]
            s_cos = sv[0, t]
            ga = (sv[1, t] - s_cos * c * ia) * ia
            gb = (sv[2, t] - s_cos * c * ib) * ib
            ca = s_cos * ia * ib
            cj = sv[3, t] / djkv[t] if narrow else 0.0
            wx = vbx - vax
            wy = vby - vay
            wz = vbz - vaz
            lpg[a, 0] += ga * vax + ca * vbx - cj * wx
            lpg[a, 1] += ga * vay + ca * vby - cj * wy
            lpg[a, 2] += ga * vaz + ca * vbz - cj * wz
            lpg[b, 0] += gb * vbx + ca * vax + cj * wx
            lpg[b, 1] += gb * vby + ca * vay + cj * wy
            lpg[b, 2] += gb * vbz + ca * vaz + cj * wz
    elif mode == 1:
        for t in range(n):
            a = ta[t]
            b = tb[t]
            pa = loc[a] - pbase
            pb = loc[b] - pbase
            ia = linv[a]
            ib = linv[b]
            vax = lv[a, 0]
            vay = lv[a, 1]
            vaz = lv[a, 2]
            vbx = lv[b, 0]
            vby = lv[b, 1]
            vbz = lv[b, 2]
            wx = vbx - vax
            wy = vby - vay
            wz = vbz - vaz
            c = cosv[t]
            idjk = 1.0 / djkv[t] if narrow else 0.0
            for q in range(nq):
                qq = q0 + q
                g = q_i[qq, QI_G]
                cq = q_f[qq, QF_C]
                ra = RT[g, a]
                rb = RT[g, b]
                J = 1.0
                dJ = 0.0
                if q_i[qq, QI_NARROW] != 0:
                    J = Jm[q, t]
                    dJ = dJm[q, t]
                ta_ = cq * dRT[g, a] * rb * J
                tb_ = cq * ra * dRT[g, b] * J
                tj_ = cq * ra * rb * dJ * idjk
                pq = P[q, t]
                if ta_ == 0.0 and tb_ == 0.0 and tj_ == 0.0 and pq == 0.0:
                    continue
                for en in range(q_i[qq, QI_E0], q_i[qq, QI_E1]):
                    s = ent_s[en]
                    k = ent_k[en]
                    ak = Am[k, t]
                    t_cos = dAm[k, t] * pq
                    ga = (ak * ta_ - t_cos * c * ia) * ia
                    gb = (ak * tb_ - t_cos * c * ib) * ib
                    ca = t_cos * ia * ib
                    cj = ak * tj_
                    D[pa, s, 0] += ga * vax + ca * vbx - cj * wx
                    D[pa, s, 1] += ga * vay + ca * vby - cj * wy
                    D[pa, s, 2] += ga * vaz + ca * vbz - cj * wz
                    D[pb, s, 0] += gb * vbx + ca * vax + cj * wx
                    D[pb, s, 1] += gb * vby + ca * vay + cj * wy
                    D[pb, s, 2] += gb * vbz + ca * vaz + cj * wz


@numba.njit(cache=True, error_model="numpy", fastmath=_FASTMATH)
def _angular_block(mode, ii, ea, eb, est, loc, lv, linv, RT, dRT, w, G, D, pbase, lpg,
                   blk, tables,
                   alive, ta, tb, cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M):
    """Angular SFs of one atom for one block ``blk`` of neighbour elements (ea <= eb).

    The triplets (a, b) (a of element ea, b of element eb, a < b) that can contribute are listed
    (both neighbours inside the support of some group; for purely narrow blocks also r_jk below
    the largest cutoff) and processed in chunks of the list capacity by ``_flush``.
    """
    q0 = tables.blk_q0[blk]
    nq = tables.blk_nq[blk]
    k0 = tables.blk_k0[blk]
    nk = tables.blk_nk[blk]
    e0 = tables.blk_e0[blk]
    ne_ = tables.blk_ne[blk]
    flag = tables.blk_flag[blk]
    rcn = tables.blk_rcn[blk]
    q_i = tables.q_i
    q_f = tables.q_f
    ent_s = tables.ent_s
    ent_q = tables.ent_q
    ent_k = tables.ent_k
    narrow_only = (flag & 2) != 0
    rcn2 = rcn * rcn
    cap = ta.shape[0]
    for a in range(est[ea], est[ea + 1]):
        al = False
        for q in range(nq):
            g = q_i[q0 + q, QI_G]
            if RT[g, a] != 0.0 or dRT[g, a] != 0.0:
                al = True
        alive[a] = al
    if eb != ea:
        for a in range(est[eb], est[eb + 1]):
            al = False
            for q in range(nq):
                g = q_i[q0 + q, QI_G]
                if RT[g, a] != 0.0 or dRT[g, a] != 0.0:
                    al = True
            alive[a] = al
    for k in range(nk):
        for q in range(nq):
            M[k, q] = 0.0
    if mode == 2:
        # W[k, q] = sum over the SFs s of (q, k) of c_q dE/dG_s, kept in M
        for en in range(e0, e0 + ne_):
            q = ent_q[en]
            M[ent_k[en], q] += w[ent_s[en]] * q_f[q0 + q, QF_C]
    n = 0
    bend = est[eb + 1]
    for a in range(est[ea], est[ea + 1]):
        if not alive[a]:
            continue
        vax = lv[a, 0]
        vay = lv[a, 1]
        vaz = lv[a, 2]
        b0 = a + 1 if ea == eb else est[eb]
        while b0 < bend:
            if n == cap:
                _flush(mode, np.int64(n), ta, tb, loc, lv, linv, RT, dRT, G, ii, D, pbase, lpg,
                       q0, nq, k0, nk, flag, tables,
                       cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M)
                n = 0
            b1 = min(bend, b0 + cap - n)  # candidates that fit in the list
            if narrow_only:
                for b in range(b0, b1):
                    wx = lv[b, 0] - vax
                    wy = lv[b, 1] - vay
                    wz = lv[b, 2] - vaz
                    d2 = wx * wx + wy * wy + wz * wz
                    ta[n] = a
                    tb[n] = b
                    djkv[n] = d2
                    n += 1 if (alive[b] and d2 < rcn2) else 0
            else:
                for b in range(b0, b1):
                    ta[n] = a
                    tb[n] = b
                    n += 1 if alive[b] else 0
            b0 = b1
    if n > 0:
        _flush(mode, np.int64(n), ta, tb, loc, lv, linv, RT, dRT, G, ii, D, pbase, lpg,
               q0, nq, k0, nk, flag, tables,
               cosv, djkv, theta, isin, fcv, dfcv, Jm, dJm, Am, dAm, P, WA, WdA, sv, M)
    if mode != 2:
        for en in range(e0, e0 + ne_):
            G[ii, ent_s[en]] += M[ent_k[en], ent_q[en]]


#: capacity of the triplet lists processed at once (their work arrays should stay in cache)
TRIPLET_CHUNK = 512
