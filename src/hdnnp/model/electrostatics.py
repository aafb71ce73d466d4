"""Fourth-generation HDNNP stage (n2p2 4G, Ko et al. 2021): charge equilibration and electrostatics.

Given per-atom electronegativities chi (from the chi networks), element hardness J and Gaussian
widths sigma, the charges Q minimise the Qeq energy subject to sum Q = Q_tot; the structure's
electrostatic energy of those Gaussian charges (screened at short range) is added to the energy.

Notation: k = 1 / four_pi_epsilon, gamma_ij = sqrt(sigma_i^2 + sigma_j^2). All quantities are in the
units the computation runs in (n2p2's normalised units when the potential uses normalisation):
lengths L, charges q, energies E; J in E/q^2, chi in E/q.

Qeq matrix (n2p2 ``Structure::calculateElectrostaticEnergy``), bordered system
[A 1; 1^T 0] [Q; lambda] = [-chi; Q_tot]:

* molecule: A_ii = J_i + k / (sigma_i sqrt(pi)); A_ij = k erf(r_ij / (sqrt2 gamma_ij)) / r_ij (all pairs).
* periodic (Ewald, splitting width eta): A_ij = k sum_{images, r <= r_c} [erfc(r/(sqrt2 eta)) -
  erfc(r/(sqrt2 gamma_ij))] / r + k sum_{0 < |kv| < k_c} (4 pi / V) exp(-eta^2 kv^2 / 2) / kv^2
  cos(kv . (r_i - r_j)), the diagonal adding J_i + k [1/(sigma_i sqrt pi) - sqrt2 / (eta sqrt pi)]
  (the image sum then runs over the periodic images of i itself).

Electrostatic energy: E = 1/2 Q^T (A - diag J) Q - sum_i k Q_i^2 / (2 sigma_i sqrt pi)
+ sum_{pairs r < r_out} k Q_i Q_j erf(r / (sqrt2 gamma_ij)) (f_s(r) - 1) / r.

The linear solve is differentiable (torch.linalg.solve), so forces and stress come from autograd
and are the exact gradient of this energy (as n2p2's adjoint forces are).

One known n2p2 deviation is *not* reproduced: in a periodic cell narrower than r_out, n2p2's
screening sum counts the pair of an atom with its own image +n and with -n each with weight 1
(a double count: its loop over j >= i keeps both images). Here every pair of the full image list
has weight 1/2, the physically right sum (checked against a direct sum in tests/model/test_fourg_physics.py).
For cells wider than r_out (all of n2p2's example potentials) both agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hdnnp.errors import ReadError, SettingsError

SQRT2 = math.sqrt(2.0)
SQRT_PI = math.sqrt(math.pi)
#: Kolafa-Perram ratio of real- to reciprocal-space cost per term used by n2p2 (TrOverTk)
KP_COST_RATIO = 3.676


# ------------------------------------------------------------------ Ewald parameters
@dataclass(frozen=True)
class EwaldParameters:
    """eta : splitting width (L); r_cut : real-space cutoff (L, pairs r <= r_cut); k_cut : reciprocal
    cutoff (1/L, |k| < k_cut)."""

    eta: float
    r_cut: float
    k_cut: float


def _kp_solve_s(prec: float, C: float, eta: float, s: float) -> float:
    """Newton iteration for s in exp(-s^2)/sqrt(s) = (prec/C) sqrt(eta/2) (n2p2's update rule)."""
    y = prec / C * math.sqrt(eta / 2.0)
    if s <= 0.0:
        s = 0.5
    rel_x = rel_y = 1.0
    for _ in range(10000):
        if rel_x <= 1e-10 and rel_y <= 1e-10:
            return s
        step = 2.0 * s / (4.0 * s * s + 1.0) * (1.0 - math.sqrt(s) / math.exp(-s * s) * y)
        if s <= -step:  # s would become negative: restart from a smaller value
            s /= 2.0
            rel_x = rel_y = 1.0
            continue
        s += step
        rel_y = abs((math.exp(-s * s) / math.sqrt(s) - y) / y)
        rel_x = abs(step / s)
    raise RuntimeError("Ewald parameters: the Kolafa-Perram iteration for s did not converge")


@dataclass(frozen=True)
class EwaldSetup:
    """n2p2's choice of the Ewald parameters (``ewald_truncation_error_method``, ``ewald_prec``).

    method 0 (Jackson-Catlow): eta = V^(1/3) / sqrt(2 pi), r_c = eta sqrt(-2 ln prec), k_c = sqrt(-2 ln prec) / eta.
    method 1 (Kolafa-Perram): ``prec`` is a force error, ``max_charge`` the expected largest |Q|;
    with ``r_cut`` fixed (3 arguments) eta and k_c follow from it, else eta is optimised and then
    raised to at least ``max_sigma``. ``estimator_fpe``: n2p2 uses 4 pi eps = 1 in the estimate
    (or 1/(conv_length conv_energy) with normalisation), not ``four_pi_epsilon``.
    """

    method: int = 0
    precision: float = 1e-6
    max_charge: float = 1.0
    r_cut: float | None = None
    max_sigma: float = 0.0
    estimator_fpe: float = 1.0
    #: set when the settings cannot give Ewald parameters (raised for periodic structures only)
    unusable: str | None = None

    def parameters(self, volume: float, n_atoms: int, scaled: bool = False) -> EwaldParameters:
        """scaled : False: n2p2's eta (proportional to V^(1/3): O(N^2) real-space pairs); True (hdnnp's
        ``hdnnp_ewald_parameters scaled``): the splitting width of the same error estimate divided by
        N^(1/6) (the Kolafa-Perram cost optimum with the atom count n2p2 leaves out), so that r_c
        stays bounded and the cost is O(N^1.5); the results then differ from n2p2's within the
        Ewald precision. No effect with a fixed r_cut (method 1 with three ewald_prec values)."""
        if self.unusable:
            raise SettingsError(self.unusable)
        shrink = n_atoms ** (1.0 / 6.0) if scaled else 1.0
        if self.method == 0:
            if self.precision >= 1.0:
                raise ValueError("Ewald truncation method 0 (Jackson-Catlow) requires ewald_prec < 1")
            eta = volume ** (1.0 / 3.0) / math.sqrt(2.0 * math.pi) / shrink
            t = math.sqrt(-2.0 * math.log(self.precision))
            return EwaldParameters(eta, t * eta, t / eta)
        if self.r_cut is None:
            return self._kolafa_opt_eta(volume, n_atoms, shrink)
        return self._kolafa_fixed_r(volume, n_atoms)

    def _kolafa_opt_eta(self, volume: float, n_atoms: int, shrink: float = 1.0) -> EwaldParameters:
        C = 2.0 ** 0.75 * self.max_charge ** 2 * math.sqrt(n_atoms / volume) / self.estimator_fpe
        eta0 = (volume ** 2 / KP_COST_RATIO / (2.0 * math.pi) ** 3) ** (1.0 / 6.0) / shrink
        eta, s, rel = eta0, 1.0, 1.0
        for _ in range(10000):
            if rel <= 1e-10:
                break
            s = _kp_solve_s(self.precision, C, eta, s)
            old = eta
            eta = eta0 * (1.0 + 1.0 / (2.0 * s * s)) ** (1.0 / 6.0)
            rel = abs(old - eta) / eta
        else:
            raise RuntimeError("Ewald parameters: the Kolafa-Perram iteration for eta did not converge")
        # n2p2 computes r_c and k_c from the last s, after raising eta to max sigma
        eta = max(eta, self.max_sigma)
        return EwaldParameters(eta, SQRT2 * eta * s, SQRT2 * s / eta)

    def _kolafa_fixed_r(self, volume: float, n_atoms: int) -> EwaldParameters:
        rc = float(self.r_cut)
        C = 2.0 * self.max_charge ** 2 * math.sqrt(n_atoms / volume) / self.estimator_fpe
        x = math.sqrt(rc / 2.0) * self.precision / C
        if x >= 1.0:
            raise ValueError("bad Ewald precision settings (ewald_prec): try a smaller precision")
        eta = rc / math.sqrt(-2.0 * math.log(x))
        y = eta * self.precision / (SQRT2 * C)
        kc, rel_x, rel_y = 1.0 / eta, 1.0, 1.0
        for _ in range(10000):
            if rel_x <= 1e-10 and rel_y <= 1e-10:
                return EwaldParameters(eta, rc, kc)
            old = kc
            kc -= 2.0 * kc / (1.0 + 2.0 * (kc * eta) ** 2) * (-1.0 + math.sqrt(kc) * math.exp((kc * eta) ** 2 / 2.0) * y)
            if kc <= 0.0:
                kc = old / 2.0
                continue
            rel_x = abs((kc - old) / kc)
            rel_y = abs((1.0 / math.sqrt(kc) * math.exp(-((kc * eta) ** 2) / 2.0) - y) / y)
        raise RuntimeError("Ewald parameters: the iteration for k_cut did not converge")

    def tightened(self, factor: float = 1e-6) -> "EwaldSetup":
        """The same method with a precision ``factor`` times tighter (the ``converged`` option)."""
        return EwaldSetup(self.method, self.precision * factor, self.max_charge, self.r_cut,
                          self.max_sigma, self.estimator_fpe, self.unusable)


def kspace_integer_vectors(cell: np.ndarray, k_cut: float) -> np.ndarray:
    """Integer triples m (n, 3) of n2p2's half-sphere k-grid: k = m @ (2 pi inv(cell).T), 0 < |k| < k_cut.

    cell : (3, 3) rows = lattice vectors (L). The half sphere is m0 > 0, or m0 = 0 and m1 > 0, or
    m0 = m1 = 0 and m2 > 0 (the other half is accounted for by a factor 2).
    """
    kbox = 2.0 * math.pi * np.linalg.inv(cell).T  # rows: reciprocal vectors b_i with a_i . b_j = 2 pi delta
    n = []
    for a in range(3):
        b, c = kbox[(a + 1) % 3], kbox[(a + 2) % 3]
        normal = np.cross(b, c)
        proj = abs(kbox[a] @ normal) / np.linalg.norm(normal)
        m = 0
        while m * proj <= k_cut:
            m += 1
        n.append(m)
    r0 = np.arange(0, n[0] + 1)
    r1 = np.arange(-n[1], n[1] + 1)
    r2 = np.arange(-n[2], n[2] + 1)
    M = np.stack(np.meshgrid(r0, r1, r2, indexing="ij"), -1).reshape(-1, 3)
    half = (M[:, 0] > 0) | ((M[:, 0] == 0) & (M[:, 1] > 0)) | ((M[:, 0] == 0) & (M[:, 1] == 0) & (M[:, 2] > 0))
    M = M[half]
    k2 = np.einsum("ij,ij->i", M @ kbox, M @ kbox)
    return M[k2 < k_cut * k_cut]


# ------------------------------------------------------------------ screening
#: core functions c(x), x in [0, 1], of ``screen_electrostatics`` (n2p2 ``CoreFunction``)
CORES = ("c", "p1", "p2", "p3", "p4", "e")


def core_function(x: torch.Tensor, core: str) -> torch.Tensor:
    if core == "c":
        return 0.5 * (torch.cos(math.pi * x) + 1.0)
    if core == "p1":
        return (2.0 * x - 3.0) * x * x + 1.0
    if core == "p2":
        return ((15.0 - 6.0 * x) * x - 10.0) * x ** 3 + 1.0
    if core == "p3":
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x ** 4 + 1.0
    if core == "p4":
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x ** 5 + 1.0
    if core == "e":
        return math.e * torch.exp(1.0 / (x * x - 1.0))
    raise ValueError(f"unknown screening core function {core!r}; expected one of {' '.join(CORES)}")


@dataclass(frozen=True)
class Screening:
    """f_s(r) = 0 (r <= r_in), 1 (r >= r_out), 1 - c((r - r_in)/(r_out - r_in)) between; None: no screening."""

    r_in: float
    r_out: float
    core: str = "c"

    def minus_one(self, r: torch.Tensor) -> torch.Tensor:
        """f_s(r) - 1 (0 for r >= r_out, -1 for r <= r_in)."""
        inside = (r > self.r_in) & (r < self.r_out)
        # x = 1/2 outside the window keeps every branch finite (no NaN gradients through where)
        x = torch.where(inside, (r - self.r_in) / (self.r_out - self.r_in), torch.full_like(r, 0.5))
        fm1 = torch.where(inside, -core_function(x, self.core), torch.zeros_like(r))
        return torch.where(r <= self.r_in, -torch.ones_like(r), fm1)


# ------------------------------------------------------------------ the 4G stage
@dataclass
class QeqResult:
    """charges : (n,) (q); energy : electrostatic energy (E); lagrange : the Lagrange multiplier;
    ewald : the parameters used (periodic only)."""

    charges: torch.Tensor
    energy: torch.Tensor
    lagrange: torch.Tensor
    ewald: EwaldParameters | None = None


@dataclass
class PairTerms:
    """The position-dependent pieces of the Qeq matrix and of the energy, for a half pair list.

    i, j : (p,) pairs (each unordered pair once; for a periodic cell every image, self-images
    (i == j) once per +-n pair); a : (p,) their share of A_ij (added to A_ij and A_ji);
    si, sj, phi : the pairs with r < r_out and their screening energy per unit Q_i Q_j; kv : (K, 3) k-vectors of the half sphere and
    ck : (K,) weights, A_rec(i, j) = sum_K ck cos(kv . (r_i - r_j)) (None for a molecule);
    diag : (n,) diagonal of A without J.
    """

    i: torch.Tensor
    j: torch.Tensor
    a: torch.Tensor
    si: torch.Tensor
    sj: torch.Tensor
    phi: torch.Tensor
    kv: torch.Tensor | None
    ck: torch.Tensor | None
    diag: torch.Tensor

    def matrix(self, pos: torch.Tensor) -> torch.Tensor:
        """A without J (n, n), differentiable."""
        n = pos.shape[0]
        A = torch.zeros((n, n), dtype=pos.dtype, device=pos.device)
        A = A.index_put((self.i, self.j), self.a, accumulate=True)
        A = A.index_put((self.j, self.i), self.a, accumulate=True)
        if self.kv is not None:
            c, s = self.cos_sin(pos)
            A = A + (c * self.ck) @ c.T + (s * self.ck) @ s.T
        return A + torch.diag(self.diag)

    def cos_sin(self, pos):
        phase = pos @ self.kv.T
        return torch.cos(phase), torch.sin(phase)

    def screening_energy(self, Q: torch.Tensor) -> torch.Tensor:
        return (Q[self.si] * Q[self.sj] * self.phi).sum()


class Electrostatics(torch.nn.Module):
    """Qeq + screened electrostatics of one structure, differentiable in chi, positions and cell.

    sigma : (n_elements,) Gaussian widths (L); hardness : (n_elements,) J (E/q^2), a parameter
    (trained in n2p2's stage 1); four_pi_eps : 4 pi epsilon_0 (q^2/(E L)); screening : or None.
    ``forward`` is differentiable in everything (for training); ``energy_and_surrogate`` is the
    faster prediction path (adjoint method, no graph through the dense matrix or the solve).
    """

    def __init__(self, sigma, hardness, four_pi_eps: float, ewald: EwaldSetup, screening: Screening | None,
                 dtype=torch.float64):
        super().__init__()
        self.register_buffer("sigma", torch.as_tensor(np.asarray(sigma, dtype=np.float64), dtype=dtype))
        self.hardness = torch.nn.Parameter(torch.as_tensor(np.asarray(hardness, dtype=np.float64), dtype=dtype))
        self.four_pi_eps = float(four_pi_eps)
        self.ewald = ewald
        self.screening = screening

    @property
    def pair_cutoff(self) -> float:
        return 0.0 if self.screening is None else self.screening.r_out

    def ewald_parameters(self, cell: np.ndarray, n_atoms: int, converged: bool = False,
                         scaled: bool = False) -> EwaldParameters:
        setup = self.ewald.tightened() if converged else self.ewald
        return setup.parameters(abs(float(np.linalg.det(cell))), n_atoms, scaled)

    def _geometry(self, species, pos, cell, i, j, S):
        """Pair distances r and sqrt2 gamma_ij (from a table over element pairs)."""
        vec = pos[j] - pos[i]
        if cell is not None:
            vec = vec + S.to(pos.dtype) @ cell
        r = torch.linalg.norm(vec, dim=1)
        ne = self.sigma.shape[0]
        g_table = (SQRT2 * torch.sqrt(self.sigma[:, None] ** 2 + self.sigma[None, :] ** 2)).flatten()
        return r, g_table[species[i] * ne + species[j]]

    def _real_a(self, r, g, ewald: EwaldParameters | None):
        """A_ij share of a pair: molecule k erf(r/(sqrt2 gamma))/r; periodic (n2p2) k [erfc(r/(sqrt2 eta))
        - erfc(r/(sqrt2 gamma))]/r for r <= r_c."""
        k = 1.0 / self.four_pi_eps
        if ewald is None:
            return k * torch.erf(r / g) / r
        a = k * (torch.erfc(r / (SQRT2 * ewald.eta)) - torch.erfc(r / g)) / r
        return torch.where(r <= ewald.r_cut, a, torch.zeros_like(r))

    def _phi(self, r, g):
        """Screening energy per unit Q_i Q_j: k erf(r/(sqrt2 gamma)) (f_s(r) - 1) / r (pairs with r < r_out)."""
        if not len(r):
            return r
        return torch.erf(r / g) * self.screening.minus_one(r) / (r * self.four_pi_eps)

    def _reciprocal(self, pos, cell, ewald: EwaldParameters):
        """k-vectors (K, 3) of n2p2's half sphere and weights ck (K,) (x2 for the other half)."""
        M = torch.as_tensor(kspace_integer_vectors(cell.detach().cpu().numpy(), ewald.k_cut),
                            dtype=pos.dtype, device=pos.device)
        return self.reciprocal_from_integers(M, cell, ewald)

    def reciprocal_from_integers(self, M, cell, ewald: EwaldParameters):
        """k-vectors kv (K, 3) = M @ (2 pi inv(cell).T) and weights ck (K,) for integer triples M (K, 3)
        (a subset of the half sphere: the reciprocal sum is a sum over k, so it can run in chunks)."""
        k = 1.0 / self.four_pi_eps
        kv = M @ (2.0 * math.pi * torch.linalg.inv(cell).T)
        k2 = (kv * kv).sum(1)
        volume = torch.abs(torch.linalg.det(cell))
        return kv, k * 2.0 * (4.0 * math.pi / volume) * torch.exp(-0.5 * ewald.eta ** 2 * k2) / k2

    def _diag(self, sig, ewald: EwaldParameters | None):
        d = 1.0 / (self.four_pi_eps * sig * SQRT_PI)
        return d if ewald is None else d - SQRT2 / (self.four_pi_eps * ewald.eta * SQRT_PI)

    def _screened(self, r, i, j, S):
        if self.screening is None:
            m = torch.zeros(0, dtype=torch.int64, device=r.device)
        else:
            m = torch.nonzero(r < self.screening.r_out).flatten()
        return m, i[m], j[m], None if S is None else S[m]

    def pair_terms(self, species, pos, cell, pairs, ewald: EwaldParameters | None) -> PairTerms:
        """pos : (n, 3), cell : (3, 3) or None (L); pairs : periodic: (i, j, S) half list within
        max(r_c, r_out) or an ``ImagePairs``; molecule: None (all pairs i < j)."""
        from hdnnp.model.ewald_pairs import ImagePairs

        n = pos.shape[0]
        if cell is None:
            i, j = torch.triu_indices(n, n, 1, device=pos.device)
            S = None
        else:
            i, j, S = pairs.all() if isinstance(pairs, ImagePairs) else pairs
        r, g = self._geometry(species, pos, cell, i, j, S)
        a = self._real_a(r, g, ewald)
        m, si, sj, _ = self._screened(r, i, j, S)
        kv = ck = None
        if cell is not None:
            kv, ck = self._reciprocal(pos, cell, ewald)
        return PairTerms(i, j, a, si, sj, self._phi(r[m], g[m]), kv, ck, self._diag(self.sigma[species], ewald))

    @staticmethod
    def _solve(A: torch.Tensor, chi: torch.Tensor, total_charge: float):
        n = A.shape[0]
        M = torch.ones((n + 1, n + 1), dtype=A.dtype, device=A.device)
        M[:n, :n] = A
        M[n, n] = 0.0
        b = torch.cat([-chi, torch.full((1,), float(total_charge), dtype=chi.dtype, device=chi.device)])
        return M, torch.linalg.solve(M, b)

    def _energy(self, terms: PairTerms, A: torch.Tensor, J: torch.Tensor, sig: torch.Tensor,
                Q: torch.Tensor) -> torch.Tensor:
        """1/2 Q^T (A - J) Q - sum k Q^2 / (2 sigma sqrt pi) + screening (A includes J)."""
        self_e = (Q * Q / (2.0 * SQRT_PI * self.four_pi_eps * sig)).sum()
        return 0.5 * Q @ (A @ Q) - 0.5 * (J * Q * Q).sum() - self_e + terms.screening_energy(Q)

    def forward(self, chi: torch.Tensor, species: torch.Tensor, positions: torch.Tensor,
                cell: torch.Tensor | None, total_charge: float, pairs=None,
                ewald: EwaldParameters | None = None) -> QeqResult:
        """chi : (n,) E/q; species : (n,) element index; positions : (n, 3) L; cell : (3, 3) rows or None.

        pairs (periodic only) : (i, j, shifts) int64 tensors of the half image list within
        max(r_c, r_out); ewald : the parameters for this cell. Differentiable in everything.
        """
        n = chi.shape[0]
        J = self.hardness[species]
        terms = self.pair_terms(species, positions, cell, pairs, ewald)
        A = terms.matrix(positions) + torch.diag(J)
        _, sol = self._solve(A, chi, total_charge)
        Q = sol[:n]
        energy = self._energy(terms, A, J, self.sigma[species], Q)
        return QeqResult(charges=Q, energy=energy, lagrange=sol[n], ewald=ewald)

    def energy_and_surrogate(self, chi, species, positions, cell, total_charge, pairs, ewald, short_energy,
                             gradient: bool = True):
        """Prediction with forces by the adjoint method (as n2p2's forces).

        chi : (n,) with a graph to the SFs; short_energy : a function Q -> short-range energy
        (graph to the SFs); pairs : periodic: an ``ImagePairs`` (chunks: memory O(block x n)).
        Returns (Q, E_elec, E_short, L): values as ``forward`` gives them, and a scalar L whose
        gradient in the SFs, positions and cell is the total energy's gradient (None unless
        ``gradient``). With M [Q; lambda] = [-chi; Q_tot] and M mu = [dE/dQ; 0]:
        L = E_short(G, Q) + E_elec(Q, r) - mu^T (A(r) Q + chi(G)), Q and mu held fixed.
        """
        n = chi.shape[0]
        sig = self.sigma[species].detach()
        J = self.hardness[species].detach()
        chunks = (lambda: pairs.chunks()) if cell is not None else (lambda: [(None, None, None)])
        pos_d = positions.detach()
        cell_d = None if cell is None else cell.detach()
        with torch.no_grad():
            A, scr = self._real_matrix(species, pos_d, cell_d, chunks, ewald)
            si, sj, sS = scr
            phi = self._phi(*self._geometry(species, pos_d, cell_d, si, sj, sS))
            if cell is not None:
                kv, ck = self._reciprocal(pos_d, cell_d, ewald)
                phase = pos_d @ kv.T
                c, s = torch.cos(phase), torch.sin(phase)
                A += (c * ck) @ c.T + (s * ck) @ s.T
            A += torch.diag(self._diag(sig, ewald) + J)
            M, sol = self._solve(A, chi.detach(), total_charge)
        Q = sol[:n].detach().requires_grad_(True)
        with torch.enable_grad():
            e_short = short_energy(Q)
            e_elec_q = (0.5 * Q @ (A @ Q) - 0.5 * (J * Q * Q).sum()
                        - (Q * Q / (2.0 * SQRT_PI * self.four_pi_eps * sig)).sum() + (Q[si] * Q[sj] * phi).sum())
            if not gradient:
                return Q.detach(), e_elec_q.detach(), e_short.detach(), None
            (g,) = torch.autograd.grad(e_short + e_elec_q, Q, retain_graph=True)
        with torch.no_grad():
            mu = torch.linalg.solve(M, torch.cat([g, g.new_zeros(1)]))[:n]
        Qd = Q.detach()
        # position-dependent part of E_elec - mu^T A Q: real-space pairs chunk by chunk (their
        # gradient accumulated and put back as a linear term), screening, structure factors
        L = self._real_gradient_term(species, positions, cell, chunks, ewald, Qd, mu)
        L = L + (Qd[si] * Qd[sj] * self._phi(*self._geometry(species, positions, cell, si, sj, sS))).sum()
        if cell is not None:
            kv, ck = self._reciprocal(positions, cell, ewald)
            phase = positions @ kv.T
            c, s = torch.cos(phase), torch.sin(phase)
            cq, sq, cm, sm = c.T @ Qd, s.T @ Qd, c.T @ mu, s.T @ mu
            L = L + (ck * (0.5 * (cq * cq + sq * sq) - (cm * cq + sm * sq))).sum()
        L = L + e_short - (mu * chi).sum()
        return Qd, e_elec_q.detach(), e_short.detach(), L

    def _real_matrix(self, species, pos, cell, chunks, ewald):
        """Dense real-space A (no J, no diagonal terms) and the screened pairs (i, j, S), no gradient."""
        n = pos.shape[0]
        A = torch.zeros((n, n), dtype=pos.dtype, device=pos.device)
        scr = []
        for i, j, S in chunks():
            if i is None:  # molecule: all pairs
                i, j = torch.triu_indices(n, n, 1, device=pos.device)
            r, g = self._geometry(species, pos, cell, i, j, S)
            a = self._real_a(r, g, ewald)
            A.index_put_((i, j), a, accumulate=True)
            A.index_put_((j, i), a, accumulate=True)
            scr.append(self._screened(r, i, j, S)[1:])
        si = torch.cat([t[0] for t in scr])
        sj = torch.cat([t[1] for t in scr])
        sS = None if cell is None else torch.cat([t[2] for t in scr])
        return A, (si, sj, sS)

    def _real_gradient_term(self, species, positions, cell, chunks, ewald, Q, mu):
        """sum_pairs w a(r) with w = Q_i Q_j - mu_i Q_j - mu_j Q_i: its gradient in positions and cell,
        accumulated chunk by chunk with the analytic da/dr (no graph per pair), returned as a
        linear stand-in (same gradient)."""
        n = positions.shape[0]
        pos = positions.detach()
        cel = None if cell is None else cell.detach()
        k = 1.0 / self.four_pi_eps
        two_sqrt_pi = 2.0 / SQRT_PI
        gpos = torch.zeros_like(pos)
        gcell = None if cell is None else torch.zeros_like(cel)
        with torch.no_grad():
            for i, j, S in chunks():
                if i is None:
                    i, j = torch.triu_indices(n, n, 1, device=pos.device)
                vec = pos[j] - pos[i]
                if cel is not None:
                    vec = vec + S.to(pos.dtype) @ cel
                r = torch.linalg.norm(vec, dim=1)
                ne = self.sigma.shape[0]
                g = (SQRT2 * torch.sqrt(self.sigma[:, None] ** 2 + self.sigma[None, :] ** 2)).flatten()[
                    species[i] * ne + species[j]]
                a = self._real_a(r, g, ewald)
                # d/dr of erf(r/s) = 2/sqrt(pi) exp(-r^2/s^2)/s; erfc: the negative
                dgauss = two_sqrt_pi * torch.exp(-(r / g) ** 2) / g
                if ewald is None:
                    num = dgauss
                else:
                    s1 = SQRT2 * ewald.eta
                    num = torch.where(r <= ewald.r_cut, dgauss - two_sqrt_pi * torch.exp(-(r / s1) ** 2) / s1,
                                      torch.zeros_like(r))
                dadr = k * num / r - a / r
                w = Q[i] * Q[j] - (mu[i] * Q[j] + mu[j] * Q[i])
                gv = (w * dadr / r)[:, None] * vec  # dL/dvec
                gpos.index_add_(0, j, gv)
                gpos.index_add_(0, i, -gv)
                if gcell is not None:
                    gcell += S.to(pos.dtype).T @ gv
        L = (gpos * positions).sum()
        if gcell is not None and cell.requires_grad:
            L = L + (gcell * cell).sum()
        return L


# ------------------------------------------------------------------ reading the settings
def electrostatics_from_settings(settings, elements: list[str], hardness: list[float], normalization=None,
                                 conv_charge: float = 1.0, dtype=torch.float64) -> Electrostatics:
    """The 4G stage from input.nn keywords (SPEC-4G §1), in the computation's (normalised) units.

    hardness : per element J in physical units (hardness.ZZZ.data or initial_hardness).
    normalization : None or an object with conv_energy, conv_length.
    """
    ce = normalization.conv_energy if normalization else 1.0
    cl = normalization.conv_length if normalization else 1.0
    sigma = {}
    for line in settings.all("fixed_gausswidth"):
        if len(line.values) < 2 or line.values[0] not in elements:
            raise settings.error(line, "expected 'fixed_gausswidth <element of this potential> <sigma>'")
        try:
            sigma[line.values[0]] = float(line.values[1])
        except ValueError:
            raise settings.error(line, f"fixed_gausswidth: expected a number, found {line.values[1]!r}") from None
        if sigma[line.values[0]] <= 0.0:
            raise settings.error(line, "fixed_gausswidth: sigma must be > 0")
    missing = [e for e in elements if e not in sigma]
    if missing:
        raise ReadError(settings.path, None, f"4G potential: 'fixed_gausswidth' missing for {' '.join(missing)}")
    sig = np.array([sigma[e] for e in elements]) * cl
    fpe = settings.get_float("four_pi_epsilon", 1.0)
    if fpe <= 0.0:
        raise settings.error(settings.line("four_pi_epsilon"), "four_pi_epsilon must be > 0")
    fpe *= conv_charge ** 2 / (cl * ce)
    J = np.asarray(hardness, dtype=np.float64) * ce / conv_charge ** 2
    ewald = _ewald_from_settings(settings, float(sig.max()), ce, cl)
    screening = None
    line = settings.line("screen_electrostatics")
    if line is not None:
        try:
            r_in, r_out = float(line.values[0]), float(line.values[1])
        except (ValueError, IndexError):
            raise settings.error(line, "expected 'screen_electrostatics <r_inner> <r_outer> [core]'") from None
        core = line.values[2] if len(line.values) > 2 else "c"
        if core not in CORES:
            raise settings.error(line, f"screening core function {core!r}: expected one of {' '.join(CORES)}")
        if not 0.0 <= r_in < r_out:
            raise settings.error(line, f"screen_electrostatics needs 0 <= r_inner < r_outer, found {r_in} {r_out}")
        screening = Screening(r_in * cl, r_out * cl, core)
    return Electrostatics(sig, J, fpe, ewald, screening, dtype=dtype)


def _ewald_from_settings(settings, max_sigma: float, ce: float, cl: float) -> EwaldSetup:
    mline = settings.line("ewald_truncation_error_method")
    method = 0
    if mline is not None:
        if not mline.values or mline.values[0] not in ("0", "1"):
            raise settings.error(mline, "ewald_truncation_error_method: expected 0 (Jackson-Catlow) or 1 (Kolafa-Perram)")
        method = int(mline.values[0])
    pline = settings.line("ewald_prec")
    if pline is None:
        if method == 1:
            raise ReadError(settings.path, None, "ewald_truncation_error_method 1 requires 'ewald_prec'")
        # n2p2 then has no truncation method and fails for periodic structures; hdnnp uses its default
        # precision (1e-6) with Jackson-Catlow instead
        return EwaldSetup(0, 1e-6, max_sigma=max_sigma)
    try:
        vals = [float(v) for v in pline.values]
    except ValueError:
        raise settings.error(pline, "ewald_prec: expected numbers") from None
    if method == 0 and len(vals) != 1:
        raise settings.error(pline, "ewald_prec: method 0 takes one number (precision < 1)")
    if method == 1 and len(vals) not in (1, 2, 3):
        raise settings.error(pline, "ewald_prec: method 1 needs '<force precision> <max charge> [r_cut]'")
    if vals[0] <= 0.0:
        raise settings.error(pline, "ewald_prec: the precision must be > 0")
    if method == 0:
        if vals[0] >= 1.0:
            raise settings.error(pline, "ewald_prec: method 0 (Jackson-Catlow) needs a precision < 1")
        return EwaldSetup(0, vals[0], max_sigma=max_sigma)
    # Kolafa-Perram: the precision is a force, so it is normalised; 4 pi eps of the estimate is
    # 1 / (conv_length conv_energy) with normalisation, else 1 (n2p2 ignores four_pi_epsilon here)
    r_cut = vals[2] * cl if len(vals) == 3 else None
    if len(vals) == 1:  # as n2p2: fine for molecules, an error for the first periodic structure
        msg = (f"{settings.path}:{pline.lineno}: ewald_prec: ewald_truncation_error_method 1 needs "
               "'<force precision> <max charge> [r_cut]' for periodic structures")
        return EwaldSetup(1, vals[0] * ce / cl, 1.0, None, max_sigma, 1.0 / (cl * ce), msg)
    return EwaldSetup(1, vals[0] * ce / cl, vals[1], r_cut, max_sigma, 1.0 / (cl * ce))
