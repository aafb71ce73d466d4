"""The Structure record: one configuration of atoms with optional reference data.

Units are those of the file the structure came from (n2p2 ``input.data`` imposes
none). Cell vectors are rows of ``cell``; a structure is periodic in all three
directions when ``cell`` is set, and non-periodic otherwise (as in n2p2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_numbers, chemical_symbols


@dataclass
class Structure:
    """One configuration.

    Attributes
    ----------
    elements : list[str], length n_atoms, chemical symbols.
    positions : (n_atoms, 3) float64, file length unit.
    cell : (3, 3) float64 with the cell vectors a, b, c as rows, or None (non-periodic).
    energy : reference total energy (file energy unit) or None.
    forces : (n_atoms, 3) float64 reference forces or None.
    charges : (n_atoms,) reference atomic charges (n2p2 column 5).
    atomic_energies : (n_atoms,) n2p2 column 6 (ignored by n2p2, kept for round trips).
    charge : reference total charge or None.
    comments : the ``comment`` lines, in order.
    set_tag : ``train`` / ``test`` from ``begin set=...`` or None.
    """

    elements: list[str]
    positions: np.ndarray
    cell: np.ndarray | None = None
    energy: float | None = None
    forces: np.ndarray | None = None
    charges: np.ndarray | None = None
    atomic_energies: np.ndarray | None = None
    charge: float | None = None
    comments: list[str] = field(default_factory=list)
    set_tag: str | None = None

    def __post_init__(self) -> None:
        self.elements = list(self.elements)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if self.cell is not None:
            self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        n = len(self.elements)
        if self.positions.shape[0] != n:
            raise ValueError(f"{n} elements but {self.positions.shape[0]} positions")
        if self.charges is None:
            self.charges = np.zeros(n)
        if self.atomic_energies is None:
            self.atomic_energies = np.zeros(n)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.elements)

    @property
    def n_atoms(self) -> int:
        return len(self.elements)

    @property
    def periodic(self) -> bool:
        return self.cell is not None

    @property
    def numbers(self) -> np.ndarray:
        """Atomic numbers, (n_atoms,) int."""
        return np.array([atomic_numbers[e] for e in self.elements], dtype=np.int64)

    @property
    def comment(self) -> str:
        return " ".join(self.comments)

    def copy(self) -> "Structure":
        def c(a):
            return None if a is None else np.array(a, copy=True)

        return Structure(
            elements=list(self.elements),
            positions=c(self.positions),
            cell=c(self.cell),
            energy=self.energy,
            forces=c(self.forces),
            charges=c(self.charges),
            atomic_energies=c(self.atomic_energies),
            charge=self.charge,
            comments=list(self.comments),
            set_tag=self.set_tag,
        )

    def wrapped(self) -> "Structure":
        """Copy with positions wrapped into the cell (fractional coordinates in [0, 1))."""
        s = self.copy()
        if s.cell is not None:
            frac = np.linalg.solve(s.cell.T, s.positions.T).T
            frac -= np.floor(frac)
            frac[frac >= 1.0] -= 1.0  # floor rounding can leave exactly 1.0
            s.positions = frac @ s.cell
        return s

    def repeat(self, reps: tuple[int, int, int]) -> "Structure":
        """Supercell ``reps[0] x reps[1] x reps[2]`` (periodic structures only)."""
        if self.cell is None:
            raise ValueError("repeat() needs a periodic structure")
        shifts = np.array(
            [(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])],
            dtype=np.float64,
        )
        offsets = shifts @ self.cell
        pos = (self.positions[None, :, :] + offsets[:, None, :]).reshape(-1, 3)
        n_rep = len(shifts)
        rep = lambda a: None if a is None else np.tile(a, (n_rep,) + (1,) * (a.ndim - 1))  # noqa: E731
        return Structure(
            elements=self.elements * n_rep,
            positions=pos,
            cell=self.cell * np.asarray(reps, dtype=np.float64)[:, None],
            energy=None if self.energy is None else self.energy * n_rep,
            forces=rep(self.forces),
            charges=rep(self.charges),
            atomic_energies=rep(self.atomic_energies),
            charge=None if self.charge is None else self.charge * n_rep,
            comments=list(self.comments),
            set_tag=self.set_tag,
        )

    # ------------------------------------------------------------------ ASE
    def to_ase(self, length_factor: float = 1.0, energy_factor: float = 1.0):
        """Convert to ``ase.Atoms``; positions scaled by ``length_factor`` (Å per file unit).

        Reference energy and forces, when present, are attached through a
        SinglePointCalculator in eV and eV/Å (``energy_factor`` is eV per file unit).
        """
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(
            symbols=self.elements,
            positions=self.positions * length_factor,
            cell=None if self.cell is None else self.cell * length_factor,
            pbc=self.cell is not None,
        )
        if self.charges is not None and np.any(self.charges):
            atoms.set_initial_charges(self.charges)
        if self.comments:
            atoms.info["comment"] = self.comment
        if self.set_tag:
            atoms.info["set"] = self.set_tag
        results = {}
        if self.energy is not None:
            results["energy"] = self.energy * energy_factor
        if self.forces is not None:
            results["forces"] = self.forces * energy_factor / length_factor
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms

    @classmethod
    def from_ase(cls, atoms, length_factor: float = 1.0, energy_factor: float = 1.0) -> "Structure":
        """Build from ``ase.Atoms``; ``length_factor``/``energy_factor`` are file units per Å / eV.

        Energy and forces are taken from an attached calculator's stored results
        if present (never triggers a new calculation). Mixed periodicity is
        rejected: n2p2 structures are periodic in all directions or none.
        """
        pbc = np.asarray(atoms.get_pbc())
        if pbc.any() and not pbc.all():
            raise ValueError(
                f"structure has pbc={pbc.tolist()}; n2p2-style structures must be periodic in all "
                "three directions or none (add vacuum and set pbc=True, or set pbc=False)"
            )
        energy = forces = None
        calc = atoms.calc
        if calc is not None and getattr(calc, "results", None):
            if "energy" in calc.results:
                energy = float(calc.results["energy"]) * energy_factor
            if "forces" in calc.results:
                forces = np.asarray(calc.results["forces"]) * energy_factor / length_factor
        comment = atoms.info.get("comment")
        return cls(
            elements=[chemical_symbols[z] for z in atoms.numbers],
            positions=atoms.positions * length_factor,
            cell=np.array(atoms.cell) * length_factor if pbc.all() else None,
            energy=energy,
            forces=forces,
            charges=np.asarray(atoms.get_initial_charges(), dtype=np.float64),
            comments=[str(comment)] if comment else [],
            set_tag=atoms.info.get("set"),
        )
