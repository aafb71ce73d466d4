"""Running molecular dynamics: setup, the step loop, outputs, restart, timing.

``run_md`` is the library function behind ``hdnnp md``. Inside MD everything is in ASE
units (eV, Å, amu, fs, K, GPa); the potential's own units are converted at the force
field (``hdnnp.dynamics.forcefield``).

Output directory:
  traj.data          the prototype's trajectory (step line, then ``index x y z`` per atom, Å)
  trajectory.extxyz  positions, velocities (as momenta), forces, per-atom energies, cell,
                     energy, stress per written frame (``ase.io.read(path, ':')``)
  thermo.log         one line per ``thermo_every`` steps (see ``ThermoLog``)
  thermo.png         plot of thermo.log
  restart.npz        state to continue the run exactly (``--restart``)
  md.json            resolved settings, units and package versions
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hdnnp.dynamics.forcefield import ForceField
from hdnnp.dynamics.integrators import LangevinIntegrator, MDState, VelocityVerlet
from hdnnp.dynamics.output import (ExtxyzWriter, ThermoLog, TrajDataWriter, ns_per_day, plot_thermo,
                                   truncate_after_step)
from hdnnp.dynamics.restart import read_restart, write_restart
from hdnnp.dynamics.thermostats import ENSEMBLES, BerendsenBarostat, CRescaleBarostat, LangevinASE, make_thermostat
from hdnnp.dynamics.velocities import maxwell_boltzmann_velocities
from hdnnp.errors import HDNNPError, SettingsError
from hdnnp.io.validation import atomic_write_text
from hdnnp.io.structure_files import read_atoms as read_structure  # noqa: F401  (public name)

log = logging.getLogger("hdnnp")

#: larger time steps are refused: no atomistic integration is stable there
MAX_TIMESTEP_FS = 100.0
#: the automatic temperature limit is this factor times max(start, target, 300 K)
BLOWUP_FACTOR = 100.0


def _option(name: str) -> str:
    return name.replace("_", "-")


FILES = {"traj_data": "traj.data", "extxyz": "trajectory.extxyz", "thermo": "thermo.log",
         "plot": "thermo.png", "restart": "restart.npz", "config": "md.json"}


@dataclass
class MDSettings:
    """Settings of a run (units in the names).

    temperature_K : initial Maxwell-Boltzmann temperature and thermostat target (None:
        velocities from the input structure, or zero).
    rescale_initial_velocities : scale the drawn velocities to exactly temperature_K.
    write_every : steps between trajectory frames (traj.data, extxyz); thermo_every:
        between thermo.log lines; restart_every: between restart files (0: only at the end).
    max_extrapolation_warnings : stop when one step has more extrapolation warnings than
        this (as LAMMPS ``maxew`` with ``resetew yes``); None: never stop.
    max_temperature_K : stop when the temperature exceeds this (a blown-up integration, e.g.
        too large a time step); None: 100 x max(start, target, 300 K). Non-finite energies,
        forces or positions always stop the run.
    """

    steps: int
    timestep_fs: float
    ensemble: str = "nve"
    temperature_K: float | None = None
    friction_per_fs: float = 0.01
    tau_fs: float = 100.0
    chain_length: int = 3
    pressure_GPa: float = 0.0
    barostat_tau_fs: float = 1000.0
    compressibility_per_GPa: float = 0.457
    seed: int | None = None
    rescale_initial_velocities: bool = True
    write_every: int = 10
    thermo_every: int = 1
    restart_every: int = 0
    max_extrapolation_warnings: int | None = None
    max_temperature_K: float | None = None
    wrap: bool = True
    progress: bool = True
    plot: bool = True

    def validate(self) -> None:
        for name in ("timestep_fs", "temperature_K", "friction_per_fs", "tau_fs", "pressure_GPa",
                     "barostat_tau_fs", "compressibility_per_GPa", "max_temperature_K"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise SettingsError(f"--{_option(name)} must be a finite number, got {v}")
        for name in ("temperature_K", "friction_per_fs"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise SettingsError(f"--{_option(name)} must be >= 0, got {getattr(self, name)}")
        for name in ("tau_fs", "barostat_tau_fs", "compressibility_per_GPa", "max_temperature_K"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise SettingsError(f"--{_option(name)} must be > 0, got {getattr(self, name)}")
        if self.timestep_fs > MAX_TIMESTEP_FS:
            raise SettingsError(f"--timestep-fs {self.timestep_fs} is far above any stable atomistic time step "
                                f"(at most {MAX_TIMESTEP_FS:g} fs accepted; 0.5-2 fs is usual)")
        if self.steps < 0:
            raise SettingsError(f"--steps must be >= 0, got {self.steps}")
        if not self.timestep_fs > 0:
            raise SettingsError(f"--timestep-fs must be > 0, got {self.timestep_fs}")
        if self.ensemble not in ENSEMBLES:
            raise SettingsError(f"--ensemble must be one of {', '.join(ENSEMBLES)}, got {self.ensemble!r}")
        if self.ensemble != "nve" and not (self.temperature_K and self.temperature_K > 0):
            raise SettingsError(f"--ensemble {self.ensemble} needs --temperature-K > 0")
        for name in ("write_every", "thermo_every"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.restart_every < 0:
            raise SettingsError(f"--restart-every must be >= 0, got {self.restart_every}")


@dataclass
class MDTimings:
    """Wall-clock split of the step loop (seconds) and derived rates."""

    steps: int = 0
    loop_s: float = 0.0
    force_s: float = 0.0
    output_s: float = 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.loop_s if self.loop_s > 0 else float("nan")

    @property
    def overhead_us_per_step(self) -> float:
        """Time per step outside the force call (integrator, thermostat, outputs), µs."""
        return 1e6 * (self.loop_s - self.force_s) / self.steps if self.steps else float("nan")

    @property
    def overhead_fraction(self) -> float:
        return (self.loop_s - self.force_s) / self.loop_s if self.loop_s > 0 else float("nan")


@dataclass
class MDResult:
    state: MDState
    outdir: Path
    timings: MDTimings
    timestep_fs: float
    n_extrapolations_total: int = 0
    stopped_reason: str | None = None
    files: dict = field(default_factory=dict)
    #: the signal (SIGINT, SIGTERM) that ended the run early, else None
    interrupted: str | None = None

    @property
    def ns_per_day(self) -> float:
        return ns_per_day(self.timings.steps_per_s, self.timestep_fs)


class _ExtrapolationMessageFilter(logging.Filter):
    """Lets the potential's per-value extrapolation messages through until switched off
    (MD counts them per step in thermo.log instead of printing thousands of lines)."""

    def __init__(self):
        super().__init__()
        self.allow = True

    def filter(self, record: logging.LogRecord) -> bool:
        if self.allow:
            return True
        msg = str(record.msg)
        return not (msg.startswith("### NNP EXTRAPOLATION WARNING") or msg.startswith("... %d more extrapolation"))


def state_from_atoms(atoms, settings: MDSettings, rng: np.random.Generator) -> MDState:
    """Initial MD state: positions, cell and masses from ``atoms``; velocities from
    Maxwell-Boltzmann at ``settings.temperature_K`` (zero total momentum), else from
    ``atoms`` (e.g. an extxyz with momenta), else zero."""
    pbc = np.asarray(atoms.get_pbc())
    if pbc.any() and not pbc.all():
        raise SettingsError(f"structure has pbc={pbc.tolist()}; it must be periodic in all three directions "
                            "or none (add vacuum and set pbc=True, or set pbc=False)")
    masses = np.array(atoms.get_masses(), dtype=np.float64)
    if settings.temperature_K:
        v = maxwell_boltzmann_velocities(masses, settings.temperature_K, rng,
                                         rescale=settings.rescale_initial_velocities)
    else:
        v = np.array(atoms.get_velocities(), dtype=np.float64) if atoms.has("momenta") else np.zeros((len(atoms), 3))
    return MDState(elements=list(atoms.get_chemical_symbols()), positions=np.array(atoms.positions, dtype=np.float64),
                   velocities=v, masses=masses, cell=np.array(atoms.cell, dtype=np.float64) if pbc.all() else None)


def _versions() -> dict:
    import ase
    import numpy

    from hdnnp import __version__

    out = {"hdnnp": __version__, "numpy": numpy.__version__, "ase": ase.__version__,
           "python": platform.python_version(), "platform": platform.platform()}
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    try:
        import numba

        out["numba"] = numba.__version__
        out["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    return out


class StopSignals:
    """While active, SIGINT (Ctrl-C) and SIGTERM only set ``received`` (the signal's name); the
    step loop checks it after each step and ends the run cleanly with a restart file. A second
    SIGINT interrupts at once. Outside the main thread (no signal handlers there) it does nothing."""

    def __init__(self):
        self.received: str | None = None
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}


def _blown_up(state: MDState, n_dof: int, limit_K: float, timestep_fs: float) -> str | None:
    """Why the integration must stop (non-finite values, runaway temperature), or None."""
    res = state.result
    finite = (math.isfinite(res.energy) and np.isfinite(res.forces).all() and np.isfinite(state.positions).all()
              and np.isfinite(state.velocities).all())
    if not finite:
        return (f"step {state.step}: non-finite energy, forces or positions: the integration blew up "
                f"(--timestep-fs {timestep_fs:g} too large, or atoms ran into each other)")
    t = state.temperature(n_dof)
    if t > limit_K:
        return (f"step {state.step}: temperature {t:.3g} K exceeds {limit_K:.3g} K: the integration is blowing up "
                f"(--timestep-fs {timestep_fs:g} too large?); --max-temperature-K raises the limit")
    return None


def _temperature_limit(settings: MDSettings, state: MDState, n_dof: int) -> float:
    if settings.max_temperature_K is not None:
        return settings.max_temperature_K
    t0 = state.temperature(n_dof) if n_dof else 0.0
    return BLOWUP_FACTOR * max(t0 if math.isfinite(t0) else 0.0, settings.temperature_K or 0.0, 300.0)


def _setup_state(force_field, atoms, settings: MDSettings, restart, thermostat):
    """(state, rng, meta) from the restart file or from ``atoms``."""
    if restart is None:
        rng = np.random.default_rng(settings.seed)
        return state_from_atoms(atoms, settings, rng), rng, {}
    state, rng, meta = read_restart(restart)
    pot = getattr(force_field, "potential", None)
    if pot is not None:
        check_elements(state.elements, list(pot.elements), str(restart))
    if meta.get("thermostat") and meta["thermostat"].get("name") == thermostat.name:
        thermostat.load_state_dict(meta["thermostat"])
    elif meta.get("thermostat", {}).get("name") not in (None, "nve"):
        log.warning("restart file has thermostat %r, this run uses %r: its state starts fresh",
                    meta["thermostat"].get("name"), thermostat.name)
    log.info("restart        : %s (step %d, t = %.3f fs)", restart, state.step, state.time_fs)
    return state, rng, meta


def _make_barostat(settings: MDSettings):
    if settings.ensemble == "npt-berendsen":
        return BerendsenBarostat(settings.pressure_GPa, settings.barostat_tau_fs, settings.compressibility_per_GPa)
    if settings.ensemble == "npt-crescale":
        return CRescaleBarostat(settings.temperature_K, settings.pressure_GPa, settings.barostat_tau_fs,
                                settings.compressibility_per_GPa)
    return None


def run_md(force_field: ForceField, atoms, settings: MDSettings, outdir: str | Path,
           restart: str | Path | None = None, provenance: dict | None = None) -> MDResult:
    """Run molecular dynamics and write the outputs into ``outdir``.

    force_field : in eV and Å (``HDNNPForceField``, ``ASECalculatorForceField``).
    atoms : starting ``ase.Atoms`` (ignored when ``restart`` is given).
    restart : a restart.npz to continue from: positions, velocities, cell, step, forces,
        thermostat and random-generator state come from it (``settings.seed`` is then
        unused); outputs that already exist in ``outdir`` are continued: frames and rows
        after the restart step (written after the last restart file) are cut first.
    Returns an ``MDResult``; ``stopped_reason`` is set when the run ended early: the
    extrapolation limit, a blown-up integration (non-finite values, runaway temperature; no
    restart file is written then) or SIGINT/SIGTERM (``interrupted`` names the signal; the
    restart file is written).
    """
    settings.validate()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {k: outdir / v for k, v in FILES.items()}
    thermostat = make_thermostat(settings.ensemble, settings.temperature_K, settings.friction_per_fs,
                                 settings.tau_fs, settings.chain_length)
    barostat = _make_barostat(settings)

    log.info("*** SETUP: MOLECULAR DYNAMICS ***")
    state, rng, meta = _setup_state(force_field, atoms, settings, restart, thermostat)
    if barostat is not None and state.cell is None:
        raise SettingsError(f"--ensemble {settings.ensemble} needs a periodic structure")
    if isinstance(thermostat, LangevinASE):
        integrator = LangevinIntegrator(force_field, settings.timestep_fs, thermostat, rng, wrap=settings.wrap)
        scheme = "Langevin (Vanden-Eijnden & Ciccotti, as ASE's Langevin)"
    else:
        integrator = VelocityVerlet(force_field, settings.timestep_fs, thermostat, barostat, rng, wrap=settings.wrap)
        scheme = "velocity Verlet"
    n_dof = integrator.n_dof(state)
    log.info("atoms          : %d (%s), %s", state.n_atoms,
             " ".join(f"{e}{state.elements.count(e)}" for e in dict.fromkeys(state.elements)),
             "periodic" if state.cell is not None else "non-periodic")
    log.info("integrator     : %s, dt = %g fs, %d steps", scheme, settings.timestep_fs, settings.steps)
    log.info("thermostat     : %s", thermostat.describe())
    if barostat is not None:
        log.info("barostat       : %s", barostat.describe())
    log.info("degrees of fr. : %d", n_dof)
    log.info("output         : %s (trajectory every %d steps)", outdir, settings.write_every)

    append = restart is not None
    if append:
        for what in truncate_after_step(paths, state.step, state.n_atoms):
            log.info("continuing     : cut %s (written after the restart file)", what)
    config = {"settings": asdict(settings), "n_atoms": state.n_atoms, "n_dof": n_dof,
              "restart": None if restart is None else str(restart), "versions": _versions(), **(provenance or {})}
    atomic_write_text(paths["config"], json.dumps(config, indent=2, default=str) + "\n")

    loop = _StepLoop(integrator, state, settings, thermostat, rng, paths, n_dof, provenance)
    with StopSignals() as signals:
        loop.run(append, meta, signals)
    files = {k: p for k, p in paths.items() if k != "plot"}
    if settings.plot:
        try:
            files["plot"] = plot_thermo(paths["thermo"], paths["plot"], n_atoms=state.n_atoms)
        except Exception as exc:  # a missing plot must not lose a finished run
            log.warning("could not plot thermo.log: %s", exc)
    result = MDResult(state=state, outdir=outdir, timings=loop.timings, timestep_fs=settings.timestep_fs,
                      n_extrapolations_total=loop.total_ex, stopped_reason=loop.stopped, files=files,
                      interrupted=signals.received if loop.interrupted else None)
    t = loop.timings
    log.info("*** MD SUMMARY ***")
    log.info("steps          : %d in %.2f s: %.3f steps/s, %.4f ns/day", t.steps, t.loop_s, t.steps_per_s,
             result.ns_per_day)
    log.info("force calls    : %.2f s (%.1f %%); overhead %.0f µs/step (%.2f %%)", t.force_s,
             100 * t.force_s / t.loop_s if t.loop_s else 0.0, t.overhead_us_per_step, 100 * t.overhead_fraction)
    log.info("extrapolation  : %d warnings in total", loop.total_ex)
    if loop.stopped:
        log.error("stopped at %s", loop.stopped)
    return result


class _StepLoop:
    """The step loop of ``run_md`` with its writers, counters and stop conditions."""

    def __init__(self, integrator, state, settings, thermostat, rng, paths, n_dof, provenance):
        self.integrator, self.state, self.settings = integrator, state, settings
        self.thermostat, self.rng, self.paths, self.n_dof = thermostat, rng, paths, n_dof
        self.provenance = provenance or {}
        self.timings = MDTimings()
        self.total_ex = 0
        self.stopped: str | None = None
        self.interrupted = False
        self.blown_up = False
        self.filt = _ExtrapolationMessageFilter()

    def thermo_row(self) -> dict:
        state = self.state
        epot = state.result.energy
        ekin = state.kinetic_energy()
        row = {"step": state.step, "time_fs": state.time_fs, "epot_eV": epot, "ekin_eV": ekin,
               "etot_eV": epot + ekin, "econs_eV": epot + ekin + self.thermostat.conserved_energy(),
               "temperature_K": state.temperature(self.n_dof), "n_extrap": state.result.n_extrapolations,
               "n_extrap_total": self.total_ex}
        if state.cell is not None:
            row["pressure_GPa"] = state.pressure_GPa()
            row["volume_A3"] = state.volume
        return row

    def save_restart(self) -> None:
        write_restart(self.paths["restart"], self.state, self.rng, self.thermostat.state_dict(),
                      extra={"ensemble": self.settings.ensemble, "timestep_fs": self.settings.timestep_fs,
                             "n_extrap_total": self.total_ex, **self.provenance})

    def write_frame(self) -> None:
        self.traj.write(self.state.step, self.state.positions)
        self.extxyz.write(self.state, self.n_dof)
        self.thermo.flush()
        self.last_written = self.state.step

    def run(self, append: bool, meta: dict, signals: StopSignals) -> None:
        hlog = logging.getLogger("hdnnp")
        hlog.addFilter(self.filt)
        self.traj = self.extxyz = self.thermo = None
        try:
            self._open_and_start(append, meta)
            self._steps(signals)
            if not self.blown_up:
                if self.last_written != self.state.step:
                    self.write_frame()
                self.save_restart()
        except OSError as exc:  # full disk, permissions: the last restart file is intact (atomic writes)
            where = exc.filename or self.paths["traj_data"].parent
            raise HDNNPError(f"cannot write in {where}: {exc.strerror or exc} at step {self.state.step}; "
                             f"{self.paths['restart']} holds the last complete restart (if any)") from None
        finally:
            hlog.removeFilter(self.filt)
            for w in (self.traj, self.extxyz, self.thermo):
                if w is not None:
                    with contextlib.suppress(OSError):
                        w.close()

    def _open_and_start(self, append: bool, meta: dict) -> None:
        state, paths = self.state, self.paths
        self.integrator.initialize(state)
        traj_new = not (append and paths["traj_data"].exists())
        self.traj = TrajDataWriter(paths["traj_data"], append=not traj_new)
        self.extxyz = ExtxyzWriter(paths["extxyz"], append=not traj_new)
        self.thermo = ThermoLog(paths["thermo"], periodic=state.cell is not None, append=append)
        self.total_ex = int(meta.get("n_extrap_total", 0)) if append else state.result.n_extrapolations
        self.last_written = -1
        if self.thermo.new:  # a fresh log starts with the starting state (also after a restart)
            self.thermo.write(self.thermo_row())
        if traj_new:
            self.write_frame()
        if state.result.n_extrapolations:
            self.filt.allow = False
            log.warning("further extrapolation warnings are not printed; thermo.log counts them per step (n_extrap)")

    def _steps(self, signals: StopSignals) -> None:
        from tqdm import tqdm

        state, settings, timings = self.state, self.settings, self.timings
        bar = tqdm(total=settings.steps, unit="step", disable=not settings.progress, mininterval=1.0,
                   dynamic_ncols=True)
        force_t0 = self.integrator.force_time
        t_loop0 = time.perf_counter()
        t_postfix = t_loop0
        n_done = 0
        max_ew = settings.max_extrapolation_warnings
        t_limit = _temperature_limit(settings, state, self.n_dof)
        if max_ew is not None and state.result.n_extrapolations > max_ew:
            self.stopped = (f"step {state.step} (start): {state.result.n_extrapolations} extrapolation warnings > "
                            f"--max-extrapolation-warnings {max_ew}; the structure is outside the range of the "
                            "training data")
        for _ in range(0 if self.stopped else settings.steps):
            self.integrator.step(state)
            n_done += 1
            self.stopped = _blown_up(state, self.n_dof, t_limit, settings.timestep_fs)
            if self.stopped:
                self.blown_up = True
                break
            n_ex = state.result.n_extrapolations
            self.total_ex += n_ex
            t_out = time.perf_counter()
            if n_ex and self.filt.allow:
                self.filt.allow = False
                log.warning("step %d: %d extrapolation warnings; further ones are counted in thermo.log "
                            "(n_extrap), not printed", state.step, n_ex)
            limit_hit = max_ew is not None and n_ex > max_ew
            if state.step % settings.thermo_every == 0 or limit_hit:
                self.thermo.write(self.thermo_row())
            if state.step % settings.write_every == 0 or limit_hit:
                self.write_frame()
            if settings.restart_every and state.step % settings.restart_every == 0:
                self.save_restart()
            now = time.perf_counter()
            timings.output_s += now - t_out
            bar.update(1)
            if settings.progress and now - t_postfix > 1.0:
                t_postfix = now
                rate = n_done / (now - t_loop0)
                bar.set_postfix_str(f"{ns_per_day(rate, settings.timestep_fs):.3f} ns/day, "
                                    f"T={state.temperature(self.n_dof):.0f} K")
            if limit_hit:
                self.stopped = (f"step {state.step}: {n_ex} extrapolation warnings > --max-extrapolation-warnings "
                                f"{max_ew}; the structure left the range of the "
                                "training data (see thermo.log column n_extrap)")
                break
            if signals.received:
                self.interrupted = True
                self.stopped = f"step {state.step}: interrupted by {signals.received}"
                break
        timings.loop_s = time.perf_counter() - t_loop0
        timings.steps = n_done
        timings.force_s = self.integrator.force_time - force_t0
        bar.close()


def check_elements(atoms_elements: list[str], potential_elements: list[str], where: str) -> None:
    """Raise SettingsError when the structure has elements the potential lacks."""
    missing = sorted(set(atoms_elements) - set(potential_elements))
    if missing:
        raise SettingsError(f"{where}: elements {' '.join(missing)} are not in the potential "
                            f"(elements: {' '.join(potential_elements)})")


__all__ = ["MDSettings", "MDResult", "MDTimings", "run_md", "StopSignals", "read_structure", "state_from_atoms",
           "check_elements"]
