"""The set of symmetry functions of a potential, per element, in n2p2 order,
and its evaluation on structures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from ase.data import atomic_numbers

from hdnnp.descriptors import kernels as K
from hdnnp.descriptors.plan import SymmetryFunctionPlan
from hdnnp.descriptors.symmetry_functions import (
    SymmetryFunction,
    SymmetryFunctionError,
    parse_symfunction,
    sort_symmetry_functions,
)
from hdnnp.descriptors.tables import build_kernel_tables
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
        #: which SFs share neighbour elements, radial groups and angular kinds (both executors use it)
        self.plan = SymmetryFunctionPlan(self)
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

    def neighbor_weights(self, sf: SymmetryFunction) -> list[tuple]:
        """Which neighbour elements an SF sums over, with their weights: radial SFs give
        ``(a, w)`` (w = Z_a for weighted types 12/23, else 1), angular SFs ``(a, b, w)`` with
        a <= b element indices (w = Z_a Z_b for weighted types 13/24, else 1)."""
        ne = len(self.elements)
        z = [float(atomic_numbers[e]) for e in self.elements]
        if not sf.angular:
            if sf.weighted:
                return [(a, z[a]) for a in range(ne)]
            return [(self.element_index[sf.neighbors[0]], 1.0)]
        if sf.weighted:
            return [(a, b, z[a] * z[b]) for a in range(ne) for b in range(a, ne)]
        a, b = sorted(self.element_index[n] for n in sf.neighbors)
        return [(a, b, 1.0)]

    def _build_tables(self) -> None:
        """``kernel_tables`` for ``kernels.symmetry_functions`` (``tables.build_kernel_tables``)."""
        self._n_sf = np.array([len(self.functions[e]) for e in self.elements], dtype=np.int64)
        self.kernel_tables = build_kernel_tables(self)
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

    def _run(self, structure: Structure, nl: NeighborList, species, mode: int, dEdG=None,
             atom_begin: int = 0, atom_end: int | None = None):
        """Run the kernel on central atoms [atom_begin, atom_end) (default: all)."""
        if atom_end is None:
            atom_end = len(species)
        if dEdG is None:
            dEdG = np.zeros((1, self.max_sf))
        # dynamic scheduling over atoms in chunks of a few: the work per atom depends on its
        # element, and files often list the atoms element by element
        with numba.parallel_chunksize(4):
            return K.symmetry_functions(
                species, nl.start, nl.j, nl.vectors, nl.distances, int(atom_begin), int(atom_end),
                self.kernel_tables, mode, np.ascontiguousarray(dEdG, dtype=np.float64),
                numba.config.NUMBA_NUM_THREADS,
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

