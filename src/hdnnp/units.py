"""The only place numeric unit constants live.

Internal convention: energies and lengths stay in the units of the files they came
from (n2p2 potentials carry no unit declaration). Where physical units are needed
(MD, ASE), the potential's units are converted to eV and Å with the factors below.
"""

from __future__ import annotations

from ase import units as _ase_units

#: Bohr and Hartree as n2p2 and LAMMPS ``pair_style hdnnp`` users write them
#: (``cflength 1.8897261328 cfenergy 0.0367493254``, n2p2's examples; CODATA 2006).
#: Using the same factors here makes ``hdnnp md`` and an exported LAMMPS run see the same
#: numbers; ASE's CODATA 2014 values differ by ~1e-8 relative.
CFLENGTH_BOHR: float = 1.8897261328
CFENERGY_HARTREE: float = 0.0367493254
#: Bohr radius in Å.
BOHR_TO_ANGSTROM: float = 1.0 / CFLENGTH_BOHR
#: Hartree in eV.
HARTREE_TO_EV: float = 1.0 / CFENERGY_HARTREE

LENGTH_UNITS_IN_ANGSTROM: dict[str, float] = {
    "angstrom": 1.0,
    "ang": 1.0,
    "a": 1.0,
    "bohr": BOHR_TO_ANGSTROM,
    "nm": 10.0,
}
ENERGY_UNITS_IN_EV: dict[str, float] = {
    "ev": 1.0,
    "hartree": HARTREE_TO_EV,
    "ha": HARTREE_TO_EV,
    "kcal/mol": _ase_units.kcal / _ase_units.mol,
    "kj/mol": _ase_units.kJ / _ase_units.mol,
    "rydberg": _ase_units.Rydberg,
    "ry": _ase_units.Rydberg,
}


def length_factor(unit: str) -> float:
    """Å per one `unit` of length (e.g. ``length_factor('bohr') == 0.529...``)."""
    try:
        return LENGTH_UNITS_IN_ANGSTROM[unit.lower()]
    except KeyError:
        raise ValueError(
            f"unknown length unit {unit!r}; expected one of {sorted(LENGTH_UNITS_IN_ANGSTROM)}"
        ) from None


def energy_factor(unit: str) -> float:
    """eV per one `unit` of energy (e.g. ``energy_factor('hartree') == 27.21...``)."""
    try:
        return ENERGY_UNITS_IN_EV[unit.lower()]
    except KeyError:
        raise ValueError(
            f"unknown energy unit {unit!r}; expected one of {sorted(ENERGY_UNITS_IN_EV)}"
        ) from None
