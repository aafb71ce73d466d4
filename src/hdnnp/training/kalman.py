"""n2p2's extended Kalman filter (``updater_type 1``) over the weights of the element networks.

Per update, for an error vector ξ (m observations: reference − prediction, in the normalised
training units of :mod:`hdnnp.training.trainer`) and the Jacobian H = ∂prediction/∂w
(n_w × m), on every block b of the weight vector (rows H_b of H, covariance P_b):

    X = P_b H_b;  A = H_bᵀ X + R;  K = X A⁻¹;  P_b ← P_b − K Xᵀ  [fading memory: P_b ← P_b/λ];
    P_b ← P_b + q I;  w_b ← w_b + K ξ_b

with R = I/η (``kalman_type 0``, standard) or λ I (``kalman_type 1``, fading memory), as n2p2's
``KalmanFilter::update`` (n2p2 v2.3.0, src/libnnptrain/KalmanFilter.cpp). Schedules, applied
once per update in n2p2's order: before R is formed, η ← η e^τη if η < η_max; after the
update, q ← q e^−τq if q > q_min and λ ← ν λ + 1 − ν. τη = ``kalman_etatau`` / (updates per
epoch), τq = ``kalman_qtau`` / (updates per epoch) (2.302: one decade per epoch). Start:
P = I/``kalman_epsilon``, q = ``kalman_q0``, η = ``kalman_eta``, λ = ``kalman_lambda_short``.

Blocks: one block (n2p2 ``update_strategy 0``: one dense P of 8 n_w² bytes), one per element
(``update_strategy 1``, or ``hdnnp_kalman_blocks element``), or one per layer of each element
(``hdnnp_kalman_blocks layer``, as RLEKF: Hu et al., AAAI 2023). With blocks P is
block-diagonal (the off-diagonal blocks of K Xᵀ are dropped): for one filter the blocks share
A = Σ_b H_bᵀ P_b H_b + R (so the blocks together correct the error once, as the dense filter
would); with ``update_strategy 1`` each element is its own filter with its own A and its share
of the error, as n2p2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

try:  # BLAS symmetric kernels (scipy comes with ASE): half of P's memory traffic per update on the CPU
    from scipy.linalg import blas as _blas
except ImportError:  # pragma: no cover - ASE requires scipy
    _blas = None

from hdnnp.errors import SettingsError

BLOCK_MODES = ("none", "element", "layer")


@dataclass
class KalmanParameters:
    """The ``kalman_*`` keywords (n2p2 names in the comments; η, q per update after scaling)."""

    type: int = 0  # kalman_type: 0 standard, 1 fading memory
    epsilon: float = 0.01  # kalman_epsilon: P = I / epsilon
    q0: float = 0.01  # kalman_q0
    qtau: float = 2.302  # kalman_qtau (per epoch)
    qmin: float = 1e-6  # kalman_qmin
    eta: float = 0.01  # kalman_eta
    etatau: float | None = 2.302  # kalman_etatau (per epoch); None: eta stays constant (n2p2 without etatau/etamax)
    etamax: float = 1.0  # kalman_etamax
    lambda_: float = 0.99  # kalman_lambda_short
    nu: float = 0.99887  # kalman_nue_short


class KalmanFilter:
    """Block-diagonal EKF state (P per block, η, q, λ) and its update.

    Parameters
    ----------
    blocks : index tensors into the flat weight vector, one per block (disjoint).
    params : the ``kalman_*`` parameters.
    updates_per_epoch : planned updates per epoch (divides etatau and qtau, as n2p2).
    device, dtype : of P (float64 by default, as n2p2).
    """

    def __init__(self, blocks: list[torch.Tensor], params: KalmanParameters, updates_per_epoch: int,
                 device="cpu", dtype=torch.float64):
        if params.type not in (0, 1):
            raise SettingsError(f"kalman_type must be 0 (standard) or 1 (fading memory), found {params.type}")
        if params.epsilon <= 0.0:
            raise SettingsError(f"kalman_epsilon must be > 0, found {params.epsilon}")
        self.params = params
        self.blocks = [b.to(device) for b in blocks]
        self._P = [torch.eye(len(b), dtype=dtype, device=device) / params.epsilon for b in blocks]
        # on the CPU in float64, P is kept in one triangle and updated with BLAS dsymv/dsyr/dsyrk (the
        # other triangle is stale): the same arithmetic as the full update with half the memory traffic
        self.triangle = _blas is not None and torch.device(device).type == "cpu" and dtype == torch.float64
        n = max(int(updates_per_epoch), 1)
        self.qtau = params.qtau / n
        if params.etatau is None:  # n2p2: without both keywords eta is constant
            self.etatau, self.etamax = 1.0, params.eta
        else:
            self.etatau, self.etamax = params.etatau / n, params.etamax
        self.eta = params.eta
        self.q = params.q0
        self.lam = params.lambda_
        self.gamma = 1.0
        self.n_updates = 0

    @property
    def P(self) -> list[torch.Tensor]:
        """The covariance blocks as full symmetric matrices (copies when one triangle is stored)."""
        return [self._full(P) for P in self._P]

    def _full(self, P: torch.Tensor) -> torch.Tensor:
        if not self.triangle:
            return P
        up = torch.triu(P)
        return up + up.T - torch.diag(P.diagonal())

    @staticmethod
    def memory_bytes(block_sizes: list[int], itemsize: int = 8) -> int:
        """Bytes of the P blocks (dense, itemsize per entry)."""
        return sum(itemsize * n * n for n in block_sizes)

    def update(self, xi: torch.Tensor | list[torch.Tensor], H: torch.Tensor) -> torch.Tensor:
        """One filter update; returns the weight change (n_w,) to add to w.

        xi : (m,) errors, or one (m,) vector per block (n2p2 ``update_strategy 1``).
        H : (n_w, m) Jacobian of the predictions with respect to the flat weights.
        """
        p = self.params
        H = H.to(self._P[0].dtype)
        dw = torch.zeros(H.shape[0], dtype=H.dtype, device=H.device)
        if p.type == 0 and self.eta < self.etamax:
            self.eta *= math.exp(self.etatau)
        r = 1.0 / self.eta if p.type == 0 else self.lam
        if isinstance(xi, (list, tuple)):  # independent filters (n2p2 update_strategy 1): one A per block
            for idx, P, e in zip(self.blocks, self._P, xi):
                Hb = H[idx]
                X = self._times(P, Hb)  # (n_b, m)
                A = Hb.T @ X
                A.diagonal().add_(r)
                dw[idx] = self._correct(P, X, A, e.to(H.dtype))
        else:  # one filter with a block-diagonal P: A = Σ_b H_bᵀ P_b H_b + R is shared
            Xs = [self._times(P, H[idx]) for idx, P in zip(self.blocks, self._P)]
            A = sum(H[idx].T @ X for idx, X in zip(self.blocks, Xs))
            A.diagonal().add_(r)
            for idx, P, X in zip(self.blocks, self._P, Xs):
                dw[idx] = self._correct(P, X, A, xi.to(H.dtype))
        if self.q > p.qmin:
            self.q *= math.exp(-self.qtau)
        if p.type == 1:
            self.lam = p.nu * self.lam + 1.0 - p.nu
            self.gamma = 1.0 / (1.0 + self.lam / self.gamma)
        self.n_updates += 1
        return dw

    def _times(self, P: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
        """P H (n_b, m) from the stored triangle of P (or all of P)."""
        if not self.triangle:
            return P @ H
        # a C-ordered P is the Fortran-ordered Pᵀ: its upper triangle in C order is the "lower" one here
        Pf = P.numpy().T
        Hn = H.numpy()
        if H.shape[1] == 1:
            return torch.from_numpy(_blas.dsymv(1.0, Pf, Hn[:, 0], lower=1)[:, None])
        return torch.from_numpy(_blas.dsymm(1.0, Pf, np.asfortranarray(Hn), side=0, lower=1))

    def _correct(self, P: torch.Tensor, X: torch.Tensor, A: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """K = X A⁻¹; P ← P − K Xᵀ (then /λ, + q I); returns K e."""
        K = torch.linalg.solve(A, X.T).T  # X A^-1 (A symmetric)
        if self.triangle:  # K Xᵀ = X A⁻¹ Xᵀ = Y Yᵀ with Y = X L⁻ᵀ, A = L Lᵀ: a symmetric rank-m update
            Pf = P.numpy().T
            if X.shape[1] == 1:
                _blas.dsyr(-1.0 / float(A[0, 0]), X.numpy()[:, 0], a=Pf, lower=1, overwrite_a=1)
            else:
                L = torch.linalg.cholesky(A)
                Y = torch.linalg.solve_triangular(L, X.T, upper=False).T  # X L^-T
                _blas.dsyrk(-1.0, np.asfortranarray(Y.numpy()), beta=1.0, c=Pf, trans=0, lower=1, overwrite_c=1)
        else:
            P.addmm_(K, X.T, alpha=-1.0)  # in place: no n_b x n_b temporary
        if self.params.type == 1:
            P.mul_(1.0 / self.lam)
        P.diagonal().add_(self.q)
        return K @ e

    def symmetrize(self) -> None:
        """P ← (P + Pᵀ)/2 (removes round-off asymmetry; n2p2 reads only the lower triangle); nothing to do
        when only one triangle is stored."""
        if self.triangle:
            return
        for P in self._P:
            P.copy_(0.5 * (P + P.T))

    def state_dict(self) -> dict:
        return {"P": [P.detach().cpu().clone() for P in self._P], "P_upper_only": self.triangle, "eta": self.eta, "q": self.q, "lam": self.lam,
                "gamma": self.gamma, "n_updates": self.n_updates, "qtau": self.qtau, "etatau": self.etatau,
                "etamax": self.etamax}

    def load_state_dict(self, state: dict) -> None:
        if len(state["P"]) != len(self._P) or any(a.shape != b.shape for a, b in zip(state["P"], self._P)):
            raise SettingsError("checkpoint: the Kalman filter's blocks differ from this run's (P shapes)")
        upper_only = bool(state.get("P_upper_only", False))
        for P, Q in zip(self._P, state["P"]):
            P.copy_(Q.to(P.device, P.dtype))
            if upper_only and not self.triangle:  # written by the CPU triangle path: fill the lower triangle
                P.copy_(torch.triu(P) + torch.triu(P, 1).T)
        for k in ("eta", "q", "lam", "gamma", "qtau", "etatau", "etamax"):
            setattr(self, k, float(state[k]))
        self.n_updates = int(state["n_updates"])


def weight_blocks(pot, mode: str) -> tuple[list[torch.nn.Parameter], list[torch.Tensor], list[str]]:
    """(parameters in flat order, index blocks, block names) for ``mode`` none|element|layer.

    The flat order is element by element (sorted as ``pot.elements``), layer by layer, weight
    matrix then bias: the order of :func:`flat_parameters`.
    """
    if mode not in BLOCK_MODES:
        raise SettingsError(f"hdnnp_kalman_blocks must be one of {', '.join(BLOCK_MODES)}, found {mode!r}")
    params, groups, names = [], [], []
    pos = 0
    for e in pot.elements:
        start_e = pos
        for li, lin in enumerate(pot.networks[e].layers):
            start_l = pos
            for t in (lin.weight, lin.bias):
                params.append(t)
                pos += t.numel()
            if mode == "layer":
                groups.append(torch.arange(start_l, pos))
                names.append(f"{e} layer {li + 1}")
        if mode == "element":
            groups.append(torch.arange(start_e, pos))
            names.append(e)
    if mode == "none":
        groups, names = [torch.arange(pos)], ["all"]
    return params, groups, names


def element_slices(pot) -> dict[str, slice]:
    """Slice of each element's weights in the flat vector of :func:`weight_blocks`."""
    out, pos = {}, 0
    for e in pot.elements:
        n = sum(t.numel() for lin in pot.networks[e].layers for t in (lin.weight, lin.bias))
        out[e] = slice(pos, pos + n)
        pos += n
    return out


def flat_jacobian(y: torch.Tensor, params: list[torch.nn.Parameter], retain_graph: bool) -> torch.Tensor:
    """∂y/∂w (n_w,) of a scalar y by autograd, in the flat order of ``params`` (zeros if unused)."""
    grads = torch.autograd.grad(y, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def add_flat(params: list[torch.nn.Parameter], dw: torch.Tensor) -> None:
    """w ← w + dw (flat order of ``params``)."""
    pos = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.add_(dw[pos:pos + n].view_as(p).to(p.dtype))
            pos += n
