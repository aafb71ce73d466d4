"""Provenance of this directory's input.data: ASE's EMT calculator on rattled Cu/Al fcc cells.

Run ``python make_data.py`` to regenerate (ASE 3.23+; deterministic seeds). Energies in eV,
lengths in Å, forces in eV/Å. 12 structures x 8 atoms (2x1x1 conventional fcc cells with
Cu and Al mixed, lattice constants 3.7-3.9 Å, atoms rattled by 0.08 Å).
"""

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from hdnnp.io.n2p2_data import write_input_data
from hdnnp.structure import Structure

rng = np.random.default_rng(20241124)
structures = []
for k in range(12):
    a = 3.7 + 0.2 * rng.random()
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 1, 1))
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[rng.choice(len(atoms), size=2 + k % 3, replace=False)] = "Al"
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.rattle(stdev=0.08, seed=int(rng.integers(1 << 30)))
    atoms.calc = EMT()
    atoms.get_potential_energy()
    s = Structure.from_ase(atoms)
    s.comments = [f"EMT rattled CuAl fcc, a = {a:.4f} A, structure {k + 1}"]
    structures.append(s)
write_input_data("input.data", structures)
