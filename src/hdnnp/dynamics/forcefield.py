"""Force providers for molecular dynamics, in ASE units (eV, Å).

This is the unit boundary: a :class:`~hdnnp.model.potential.Potential` works in its own
units (those of its training data; n2p2 files declare none), molecular dynamics and ASE
work in eV and Å. :class:`HDNNPForceField` converts on the way in (positions, cell: Å ->
potential length unit) and on the way out (energy, forces, stress, per-atom energies ->
eV, eV/Å, eV/Å^3).

Which units a potential has is decided by :func:`resolve_units`, in this order:
explicit arguments (CLI ``--length-unit/--energy-unit``), the hdnnp-only ``input.nn``
keywords ``hdnnp_length_unit``/``hdnnp_energy_unit`` (written by potentials trained with
hdnnp), else Å and eV -- the assumption LAMMPS makes for ``pair_style hdnnp`` without
``cflength``/``cfenergy`` -- which is logged once per potential.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from hdnnp.structure import Structure
from hdnnp.units import energy_factor, length_factor

log = logging.getLogger("hdnnp")

#: potentials for which the "no units declared" assumption has been logged already
_ASSUMPTION_LOGGED: set[str] = set()


@dataclass
class ForceResult:
    """Energy and derivatives of one configuration, in ASE units.

    energy : total potential energy, eV.
    forces : (n_atoms, 3) float64, eV/Å.
    stress : (3, 3) float64, eV/Å^3, (1/V) dE/d(strain) (ASE sign: positive = tensile),
             or None for non-periodic systems.
    energies : (n_atoms,) per-atom energies, eV, summing to ``energy``; or None.
    n_extrapolations : number of symmetry-function values outside the scaling range.
    charges : (n_atoms,) atomic charges (e) of a 4G potential, else None.
    """

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None
    energies: np.ndarray | None = None
    n_extrapolations: int = 0
    extrapolations: list = field(default_factory=list)
    charges: np.ndarray | None = None


class ForceField(Protocol):
    """Anything that gives energy and forces for positions in Å (the MD integrator's view)."""

    def compute(self, elements: list[str], positions: np.ndarray, cell: np.ndarray | None,
                stress: bool = True) -> ForceResult:
        """positions: (n_atoms, 3) Å; cell: (3, 3) Å, vectors as rows, or None."""
        ...


@dataclass(frozen=True)
class PotentialUnits:
    """Units of a potential and their factors (Å and eV per potential unit)."""

    length_unit: str
    energy_unit: str
    source: str  # "arguments", "input.nn", "assumed"

    @property
    def length_factor(self) -> float:
        """Å per potential length unit."""
        return length_factor(self.length_unit)

    @property
    def energy_factor(self) -> float:
        """eV per potential energy unit."""
        return energy_factor(self.energy_unit)


def resolve_units(potential, length_unit: str | None = None, energy_unit: str | None = None) -> PotentialUnits:
    """Decide the units of ``potential`` (arguments > input.nn keywords > assumed Å/eV).

    Raises ``SettingsError`` for unknown unit names.
    """
    from hdnnp.errors import SettingsError

    declared_l = getattr(potential, "length_unit", None)
    declared_e = getattr(potential, "energy_unit", None)
    lu = length_unit or declared_l
    eu = energy_unit or declared_e
    if length_unit or energy_unit:
        source = "arguments"
    elif declared_l or declared_e:
        source = "input.nn"
    else:
        source = "assumed"
    if lu is None or eu is None:
        key = str(getattr(potential, "directory", id(potential)))
        if key not in _ASSUMPTION_LOGGED:
            _ASSUMPTION_LOGGED.add(key)
            missing = " and ".join(n for n, v in (("length", lu), ("energy", eu)) if v is None)
            log.warning("potential %s declares no %s unit (plain n2p2 files carry none): assuming %s, "
                        "as LAMMPS does without cflength/cfenergy; pass --length-unit/--energy-unit "
                        "(e.g. bohr hartree) if it was trained in other units", key, missing,
                        " and ".join(u for u, v in (("Å", lu), ("eV", eu)) if v is None))
        lu = lu or "angstrom"
        eu = eu or "ev"
    try:
        length_factor(lu)
        energy_factor(eu)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return PotentialUnits(lu, eu, source)


def load_potential(potential, device: str = "cpu", sf_backend: str = "auto"):
    """A Potential from a directory (n2p2 format) or the Potential itself."""
    from hdnnp.model.potential import Potential

    if isinstance(potential, (str, Path)):
        return Potential.from_n2p2(potential, device=device, sf_backend=sf_backend)
    return potential


class HDNNPForceField:
    """An hdnnp/n2p2 potential seen in eV and Å.

    Parameters
    ----------
    potential : Potential or path of an n2p2 potential directory.
    length_unit, energy_unit : override the potential's units (see :func:`resolve_units`).
    device : torch device when ``potential`` is a path (networks; with the torch SF backend
        everything after the neighbour list).
    sf_backend : "auto" (torch on CUDA, else numba), "numba" or "torch", when ``potential`` is a path.
    derivative_mode : "auto" (the Potential's default), or force "store" / "recompute"
        (see ``Potential.compute``).
    """

    def __init__(self, potential, length_unit: str | None = None, energy_unit: str | None = None,
                 device: str = "cpu", derivative_mode: str = "auto", sf_backend: str = "auto"):
        self.potential = load_potential(potential, device=device, sf_backend=sf_backend)
        self.units = resolve_units(self.potential, length_unit, energy_unit)
        self._lf = self.units.length_factor
        self._ef = self.units.energy_factor
        if derivative_mode not in ("auto", "store", "recompute"):
            raise ValueError(f"derivative_mode must be auto, store or recompute, not {derivative_mode!r}")
        self.derivative_mode = derivative_mode
        mean = self.potential.normalization.mean_energy if self.potential.normalization else 0.0
        #: per-element share of the energy shift (mean energy + atom_energy offset), potential units
        self._shift = {e: mean + off for e, off in self.potential.offsets.items()}
        self.n_calls = 0
        #: total charge (e) of the structures (4G potentials only; periodic cells must be neutral)
        self.total_charge = 0.0

    @property
    def cutoff_angstrom(self) -> float:
        """Largest symmetry-function cutoff, Å."""
        return self.potential.sf_set.cutoff * self._lf

    def compute(self, elements: list[str], positions: np.ndarray, cell: np.ndarray | None,
                stress: bool = True, forces: bool = True) -> ForceResult:
        lf, ef = self._lf, self._ef
        s = Structure(elements=elements, positions=positions / lf, cell=None if cell is None else cell / lf,
                      charge=self.total_charge)
        kw = {} if self.derivative_mode == "auto" else {"derivative_mode": self.derivative_mode}
        pred = self.potential.compute(s, forces=forces, stress=stress and cell is not None, **kw)
        self.n_calls += 1
        shift = np.array([self._shift[e] for e in elements])
        if pred.electrostatic_energy is not None:
            # 4G: the electrostatic energy has no unique per-atom split; an equal share per atom
            # keeps sum(energies) == energy
            shift = shift + pred.electrostatic_energy / len(elements)
        return ForceResult(
            energy=pred.energy * ef,
            forces=pred.forces * (ef / lf),
            stress=None if pred.stress is None else pred.stress * (ef / lf ** 3),
            energies=(pred.atomic_energies + shift) * ef,
            n_extrapolations=pred.n_extrapolations,
            extrapolations=pred.extrapolations,
            charges=pred.charges,
        )


class ASECalculatorForceField:
    """Any ASE calculator as a force field (``hdnnp sample``; fast thermostat tests with EMT).

    The calculator works in eV and Å already; no conversion happens here.
    calculator : an ASE calculator. atoms : a template ``ase.Atoms`` whose copy the calculator
        sees (keeps its cell, pbc, charges, magnetic moments; positions and cell are then set
        per call); None: built from the first call's elements, positions and cell.
    per_atom_energies : also ask for per-atom energies when the calculator implements them.
    The calculator's own cache applies: a call at unchanged positions costs nothing.
    """

    def __init__(self, calculator, atoms=None, per_atom_energies: bool = True):
        self.calculator = calculator
        self._atoms = None
        if atoms is not None:
            self._atoms = atoms.copy()
            self._atoms.set_constraint()
            self._atoms.calc = calculator
        self.per_atom_energies = per_atom_energies
        self.n_calls = 0

    @property
    def atoms(self):
        """The ``ase.Atoms`` the calculator sees (positions of the last call), or None before the first."""
        return self._atoms

    def compute(self, elements: list[str], positions: np.ndarray, cell: np.ndarray | None,
                stress: bool = True, forces: bool = True) -> ForceResult:
        from ase import Atoms

        if self._atoms is None or len(self._atoms) != len(elements):
            self._atoms = Atoms(symbols=elements, positions=positions,
                                cell=cell if cell is not None else np.zeros((3, 3)), pbc=cell is not None)
            self._atoms.calc = self.calculator
        a = self._atoms
        a.positions = positions
        if cell is not None:
            a.set_cell(cell, scale_atoms=False)
        self.n_calls += 1
        f = np.array(a.get_forces())  # forces first: a calculator asked for them computes the energy too
        energy = float(a.get_potential_energy())
        st = None
        if stress and cell is not None:
            st = np.array(a.get_stress(voigt=False))
        energies = None
        if self.per_atom_energies and "energies" in getattr(self.calculator, "implemented_properties", ()):
            energies = np.array(a.get_potential_energies())
        return ForceResult(energy=energy, forces=f, stress=st, energies=energies)


class LennardJonesForceField:
    """Force-shifted Lennard-Jones pair potential (numpy): a cheap, smooth reference force
    field for testing integrators and thermostats.

    V(r) = 4 eps ((sigma/r)^12 - (sigma/r)^6), shifted so that energy and force both go to
    zero at r_cut: V_sf(r) = V(r) - V(r_cut) - (r - r_cut) V'(r_cut). Single species.
    epsilon_eV, sigma_A, cutoff_A in eV and Å (defaults: argon).
    """

    def __init__(self, epsilon_eV: float = 0.0104, sigma_A: float = 3.40, cutoff_A: float = 8.5):
        self.epsilon = float(epsilon_eV)
        self.sigma = float(sigma_A)
        self.cutoff = float(cutoff_A)
        self._vc, self._dvc = self._pair(np.array([self.cutoff]))
        self.n_calls = 0

    def _pair(self, r):
        sr6 = (self.sigma / r) ** 6
        v = 4.0 * self.epsilon * (sr6 * sr6 - sr6)
        dv = -24.0 * self.epsilon * (2.0 * sr6 * sr6 - sr6) / r
        return v, dv

    def compute(self, elements, positions, cell, stress: bool = True, forces: bool = True) -> ForceResult:
        from hdnnp.neighbors import neighbor_list

        nl = neighbor_list(positions, cell, self.cutoff)
        d = nl.distances
        v, dv = self._pair(d)
        v = v - self._vc - (d - self.cutoff) * self._dvc
        dv = dv - self._dvc
        n = len(positions)
        energies = 0.5 * np.bincount(nl.i, weights=v, minlength=n)
        g = (dv / d)[:, None] * nl.vectors  # dV/dr_j for pair (i, j)
        f = np.zeros((n, 3))
        for c in range(3):
            f[:, c] = np.bincount(nl.i, weights=g[:, c], minlength=n)
        st = None
        if stress and cell is not None:
            st = 0.5 * (g.T @ nl.vectors) / abs(np.linalg.det(cell))
        self.n_calls += 1
        return ForceResult(energy=float(energies.sum()), forces=f, stress=st, energies=energies)
