"""Neighbour lists with periodic images (thin wrapper over vesin).

Convention (vesin's): ``r_ij = r_j - r_i + S @ cell`` with cell vectors as rows.
The list is full (both i->j and j->i), includes periodic images of i itself,
and is sorted by the central atom i (CSR offsets in ``start``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vesin import NeighborList as _VesinNeighborList


@dataclass
class NeighborList:
    """Pairs within the cutoff.

    i, j : (n_pairs,) int64 atom indices; vectors : (n_pairs, 3) r_j - r_i + S @ cell;
    distances : (n_pairs,); shifts : (n_pairs, 3) int cell shifts S; start : (n_atoms+1,) CSR.
    """

    i: np.ndarray
    j: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray
    shifts: np.ndarray
    start: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.i)


def neighbor_list(positions: np.ndarray, cell: np.ndarray | None, cutoff: float) -> NeighborList:
    """Full neighbour list of all pairs with distance <= cutoff (any periodic image).

    positions : (n_atoms, 3) float64; cell : (3, 3) rows or None (non-periodic).
    Works for cells smaller than the cutoff (several image shells per axis).
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    n = len(positions)
    periodic = cell is not None
    box = np.ascontiguousarray(cell if periodic else np.zeros((3, 3)), dtype=np.float64)
    calc = _VesinNeighborList(cutoff=float(cutoff), full_list=True, sorted=True)
    i, j, S, D, d = calc.compute(points=positions, box=box, periodic=periodic, quantities="ijSDd", copy=True)
    i = np.asarray(i, dtype=np.int64)
    order = np.argsort(i, kind="stable")
    i = i[order]
    j = np.asarray(j, dtype=np.int64)[order]
    S = np.asarray(S, dtype=np.int64)[order]
    D = np.ascontiguousarray(np.asarray(D, dtype=np.float64)[order])
    d = np.asarray(d, dtype=np.float64)[order]
    keep = d > 0.0  # coinciding atoms have no defined direction; n2p2 would divide by zero
    if not keep.all():
        raise ValueError(
            f"atoms {i[~keep][0]} and {j[~keep][0]} coincide (distance 0); check the structure"
        )
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=n), out=start[1:])
    return NeighborList(i=i, j=j, vectors=D, distances=d, shifts=S, start=start)
