"""Consistency of the symmetry-function kernels (issue 3).

* kernel modes 0 (values), 1 (values + dG/dr per pair) and 2 (gradients contracted with dE/dG)
  agree, for every SF type and several cutoff types, in a cluster and in a small periodic cell;
* results do not depend on the order of the pairs, on atom chunks or on the thread count;
* ``Potential.compute``: derivative_mode "store" (also in several chunks) == "recompute";
  forces == -dE/dr by central differences (Cu2S, a few atoms);
* the kernels' vectorisable exp and acos agree with libm to ~1 ulp.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from conftest import load_potential

from hdnnp.descriptors import kernels as K
from hdnnp.descriptors.sf_set import SymmetryFunctionSet
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.structure import Structure
from hdnnp.testing import central_difference_forces

#: every SF type, mixing narrow/wide, weighted and compact ones in the same blocks
SF_LINES = [
    "H 2 O 0.3 0.8 4.0", "O 2 H 0.5 0.0 4.0", "H 2 H 0.1 0.0 3.5", "O 2 O 0.1 0.0 4.0",
    "H 3 O O 0.1 1 2 4.0", "O 3 H H 0.05 -1 1 4.0 0.5", "O 3 H O 0.2 1 4 4.0", "O 3 H H 0.05 1 2.5 3.6",
    "H 9 H O 0.1 -1 2 4.0", "O 9 H H 0.05 1 3.5 4.0", "O 9 O O 0.02 1 1 4.0 0.3", "O 9 H O 0.2 1 4 4.0",
    "H 12 0.3 0.5 4.0", "O 12 0.1 0.0 3.8",
    "H 13 0.1 0.2 1 2 4.0", "O 13 0.05 0.0 -1 1 4.0",
    "H 20 O 0.5 4.0 p2", "O 20 H -4.0 4.0 p3a", "O 20 O 1.0 3.5 e",
    "H 21 O O 0.0 4.0 0 180 p2", "O 21 H H -4.0 4.0 60 180 p4a", "O 21 H O 0.5 4.0 -90 90 p1",
    "H 22 O H 0.0 4.0 90 270 p2", "O 22 H H -4.0 4.0 0 120 p2a", "O 22 O H 0.5 4.0 49.1 169.1 e",
    "H 22 O H 0.0 4.0 0 120 p2", "H 22 O H -2.0 3.0 90 270 p2a",
    "H 23 0.5 4.0 p2", "O 23 -4.0 4.0 p2a",
    "H 24 0.0 4.0 0 180 p3", "O 24 -4.0 4.0 -90 90 p2",
    "H 25 0.0 4.0 30 150 p2", "O 25 -4.0 4.0 90 270 p2a",
]
CELL = np.array([[5.0, 0.0, 0.0], [1.2, 4.6, 0.0], [-0.7, 0.9, 4.8]])  # smaller than 2 r_c


class _Line:
    def __init__(self, text, k):
        self.values = text.split()
        self.lineno = k


def _sf_set(cutoff_type: int, alpha: float, lines=SF_LINES) -> SymmetryFunctionSet:
    return SymmetryFunctionSet.from_lines(["H", "O"], [_Line(t, k) for k, t in enumerate(lines)],
                                          cutoff_type, alpha)


def _structure(rng, n, cell=None, box=4.5) -> Structure:
    pos = []
    while len(pos) < n:
        p = rng.uniform(0, 1, 3) @ cell if cell is not None else rng.uniform(0, box, 3)
        if all(np.linalg.norm(p - q) > 0.9 for q in pos):
            pos.append(p)
    return Structure(["H" if k % 3 else "O" for k in range(n)], np.array(pos), cell=cell)


def _run(sfs, s, nl, mode, dEdG=None, begin=0, end=None):
    return sfs._run(s, nl, sfs.species_of(s), mode, dEdG, atom_begin=begin, atom_end=end)


@pytest.fixture(scope="module")
def cu2s(anchors):
    pot = load_potential(anchors / "potentials" / "Cu2S_PBE")
    return pot, read_input_data(anchors / "potentials" / "Cu2S_PBE" / "input.data")[0]


@pytest.mark.parametrize("cutoff_type,alpha", [(2, 0.0), (6, 0.0), (6, 0.3), (1, 0.2), (4, 0.1)])
@pytest.mark.parametrize("system", ["cluster", "periodic", "dense"])
def test_modes_agree_every_type(cutoff_type, alpha, system):
    rng = np.random.default_rng(10 * cutoff_type + len(system))
    if system == "dense":  # > 512 triplets per block: the triplet lists are processed in chunks
        sfs = _sf_set(cutoff_type, alpha, [t.replace(" 4.0", " 7.0") for t in SF_LINES])
        s = _structure(rng, 70, box=6.0)
    else:
        sfs = _sf_set(cutoff_type, alpha)
        s = _structure(rng, 8, CELL) if system == "periodic" else _structure(rng, 14)
    nl = sfs.neighbors(s)
    G0, D0, P0 = _run(sfs, s, nl, 0)
    G1, D1, P1 = _run(sfs, s, nl, 1)
    assert D0.shape[0] == 0 and P0.shape[0] == 0 and P1.shape[0] == 0
    assert D1.shape == (nl.n_pairs, sfs.max_sf, 3)
    scale = np.abs(G0).max()
    assert (np.abs(G0).max(axis=0) > 0).mean() > 0.9, "most symmetry functions are zero: degenerate test"
    np.testing.assert_allclose(G1, G0, rtol=0, atol=1e-13 * scale)
    # mode 2 = D contracted with dE/dG (random weights; zero beyond each element's SF count)
    species = sfs.species_of(s)
    dEdG = rng.normal(size=G0.shape)
    for k, e in enumerate(sfs.elements):
        dEdG[species == k, sfs.n_sf[e]:] = 0.0
    G2, _, PG = _run(sfs, s, nl, 2, dEdG)
    assert G2.shape[0] == 0
    ref = np.einsum("ps,psc->pc", dEdG[nl.i], D1)
    np.testing.assert_allclose(PG, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    # the contraction helper of derivative_mode="store" gives the same
    np.testing.assert_allclose(K.contract_pair_gradients(nl.start, 0, len(s), D1, dEdG), ref,
                               rtol=0, atol=1e-12 * np.abs(ref).max())


def test_chunks_and_pair_order():
    rng = np.random.default_rng(5)
    sfs = _sf_set(6, 0.0)
    s = _structure(rng, 9, CELL)
    nl = sfs.neighbors(s)
    G, D, _ = _run(sfs, s, nl, 1)
    dEdG = rng.normal(size=G.shape)
    PG = _run(sfs, s, nl, 2, dEdG)[2]
    # atom ranges (as used by derivative_mode="store" in chunks)
    k = 4
    Ga, Da, _ = _run(sfs, s, nl, 1, begin=0, end=k)
    Gb, Db, _ = _run(sfs, s, nl, 1, begin=k, end=len(s))
    np.testing.assert_array_equal(np.vstack([Ga, Gb]), G)
    np.testing.assert_array_equal(np.concatenate([Da, Db]), D)
    PGb = _run(sfs, s, nl, 2, dEdG[k:], begin=k, end=len(s))[2]
    np.testing.assert_array_equal(PGb, PG[nl.start[k]:])
    # shuffling the pairs of each atom changes nothing but rounding
    perm = np.concatenate([nl.start[a] + rng.permutation(nl.start[a + 1] - nl.start[a]) for a in range(len(s))])
    from hdnnp.neighbors import NeighborList

    nl2 = NeighborList(i=nl.i[perm], j=nl.j[perm], vectors=np.ascontiguousarray(nl.vectors[perm]),
                       distances=nl.distances[perm], shifts=nl.shifts[perm], start=nl.start)
    G2, D2, _ = _run(sfs, s, nl2, 1)
    np.testing.assert_allclose(G2, G, rtol=0, atol=1e-13 * np.abs(G).max())
    np.testing.assert_allclose(D2, D[perm], rtol=0, atol=1e-13 * np.abs(D).max())
    np.testing.assert_allclose(_run(sfs, s, nl2, 2, dEdG)[2], PG[perm], rtol=0, atol=1e-13 * np.abs(PG).max())


def test_thread_count_does_not_change_results(cu2s):
    pot, s = cu2s
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        r1 = pot.compute(s)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        r2 = pot.compute(s)
    finally:
        numba.set_num_threads(old)
    # each atom is computed by one thread in a fixed order: bitwise identical
    assert r1.energy == r2.energy
    np.testing.assert_array_equal(r1.forces, r2.forces)


def test_store_equals_recompute(cu2s):
    pot, s = cu2s
    rec = pot.compute(s, derivative_mode="recompute")
    sto = pot.compute(s, derivative_mode="store")
    pot.STORE_CHUNK_BYTES = 200_000  # instance override: several chunks of atoms
    try:
        assert len(pot._store_chunks(pot.sf_set.neighbors(s), len(s))) > 3
        chunked = pot.compute(s, derivative_mode="store")
    finally:
        del pot.STORE_CHUNK_BYTES
    fmax = np.abs(rec.forces).max()
    for r in (sto, chunked):
        assert abs(r.energy - rec.energy) <= 1e-12 * abs(rec.energy)
        np.testing.assert_allclose(r.forces, rec.forces, rtol=0, atol=1e-12 * fmax)
        np.testing.assert_allclose(r.atomic_energies, rec.atomic_energies, rtol=0, atol=1e-12)
        np.testing.assert_allclose(r.stress, rec.stress, rtol=0, atol=1e-12 * np.abs(rec.stress).max())
    with pytest.raises(ValueError, match="derivative_mode"):
        pot.compute(s, derivative_mode="fast")


def test_forces_match_finite_differences(cu2s):
    pot, s = cu2s
    r = pot.compute(s)
    atoms = [0, 77, len(s) - 1]  # S and Cu
    fd = central_difference_forces(lambda x: pot.compute(x, forces=False).energy, s, atoms, 1e-4)
    err = np.abs(fd - r.forces[atoms]).max()
    print(f"max |F - F_fd| = {err:.2e} (max |F| = {np.abs(r.forces).max():.2e})")
    assert err < 1e-7 * max(1.0, np.abs(r.forces).max()), f"max |F - F_fd| = {err:.2e}"


def test_fast_exp_and_acos():
    @numba.njit(error_model="numpy", fastmath=K._FASTMATH)  # as in the kernels
    def both(x, y):
        e = np.empty_like(x)
        a = np.empty_like(y)
        for k in range(x.shape[0]):
            e[k] = K._exp(x[k])
        for k in range(y.shape[0]):
            a[k] = K._acos(y[k])
        return e, a

    rng = np.random.default_rng(3)
    x = np.concatenate([-rng.uniform(0, 700, 20000), -rng.uniform(0, 2, 20000), rng.uniform(0, 700, 2000), [0.0]])
    y = np.concatenate([rng.uniform(-1, 1, 40000), [-1.0, -0.5, 0.0, 0.5, 1.0, 0.5 - 1e-17, -0.5 + 1e-17]])
    e, a = both(x, y)
    ref_e = np.exp(x)
    ref_a = np.array([math.acos(v) for v in y])
    assert np.max(np.abs(e - ref_e) / ref_e) < 3e-16
    assert np.max(np.abs(a - ref_a)) < 5e-16
