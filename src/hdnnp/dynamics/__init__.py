"""Molecular dynamics: velocity Verlet, thermostats, trajectory writers, restart files.

Inside MD everything is in ASE units (eV, Å, amu, fs); a potential's own units are
converted at the force field (:class:`HDNNPForceField`). Library entry point:
:func:`run_md`; the command line is ``hdnnp md``; the prototype's interface is
:func:`hdnnp.dynamics.prototype.molecular_dynamics`.
"""

from hdnnp.dynamics.forcefield import (
    ASECalculatorForceField,
    ForceResult,
    HDNNPForceField,
    LennardJonesForceField,
    PotentialUnits,
    resolve_units,
)
from hdnnp.dynamics.integrators import LangevinIntegrator, MDState, VelocityVerlet, wrap_positions
from hdnnp.dynamics.output import ExtxyzWriter, ThermoLog, TrajDataWriter, plot_thermo, read_thermo_log, read_traj_data
from hdnnp.dynamics.restart import read_restart, write_restart
from hdnnp.dynamics.run import MDResult, MDSettings, read_structure, run_md, state_from_atoms
from hdnnp.dynamics.thermostats import (
    ENSEMBLES,
    Berendsen,
    BerendsenBarostat,
    Bussi,
    Langevin,
    LangevinASE,
    NoseHooverChain,
    Thermostat,
    make_thermostat,
)
from hdnnp.dynamics.velocities import (
    ase_thermal_velocities,
    degrees_of_freedom,
    kinetic_energy,
    maxwell_boltzmann_velocities,
    temperature,
)

__all__ = [
    "ASECalculatorForceField", "ForceResult", "HDNNPForceField", "LennardJonesForceField", "PotentialUnits",
    "resolve_units",
    "LangevinIntegrator", "MDState", "VelocityVerlet", "wrap_positions",
    "ExtxyzWriter", "ThermoLog", "TrajDataWriter", "plot_thermo", "read_thermo_log", "read_traj_data",
    "read_restart", "write_restart",
    "MDResult", "MDSettings", "read_structure", "run_md", "state_from_atoms",
    "ENSEMBLES", "Berendsen", "BerendsenBarostat", "Bussi", "Langevin", "LangevinASE", "NoseHooverChain", "Thermostat",
    "make_thermostat",
    "ase_thermal_velocities", "degrees_of_freedom", "kinetic_energy", "maxwell_boltzmann_velocities", "temperature",
]
