"""The MD state and its integrators (numpy, ASE units): velocity Verlet and ASE's Langevin scheme.

Velocity Verlet exactly as in the prototype / thesis:

    r(t+dt) = r(t) + v(t) dt + F(t)/(2m) dt^2
    v(t+dt) = v(t) + (F(t) + F(t+dt))/(2m) dt

with one force call per step. A thermostat (``hdnnp.dynamics.thermostats``) acts on the
velocities for dt/2 before and after this step; a barostat scales positions and cell
just before the force call.

Units: positions Å, cell Å (vectors as rows), masses amu, velocities Å per ASE time unit
(Å sqrt(amu/eV); ``ase.units.fs`` of it is 1 fs), forces eV/Å, time step in ASE time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ase import units

from hdnnp.dynamics.forcefield import ForceField, ForceResult
from hdnnp.dynamics.thermostats import BerendsenBarostat, LangevinASE, Thermostat
from hdnnp.dynamics.velocities import degrees_of_freedom, kinetic_energy, temperature


@dataclass
class MDState:
    """Everything that evolves in a run.

    elements : list of n_atoms symbols. positions : (n_atoms, 3) Å. velocities : (n_atoms, 3)
    Å / ASE time unit. masses : (n_atoms,) amu. cell : (3, 3) Å rows or None (no periodicity).
    step : number of steps done. result : energy/forces/stress at ``positions`` (eV, eV/Å).
    """

    elements: list[str]
    positions: np.ndarray
    velocities: np.ndarray
    masses: np.ndarray
    cell: np.ndarray | None = None
    step: int = 0
    time_fs: float = 0.0
    result: ForceResult | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.elements)

    @property
    def volume(self) -> float | None:
        return None if self.cell is None else abs(float(np.linalg.det(self.cell)))

    def kinetic_energy(self) -> float:
        """eV."""
        return kinetic_energy(self.masses, self.velocities)

    def temperature(self, n_dof: int) -> float:
        """K."""
        return temperature(self.kinetic_energy(), n_dof)

    def stress_with_kinetic(self) -> np.ndarray | None:
        """(3, 3) eV/Å^3: potential stress minus the ideal-gas term sum m v (x) v / V (ASE sign)."""
        if self.cell is None or self.result is None or self.result.stress is None:
            return None
        mv = self.masses[:, None] * self.velocities
        return self.result.stress - (mv.T @ self.velocities) / self.volume

    def pressure_GPa(self) -> float | None:
        """-tr(stress)/3 including the kinetic term, GPa."""
        s = self.stress_with_kinetic()
        return None if s is None else float(-np.trace(s) / 3.0 / units.GPa)


def wrap_positions(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Wrap into the cell (fractional coordinates in [0, 1)); atoms already inside are
    left bit-for-bit unchanged (only whole lattice vectors are subtracted)."""
    frac = np.linalg.solve(cell.T, positions.T).T
    shift = np.floor(frac)
    outside = np.any(shift != 0.0, axis=1)
    if not outside.any():
        return positions
    out = positions.copy()
    out[outside] -= shift[outside] @ cell
    return out


class _Integrator:
    """What both integrators share: the force call (timed), the start, the degrees of freedom.
    Subclasses set force_field, thermostat, wrap, stress (None: for periodic systems) and force_time."""

    stress: bool | None = None

    def n_dof(self, state: MDState) -> int:
        return degrees_of_freedom(state.n_atoms, self.thermostat.momentum_conserving)

    def compute(self, state: MDState) -> ForceResult:
        t0 = time.perf_counter()
        stress = state.cell is not None if self.stress is None else self.stress
        res = self.force_field.compute(state.elements, state.positions, state.cell, stress=stress)
        self.force_time += time.perf_counter() - t0
        return res

    def initialize(self, state: MDState) -> None:
        """Compute forces at the starting positions (if not already known, e.g. from a restart)."""
        if state.cell is not None and self.wrap:
            state.positions = wrap_positions(state.positions, state.cell)
        if state.result is None:
            state.result = self.compute(state)


class VelocityVerlet(_Integrator):
    """Velocity Verlet with optional thermostat (half steps around it) and barostat.

    force_field : ``ForceField`` (e.g. ``HDNNPForceField``), in eV and Å.
    timestep_fs : time step in fs. rng : generator for stochastic thermostats.
    wrap : wrap positions into the cell after every step (periodic systems).
    """

    def __init__(self, force_field: ForceField, timestep_fs: float, thermostat: Thermostat | None = None,
                 barostat: BerendsenBarostat | None = None, rng: np.random.Generator | None = None,
                 wrap: bool = True):
        if not timestep_fs > 0:
            raise ValueError(f"timestep_fs must be > 0, got {timestep_fs}")
        self.force_field = force_field
        self.timestep_fs = float(timestep_fs)
        self.dt = self.timestep_fs * units.fs
        self.thermostat = thermostat or Thermostat()
        self.barostat = barostat
        self.rng = rng if rng is not None else np.random.default_rng()
        self.wrap = wrap
        #: seconds spent inside force_field.compute
        self.force_time = 0.0


    def step(self, state: MDState) -> None:
        """Advance ``state`` by one time step."""
        dt = self.dt
        n_dof = self.n_dof(state)
        m = state.masses[:, None]
        v = self.thermostat.half_step(state.velocities, state.masses, dt, self.rng, n_dof)
        a = state.result.forces / m
        r = state.positions + v * dt + (0.5 * dt * dt) * a
        cell = state.cell
        if self.barostat is not None and cell is not None:
            p_now = state.pressure_GPa()
            mu = self.barostat.scale_factor(p_now, dt, abs(float(np.linalg.det(cell))), self.rng)
            r = r * mu
            cell = cell * mu
            if self.barostat.scales_velocities:
                v = v / mu
        if cell is not None and self.wrap:
            r = wrap_positions(r, cell)
        state.positions = r
        state.cell = cell
        state.result = self.compute(state)
        v = v + (0.5 * dt) * (a + state.result.forces / m)
        state.velocities = self.thermostat.half_step(v, state.masses, dt, self.rng, n_dof)
        state.step += 1
        state.time_fs += self.timestep_fs


class LangevinIntegrator(_Integrator):
    """Langevin dynamics with the formulas, random draws and floating-point operation order of
    ASE's ``ase.md.langevin.Langevin(fixcm=False)`` on atoms with the ``FixCom`` constraint
    (``thermostat.fix_com``) or without constraints, so that a run gives bit-identical positions
    (``hdnnp sample`` relies on it). Vanden-Eijnden & Ciccotti, Chem. Phys. Lett. 429, 310
    (2006), Eq. 23; per step, with c1..c5 as in ASE and xi, eta ~ N(0, 1) drawn in this order:

        v += c1 F/m - c2 v + (c3 xi - c4 eta);   r' = r + dt v + c5 eta   (centre of mass reset)
        v = (r' - r - c5 eta) / dt;   F' = F(r');   v += c1 F'/m - c2 v + (c3 xi - c4 eta)
        p = m v (total momentum removed);   v = p / m

    The same interface as ``VelocityVerlet``. thermostat : ``LangevinASE`` (temperature, friction,
    fix_com). wrap : wrap positions into the cell after each step (ASE does not: the sampler
    passes False). stress : ask the force field for the stress (None: for periodic systems).
    ``thermostat.energy_removed`` accumulates the heat given to the bath (see ``_account_heat``),
    so that E_tot plus it is conserved as velocity Verlet's energy is.
    """

    def __init__(self, force_field: ForceField, timestep_fs: float, thermostat: LangevinASE,
                 rng: np.random.Generator | None = None, wrap: bool = True, stress: bool | None = None):
        if not timestep_fs > 0:
            raise ValueError(f"timestep_fs must be > 0, got {timestep_fs}")
        self.force_field = force_field
        self.timestep_fs = float(timestep_fs)
        self.dt = self.timestep_fs * units.fs
        self.thermostat = thermostat
        self.barostat = None
        self.rng = rng if rng is not None else np.random.default_rng()
        self.wrap = wrap
        self.stress = stress
        self.force_time = 0.0
        self._coef_masses: np.ndarray | None = None


    def _coefficients(self, masses: np.ndarray) -> tuple:
        """ASE's ``Langevin.updatevars``: c1, c2 scalars; c3, c4, c5 (n_atoms, 1); masses (n_atoms, 1)."""
        if self._coef_masses is None or not np.array_equal(self._coef_masses, masses):
            dt = self.dt
            T = units.kB * self.thermostat.temperature_K
            fr = self.thermostat.friction_per_fs / units.fs
            m = np.array(masses, dtype=np.float64).reshape(-1, 1)
            sigma = np.sqrt(2 * T * fr / m)
            c1 = dt / 2.0 - dt * dt * fr / 8.0
            c2 = dt * fr / 2 - dt * dt * fr * fr / 8.0
            c3 = np.sqrt(dt) * sigma / 2.0 - dt**1.5 * fr * sigma / 8.0
            c5 = dt**1.5 * sigma / (2 * np.sqrt(3))
            c4 = fr / 2.0 * c5
            self._coef = (c1, c2, c3, c4, c5, m)
            self._coef_masses = np.array(masses, dtype=np.float64)
        return self._coef

    def _account_heat(self, v0, u, v_end, f0, f1, m) -> None:
        """Heat given to the system in one step, read as thermostat -> velocity Verlet -> thermostat:
        the Verlet step u - dt F0/2m -> u -> u + dt F1/2m moves the atoms by dt u, their actual
        displacement (random and centre-of-mass parts included)."""
        h = 0.5 * self.dt
        mass = m[:, 0]
        heat = (kinetic_energy(mass, u - h * f0 / m) - kinetic_energy(mass, v0)
                + kinetic_energy(mass, v_end) - kinetic_energy(mass, u + h * f1 / m))
        self.thermostat.energy_removed -= heat

    def step(self, state: MDState) -> None:
        """Advance ``state`` by one time step (as ``Langevin.step`` of ASE 3.29)."""
        dt = self.dt
        c1, c2, c3, c4, c5, m = self._coefficients(state.masses)
        masses = state.masses
        x = state.positions
        n = state.n_atoms
        xi = self.rng.standard_normal(size=(n, 3))
        eta = self.rng.standard_normal(size=(n, 3))
        rnd_pos = c5 * eta
        rnd_vel = c3 * xi - c4 * eta
        f0 = state.result.forces
        v1 = state.velocities + (c1 * f0 / m - c2 * state.velocities + rnd_vel)
        new = x + dt * v1 + rnd_pos
        if self.thermostat.fix_com:  # FixCom.adjust_positions
            old_cm = masses @ x / masses.sum()
            new_cm = masses @ new / masses.sum()
            new += old_cm - new_cm
        v = (new - x - rnd_pos) / dt
        u = (new - x) / dt
        if state.cell is not None and self.wrap:
            new = wrap_positions(new, state.cell)
        state.positions = new
        state.result = self.compute(state)
        forces = state.result.forces
        v2 = v + (c1 * forces / m - c2 * v + rnd_vel)
        p = v2 * m
        if self.thermostat.fix_com:  # FixCom.adjust_momenta
            velocity_com = p.sum(axis=0) / masses.sum()
            p -= masses[:, None] * velocity_com
        velocities = p / m
        self._account_heat(state.velocities, u, velocities, f0, forces, m)
        state.velocities = velocities
        state.step += 1
        state.time_fs += self.timestep_fs
