"""The set of symmetry functions of a potential, per element, in n2p2 order,
and its evaluation on structures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from ase.data import atomic_numbers

from hdnnp.descriptors import kernels as K
from hdnnp.descriptors.tables import KernelTables
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
        """Parameter tables for ``kernels.symmetry_functions`` (see its module docstring).

        Radial SFs: per-SF rows plus, per (central element, neighbour element), the SF list
        and its weight (Z_j for types 12/23, else 1). Angular SFs are split into radial
        groups (same per-neighbour factor R and narrowness) and angular kinds (same factor A),
        and listed per block (central element, neighbour elements ea <= eb) with the weight
        c = Z_a Z_b of weighted types folded into the block's group entry.
        """
        ne = len(self.elements)
        ms = self.max_sf
        ip = np.zeros((ne, ms, K.N_IPARAM), dtype=np.int64)
        fp = np.zeros((ne, ms, K.N_FPARAM), dtype=np.float64)
        rad_lists = [[[] for _ in range(ne)] for _ in range(ne)]
        groups: list[list[tuple]] = [[] for _ in range(ne)]  # per element: group keys
        kinds: list[tuple] = []  # global: kind keys
        # blocks[e][(ea, eb)] -> {(group, coef): [(s, kind)]}
        blocks: list[dict] = [dict() for _ in range(ne)]
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
                if not sf.angular:
                    for a, w in self.neighbor_weights(sf):
                        rad_lists[e][a].append((s, w))
                    continue
                # angular: radial group key (sorted by cutoff first, so that consecutive
                # groups share the cutoff function) and angular kind key
                if sf.compact:
                    gkey = (1, sf.r_cut, 0, 0.0, 0.0, sf.r_low, int(sf.core), int(sf.asymmetric), int(sf.narrow))
                else:
                    gkey = (0, sf.r_cut, sf.cutoff_type, sf.cutoff_alpha, sf.eta, sf.r_shift, 0, 0, int(sf.narrow))
                if gkey not in groups[e]:
                    groups[e].append(gkey)
                if sf.compact:
                    kkey = (1, 0.0, 0.0, 0, 0.0, fp[e, s, K.P_AL], fp[e, s, K.P_AR], fp[e, s, K.P_CA],
                            fp[e, s, K.P_SA], int(sf.core))
                else:
                    kkey = (0, sf.lambda_, sf.zeta, zint, fp[e, s, K.P_PREF], 0.0, 0.0, 0.0, 0.0, 0)
                if kkey not in kinds:
                    kinds.append(kkey)
                for a, b, coef in self.neighbor_weights(sf):
                    blocks[e].setdefault((a, b), {}).setdefault((gkey, coef), []).append((s, kinds.index(kkey)))
        # radial tables
        mr = max(1, max(len(x) for r in rad_lists for x in r))
        rad_idx = np.zeros((ne, ne, mr), dtype=np.int64)
        rad_coef = np.zeros((ne, ne, mr), dtype=np.float64)
        rad_cnt = np.zeros((ne, ne), dtype=np.int64)
        for e in range(ne):
            for a in range(ne):
                lst = rad_lists[e][a]
                rad_cnt[e, a] = len(lst)
                for q, (s, c) in enumerate(lst):
                    rad_idx[e, a, q], rad_coef[e, a, q] = s, c
        # radial groups, sorted by (compact, r_cut, cutoff, ...)
        for e in range(ne):
            groups[e].sort()
        mg = max(1, max(len(g) for g in groups))
        grp_n = np.array([len(g) for g in groups], dtype=np.int64)
        grp_i = np.zeros((ne, mg, K.N_GI), dtype=np.int64)
        grp_f = np.zeros((ne, mg, K.N_GF), dtype=np.float64)
        for e in range(ne):
            for g, (comp, rc, cut, alpha, eta, rs_or_rl, core, asym, narrow) in enumerate(groups[e]):
                grp_i[e, g] = (comp, cut, core, asym, narrow)
                grp_f[e, g, K.GF_RC] = rc
                if comp:
                    rl = rs_or_rl
                    grp_f[e, g, K.GF_RL] = rl
                    grp_f[e, g, K.GF_CR] = (rc + rl) / 2.0
                    grp_f[e, g, K.GF_SR] = 1.0 / ((rc - rl) / 2.0)
                else:
                    grp_f[e, g, K.GF_ETA] = eta
                    grp_f[e, g, K.GF_RS] = rs_or_rl
                    grp_f[e, g, K.GF_ALPHA] = alpha
        nk_all = max(1, len(kinds))
        kind_i = np.zeros((nk_all, K.N_KI), dtype=np.int64)
        kind_f = np.zeros((nk_all, K.N_KF), dtype=np.float64)
        for k, (comp, lam, zeta, zint, pref, al, ar, ca, sa, core) in enumerate(kinds):
            kind_i[k] = (comp, zint, core)
            kind_f[k] = (lam, zeta, pref, al, ar, ca, sa)
        # blocks (e, ea <= eb): their groups (with weight), kinds and SF entries, flat
        blk_id = -np.ones((ne, ne, ne), dtype=np.int64)
        blk_rows = []  # q0, nq, k0, nk, e0, ne, flag, rcn
        q_rows_i, q_rows_f, k_rows_i, k_rows_f = [], [], [], []
        ent = []  # (s, q, k)
        for e in range(ne):
            for (a, b), blk in sorted(blocks[e].items()):
                klist = sorted({k for ents in blk.values() for _, k in ents})
                keys = sorted(blk, key=lambda gc: (groups[e].index(gc[0]), gc[1]))
                q0, k0, e0 = len(q_rows_i), len(k_rows_i), len(ent)
                prev_fc = None
                narrow_rc = []
                for q, (gkey, coef) in enumerate(keys):
                    comp, rc, cut, alpha, eta, rs_or_rl, core, asym, narrow = gkey
                    newfc = 0
                    if narrow and not comp:
                        newfc = int((rc, cut, alpha) != prev_fc)
                        prev_fc = (rc, cut, alpha)
                    if narrow:
                        narrow_rc.append(rc)
                    row_f = np.zeros(K.N_QF)
                    row_f[K.QF_C], row_f[K.QF_RC] = coef, rc
                    if comp:
                        row_f[K.QF_RL] = rs_or_rl
                        row_f[K.QF_CR] = (rc + rs_or_rl) / 2.0
                        row_f[K.QF_SR] = 1.0 / ((rc - rs_or_rl) / 2.0)
                    else:
                        row_f[K.QF_ETA], row_f[K.QF_RS], row_f[K.QF_ALPHA] = eta, rs_or_rl, alpha
                    q_rows_f.append(row_f)
                    qe0 = len(ent)
                    for s_, k in blk[(gkey, coef)]:
                        ent.append((s_, q, klist.index(k)))
                    q_rows_i.append((groups[e].index(gkey), narrow, comp, newfc, core, asym, cut, qe0, len(ent)))
                for k in klist:
                    k_rows_i.append(kind_i[k])
                    k_rows_f.append(kind_f[k])
                flag = (1 if narrow_rc else 0) | (2 if len(narrow_rc) == len(keys) else 0) \
                    | (4 if any(kinds[k][0] == 1 for k in klist) else 0)
                blk_id[e, a, b] = len(blk_rows)
                blk_rows.append((q0, len(keys), k0, len(klist), e0, len(ent) - e0, flag,
                                 max(narrow_rc) if narrow_rc else 0.0))
        nb = max(1, len(blk_rows))
        brow = np.zeros((nb, 8))
        if blk_rows:
            brow[: len(blk_rows)] = np.array(blk_rows, dtype=np.float64)
        bi = brow[:, :7].astype(np.int64)
        q_i = np.array(q_rows_i, dtype=np.int64).reshape(-1, K.N_QI)
        q_f = np.array(q_rows_f, dtype=np.float64).reshape(-1, K.N_QF)
        k_i = np.array(k_rows_i, dtype=np.int64).reshape(-1, K.N_KI)
        k_f = np.array(k_rows_f, dtype=np.float64).reshape(-1, K.N_KF)
        ent_a = np.array(ent, dtype=np.int64).reshape(-1, 3)
        self._n_sf = np.array([len(self.functions[e]) for e in self.elements], dtype=np.int64)
        blk_cols = [np.ascontiguousarray(bi[:, c]) for c in range(7)]
        self.kernel_tables = KernelTables(
            n_sf=self._n_sf, iparams=ip, fparams=fp, rad_idx=rad_idx, rad_coef=rad_coef, rad_cnt=rad_cnt,
            grp_n=grp_n, grp_i=grp_i, grp_f=grp_f, blk_id=blk_id,
            blk_q0=blk_cols[0], blk_nq=blk_cols[1], blk_k0=blk_cols[2], blk_nk=blk_cols[3],
            blk_e0=blk_cols[4], blk_ne=blk_cols[5], blk_flag=blk_cols[6],
            blk_rcn=np.ascontiguousarray(brow[:, 7]),
            q_i=q_i, q_f=q_f, kind_i=k_i, kind_f=k_f,
            ent_s=np.ascontiguousarray(ent_a[:, 0]), ent_q=np.ascontiguousarray(ent_a[:, 1]),
            ent_k=np.ascontiguousarray(ent_a[:, 2]),
        )
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
