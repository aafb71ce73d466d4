"""Build the starting geometry of the example: Al2(mu-OH)2(OH)4(H2O)4 + 10 waters (54 atoms).

Two edge-sharing AlO6 octahedra (two bridging hydroxides, two terminal hydroxides and
two coordinated waters on each Al) in a second shell of ten water molecules, pre-relaxed
with a few GFN2-xTB BFGS steps. Writes ``start.xyz`` (Å).

    python build_start.py            # needs tblite (pip install tblite)
"""

from __future__ import annotations

import os

for _k, _v in (("OMP_NUM_THREADS", "1"), ("OMP_WAIT_POLICY", "PASSIVE"), ("OPENBLAS_NUM_THREADS", "1")):
    os.environ.setdefault(_k, _v)

import numpy as np
from ase import Atoms
from ase.io import write
from ase.optimize import BFGS

R_ALO = 1.90  # Al-O, Å
R_OH = 0.97  # O-H, Å
HOH = np.deg2rad(104.5)
SEED = 2024


def _unit(v):
    return v / np.linalg.norm(v)


def _perp(v, rng):
    w = np.cross(v, rng.normal(size=3))
    return _unit(w)


def add_hydroxide(symbols, positions, o_pos, away):
    symbols += ["O", "H"]
    positions += [o_pos, o_pos + R_OH * _unit(away)]


def add_water(symbols, positions, o_pos, away, rng):
    """Water with its oxygen at o_pos, both H pointing roughly along ``away``."""
    a = _unit(away)
    p = _perp(a, rng)
    half = HOH / 2
    symbols += ["O", "H", "H"]
    positions += [o_pos,
                  o_pos + R_OH * (np.cos(half) * a + np.sin(half) * p),
                  o_pos + R_OH * (np.cos(half) * a - np.sin(half) * p)]


def build(rng) -> Atoms:
    symbols: list[str] = []
    positions: list[np.ndarray] = []
    al = [np.array([-1.45, 0.0, 0.0]), np.array([1.45, 0.0, 0.0])]
    bridge = [np.array([0.0, 1.25, 0.0]), np.array([0.0, -1.25, 0.0])]
    symbols += ["Al", "Al"]
    positions += al
    for b in bridge:  # mu-OH, H pointing away from both Al
        add_hydroxide(symbols, positions, b, b)
    for k, a in enumerate(al):
        out = _unit(a)  # from the centre outwards along x
        # octahedron around Al: the two bridges, two ligands trans to them, two axial
        for b in bridge:
            trans = a + R_ALO * _unit(a - b)
            add_water(symbols, positions, trans, trans - a, rng) if b[1] > 0 else \
                add_hydroxide(symbols, positions, trans, trans - a + 0.3 * out)
        for z in (1.0, -1.0):
            o = a + np.array([0.25 * out[0], 0.0, z * R_ALO])
            if z > 0:
                add_hydroxide(symbols, positions, o, o - a)
            else:
                add_water(symbols, positions, o, o - a, rng)
    core = np.array(positions)
    # second shell: 10 waters on a sphere, at least 2.6 Å (O-heavy atom) from everything
    placed = 0
    while placed < 10:
        d = _unit(rng.normal(size=3))
        o = d * rng.uniform(4.6, 5.6) * np.array([1.15, 1.0, 1.0])
        heavy = np.array([p for s, p in zip(symbols, positions) if s != "H"])
        allp = np.array(positions)
        if np.min(np.linalg.norm(heavy - o, axis=1)) < 2.6 or np.min(np.linalg.norm(allp - o, axis=1)) < 1.8:
            continue
        add_water(symbols, positions, o, rng.normal(size=3), rng)
        placed += 1
    del core
    atoms = Atoms(symbols=symbols, positions=np.array(positions), pbc=False)
    atoms.center()
    return atoms


if __name__ == "__main__":
    from tblite.ase import TBLite

    atoms = build(np.random.default_rng(SEED))
    print(atoms.get_chemical_formula(), len(atoms), "atoms")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    opt = BFGS(atoms, logfile="-")
    opt.run(fmax=0.3, steps=60)
    atoms.calc = None
    write("start.xyz", atoms)
