"""Matrix-free charge equilibration (4G): preconditioned conjugate gradients with a fast A·q.

The dense path (``Electrostatics.energy_and_surrogate``) builds the N x N Qeq matrix A and solves
the bordered system with an LU factorisation: O(N^2) memory, O(N^3) time. Here A is an operator:

* real space: the Ewald (periodic) or erf (molecule) pair terms a_ij over the half list of pairs
  (periodic: vesin's cell list, ``ewald_pairs.VesinPairs``), stored once as a symmetric sparse CSR
  matrix when they fit (``MAX_STORED_PAIRS``), else regenerated chunk by chunk at every product
  (memory O(block x N));
* reciprocal space: structure factors C_k = sum_j cos(k.r_j) x_j, S_k = sum_j sin(k.r_j) x_j, chunked
  over k; cos/sin(k.r) kept when N x N_k fits (``MAX_STORED_PHASES``), else recomputed per chunk;
* diagonal: hardness J, the Gaussian self term and the Ewald self term.

The operator is the same matrix as the dense path's (same pairs, same k-vectors, same Ewald
parameters), so the solution agrees with it to the CG tolerance. The bordered system
[A 1; 1^T 0] [Q; lambda] = [-chi; Q_tot] is solved as A x = -chi and A y = 1 (one batched CG with
two right-hand sides, Jacobi preconditioner): Q = x - lambda y with lambda = (sum x - Q_tot) / sum y.
The adjoint system M [mu; nu] = [g; 0] reuses y: mu = w - (sum w / sum y) y with A w = g.

Forces are exact derivatives (adjoint method, as the dense path): Q and mu are held fixed and
autograd runs through the energy expression (real-space pairs with analytic da/dr, chunk by chunk;
structure factors per k-chunk), never through the CG iterations.

Solver choice: ``hdnnp_qeq_solver dense|cg|auto`` in input.nn (an hdnnp keyword; n2p2 ignores it),
``hdnnp predict/md --qeq-solver``; auto = CG for periodic structures with the scaled Ewald parameters
above ``AUTO_DENSE_MAX_ATOMS`` atoms, else dense (with n2p2's parameters, and for molecules, every pair
interacts: the O(N^2) pair work dominates both solvers and the dense path was measured faster, README).
With n2p2's Ewald parameters the real-space cutoff grows as V^(1/3), so the pair count (and CG's
time) stays O(N^2); ``hdnnp_ewald_parameters scaled`` (``--ewald-parameters scaled``) keeps r_c
bounded (O(N^1.5)) at the price of n2p2 parity (differences within the Ewald precision).
Units: those of the computation (n2p2's normalised units when the potential uses normalisation).
"""

from __future__ import annotations

import math

import torch

SQRT_PI = math.sqrt(math.pi)
QEQ_SOLVERS = ("auto", "dense", "cg")
#: ``hdnnp_ewald_parameters``: n2p2's Ewald width (default, parity) or one scaled for large cells
EWALD_CHOICES = ("n2p2", "scaled")
#: auto with sparse pairs (scaled Ewald): the dense solve up to this many atoms (measured cross-over,
#: README 4G section), CG above
AUTO_DENSE_MAX_ATOMS = 256
#: relative residual |A x - b| / |b| at which CG stops (energies agree with the dense solve to ~1e-13)
CG_RTOL = 1e-13
CG_MAX_ITER = 5000
#: real-space pairs stored for the products (CSR, both triangles: 24 bytes each); above: regenerated per product
MAX_STORED_PAIRS = 2 ** 27
#: cos/sin(k.r) elements kept (2 x 8 bytes each); above: recomputed per k-chunk and product
MAX_STORED_PHASES = 2 ** 26
#: elements of one chunk (pairs of a molecule block, N x k-chunk)
CHUNK_ELEMENTS = 2 ** 21


def check_solver(name: str) -> str:
    """The solver name, or ValueError naming the choices."""
    if name not in QEQ_SOLVERS:
        raise ValueError(f"Qeq solver must be one of {', '.join(QEQ_SOLVERS)}, not {name!r}")
    return name


def solver_from_settings(settings) -> str:
    """``hdnnp_qeq_solver`` of input.nn (default auto); a bad value is a ReadError with file:line."""
    line = settings.line("hdnnp_qeq_solver")
    if line is None:
        return "auto"
    if len(line.values) != 1 or line.values[0].lower() not in QEQ_SOLVERS:
        found = " ".join(line.values) or "nothing"
        raise settings.error(line, f"hdnnp_qeq_solver: expected one of {', '.join(QEQ_SOLVERS)}, found {found!r}")
    return line.values[0].lower()


def ewald_scaled_from_settings(settings) -> bool:
    """``hdnnp_ewald_parameters n2p2|scaled`` of input.nn (default n2p2): True for scaled
    (``EwaldSetup.parameters``); a bad value is a ReadError with file:line."""
    line = settings.line("hdnnp_ewald_parameters")
    if line is None:
        return False
    if len(line.values) != 1 or line.values[0].lower() not in EWALD_CHOICES:
        found = " ".join(line.values) or "nothing"
        raise settings.error(line, f"hdnnp_ewald_parameters: expected one of {', '.join(EWALD_CHOICES)}, "
                                   f"found {found!r}")
    return line.values[0].lower() == "scaled"


def resolve_solver(name: str, n_atoms: int, sparse: bool) -> str:
    """'dense' or 'cg' for a structure of ``n_atoms`` atoms; sparse : the real-space pairs are a
    bounded number per atom (periodic with ``hdnnp_ewald_parameters scaled``)."""
    if check_solver(name) == "auto":
        return "cg" if sparse and n_atoms > AUTO_DENSE_MAX_ATOMS else "dense"
    return name


def molecule_chunks(n: int, device):
    """Chunks (i, j, None) of all pairs i < j of a molecule, about ``CHUNK_ELEMENTS`` pairs each."""
    block = max(1, CHUNK_ELEMENTS // max(1, n))
    ar = torch.arange(n, device=device)
    for a0 in range(0, n, block):
        a1 = min(n, a0 + block)
        ii = ar[a0:a1, None].expand(a1 - a0, n)
        jj = ar[None, :].expand(a1 - a0, n)
        keep = jj > ii
        yield ii[keep], jj[keep], None


class QeqOperator:
    """A (with J and the diagonal terms) of one structure as a matrix-free operator (no gradient).

    elec : the ``Electrostatics`` stage; species (n,); pos (n, 3) wrapped, cell (3, 3) or None, in
    the computation's units (detached); chunks : a function returning an iterable of (i, j, S) pair
    chunks (periodic: ``ImagePairs.chunks`` or ``VesinPairs.chunks``; molecule: ``molecule_chunks``); ewald : parameters or None.
    Also collects the screened pairs (si, sj, sS) of the energy.
    """

    def __init__(self, elec, species, pos, cell, chunks, ewald, J):
        self.elec, self.species, self.pos, self.cell, self.ewald = elec, species, pos, cell, ewald
        self.chunks = chunks
        n = pos.shape[0]
        self.diag = elec._diag(elec.sigma[species], ewald) + J
        full_diag = self.diag.clone()
        stored, scr, count = [], [], 0
        for i, j, S in chunks():
            r, a, keep = self._pair_values(i, j, S)
            scr.append(elec._screened(r, i, j, S)[1:])
            if not bool(keep.all()):
                i, j, a = i[keep], j[keep], a[keep]
            self_img = i == j
            if bool(self_img.any()):
                full_diag.index_add_(0, i[self_img], 2.0 * a[self_img])
            count += len(a)
            if stored is not None:
                stored = stored + [(i, j, a)] if count <= MAX_STORED_PAIRS else None
        self.n_pairs = count
        self.csr = _symmetric_csr(stored, n) if stored else None  # None: regenerated (or no pairs)
        self.si = torch.cat([t[0] for t in scr]) if scr else torch.zeros(0, dtype=torch.int64, device=pos.device)
        self.sj = torch.cat([t[1] for t in scr]) if scr else self.si
        self.sS = None if cell is None else torch.cat([t[2] for t in scr])
        self.kv = self.ck = self.phases = None
        if cell is not None:
            self.kv, self.ck = elec._reciprocal(pos, cell, ewald)
            full_diag += self.ck.sum()
            if n * len(self.ck) <= MAX_STORED_PHASES:
                phase = pos @ self.kv.T
                self.phases = (torch.cos(phase), torch.sin(phase))
        self.inv_diag = 1.0 / full_diag
        self.iterations = 0

    def _pair_values(self, i, j, S):
        """(r, a, keep): distances, A_ij shares of a chunk and the mask of non-zero ones (periodic: r <= r_c)."""
        r, g = self.elec._geometry(self.species, self.pos, self.cell, i, j, S)
        a = self.elec._real_a(r, g, self.ewald)
        return r, a, a != 0.0

    def _k_blocks(self):
        """(cos, sin, ck) per k-chunk: (n, kc), (n, kc), (kc,)."""
        if self.phases is not None:
            yield self.phases[0], self.phases[1], self.ck
            return
        n = self.pos.shape[0]
        step = max(1, CHUNK_ELEMENTS // max(1, n))
        for k0 in range(0, len(self.ck), step):
            phase = self.pos @ self.kv[k0:k0 + step].T
            yield torch.cos(phase), torch.sin(phase), self.ck[k0:k0 + step]

    def matvec(self, X: torch.Tensor) -> torch.Tensor:
        """A @ X for X (n, m)."""
        Y = self.diag[:, None] * X
        if self.csr is not None:
            Y += self.csr @ X
        else:  # pairs regenerated chunk by chunk (a = 0 beyond r_c)
            for i, j, S in self.chunks():
                a = self._pair_values(i, j, S)[1]
                Y.index_add_(0, i, a[:, None] * X[j])
                Y.index_add_(0, j, a[:, None] * X[i])
        if self.ck is not None:
            for c, s, ck in self._k_blocks():
                Y += c @ (ck[:, None] * (c.T @ X)) + s @ (ck[:, None] * (s.T @ X))
        return Y

    def solve(self, B: torch.Tensor, rtol: float | None = None, max_iter: int = CG_MAX_ITER) -> torch.Tensor:
        """X with A X = B (n, m), Jacobi-preconditioned CG on all columns at once; rtol : default
        ``CG_RTOL``, at least 100 machine epsilons of B's dtype (float32: 1.2e-5)."""
        if rtol is None:
            rtol = max(CG_RTOL, 100.0 * torch.finfo(B.dtype).eps)
        X = torch.zeros_like(B)
        bnorm = torch.linalg.norm(B, dim=0)
        active = bnorm > 0.0
        R = B.clone()
        Z = self.inv_diag[:, None] * R
        P = Z.clone()
        rz = (R * Z).sum(0)
        res = torch.zeros_like(bnorm)
        for it in range(1, max_iter + 1):
            if not bool(active.any()):
                return X
            AP = self.matvec(P)
            pap = (P * AP).sum(0)
            alpha = torch.where(active, rz / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rz))
            X += alpha * P
            R -= alpha * AP
            self.iterations += 1
            res = torch.linalg.norm(R, dim=0) / torch.where(active, bnorm, torch.ones_like(bnorm))
            active = active & (res > rtol)
            Z = self.inv_diag[:, None] * R
            rz_new = (R * Z).sum(0)
            beta = torch.where(active, rz_new / torch.where(active, rz, torch.ones_like(rz)), torch.zeros_like(rz))
            P = Z + beta * P
            rz = rz_new
        if bool(active.any()):
            raise RuntimeError(f"Qeq conjugate gradients: relative residual {float(res.max()):.3g} after {max_iter} "
                               f"iterations (tolerance {rtol:g}); use the dense solver (--qeq-solver dense)")
        return X


def _symmetric_csr(blocks, n: int) -> torch.Tensor:
    """The real-space part of A as an (n, n) CSR matrix from half-list blocks (i, j, a): both
    (i, j) and (j, i) entries (a self-image pair, i == j, adds 2a to A_ii); duplicates are summed.
    int32 indices (n < 2^31) and early frees keep the build's transient memory near 64 bytes per pair."""
    import warnings

    idx = torch.int32 if n < 2 ** 31 - 1 else torch.int64
    i = torch.cat([b[0] for b in blocks]).to(idx)
    j = torch.cat([b[1] for b in blocks]).to(idx)
    a = torch.cat([b[2] for b in blocks])
    rows = torch.cat([i, j])
    cols = torch.cat([j, i])
    del i, j
    order = torch.argsort(rows)
    crow = torch.zeros(n + 1, dtype=idx, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    del rows
    cols = cols[order]
    vals = torch.cat([a, a])[order]
    del order, a
    with warnings.catch_warnings():  # "sparse CSR support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, (n, n))


def energy_and_surrogate_cg(elec, chi, species, positions, cell, total_charge, pairs, ewald, short_energy,
                            gradient: bool = True):
    """``Electrostatics.energy_and_surrogate`` with the matrix-free operator and CG (same arguments
    and returns: (Q, E_elec, E_short, L)); memory O(N x neighbours + N x N_k chunk)."""
    n = chi.shape[0]
    sig = elec.sigma[species].detach()
    J = elec.hardness[species].detach()
    pos_d = positions.detach()
    cell_d = None if cell is None else cell.detach()
    if cell is None:
        def chunks():
            return molecule_chunks(n, pos_d.device)
    else:
        chunks = pairs.chunks
    from hdnnp.model.fourg import _tick

    t0 = _tick()
    with torch.no_grad():
        op = QeqOperator(elec, species, pos_d, cell_d, chunks, ewald, J)
        t0 = _tick("  qeq_operator", t0)
        X = op.solve(torch.stack([-chi.detach(), torch.ones_like(J)], dim=1))
        x, y = X[:, 0], X[:, 1]
        lam = (x.sum() - float(total_charge)) / y.sum()
        Qv = x - lam * y
        AQ = op.matvec(Qv[:, None])[:, 0]
        phi = elec._phi(*elec._geometry(species, pos_d, cell_d, op.si, op.sj, op.sS))
    t0 = _tick("  qeq_cg_solve", t0)
    elec.last_cg = {"iterations": op.iterations, "pairs": op.n_pairs, "stored": op.csr is not None or not op.n_pairs,
                    "k_vectors": 0 if op.ck is None else len(op.ck)}
    Q = Qv.clone().requires_grad_(True)
    si, sj = op.si, op.sj
    with torch.enable_grad():
        e_short = short_energy(Q)
        t0 = _tick("  short_net", t0)
        # (Q . AQ) - 1/2 (Qv . AQ): the value 1/2 Q^T A Q, the gradient A Q
        e_elec_q = ((Q * AQ).sum() - 0.5 * (Qv * AQ).sum() - 0.5 * (J * Q * Q).sum()
                    - (Q * Q / (2.0 * SQRT_PI * elec.four_pi_eps * sig)).sum() + (Q[si] * Q[sj] * phi).sum())
        if not gradient:
            return Q.detach(), e_elec_q.detach(), e_short.detach(), None
        (g,) = torch.autograd.grad(e_short + e_elec_q, Q, retain_graph=True)
    t0 = _tick("  elec_energy", t0)
    with torch.no_grad():
        w = op.solve(g[:, None])[:, 0]
        mu = w - (w.sum() / y.sum()) * y
    t0 = _tick("  qeq_cg_solve", t0)
    elec.last_cg["iterations"] = op.iterations
    Qd = Q.detach()
    L = elec._real_gradient_term(species, positions, cell, chunks, ewald, Qd, mu)
    L = L + (Qd[si] * Qd[sj] * elec._phi(*elec._geometry(species, positions, cell, si, sj, op.sS))).sum()
    if cell is not None:
        L = L + _reciprocal_gradient_term(elec, positions, cell, ewald, op.kv, Qd, mu)
    L = L + e_short - (mu * chi).sum()
    _tick("  elec_force_terms", t0)
    return Qd, e_elec_q.detach(), e_short.detach(), L


def _reciprocal_gradient_term(elec, positions, cell, ewald, kv_d, Q, mu):
    """sum_k ck [1/2 (cq^2 + sq^2) - (cm cq + sm sq)] (cq = sum cos(k.r) Q, ...): a linear stand-in with
    its gradient in positions and cell, accumulated per k-chunk (memory O(N x chunk))."""
    pos = positions.detach().requires_grad_(True)
    cel = cell.detach().requires_grad_(True)
    # the integer triples of the k-vectors: kv = M @ (2 pi inv(cell).T)
    M = torch.round(kv_d @ cell.detach().T / (2.0 * math.pi))
    gpos = torch.zeros_like(pos)
    gcell = torch.zeros_like(cel)
    step = max(1, CHUNK_ELEMENTS // max(1, pos.shape[0]))
    for k0 in range(0, len(M), step):
        with torch.enable_grad():
            kv, ck = elec.reciprocal_from_integers(M[k0:k0 + step], cel, ewald)
            phase = pos @ kv.T
            c, s = torch.cos(phase), torch.sin(phase)
            cq, sq, cm, sm = c.T @ Q, s.T @ Q, c.T @ mu, s.T @ mu
            part = (ck * (0.5 * (cq * cq + sq * sq) - (cm * cq + sm * sq))).sum()
            gp, gc = torch.autograd.grad(part, [pos, cel])
        gpos += gp
        gcell += gc
    L = (gpos * positions).sum()
    if cell.requires_grad:
        L = L + (gcell * cell).sum()
    return L
