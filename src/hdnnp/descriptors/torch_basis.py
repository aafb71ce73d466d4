"""Torch evaluators of the radial factors R(d) and angular factors A(cos theta) of symmetry
functions, batched over lists of parameter sets (used by ``hdnnp.descriptors.torch_backend``).
Cutoff and core functions come from ``hdnnp.descriptors.cutoff``."""

from __future__ import annotations

import math

import numpy as np
import torch

from hdnnp.descriptors.cutoff import core_torch, cutoff_torch


def _int_power(p: torch.Tensor, n: int, cache: dict) -> torch.Tensor:
    """p**n for an integer n >= 1 by repeated squaring, reusing the squares in ``cache``."""
    result = None
    k = 1
    sq = p
    while n:
        if n & 1:
            result = sq if result is None else result * sq
        n >>= 1
        if n:
            k *= 2
            if k not in cache:
                cache[k] = sq * sq
            sq = cache[k]
    return result


class _RadialBasis:
    """Radial factors R_c(d) of a list of specs, evaluated together: d (N,) -> (C, N).

    Specs: ``("g", eta, r_s, r_c, cutoff_type, alpha)`` -> exp(-eta (d - r_s)^2) f_c(d);
    ``("c", r_l, r_c, core, asym)`` -> compact C_r(d) on (r_l, r_c) (0 outside). Gaussian
    columns share each distinct cutoff function; compact columns are evaluated per core.
    """

    def __init__(self, specs: list[tuple], device, dtype):
        self.n = len(specs)
        kw = dict(device=device, dtype=dtype)
        self.parts = []
        order = []
        g_idx = [c for c, s in enumerate(specs) if s[0] == "g"]
        if g_idx:
            cuts = []
            cmap = []
            for c in g_idx:
                key = tuple(specs[c][3:6])
                if key not in cuts:
                    cuts.append(key)
                cmap.append(cuts.index(key))
            eta = torch.tensor([specs[c][1] for c in g_idx], **kw)[:, None]
            rs = torch.tensor([specs[c][2] for c in g_idx], **kw)[:, None]
            same = len(cuts) == 1
            self.parts.append(("g", eta, rs, cuts, None if same else torch.tensor(cmap, device=device)))
            order += g_idx
        ckeys = sorted({(s[3], s[4]) for s in specs if s[0] == "c"})
        for core, asym in ckeys:
            idx = [c for c, s in enumerate(specs) if s[0] == "c" and (s[3], s[4]) == (core, asym)]
            rl = torch.tensor([specs[c][1] for c in idx], **kw)[:, None]
            rc = torch.tensor([specs[c][2] for c in idx], **kw)[:, None]
            center = torch.tensor([(specs[c][2] + specs[c][1]) / 2.0 for c in idx], **kw)[:, None]
            scale = torch.tensor([1.0 / ((specs[c][2] - specs[c][1]) / 2.0) for c in idx], **kw)[:, None]
            self.parts.append(("c", rl, rc, center, scale, core, asym))
            order += idx
        self.perm = None
        if order != list(range(self.n)):
            self.perm = torch.tensor(np.argsort(order), device=device)

    def __call__(self, d: torch.Tensor) -> torch.Tensor:
        outs = []
        dd = d[None, :]
        zero = torch.zeros((), dtype=d.dtype, device=d.device)
        for part in self.parts:
            if part[0] == "g":
                _, eta, rs, cuts, cmap = part
                x = dd - rs
                g = torch.exp(-eta * (x * x))
                if cmap is None:
                    fc = cutoff_torch(d, *cuts[0])[None, :]
                else:
                    fc = torch.stack([cutoff_torch(d, *c) for c in cuts], dim=0).index_select(0, cmap)
                outs.append(g * fc)
            else:
                _, rl, rc, center, scale, core, asym = part
                x = ((dd - center) * scale).abs()
                inside = (dd > rl) & (dd < rc) & (x < 1.0)
                x = torch.where(inside, x, zero)
                if asym:
                    x = (2.0 - x) * x
                outs.append(torch.where(inside, core_torch(x, core), zero))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
        return out if self.perm is None else out.index_select(0, self.perm)


class _AngularKinds:
    """Angular factors A_k(cos theta) of a list of kinds: cos (T,) -> (n_kinds, T).

    Kinds: ``("g", lambda, zeta)`` -> 2^(1-zeta) (1 + lambda cos)^zeta, 0 where 1 + lambda cos <= 0
    (integer zeta by repeated squaring); ``("c", left, right, core)`` (radians) -> compact
    C_a(theta) on (left, right), 0 for |cos| >= 1 (collinear triples are skipped).
    """

    def __init__(self, specs: list[tuple]):
        self.specs = []
        for s in specs:
            if s[0] == "g":
                lam, zeta = s[1], s[2]
                zint = int(round(zeta)) if zeta == round(zeta) else 0
                self.specs.append(("g", lam, zeta, zint, math.pow(2.0, 1.0 - zeta)))
            else:
                left, right, core = s[1], s[2], s[3]
                self.specs.append(("c", (right + left) / 2.0, 1.0 / ((right - left) / 2.0), core))
        self.n = len(self.specs)

    def __call__(self, cos: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros((), dtype=cos.dtype, device=cos.device)
        cols = []
        plam: dict = {}
        pows: dict = {}
        theta = None
        for s in self.specs:
            if s[0] == "g":
                _, lam, zeta, zint, pref = s
                if lam not in plam:
                    p = 1.0 + lam * cos
                    plam[lam] = torch.where(p > 0.0, p, zero)
                    pows[lam] = {}
                p = plam[lam]
                if zint >= 1:
                    a = _int_power(p, zint, pows[lam])
                else:
                    a = p ** zeta
                cols.append(a * pref if pref != 1.0 else a)
            else:
                _, center, scale, core = s
                if theta is None:
                    ok = (cos > -1.0) & (cos < 1.0)
                    theta = torch.acos(torch.where(ok, cos, zero))
                x = ((theta - center) * scale).abs()
                inside = ok & (x < 1.0)
                cols.append(torch.where(inside, core_torch(torch.where(inside, x, zero), core), zero))
        return torch.stack(cols, dim=0)
