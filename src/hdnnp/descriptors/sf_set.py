"""The set of symmetry functions of a potential, per element, in n2p2 order,
and its evaluation on structures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers

from hdnnp.descriptors import kernels as K
from hdnnp.descriptors.symmetry_functions import (
    SymmetryFunction,
    SymmetryFunctionError,
    angle_radians,
    parse_symfunction,
    sort_symmetry_functions,
)
from hdnnp.errors import SettingsError
from hdnnp.neighbors import NeighborList, neighbor_list
from hdnnp.structure import Structure


@dataclass
class Descriptors:
    """Symmetry functions of one structure.

    G : (n_atoms, max_sf) raw values (columns beyond an element's SF count are 0).
    species : (n_atoms,) element index. neighbors : the pair list used.
    D : (n_pairs, max_sf, 3) dG_i/dr_j per pair, or None.
    """

    G: np.ndarray
    species: np.ndarray
    neighbors: NeighborList
    D: np.ndarray | None = None


class SymmetryFunctionSet:
    """Symmetry functions per element (sorted as n2p2 does), ready for the kernels.

    elements : symbols ordered by atomic number (n2p2 element index order).
    functions : dict symbol -> sorted list of SymmetryFunction.
    """

    def __init__(self, elements: list[str], functions: dict[str, list[SymmetryFunction]]):
        self.elements = sorted(elements, key=lambda e: atomic_numbers[e])
        self.element_index = {e: k for k, e in enumerate(self.elements)}
        self.functions = {
            e: sort_symmetry_functions(list(functions.get(e, [])), self.element_index) for e in self.elements
        }
        for e in self.elements:
            if not self.functions[e]:
                raise SettingsError(f"element {e} has no symmetry functions")
        self.cutoff = max(sf.r_cut for fs in self.functions.values() for sf in fs)
        self._build_tables()

    # ------------------------------------------------------------------ setup
    @classmethod
    def from_lines(cls, elements, lines, cutoff_type: int, cutoff_alpha: float, path: str = "<input.nn>"):
        """Build from ``symfunction_short`` settings lines (objects with .values and .lineno)."""
        from hdnnp.errors import ReadError

        funcs: dict[str, list[SymmetryFunction]] = {e: [] for e in elements}
        for line in lines:
            try:
                sf = parse_symfunction(line.values, line.lineno)
            except SymmetryFunctionError as exc:
                raise ReadError(path, line.lineno, f"symfunction_short: {exc}") from None
            for el in (sf.central, *sf.neighbors):
                if el not in funcs:
                    raise ReadError(
                        path, line.lineno,
                        f"symfunction_short uses element {el!r}, which is not in 'elements' ({' '.join(elements)})",
                    )
            funcs[sf.central].append(sf.with_cutoff(cutoff_type, cutoff_alpha))
        for e, fs in funcs.items():
            if not fs:
                raise ReadError(path, None, f"element {e} has no symfunction_short lines")
        return cls(list(elements), funcs)

    @property
    def n_sf(self) -> dict[str, int]:
        return {e: len(fs) for e, fs in self.functions.items()}

    @property
    def max_sf(self) -> int:
        return max(self.n_sf.values())

    def _build_tables(self) -> None:
        ne = len(self.elements)
        ms = self.max_sf
        ip = np.zeros((ne, ms, K.N_IPARAM), dtype=np.int64)
        fp = np.zeros((ne, ms, K.N_FPARAM), dtype=np.float64)
        rad_lists = [[[] for _ in range(ne)] for _ in range(ne)]
        ang_lists = [[[[] for _ in range(ne)] for _ in range(ne)] for _ in range(ne)]
        for e, el in enumerate(self.elements):
            for s, sf in enumerate(self.functions[el]):
                ip[e, s, K.I_TYPE] = sf.code
                ip[e, s, K.I_CUT] = sf.cutoff_type
                ip[e, s, K.I_CORE] = sf.core
                ip[e, s, K.I_ASYM] = int(sf.asymmetric)
                zint = -1
                if sf.angular and not sf.compact and abs(sf.zeta - round(sf.zeta)) <= 2.2250738585072014e-308:
                    zint = int(round(sf.zeta))
                ip[e, s, K.I_ZINT] = zint
                fp[e, s, K.P_ETA] = sf.eta
                fp[e, s, K.P_RS] = sf.r_shift
                fp[e, s, K.P_RC] = sf.r_cut
                fp[e, s, K.P_LAMBDA] = sf.lambda_
                fp[e, s, K.P_ZETA] = sf.zeta
                fp[e, s, K.P_PREF] = math.pow(2.0, 1.0 - sf.zeta)
                fp[e, s, K.P_RL] = sf.r_low
                fp[e, s, K.P_ALPHA] = sf.cutoff_alpha
                if sf.compact:
                    fp[e, s, K.P_CR] = (sf.r_cut + sf.r_low) / 2.0
                    fp[e, s, K.P_SR] = 1.0 / ((sf.r_cut - sf.r_low) / 2.0)
                    if sf.angular:
                        left, right = angle_radians(sf.angle_left), angle_radians(sf.angle_right)
                        fp[e, s, K.P_AL], fp[e, s, K.P_AR] = left, right
                        fp[e, s, K.P_CA] = (right + left) / 2.0
                        fp[e, s, K.P_SA] = 1.0 / ((right - left) / 2.0)
                if sf.weighted:
                    targets = range(ne)
                else:
                    targets = [self.element_index[n] for n in sf.neighbors]
                if sf.angular:
                    if sf.weighted:
                        pairs = {(a, b) for a in range(ne) for b in range(ne)}
                    else:
                        a, b = targets
                        pairs = {(a, b), (b, a)}
                    for a, b in pairs:
                        ang_lists[e][a][b].append(s)
                else:
                    for a in targets:
                        rad_lists[e][a].append(s)
        mr = max(1, max(len(x) for r in rad_lists for x in r))
        ma = max(1, max(len(x) for r in ang_lists for q in r for x in q))
        rad_idx = np.zeros((ne, ne, mr), dtype=np.int64)
        rad_cnt = np.zeros((ne, ne), dtype=np.int64)
        ang_idx = np.zeros((ne, ne, ne, ma), dtype=np.int64)
        ang_cnt = np.zeros((ne, ne, ne), dtype=np.int64)
        for e in range(ne):
            for a in range(ne):
                rad_cnt[e, a] = len(rad_lists[e][a])
                rad_idx[e, a, : rad_cnt[e, a]] = rad_lists[e][a]
                for b in range(ne):
                    ang_cnt[e, a, b] = len(ang_lists[e][a][b])
                    ang_idx[e, a, b, : ang_cnt[e, a, b]] = ang_lists[e][a][b]
        self._n_sf = np.array([len(self.functions[e]) for e in self.elements], dtype=np.int64)
        self._tables = (ip, fp, rad_idx, rad_cnt, ang_idx, ang_cnt)
        self._znum = {e: float(atomic_numbers[e]) for e in self.elements}

    # ------------------------------------------------------------- evaluation
    def species_of(self, structure: Structure) -> np.ndarray:
        try:
            return np.array([self.element_index[e] for e in structure.elements], dtype=np.int64)
        except KeyError as exc:
            raise SettingsError(
                f"element {exc.args[0]} is in the structure but not in the potential "
                f"(elements: {' '.join(self.elements)})"
            ) from None

    def _run(self, structure: Structure, nl: NeighborList, species, mode: int, dEdG=None):
        ip, fp, rad_idx, rad_cnt, ang_idx, ang_cnt = self._tables
        znum = np.array([self._znum[e] for e in structure.elements])
        if dEdG is None:
            dEdG = np.zeros((0, self.max_sf))
        return K.symmetry_functions(
            species, znum, nl.start, nl.j, nl.vectors, nl.distances,
            self._n_sf, ip, fp, rad_idx, rad_cnt, ang_idx, ang_cnt,
            mode, np.ascontiguousarray(dEdG, dtype=np.float64),
        )

    def neighbors(self, structure: Structure) -> NeighborList:
        return neighbor_list(structure.positions, structure.cell, self.cutoff)

    def compute(self, structure: Structure, derivatives: bool = False,
                nl: NeighborList | None = None) -> Descriptors:
        """Raw symmetry functions (and D = dG_i/dr_j per pair when ``derivatives``)."""
        species = self.species_of(structure)
        nl = nl if nl is not None else self.neighbors(structure)
        G, D, _ = self._run(structure, nl, species, 1 if derivatives else 0)
        return Descriptors(G=G, species=species, neighbors=nl, D=D if derivatives else None)

    def pair_gradients(self, structure: Structure, nl: NeighborList, species, dEdG: np.ndarray) -> np.ndarray:
        """Per-pair gradients sum_s dE/dG[i,s] dG[i,s]/dr_j, (n_pairs, 3), without storing D."""
        _, _, PG = self._run(structure, nl, species, 2, dEdG)
        return PG
