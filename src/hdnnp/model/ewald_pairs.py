"""Periodic image pairs for the real-space Ewald sum, generated in chunks (no neighbour list).

With n2p2's Ewald parameters the real-space cutoff grows with the cell (r_c ~ V^(1/3)), so the
pair count grows as N^2 (about 3.3 images per matrix element for water): a stored pair list
would need O(N^2) memory. Here the pairs are generated per block of central atoms from the set
of candidate cell shifts, so memory stays O(block x N) and the same code runs on a GPU.

Half list: each unordered pair once: (i, j, S) with i < j, or i == j and S lexicographically
positive (one of the +-S images of an atom with itself). Positions must be wrapped into the
cell (fractional coordinates in [0, 1)), so that r_j - r_i = (f_j - f_i) @ cell with f_j - f_i in (-1, 1)^3.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch


def candidate_shifts(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer shifts S (n_s, 3) that can hold an image within ``cutoff`` of a wrapped atom.

    Lower bound of |(df + S) @ cell| over df in (-1, 1)^3: max_a (|S_a| - 1)_+ w_a with w_a the
    cell's width perpendicular to the other two vectors (exact as the root of the sum of squares
    for orthorhombic cells, which is then used).
    """
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    widths = np.array([volume / np.linalg.norm(np.cross(cell[(a + 1) % 3], cell[(a + 2) % 3])) for a in range(3)])
    nmax = [int(math.floor(1.0 + cutoff / w)) for w in widths]
    S = np.array(list(itertools.product(*(range(-m, m + 1) for m in nmax))), dtype=np.int64)
    gap = np.clip(np.abs(S) - 1, 0, None) * widths
    ortho = np.allclose(cell - np.diag(np.diag(cell)), 0.0)
    bound = np.sqrt((gap ** 2).sum(1)) if ortho else gap.max(1)
    return S[bound <= cutoff]


class ImagePairs:
    """The half list of periodic image pairs with distance <= cutoff, in chunks of central atoms.

    positions : (n, 3) wrapped, cell : (3, 3) rows (no gradient needed; any device);
    max_elements : bound on the distances evaluated at once (block x n x shifts).
    """

    def __init__(self, positions: torch.Tensor, cell: torch.Tensor, cutoff: float, max_elements: int = 2 ** 22):
        self.pos = positions.detach()
        self.cell = cell.detach()
        self.cutoff = float(cutoff)
        dev = self.pos.device
        S = candidate_shifts(self.cell.cpu().numpy(), self.cutoff)
        self.shifts = torch.as_tensor(S, device=dev)
        lex_pos = (S[:, 0] > 0) | ((S[:, 0] == 0) & (S[:, 1] > 0)) | ((S[:, 0] == 0) & (S[:, 1] == 0) & (S[:, 2] > 0))
        self.lex_positive = torch.as_tensor(lex_pos, device=dev)
        self.offsets = self.shifts.to(self.pos.dtype) @ self.cell  # (n_s, 3)
        n = self.pos.shape[0]
        self.block = max(1, int(max_elements // max(1, n * len(S))))

    def __len__(self) -> int:
        return self.pos.shape[0]

    #: the pairs of the first pass are kept for later passes up to this many (40 bytes each)
    cache_pairs: int = 2 ** 24

    def chunks(self):
        """Yield (i, j, S) int64 tensors (S as (p, 3) shifts) per block of central atoms i."""
        if getattr(self, "_cache", None) is not None:
            yield from self._cache
            return
        cache, count = [], 0
        for part in self._generate():
            count += len(part[0])
            if cache is not None:
                cache = cache + [part] if count <= self.cache_pairs else None
            yield part
        self._cache = cache

    def _generate(self):
        n = self.pos.shape[0]
        # a superset (relative slack 1e-9): the exact r <= r_c test is applied to the pair terms
        rc2 = self.cutoff * self.cutoff * (1.0 + 1e-9)
        ar = torch.arange(n, device=self.pos.device)
        oo = (self.offsets * self.offsets).sum(1)  # (n_s,)
        for a0 in range(0, n, self.block):
            a1 = min(n, a0 + self.block)
            # |r_j - r_i + o_s|^2 = |r_ij|^2 + 2 r_ij . o_s + |o_s|^2 (one matrix product for all shifts)
            # (half list: j >= i only)
            rij = self.pos[None, a0:, :] - self.pos[a0:a1, None, :]  # (b, n - a0, 3)
            d2 = (rij * rij).sum(-1)[:, :, None] + 2.0 * (rij @ self.offsets.T) + oo  # (b, n - a0, n_s)
            ii = ar[a0:a1, None, None]
            jj = ar[None, a0:, None]
            keep = (jj > ii) | ((jj == ii) & self.lex_positive[None, None, :])
            i, j, s = torch.nonzero((d2 <= rc2) & keep, as_tuple=True)
            yield i + a0, j + a0, self.shifts[s]

    def all(self):
        """All pairs at once: (i, j, S)."""
        parts = list(self.chunks())
        if not parts:
            z = torch.zeros(0, dtype=torch.int64, device=self.pos.device)
            return z, z, torch.zeros((0, 3), dtype=torch.int64, device=self.pos.device)
        return tuple(torch.cat(p) for p in zip(*parts))


class VesinPairs:
    """The same half list as ``ImagePairs`` (each unordered pair once, self-images once per +-S),
    built with vesin's cell list: O(N x neighbours) time and memory instead of O(N^2) distance
    checks, for the matrix-free Qeq (``hdnnp.model.qeq_cg``). The list is computed on the CPU
    (float64) and kept on the positions' device; ``chunks`` yields slices of ``chunk`` pairs.
    """

    def __init__(self, positions: torch.Tensor, cell: torch.Tensor, cutoff: float, chunk: int = 2 ** 18):
        from vesin import NeighborList

        dev = positions.device
        pos = positions.detach().to("cpu", torch.float64).numpy()
        box = cell.detach().to("cpu", torch.float64).numpy()
        i, j, S = NeighborList(cutoff=float(cutoff), full_list=False, sorted=True).compute(
            points=pos, box=box, periodic=True, quantities="ijS")
        # int32 indices (20 bytes per pair with S): the list is the CG path's largest persistent array
        idx = np.int32 if len(pos) < 2 ** 31 - 1 else np.int64
        self.i = torch.as_tensor(i.astype(idx), device=dev)
        del i
        self.j = torch.as_tensor(j.astype(idx), device=dev)
        del j
        self.S = torch.as_tensor(S, device=dev)  # int32 (p, 3)
        self.n = len(pos)
        self.chunk = int(chunk)

    def __len__(self) -> int:
        return self.n

    def chunks(self):
        for a in range(0, max(1, len(self.i)), self.chunk):  # one (empty) chunk when there are no pairs
            yield self.i[a:a + self.chunk], self.j[a:a + self.chunk], self.S[a:a + self.chunk]

    def all(self):
        return self.i, self.j, self.S
