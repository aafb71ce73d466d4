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

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hdnnp.dynamics.forcefield import ForceField
from hdnnp.dynamics.integrators import MDState, VelocityVerlet
from hdnnp.dynamics.output import ExtxyzWriter, ThermoLog, TrajDataWriter, ns_per_day, plot_thermo
from hdnnp.dynamics.restart import read_restart, write_restart
from hdnnp.dynamics.thermostats import ENSEMBLES, BerendsenBarostat, CRescaleBarostat, make_thermostat
from hdnnp.dynamics.velocities import maxwell_boltzmann_velocities
from hdnnp.errors import SettingsError
from hdnnp.io.structure_files import read_atoms as read_structure  # noqa: F401  (public name)

log = logging.getLogger("hdnnp")

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
    wrap: bool = True
    progress: bool = True
    plot: bool = True

    def validate(self) -> None:
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


def run_md(force_field: ForceField, atoms, settings: MDSettings, outdir: str | Path,
           restart: str | Path | None = None, provenance: dict | None = None) -> MDResult:
    """Run molecular dynamics and write the outputs into ``outdir``.

    force_field : in eV and Å (``HDNNPForceField``, ``ASECalculatorForceField``).
    atoms : starting ``ase.Atoms`` (ignored when ``restart`` is given).
    restart : a restart.npz to continue from: positions, velocities, cell, step, forces,
        thermostat and random-generator state come from it (``settings.seed`` is then
        unused); outputs are appended when they already exist in ``outdir``.
    Returns an ``MDResult`` (``stopped_reason`` set when the extrapolation limit stopped it).
    """
    settings.validate()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {k: outdir / v for k, v in FILES.items()}
    thermostat = make_thermostat(settings.ensemble, settings.temperature_K, settings.friction_per_fs,
                                 settings.tau_fs, settings.chain_length)
    barostat = None
    if settings.ensemble == "npt-berendsen":
        barostat = BerendsenBarostat(settings.pressure_GPa, settings.barostat_tau_fs, settings.compressibility_per_GPa)
    elif settings.ensemble == "npt-crescale":
        barostat = CRescaleBarostat(settings.temperature_K, settings.pressure_GPa, settings.barostat_tau_fs,
                                    settings.compressibility_per_GPa)

    log.info("*** SETUP: MOLECULAR DYNAMICS ***")
    if restart is not None:
        state, rng, meta = read_restart(restart)
        if meta.get("thermostat") and meta["thermostat"].get("name") == thermostat.name:
            thermostat.load_state_dict(meta["thermostat"])
        elif meta.get("thermostat", {}).get("name") not in (None, "nve"):
            log.warning("restart file has thermostat %r, this run uses %r: its state starts fresh",
                        meta["thermostat"].get("name"), thermostat.name)
        log.info("restart        : %s (step %d, t = %.3f fs)", restart, state.step, state.time_fs)
    else:
        rng = np.random.default_rng(settings.seed)
        state = state_from_atoms(atoms, settings, rng)
    if barostat is not None and state.cell is None:
        raise SettingsError(f"--ensemble {settings.ensemble} needs a periodic structure")
    integrator = VelocityVerlet(force_field, settings.timestep_fs, thermostat, barostat, rng, wrap=settings.wrap)
    n_dof = integrator.n_dof(state)
    log.info("atoms          : %d (%s), %s", state.n_atoms,
             " ".join(f"{e}{state.elements.count(e)}" for e in dict.fromkeys(state.elements)),
             "periodic" if state.cell is not None else "non-periodic")
    log.info("integrator     : velocity Verlet, dt = %g fs, %d steps", settings.timestep_fs, settings.steps)
    log.info("thermostat     : %s", thermostat.describe())
    if barostat is not None:
        log.info("barostat       : %s", barostat.describe())
    log.info("degrees of fr. : %d", n_dof)
    log.info("output         : %s (trajectory every %d steps)", outdir, settings.write_every)

    append = restart is not None
    config = {"settings": asdict(settings), "n_atoms": state.n_atoms, "n_dof": n_dof,
              "restart": None if restart is None else str(restart), "versions": _versions(), **(provenance or {})}
    paths["config"].write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")

    filt = _ExtrapolationMessageFilter()
    hlog = logging.getLogger("hdnnp")
    hlog.addFilter(filt)
    traj = extxyz = thermo = None
    timings = MDTimings()
    total_ex = 0
    stopped = None
    last_written = -1
    try:
        integrator.initialize(state)
        traj_new = not (append and paths["traj_data"].exists())
        traj = TrajDataWriter(paths["traj_data"], append=not traj_new)
        extxyz = ExtxyzWriter(paths["extxyz"], append=not traj_new)
        thermo = ThermoLog(paths["thermo"], periodic=state.cell is not None, append=append)

        def thermo_row() -> dict:
            epot = state.result.energy
            ekin = state.kinetic_energy()
            row = {"step": state.step, "time_fs": state.time_fs, "epot_eV": epot, "ekin_eV": ekin,
                   "etot_eV": epot + ekin, "econs_eV": epot + ekin + thermostat.conserved_energy(),
                   "temperature_K": state.temperature(n_dof), "n_extrap": state.result.n_extrapolations,
                   "n_extrap_total": total_ex}
            if state.cell is not None:
                row["pressure_GPa"] = state.pressure_GPa()
                row["volume_A3"] = state.volume
            return row

        def save_restart() -> None:
            write_restart(paths["restart"], state, rng, thermostat.state_dict(),
                          extra={"ensemble": settings.ensemble, "timestep_fs": settings.timestep_fs,
                                 "n_extrap_total": total_ex, **(provenance or {})})

        if append:
            total_ex = int(meta.get("n_extrap_total", 0))
        else:
            total_ex = state.result.n_extrapolations
        if thermo.new:  # a fresh log starts with the starting state (also after a restart)
            thermo.write(thermo_row())
        if traj_new:
            traj.write(state.step, state.positions)
            extxyz.write(state, n_dof)
            last_written = state.step
        if state.result.n_extrapolations:
            filt.allow = False
            log.warning("further extrapolation warnings are not printed; thermo.log counts them per step (n_extrap)")

        from tqdm import tqdm

        bar = tqdm(total=settings.steps, unit="step", disable=not settings.progress, mininterval=1.0,
                   dynamic_ncols=True)
        force_t0 = integrator.force_time
        t_loop0 = time.perf_counter()
        t_postfix = t_loop0
        n_done = 0
        max_ew = settings.max_extrapolation_warnings
        if max_ew is not None and state.result.n_extrapolations > max_ew:
            stopped = (f"step {state.step} (start): {state.result.n_extrapolations} extrapolation warnings > "
                       f"--max-extrapolation-warnings {max_ew}; the structure is outside the range of the "
                       "training data")
        for _ in range(0 if stopped else settings.steps):
            integrator.step(state)
            n_done += 1
            n_ex = state.result.n_extrapolations
            total_ex += n_ex
            t_out = time.perf_counter()
            if n_ex and filt.allow:
                filt.allow = False
                log.warning("step %d: %d extrapolation warnings; further ones are counted in thermo.log "
                            "(n_extrap), not printed", state.step, n_ex)
            limit_hit = max_ew is not None and n_ex > max_ew
            if state.step % settings.thermo_every == 0 or limit_hit:
                thermo.write(thermo_row())
            if state.step % settings.write_every == 0 or limit_hit:
                traj.write(state.step, state.positions)
                extxyz.write(state, n_dof)
                thermo.flush()
                last_written = state.step
            if settings.restart_every and state.step % settings.restart_every == 0:
                save_restart()
            now = time.perf_counter()
            timings.output_s += now - t_out
            bar.update(1)
            if settings.progress and now - t_postfix > 1.0:
                t_postfix = now
                rate = n_done / (now - t_loop0)
                bar.set_postfix_str(f"{ns_per_day(rate, settings.timestep_fs):.3f} ns/day, "
                                    f"T={state.temperature(n_dof):.0f} K")
            if limit_hit:
                stopped = (f"step {state.step}: {n_ex} extrapolation warnings > --max-extrapolation-warnings "
                           f"{max_ew}; the structure left the range of the "
                           "training data (see thermo.log column n_extrap)")
                break
        timings.loop_s = time.perf_counter() - t_loop0
        timings.steps = n_done
        timings.force_s = integrator.force_time - force_t0
        bar.close()
        if last_written != state.step:
            traj.write(state.step, state.positions)
            extxyz.write(state, n_dof)
        save_restart()
    finally:
        hlog.removeFilter(filt)
        for w in (traj, extxyz, thermo):
            if w is not None:
                w.close()
    files = {k: p for k, p in paths.items() if k != "plot"}
    if settings.plot:
        try:
            files["plot"] = plot_thermo(paths["thermo"], paths["plot"], n_atoms=state.n_atoms)
        except Exception as exc:  # a missing plot must not lose a finished run
            log.warning("could not plot thermo.log: %s", exc)
    result = MDResult(state=state, outdir=outdir, timings=timings, timestep_fs=settings.timestep_fs,
                      n_extrapolations_total=total_ex, stopped_reason=stopped, files=files)
    t = timings
    log.info("*** MD SUMMARY ***")
    log.info("steps          : %d in %.2f s: %.3f steps/s, %.4f ns/day", t.steps, t.loop_s, t.steps_per_s,
             result.ns_per_day)
    log.info("force calls    : %.2f s (%.1f %%); overhead %.0f µs/step (%.2f %%)", t.force_s,
             100 * t.force_s / t.loop_s if t.loop_s else 0.0, t.overhead_us_per_step, 100 * t.overhead_fraction)
    log.info("extrapolation  : %d warnings in total", total_ex)
    if stopped:
        log.error("stopped at %s", stopped)
    return result


def check_elements(atoms_elements: list[str], potential_elements: list[str], where: str) -> None:
    """Raise SettingsError when the structure has elements the potential lacks."""
    missing = sorted(set(atoms_elements) - set(potential_elements))
    if missing:
        raise SettingsError(f"{where}: elements {' '.join(missing)} are not in the potential "
                            f"(elements: {' '.join(potential_elements)})")


__all__ = ["MDSettings", "MDResult", "MDTimings", "run_md", "read_structure", "state_from_atoms",
           "check_elements"]
