"""Thermostats and a barostat, as operators around the velocity Verlet step.

Every thermostat acts on the velocities only, for half a time step before and half a time
step after the (unchanged) velocity Verlet step -- a symmetric Trotter splitting:

    T(dt/2)  ->  r += v dt + F/(2m) dt^2;  F(t+dt);  v += (F(t) + F(t+dt))/(2m) dt  ->  T(dt/2)

For Langevin this is the "OBABO" scheme of Bussi & Parrinello, Phys. Rev. E 75, 056707
(2007); for the Nose-Hoover chain it is the splitting of Martyna, Tuckerman, Tobias & Klein,
Mol. Phys. 87, 1117 (1996). Each thermostat keeps the energy it has exchanged with the
system so that ``E_tot + conserved_energy()`` is conserved along the run (a check of the
integration in thermo.log, column ``econs_eV``).

Units: time in ASE units (``dt`` arguments; 1 fs = ``ase.units.fs``), masses amu,
velocities Å per ASE time unit, energies eV. Random numbers come from the integrator's
``numpy.random.Generator`` so that a restart file can store and restore its state.
"""

from __future__ import annotations

import math

import numpy as np
from ase import units

from hdnnp.dynamics.velocities import kinetic_energy, temperature

ENSEMBLES = ("nve", "langevin", "langevin-ase", "bussi", "nose-hoover", "berendsen", "npt-berendsen",
             "npt-crescale")


class Thermostat:
    """Base class: NVE (does nothing)."""

    name = "nve"
    #: whether the total momentum is conserved (decides N_f = 3N-3 or 3N)
    momentum_conserving = True

    def __init__(self) -> None:
        #: energy taken out of the system by the thermostat so far (eV)
        self.energy_removed = 0.0

    def half_step(self, velocities: np.ndarray, masses: np.ndarray, dt: float, rng: np.random.Generator,
                  n_dof: int) -> np.ndarray:
        """Propagate the velocities by dt/2 (dt in ASE time units); returns new velocities."""
        return velocities

    def conserved_energy(self) -> float:
        """The term to add to E_pot + E_kin for a conserved quantity (eV)."""
        return self.energy_removed

    def state_dict(self) -> dict:
        """JSON-serialisable state (floats are written with repr, so exactly)."""
        return {"name": self.name, "energy_removed": self.energy_removed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"restart file holds the state of thermostat {state.get('name')!r}, "
                             f"this run uses {self.name!r}")
        self.energy_removed = float(state["energy_removed"])

    def describe(self) -> str:
        return "none (NVE)"


class _TargetTemperature(Thermostat):
    def __init__(self, temperature_K: float):
        super().__init__()
        if not temperature_K > 0:
            raise ValueError(f"{self.name} thermostat needs temperature_K > 0, got {temperature_K}")
        self.temperature_K = float(temperature_K)

    @property
    def kT(self) -> float:
        return units.kB * self.temperature_K


class _RelaxationTime(_TargetTemperature):
    """A thermostat with a relaxation time ``tau_fs`` (fs) of the kinetic energy."""

    def __init__(self, temperature_K: float, tau_fs: float = 100.0):
        super().__init__(temperature_K)
        if not tau_fs > 0:
            raise ValueError(f"tau_fs must be > 0, got {tau_fs}")
        self.tau_fs = float(tau_fs)


class Langevin(_TargetTemperature):
    """Langevin dynamics: exact Ornstein-Uhlenbeck velocity update for dt/2 on each side.

    v <- c v + sqrt((1 - c^2) k_B T / m) xi,  c = exp(-gamma dt/2),  xi ~ N(0, 1).
    friction_per_fs : gamma in 1/fs (0.01/fs: velocity memory ~100 fs).
    """

    name = "langevin"
    momentum_conserving = False

    def __init__(self, temperature_K: float, friction_per_fs: float = 0.01):
        super().__init__(temperature_K)
        if not friction_per_fs > 0:
            raise ValueError(f"friction_per_fs must be > 0, got {friction_per_fs}")
        self.friction_per_fs = float(friction_per_fs)

    def half_step(self, velocities, masses, dt, rng, n_dof):
        gamma = self.friction_per_fs / units.fs  # 1 / ASE time unit
        c = math.exp(-0.5 * gamma * dt)
        sigma = np.sqrt((1.0 - c * c) * self.kT / masses)
        k0 = kinetic_energy(masses, velocities)
        v = c * velocities + sigma[:, None] * rng.standard_normal(velocities.shape)
        self.energy_removed += k0 - kinetic_energy(masses, v)
        return v

    def describe(self) -> str:
        return f"Langevin, T = {self.temperature_K} K, friction = {self.friction_per_fs} /fs"


class LangevinASE(_TargetTemperature):
    """Langevin dynamics as ASE's ``ase.md.langevin.Langevin`` (Vanden-Eijnden & Ciccotti,
    Chem. Phys. Lett. 429, 310 (2006), Eq. 23), the scheme of ``hdnnp sample``.

    Friction and noise enter the position and velocity updates themselves, so this is not an
    operator around velocity Verlet: ``hdnnp.dynamics.integrators.LangevinIntegrator`` integrates
    it; this object holds its parameters and the energy exchanged with the heat bath.
    friction_per_fs : gamma in 1/fs. fix_com : keep the centre of mass (and zero total momentum)
    fixed, as ASE's ``FixCom`` constraint does (then N_f = 3N - 3).
    """

    name = "langevin-ase"

    def __init__(self, temperature_K: float, friction_per_fs: float = 0.01, fix_com: bool = True):
        super().__init__(temperature_K)
        if not friction_per_fs > 0:
            raise ValueError(f"friction_per_fs must be > 0, got {friction_per_fs}")
        self.friction_per_fs = float(friction_per_fs)
        self.fix_com = bool(fix_com)
        self.momentum_conserving = self.fix_com

    def half_step(self, velocities, masses, dt, rng, n_dof):
        raise TypeError("the langevin-ase thermostat is integrated by LangevinIntegrator, not around velocity Verlet")

    def describe(self) -> str:
        return (f"Langevin (ASE's scheme{', centre of mass fixed' if self.fix_com else ''}), "
                f"T = {self.temperature_K} K, friction = {self.friction_per_fs} /fs")


class Bussi(_RelaxationTime):
    """Canonical sampling through velocity rescaling (Bussi, Donadio & Parrinello,
    J. Chem. Phys. 126, 014101 (2007)): the kinetic energy follows a stochastic
    differential equation whose stationary distribution is canonical; velocities are
    rescaled by one common factor, so the total momentum stays zero.
    tau_fs : relaxation time of the kinetic energy.
    """

    name = "bussi"

    def half_step(self, velocities, masses, dt, rng, n_dof):
        k = kinetic_energy(masses, velocities)
        if k <= 0.0:
            return velocities
        k_target = 0.5 * n_dof * self.kT
        c = math.exp(-0.5 * dt / (self.tau_fs * units.fs))
        r1 = rng.standard_normal()
        # sum of n_dof - 1 squared standard normals: chi^2 = 2 Gamma((n-1)/2, 1)
        r2 = 2.0 * rng.standard_gamma(0.5 * (n_dof - 1)) if n_dof > 1 else 0.0
        k_new = (k * c + k_target / n_dof * (1.0 - c) * (r1 * r1 + r2)
                 + 2.0 * r1 * math.sqrt(k * k_target / n_dof * (1.0 - c) * c))
        alpha = math.sqrt(max(k_new, 0.0) / k)
        # the sign keeps the trajectory continuous when the noise would reverse it (Bussi's code)
        if r1 + math.sqrt(c * n_dof * k / ((1.0 - c) * k_target)) < 0.0:
            alpha = -alpha
        self.energy_removed += k - k_new
        return velocities * alpha

    def describe(self) -> str:
        return f"Bussi (stochastic velocity rescaling), T = {self.temperature_K} K, tau = {self.tau_fs} fs"


class Berendsen(_RelaxationTime):
    """Berendsen weak coupling: v <- lambda v, lambda^2 = 1 + (dt/2)/tau (T0/T - 1).

    Does not sample the canonical ensemble (kinetic-energy fluctuations are suppressed);
    use for equilibration, or with the Berendsen barostat (``npt-berendsen``).
    """

    name = "berendsen"

    def half_step(self, velocities, masses, dt, rng, n_dof):
        k = kinetic_energy(masses, velocities)
        if k <= 0.0:
            return velocities
        t_now = temperature(k, n_dof)
        lam2 = 1.0 + 0.5 * dt / (self.tau_fs * units.fs) * (self.temperature_K / t_now - 1.0)
        lam2 = min(max(lam2, 0.64), 1.5625)  # |lambda - 1| <= 0.25 per half step, as ASE/GROMACS clamp
        self.energy_removed += k * (1.0 - lam2)
        return velocities * math.sqrt(lam2)

    def describe(self) -> str:
        return f"Berendsen, T = {self.temperature_K} K, tau = {self.tau_fs} fs"


class NoseHooverChain(_TargetTemperature):
    """Nose-Hoover chain of length M (Martyna, Klein & Tuckerman, J. Chem. Phys. 97, 2635
    (1992)), propagated with the third-order Suzuki-Yoshida splitting.

    Masses Q_1 = N_f k_B T tau^2, Q_k = k_B T tau^2 (k > 1). Conserved quantity:
    E_pot + E_kin + sum_k Q_k v_xi_k^2 / 2 + N_f k_B T xi_1 + k_B T sum_{k>1} xi_k.
    """

    name = "nose-hoover"
    _SY = (1.0 / (2.0 - 2.0 ** (1.0 / 3.0)), 1.0 - 2.0 / (2.0 - 2.0 ** (1.0 / 3.0)),
           1.0 / (2.0 - 2.0 ** (1.0 / 3.0)))

    def __init__(self, temperature_K: float, tau_fs: float = 100.0, chain_length: int = 3):
        super().__init__(temperature_K)
        if not tau_fs > 0 or chain_length < 1:
            raise ValueError(f"need tau_fs > 0 and chain_length >= 1, got {tau_fs}, {chain_length}")
        self.tau_fs = float(tau_fs)
        self.chain_length = int(chain_length)
        self.xi = [0.0] * self.chain_length
        self.v_xi = [0.0] * self.chain_length
        self._n_dof = None

    def _masses(self, n_dof):
        tau = self.tau_fs * units.fs
        q = [self.kT * tau * tau] * self.chain_length
        q[0] *= n_dof
        return q

    def half_step(self, velocities, masses, dt, rng, n_dof):
        self._n_dof = n_dof
        q = self._masses(n_dof)
        kT = self.kT
        m = self.chain_length
        xi, vx = self.xi, self.v_xi
        k2 = 2.0 * kinetic_energy(masses, velocities)  # 2 E_kin, updated through the scalings
        scale = 1.0

        def g(k):
            if k == 0:
                return (k2 - n_dof * kT) / q[0]
            return (q[k - 1] * vx[k - 1] ** 2 - kT) / q[k]

        for w in self._SY:
            h = w * 0.5 * dt  # duration of this sub-step
            # chain end -> particles
            vx[m - 1] += 0.5 * h * g(m - 1)
            for k in range(m - 2, -1, -1):
                f = math.exp(-0.25 * h * vx[k + 1])
                vx[k] = (vx[k] * f + 0.5 * h * g(k)) * f
            s = math.exp(-h * vx[0])
            scale *= s
            k2 *= s * s
            for k in range(m):
                xi[k] += h * vx[k]
            # particles -> chain end
            for k in range(m - 1):
                f = math.exp(-0.25 * h * vx[k + 1])
                vx[k] = (vx[k] * f + 0.5 * h * g(k)) * f
            vx[m - 1] += 0.5 * h * g(m - 1)
        return velocities * scale

    def conserved_energy(self) -> float:
        if self._n_dof is None:
            return 0.0
        q = self._masses(self._n_dof)
        kT = self.kT
        e = sum(0.5 * qk * v * v for qk, v in zip(q, self.v_xi))
        return e + self._n_dof * kT * self.xi[0] + kT * sum(self.xi[1:])

    def state_dict(self) -> dict:
        return {"name": self.name, "energy_removed": self.energy_removed, "xi": list(self.xi),
                "v_xi": list(self.v_xi), "n_dof": self._n_dof}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if len(state["xi"]) != self.chain_length:
            raise ValueError(f"restart file has a chain of length {len(state['xi'])}, this run {self.chain_length}")
        self.xi = [float(x) for x in state["xi"]]
        self.v_xi = [float(x) for x in state["v_xi"]]
        self._n_dof = state.get("n_dof")

    def describe(self) -> str:
        return f"Nose-Hoover chain ({self.chain_length}), T = {self.temperature_K} K, tau = {self.tau_fs} fs"


class BerendsenBarostat:
    """Isotropic Berendsen pressure coupling: positions and cell scaled by
    mu = (1 - dt/tau beta (P0 - P))^(1/3) once per step, before the force call.

    pressure_GPa : target P0; tau_fs : relaxation time; compressibility_per_GPa : beta
    (water 0.457/GPa = 4.57e-5/bar, ASE's default; solids ~0.01/GPa).
    P includes the kinetic (ideal-gas) term. Relaxes the pressure but suppresses the volume
    fluctuations (not an NPT ensemble); ``CRescaleBarostat`` samples NPT.
    """

    #: whether the integrator scales velocities by 1/mu along with the positions
    scales_velocities = False

    def __init__(self, pressure_GPa: float = 0.0, tau_fs: float = 1000.0, compressibility_per_GPa: float = 0.457):
        if not tau_fs > 0 or not compressibility_per_GPa > 0:
            raise ValueError("barostat needs tau_fs > 0 and compressibility_per_GPa > 0")
        self.pressure_GPa = float(pressure_GPa)
        self.tau_fs = float(tau_fs)
        self.compressibility_per_GPa = float(compressibility_per_GPa)

    def scale_factor(self, pressure_GPa: float, dt: float, volume_A3: float | None = None,
                     rng: np.random.Generator | None = None) -> float:
        """mu for one step of dt (ASE time units), given the current pressure."""
        mu3 = 1.0 - dt / (self.tau_fs * units.fs) * self.compressibility_per_GPa * (self.pressure_GPa - pressure_GPa)
        mu3 = min(max(mu3, 0.97), 1.03)  # at most 1 % length change per step
        return mu3 ** (1.0 / 3.0)

    def describe(self) -> str:
        return (f"Berendsen barostat, P = {self.pressure_GPa} GPa, tau = {self.tau_fs} fs, "
                f"compressibility = {self.compressibility_per_GPa} /GPa")


class CRescaleBarostat(BerendsenBarostat):
    """Isotropic stochastic cell rescaling (Bernetti & Bussi, J. Chem. Phys. 153, 114107 (2020)):
    Berendsen's first-order relaxation plus the noise that makes it sample the isothermal-isobaric
    ensemble. Per step, with epsilon = ln V and P in eV/Å^3 (including the kinetic term):

        d eps = -(beta/tau) (P0 - P - kT/V) dt + sqrt(2 kT beta dt / (V tau)) xi,   xi ~ N(0, 1)

    positions and cell are scaled by mu = exp(d eps / 3) and velocities by 1/mu. Use it with a
    canonical thermostat (``npt-crescale`` = Bussi + this). beta (compressibility) only sets the
    relaxation speed, not the equilibrium distribution.
    """

    scales_velocities = True

    def __init__(self, temperature_K: float, pressure_GPa: float = 0.0, tau_fs: float = 1000.0,
                 compressibility_per_GPa: float = 0.457):
        super().__init__(pressure_GPa, tau_fs, compressibility_per_GPa)
        if not temperature_K > 0:
            raise ValueError(f"the C-rescale barostat needs temperature_K > 0, got {temperature_K}")
        self.temperature_K = float(temperature_K)

    def scale_factor(self, pressure_GPa: float, dt: float, volume_A3: float | None = None,
                     rng: np.random.Generator | None = None) -> float:
        if volume_A3 is None or rng is None:
            raise ValueError("the C-rescale barostat needs the volume and a random generator")
        kT = units.kB * self.temperature_K
        beta = self.compressibility_per_GPa / units.GPa  # Å^3/eV
        tau = self.tau_fs * units.fs
        p0, p = self.pressure_GPa * units.GPa, pressure_GPa * units.GPa
        deps = (-(beta / tau) * (p0 - p - kT / volume_A3) * dt
                + math.sqrt(2.0 * kT * beta * dt / (volume_A3 * tau)) * rng.standard_normal())
        # a guard against blow-ups only (3 % length change per step): a tighter clamp would cut the
        # noise and bias the volume distribution
        deps = min(max(deps, -0.1), 0.1)
        return math.exp(deps / 3.0)

    def describe(self) -> str:
        return (f"stochastic cell rescaling (C-rescale), P = {self.pressure_GPa} GPa, T = {self.temperature_K} K, "
                f"tau = {self.tau_fs} fs, compressibility = {self.compressibility_per_GPa} /GPa")


def make_thermostat(ensemble: str, temperature_K: float | None = None, friction_per_fs: float = 0.01,
                    tau_fs: float = 100.0, chain_length: int = 3) -> Thermostat:
    """The thermostat of an ensemble name (see ``ENSEMBLES``)."""
    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; expected one of {', '.join(ENSEMBLES)}")
    if ensemble == "nve":
        return Thermostat()
    if temperature_K is None or not temperature_K > 0:
        raise ValueError(f"ensemble {ensemble!r} needs a target temperature > 0 (--temperature-K)")
    if ensemble == "langevin":
        return Langevin(temperature_K, friction_per_fs)
    if ensemble == "langevin-ase":
        return LangevinASE(temperature_K, friction_per_fs)
    if ensemble in ("bussi", "npt-crescale"):
        return Bussi(temperature_K, tau_fs)
    if ensemble == "nose-hoover":
        return NoseHooverChain(temperature_K, tau_fs, chain_length)
    return Berendsen(temperature_K, tau_fs)  # berendsen, npt-berendsen
