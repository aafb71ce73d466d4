"""Forces of a batch from cached symmetry-function derivatives, as a torch autograd function.

With a_is = dE/dG_is (per atom i and symmetry function s) and the cached
D[p, s, :] = dG_is/dr_j for pair p = (i, j) (``SymmetryFunctionSet.compute(derivatives=True)``),

    g_p = Σ_s a[i_p, s] D[p, s, :],    F_i += g_p,  F_j -= g_p      (forward)
    dL/da[i, s] = Σ_{p: i_p = i} D[p, s, :] · (dL/dF_i - dL/dF_{j_p})  (backward)

D is stored compressed: pair p of elements (e_i, e_j) keeps only the columns of the SFs of
e_i that involve e_j (the others have dG_i/dr_j = 0), ~45 % of the entries for water.

F is linear in a, so the backward needs no graph of its own: training (loss on forces ->
dL/da -> through the double-backward graph of the networks -> weights) only needs this
vector-Jacobian product. The numba kernels loop over atoms in parallel and read each D
once per pass; D may be stored as float32 (sums are accumulated in float64).

Rows of ``a`` are the batch's atoms in any order (the trainer sorts them by element);
``Segment`` maps rows to the pair lists of a store (the persistent cache or a temporary
store of structures whose D is recomputed for this batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from numba import prange


@numba.njit(cache=True, parallel=True)
def _forces_kernel(a, rows, store_atom, jrow_base, local_rows, pair_start, pair_j, pair_type, cols, ncols, D,
                   buf_off, F):
    """Add the forces of the segment's rows to F (n_rows_total, 3) in place."""
    n = rows.shape[0]
    n_buf = buf_off[n]
    buf = np.empty((n_buf, 3))
    for q in prange(n):
        r = rows[q]
        sa = store_atom[q]
        p0 = pair_start[sa]
        p1 = pair_start[sa + 1]
        off = buf_off[q] - p0
        fx = 0.0
        fy = 0.0
        fz = 0.0
        for p in range(p0, p1):
            t = pair_type[p]
            gx = 0.0
            gy = 0.0
            gz = 0.0
            for c in range(ncols[t]):
                w = a[r, cols[t, c]]
                gx += w * D[p, c, 0]
                gy += w * D[p, c, 1]
                gz += w * D[p, c, 2]
            buf[off + p, 0] = gx
            buf[off + p, 1] = gy
            buf[off + p, 2] = gz
            fx += gx
            fy += gy
            fz += gz
        F[r, 0] += fx
        F[r, 1] += fy
        F[r, 2] += fz
    # scatter to the neighbours serially (a neighbour may be shared by many rows)
    for q in range(n):
        sa = store_atom[q]
        p0 = pair_start[sa]
        p1 = pair_start[sa + 1]
        off = buf_off[q] - p0
        base = jrow_base[q]
        for p in range(p0, p1):
            jr = local_rows[base + pair_j[p]]
            F[jr, 0] -= buf[off + p, 0]
            F[jr, 1] -= buf[off + p, 1]
            F[jr, 2] -= buf[off + p, 2]


@numba.njit(cache=True, parallel=True)
def _forces_vjp_kernel(gF, rows, store_atom, jrow_base, local_rows, pair_start, pair_j, pair_type, cols, ncols, D,
                       ga):
    """ga[r, s] += Σ_p D[p, s, :] · (gF[r] - gF[j_p]) for the segment's rows (in place)."""
    n = rows.shape[0]
    for q in prange(n):
        r = rows[q]
        sa = store_atom[q]
        base = jrow_base[q]
        gx0 = gF[r, 0]
        gy0 = gF[r, 1]
        gz0 = gF[r, 2]
        for p in range(pair_start[sa], pair_start[sa + 1]):
            jr = local_rows[base + pair_j[p]]
            dx = gx0 - gF[jr, 0]
            dy = gy0 - gF[jr, 1]
            dz = gz0 - gF[jr, 2]
            t = pair_type[p]
            for c in range(ncols[t]):
                ga[r, cols[t, c]] += D[p, c, 0] * dx + D[p, c, 1] * dy + D[p, c, 2] * dz


@dataclass
class Segment:
    """Rows of a batch whose pairs live in one store.

    rows : (m,) rows of ``a``; store_atom : (m,) index of each row's atom in the store's
    ``pair_start``; jrow_base : (m,) offset of the row's structure in ``local_rows``;
    pair_start : (n_store_atoms + 1,) CSR; pair_j : (n_store_pairs,) structure-local
    neighbour index; pair_type : (n_store_pairs,) element pair (e_i n_el + e_j) selecting the
    SF columns ``cols[t, :ncols[t]]`` that pair can change; D : (n_store_pairs, max_cols, 3)
    the derivatives of those columns (compressed: an SF of element e_i that does not involve
    element e_j has dG_i/dr_j = 0 and is not stored).
    """

    rows: np.ndarray
    store_atom: np.ndarray
    jrow_base: np.ndarray
    pair_start: np.ndarray
    pair_j: np.ndarray
    pair_type: np.ndarray
    cols: np.ndarray
    ncols: np.ndarray
    D: np.ndarray

    def __post_init__(self):
        counts = self.pair_start[self.store_atom + 1] - self.pair_start[self.store_atom]
        self.buf_off = np.zeros(len(self.rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.buf_off[1:])

    @property
    def n_pairs(self) -> int:
        return int(self.buf_off[-1])


@dataclass
class ForcePlan:
    """Everything needed to turn dE/dG of a batch into forces.

    n_rows : atoms in the batch; nsf_row : (n_rows,) SF count of each row's element;
    local_rows : maps (structure offset + structure-local atom index) -> row.
    """

    n_rows: int
    max_sf: int
    local_rows: np.ndarray
    segments: list[Segment]

    def forces(self, a: np.ndarray) -> np.ndarray:
        F = np.zeros((self.n_rows, 3))
        for sg in self.segments:
            if len(sg.rows):
                _forces_kernel(a, sg.rows, sg.store_atom, sg.jrow_base, self.local_rows, sg.pair_start, sg.pair_j,
                               sg.pair_type, sg.cols, sg.ncols, sg.D, sg.buf_off, F)
        return F

    def forces_vjp(self, gF: np.ndarray) -> np.ndarray:
        ga = np.zeros((self.n_rows, self.max_sf))
        for sg in self.segments:
            if len(sg.rows):
                _forces_vjp_kernel(gF, sg.rows, sg.store_atom, sg.jrow_base, self.local_rows, sg.pair_start,
                                   sg.pair_j, sg.pair_type, sg.cols, sg.ncols, sg.D, ga)
        return ga

    # ------------------------------------------------------------------ torch path
    def torch_pairs(self, device, dtype):
        """(row_i, row_j, col, D) of all pairs as tensors, for the pure-torch path (GPU).

        col : (n_pairs, max_cols) SF column of each stored derivative (padding: column 0
        with D = 0)."""
        ri, rj, cs, Ds = [], [], [], []
        for sg in self.segments:
            if not len(sg.rows):
                continue
            cnt = np.diff(sg.buf_off)
            starts = sg.pair_start[sg.store_atom]
            pidx = np.repeat(starts - sg.buf_off[:-1], cnt) + np.arange(sg.n_pairs)
            ri.append(np.repeat(sg.rows, cnt))
            rj.append(self.local_rows[np.repeat(sg.jrow_base, cnt) + sg.pair_j[pidx]])
            cs.append(sg.cols[sg.pair_type[pidx]])
            Ds.append(sg.D[pidx])
        if not ri:
            z = torch.zeros(0, dtype=torch.int64, device=device)
            return z, z, z.reshape(0, 1), torch.zeros((0, 1, 3), dtype=dtype, device=device)
        return (torch.as_tensor(np.concatenate(ri), device=device),
                torch.as_tensor(np.concatenate(rj), device=device),
                torch.as_tensor(np.concatenate(cs), device=device),
                torch.as_tensor(np.concatenate(Ds), device=device).to(dtype))


class _PairForces(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, plan: ForcePlan) -> torch.Tensor:  # noqa: D401
        ctx.plan = plan
        a_np = a.detach().cpu().numpy()
        F = plan.forces(np.ascontiguousarray(a_np, dtype=np.float64))
        return torch.from_numpy(F).to(device=a.device, dtype=a.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gF: torch.Tensor):
        ga = ctx.plan.forces_vjp(np.ascontiguousarray(gF.detach().cpu().numpy(), dtype=np.float64))
        return torch.from_numpy(ga).to(device=gF.device, dtype=gF.dtype), None


def batch_forces(a: torch.Tensor, plan: ForcePlan, backend: str = "numba", torch_pairs=None) -> torch.Tensor:
    """Forces (n_rows, 3) from a = dE/dG (n_rows, max_sf), differentiable w.r.t. a.

    backend "numba" (CPU kernels) or "torch" (index_add; runs on any device; ``torch_pairs``
    may pass precomputed ``plan.torch_pairs(...)``).
    """
    if backend == "numba":
        return _PairForces.apply(a, plan)
    row_i, row_j, col, D = torch_pairs if torch_pairs is not None else plan.torch_pairs(a.device, a.dtype)
    g = torch.einsum("ps,psc->pc", torch.gather(a[row_i], 1, col), D)
    F = torch.zeros((plan.n_rows, 3), dtype=a.dtype, device=a.device)
    return F.index_add(0, row_i, g).index_add(0, row_j, -g)
