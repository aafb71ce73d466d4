"""Kinetic energy, temperature and Maxwell-Boltzmann velocities.

Units are ASE's: masses in amu, velocities in Å per ASE time unit (Å sqrt(amu/eV),
1 fs = ``ase.units.fs`` of it), energies in eV, ``k_B = ase.units.kB`` eV/K.
"""

from __future__ import annotations

import numpy as np
from ase import units


def kinetic_energy(masses: np.ndarray, velocities: np.ndarray) -> float:
    """sum_i m_i v_i^2 / 2 in eV. masses: (n,) amu; velocities: (n, 3) ASE units."""
    return 0.5 * float(np.dot(masses, np.einsum("ij,ij->i", velocities, velocities)))


def degrees_of_freedom(n_atoms: int, momentum_conserved: bool = True) -> int:
    """3N - 3 when the total momentum is conserved (and zero), else 3N.

    NVE, Bussi, Nose-Hoover and Berendsen keep the total momentum (set to zero at the
    start), so the centre of mass carries no thermal energy; Langevin's random forces act
    on it too. The temperature is then 2 E_kin / (N_f k_B) with these N_f (as LAMMPS does
    for ``compute temp``; ASE always uses 3N).
    """
    if momentum_conserved and n_atoms > 1:
        return 3 * n_atoms - 3
    return 3 * n_atoms


def temperature(ekin_eV: float, n_dof: int) -> float:
    """Kinetic temperature in K from the kinetic energy (eV) and degrees of freedom."""
    return 2.0 * ekin_eV / (n_dof * units.kB)


def remove_momentum(masses: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Velocities minus the centre-of-mass velocity (total momentum zero)."""
    v_com = masses @ velocities / masses.sum()
    return velocities - v_com


def maxwell_boltzmann_velocities(masses: np.ndarray, temperature_K: float, rng: np.random.Generator,
                                 zero_momentum: bool = True, rescale: bool = True) -> np.ndarray:
    """Random velocities from the Maxwell-Boltzmann distribution at ``temperature_K``.

    Each Cartesian component is drawn from N(0, k_B T / m_i). With ``zero_momentum`` the
    centre-of-mass velocity is removed; with ``rescale`` the velocities are then scaled so
    that the kinetic temperature (with N_f = 3N - 3, or 3N without ``zero_momentum``) is
    exactly ``temperature_K`` -- as LAMMPS ``velocity create`` does -- so that the first
    row of thermo.log shows the requested temperature. Without it the initial temperature
    scatters by ~T sqrt(2/N_f) around the target.

    masses: (n_atoms,) amu. Returns (n_atoms, 3) velocities in ASE units.
    """
    masses = np.asarray(masses, dtype=np.float64)
    n = len(masses)
    if temperature_K < 0:
        raise ValueError(f"temperature_K must be >= 0, got {temperature_K}")
    sigma = np.sqrt(units.kB * temperature_K / masses)
    v = rng.standard_normal((n, 3)) * sigma[:, None]
    if zero_momentum and n > 1:
        v = remove_momentum(masses, v)
    if rescale and temperature_K > 0:
        t_now = temperature(kinetic_energy(masses, v), degrees_of_freedom(n, zero_momentum))
        if t_now > 0:
            v *= np.sqrt(temperature_K / t_now)
    return v


def ase_thermal_velocities(atoms, temperature_K: float, rng: np.random.Generator, fix_com: bool = True,
                           zero_rotation: bool = False) -> np.ndarray:
    """Maxwell-Boltzmann velocities drawn exactly as ASE does (``hdnnp sample``'s start):
    ``thermalize_momenta`` with the ``FixCom`` constraint (``fix_com``), ``Stationary`` and, with
    ``zero_rotation``, ``ZeroRotation`` (each keeping the temperature over ASE's degrees of freedom).

    atoms : ``ase.Atoms`` (masses, positions; not modified). Returns (n_atoms, 3) velocities in ASE
    units, as ``atoms.get_velocities()`` gives them.
    """
    from ase.constraints import FixCom
    from ase.md import velocitydistribution as vd

    a = atoms.copy()
    a.calc = None
    a.set_constraint(FixCom() if fix_com else None)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(a, temperature_K=temperature_K, rng=rng)
    else:  # pragma: no cover - older ASE
        vd.MaxwellBoltzmannDistribution(a, temperature_K=temperature_K, rng=rng)
    vd.Stationary(a)
    if zero_rotation:
        vd.ZeroRotation(a)
    return a.get_velocities()
