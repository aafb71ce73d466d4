"""Physics checks of symmetry functions and the potential (float64).

* dG/dr against central differences, error falling ~h^2, for every SF type and cutoff type;
* forces = -dE/dr; invariance under rotation, translation, permutation, cell basis change;
* periodic images: 2x2x2 supercell gives 8x the energy, cells smaller than the cutoff work.
"""

from __future__ import annotations

import numpy as np
import pytest

from hdnnp.descriptors.sf_set import SymmetryFunctionSet
from hdnnp.io.input_nn import Settings
from hdnnp.model.potential import Potential
from hdnnp.structure import Structure
from hdnnp.testing import central_difference_forces, central_difference_stress, random_rotation

SF_LINES = {
    2: ["H 2 O 0.3 0.8 4.0", "O 2 H 0.5 0.0 4.0", "H 2 H 0.1 0.0 3.5"],
    3: ["H 3 O O 0.1 1 2 4.0", "O 3 H H 0.05 -1 1 4.0 0.5", "O 3 H O 0.2 1 4 4.0"],
    9: ["H 9 H O 0.1 -1 2 4.0", "O 9 H H 0.05 1 3.5 4.0", "O 9 O O 0.02 1 1 4.0 0.3"],
    12: ["H 12 0.3 0.5 4.0", "O 12 0.1 0.0 3.8"],
    13: ["H 13 0.1 0.2 1 2 4.0", "O 13 0.05 0.0 -1 1 4.0"],
    20: ["H 20 O 0.5 4.0 p2", "O 20 H -4.0 4.0 p3a", "O 20 O 1.0 3.5 e"],
    21: ["H 21 O O 0.0 4.0 0 180 p2", "O 21 H H -4.0 4.0 60 180 p4a", "O 21 H O 0.5 4.0 -90 90 p1"],
    22: ["H 22 O H 0.0 4.0 90 270 p2", "O 22 H H -4.0 4.0 0 120 p2a", "O 22 O H 0.5 4.0 49.1 169.1 e"],
    23: ["H 23 0.5 4.0 p2", "O 23 -4.0 4.0 p2a"],
    24: ["H 24 0.0 4.0 0 180 p3", "O 24 -4.0 4.0 -90 90 p2"],
    25: ["H 25 0.0 4.0 30 150 p2", "O 25 -4.0 4.0 90 270 p2a"],
}


def random_cluster(rng, n=10, box=4.5, dmin=0.9, cell=None):
    pos = []
    while len(pos) < n:
        p = rng.uniform(0, box, 3)
        if cell is not None:
            p = rng.uniform(0, 1, 3) @ cell
        if all(np.linalg.norm(p - q) > dmin for q in pos):
            pos.append(p)
    elements = ["H" if k % 3 else "O" for k in range(n)]
    return Structure(elements, np.array(pos), cell=cell)


class _Line:
    def __init__(self, text, k):
        self.values = text.split()
        self.lineno = k


def make_sf_set(lines, cutoff_type=6, alpha=0.0):
    return SymmetryFunctionSet.from_lines(["H", "O"], [_Line(t, k) for k, t in enumerate(lines)], cutoff_type, alpha)


def dG_dr_analytic(desc, n_atoms):
    """Full dG_i/dr_a (n_atoms, max_sf, n_atoms, 3) from the per-pair D."""
    nl = desc.neighbors
    out = np.zeros((n_atoms, desc.G.shape[1], n_atoms, 3))
    for p in range(nl.n_pairs):
        out[nl.i[p], :, nl.j[p]] += desc.D[p]
        out[nl.i[p], :, nl.i[p]] -= desc.D[p]
    return out


def check_sf_derivatives(sfs, s, atoms=(0, 1, 4)):
    desc = sfs.compute(s, derivatives=True)
    assert np.abs(desc.G).max() > 0, "symmetry functions are all zero: test system is degenerate"
    ana = dG_dr_analytic(desc, len(s))

    def fd(h):
        out = np.zeros((len(s), desc.G.shape[1], len(atoms), 3))
        for k, a in enumerate(atoms):
            for c in range(3):
                sp, sm = s.copy(), s.copy()
                sp.positions[a, c] += h
                sm.positions[a, c] -= h
                out[:, :, k, c] = (sfs.compute(sp).G - sfs.compute(sm).G) / (2 * h)
        return out

    ref = ana[:, :, list(atoms), :]
    e1 = np.abs(fd(1e-3) - ref).max()
    e2 = np.abs(fd(5e-4) - ref).max()
    scale = max(1.0, np.abs(ref).max())
    # either already at round-off level, or falling like h^2 (ratio ~4 when h halves)
    assert e2 < 1e-8 * scale or e1 / e2 > 3.0, f"FD errors {e1:.2e} -> {e2:.2e} do not fall like h^2"
    assert e2 < 1e-5 * scale, f"FD error {e2:.2e} too large"


@pytest.mark.parametrize("code", sorted(SF_LINES))
def test_sf_derivatives_every_type(code):
    rng = np.random.default_rng(code)
    sfs = make_sf_set(SF_LINES[code] + ["H 2 H 0.1 0.0 4.0", "O 2 O 0.1 0.0 4.0"])
    check_sf_derivatives(sfs, random_cluster(rng))
    cell = np.array([[5.0, 0.0, 0.0], [1.2, 4.6, 0.0], [-0.7, 0.9, 4.8]])
    check_sf_derivatives(sfs, random_cluster(rng, n=7, cell=cell))


@pytest.mark.parametrize("cutoff_type", range(9))
def test_sf_derivatives_every_cutoff(cutoff_type):
    rng = np.random.default_rng(100 + cutoff_type)
    alpha = 0.0 if cutoff_type in (2, 3) else 0.3
    lines = SF_LINES[2] + SF_LINES[3] + SF_LINES[9] + SF_LINES[12] + SF_LINES[13]
    s = random_cluster(rng)
    while cutoff_type == 0:  # hard cutoff: keep every distance away from the discontinuity
        d = np.linalg.norm(s.positions[:, None] - s.positions[None], axis=-1)
        if min(np.abs(d - rc).min() for rc in (3.5, 3.8, 4.0)) > 1e-2:
            break
        s = random_cluster(rng)
    check_sf_derivatives(make_sf_set(lines, cutoff_type, alpha), s)


def test_cutoff_functions_vanish_at_rc():
    from hdnnp.descriptors.cutoff import cutoff_function

    for t in range(1, 9):
        f, df = cutoff_function(np.array([0.0, 3.0 - 1e-9, 3.0, 3.5]), 3.0, t, 0.0)
        assert f[2] == 0.0 and f[3] == 0.0 and df[2] == 0.0
        assert abs(f[1]) < 1e-6, f"cutoff {t} does not vanish continuously at r_c"
        if t not in (2,):
            assert f[0] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- potential
INPUT_NN = """
number_of_elements 2
elements O H
cutoff_type 6 0.1
global_hidden_layers_short 2
global_nodes_short 8 6
global_activation_short t p l
""" + "\n".join("symfunction_short " + ln for code in (2, 3, 9, 12, 20, 22) for ln in SF_LINES[code])


@pytest.fixture(scope="module")
def toy_potential():
    return Potential.from_settings(Settings.parse(INPUT_NN), seed=7)


def test_forces_are_minus_gradient(toy_potential):
    rng = np.random.default_rng(1)
    cell = np.array([[5.5, 0.0, 0.0], [0.8, 5.0, 0.0], [0.3, -0.6, 5.2]])
    for s in (random_cluster(rng), random_cluster(rng, n=9, cell=cell)):
        r = toy_potential.compute(s)

        def fd(h):
            return central_difference_forces(lambda x: toy_potential.compute(x, forces=False).energy, s, range(len(s)), h)

        e1 = np.abs(fd(1e-3) - r.forces).max()
        e2 = np.abs(fd(5e-4) - r.forces).max()
        assert e2 < 1e-7 or e1 / e2 > 3.0, f"force FD errors {e1:.2e} -> {e2:.2e} do not fall like h^2"
        assert e2 < 1e-6


def test_invariances(toy_potential):
    rng = np.random.default_rng(2)
    s = random_cluster(rng, n=12)
    ref = toy_potential.compute(s)
    for _ in range(5):
        R = random_rotation(rng, reflect=bool(rng.integers(2)))
        t = rng.normal(size=3) * 3
        moved = s.copy()
        moved.positions = s.positions @ R.T + t
        r = toy_potential.compute(moved)
        assert abs(r.energy - ref.energy) < 1e-10 * max(1, abs(ref.energy))
        assert np.abs(r.forces - ref.forces @ R.T).max() < 1e-9
    # permutation of like atoms (not the identity)
    h_idx = [k for k, e in enumerate(s.elements) if e == "H"]
    perm = np.arange(len(s))
    perm[h_idx] = np.roll(h_idx, 1)
    assert (perm != np.arange(len(s))).any()
    p = s.copy()
    p.positions = s.positions[perm]
    p.elements = [s.elements[k] for k in perm]
    r = toy_potential.compute(p)
    assert abs(r.energy - ref.energy) < 1e-10 * max(1, abs(ref.energy))
    assert np.abs(r.forces - ref.forces[perm]).max() < 1e-10


def test_periodic_cell_basis_and_supercell(toy_potential):
    rng = np.random.default_rng(3)
    cell = np.array([[4.8, 0.0, 0.0], [0.5, 4.6, 0.0], [0.2, 0.4, 5.0]])
    s = random_cluster(rng, n=8, cell=cell)
    ref = toy_potential.compute(s)
    # same lattice, skewed basis vectors (a, b + a, c - 2b) and atoms wrapped into the new cell
    skew = s.copy()
    skew.cell = np.array([cell[0], cell[1] + cell[0], cell[2] - 2 * cell[1]])
    skew = skew.wrapped()
    r = toy_potential.compute(skew)
    assert abs(r.energy - ref.energy) < 1e-10 * max(1, abs(ref.energy))
    assert np.abs(r.forces - ref.forces).max() < 1e-9
    assert np.abs(r.stress - ref.stress).max() < 1e-9
    sup = toy_potential.compute(s.repeat((2, 2, 2)))
    assert abs(sup.energy - 8 * ref.energy) < 1e-9 * abs(8 * ref.energy)
    assert np.abs(sup.forces - np.tile(ref.forces, (8, 1))).max() < 1e-9


def test_cell_smaller_than_cutoff(toy_potential):
    """A 2.6 Å cell with a 4 Å cutoff: several image shells per axis, images of i itself."""
    cell = np.diag([2.6, 2.8, 2.7])
    s = Structure(["O", "H"], np.array([[0.1, 0.2, 0.3], [1.0, 0.9, 0.4]]), cell=cell)
    r = toy_potential.compute(s)
    big = toy_potential.compute(s.repeat((3, 2, 2)))
    assert abs(big.energy - 12 * r.energy) < 1e-9 * abs(12 * r.energy)
    fd = central_difference_forces(lambda x: toy_potential.compute(x, forces=False).energy, s, [0, 1], 1e-4)
    assert np.abs(fd - r.forces).max() < 1e-6


def test_stress_matches_strain_derivative(toy_potential):
    rng = np.random.default_rng(4)
    cell = np.array([[5.0, 0.0, 0.0], [0.6, 4.7, 0.0], [0.2, 0.3, 5.1]])
    s = random_cluster(rng, n=8, cell=cell)
    r = toy_potential.compute(s)
    fd = central_difference_stress(lambda x: toy_potential.compute(x, forces=False).energy, s, 1e-5)
    assert np.abs(fd - r.stress).max() < 1e-7 * max(1.0, np.abs(r.stress).max())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_isolated_atoms_and_empty_structures(toy_potential, backend):
    """Atoms beyond each other's cutoff see G = 0: the energy is the sum of the two free-atom
    network outputs, forces vanish; an empty structure has zero energy."""
    far = Structure(elements=["O", "H"], positions=np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0]]))
    one_o = Structure(elements=["O"], positions=np.zeros((1, 3)))
    one_h = Structure(elements=["H"], positions=np.zeros((1, 3)))
    r = toy_potential.compute(far, sf_backend=backend)
    e_sum = (toy_potential.compute(one_o, sf_backend=backend).energy
             + toy_potential.compute(one_h, sf_backend=backend).energy)
    assert r.energy == pytest.approx(e_sum, rel=1e-12, abs=1e-12) and np.all(r.forces == 0.0)
    for cell in (None, 10.0 * np.eye(3)):
        empty = Structure(elements=[], positions=np.zeros((0, 3)), cell=cell)
        e = toy_potential.compute(empty, sf_backend=backend)
        assert e.energy == 0.0 and e.forces.shape == (0, 3)
        assert (e.stress is not None) == (cell is not None)
