"""ASE calculator for hdnnp / n2p2 potentials (``hdnnp.ase.HDNNPCalculator``).

ASE works in eV and Å; the potential in its own units, converted at the boundary by
``hdnnp.dynamics.forcefield.HDNNPForceField`` (units from the arguments, else the
``hdnnp_length_unit``/``hdnnp_energy_unit`` keywords of input.nn, else assumed Å/eV and
logged). Example::

    from hdnnp.ase import HDNNPCalculator
    atoms.calc = HDNNPCalculator("H2O_RPBE-D3", length_unit="bohr", energy_unit="hartree")
    atoms.get_forces()  # eV/Å
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from hdnnp.dynamics.forcefield import HDNNPForceField


class HDNNPCalculator(Calculator):
    """Energy, forces, per-atom energies and stress of an HDNNP.

    Parameters
    ----------
    potential : path of an n2p2-format potential directory, or a ``Potential``.
    length_unit, energy_unit : the potential's units ('bohr', 'hartree', ...), overriding
        what input.nn declares; needed for plain n2p2 potentials not in Å/eV.
    device : torch device ("cpu", "cuda"); sf_backend, derivative_mode : see ``HDNNPForceField``.

    Properties: ``energy`` = ``free_energy`` (eV), ``forces`` (eV/Å), ``energies`` (eV per
    atom: network atomic energy plus the atom's share of mean energy and ``atom_energy``
    offset, so they sum to ``energy``), ``stress`` (eV/Å^3, Voigt order xx yy zz yz xz xy,
    (1/V) dE/d(strain) as ASE expects; periodic structures only). Structures must be
    periodic in all three directions or none (as in n2p2).

    4G potentials (n2p2 ``nnp_generation 4``) add ``charges`` (e, per atom, from the charge
    equilibration); the total charge is the sum of ``atoms.get_initial_charges()`` (0 by default;
    periodic cells must be neutral), and ``energies`` then include an equal share of the
    electrostatic energy per atom.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "stress", "charges"]

    def __init__(self, potential, length_unit: str | None = None, energy_unit: str | None = None,
                 device: str = "cpu", derivative_mode: str = "auto", sf_backend: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.force_field = HDNNPForceField(potential, length_unit=length_unit, energy_unit=energy_unit,
                                           device=device, derivative_mode=derivative_mode, sf_backend=sf_backend)

    @property
    def potential(self):
        return self.force_field.potential

    @property
    def units(self):
        """The potential's resolved units (``PotentialUnits``)."""
        return self.force_field.units

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pbc = np.asarray(atoms.get_pbc())
        if pbc.any() and not pbc.all():
            raise ValueError(f"pbc={pbc.tolist()}: HDNNPCalculator needs periodicity in all three "
                             "directions or none (n2p2 structures); add vacuum and use pbc=True")
        periodic = bool(pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress needs a periodic structure (pbc=True)")
        want_forces = any(p in properties for p in ("forces", "stress"))
        if "charges" in properties and not self.potential.is_fourg:
            raise PropertyNotImplementedError("charges need a 4G potential (nnp_generation 4)")
        self.force_field.total_charge = float(np.sum(atoms.get_initial_charges()))
        res = self.force_field.compute(atoms.get_chemical_symbols(), np.array(atoms.positions),
                                       np.array(atoms.cell) if periodic else None,
                                       stress=periodic and want_forces, forces=want_forces)
        self.results["energy"] = res.energy
        self.results["free_energy"] = res.energy
        self.results["energies"] = res.energies
        if res.charges is not None:
            self.results["charges"] = res.charges
        if want_forces:
            self.results["forces"] = res.forces
            if res.stress is not None:
                self.results["stress"] = full_3x3_to_voigt_6_stress(res.stress)
        self.results["n_extrapolations"] = res.n_extrapolations
