"""Reference-data sampling: Langevin MD with any ASE calculator, written as n2p2 ``input.data``.

``sample`` runs ``trajectories`` independent Langevin trajectories per temperature (trajectory k
uses seed ``seed + k``) on the MD engine of ``hdnnp.dynamics``: ``LangevinIntegrator``, ASE's
``Langevin`` scheme with the centre of mass fixed (``FixCom``), with ASE's random draws and
floating-point operation order, so frames are bit-identical to ASE's own loop. All trajectories
start from the same structure; a frame is written every ``interval`` steps after
``equilibration_steps`` steps. Each frame holds the calculator's energy (eV) and
forces (eV/Å; the raw calculator forces, which the integrator uses too: the centre of mass
is held through the positions and momenta), positions in Å and, for periodic structures, the
three lattice vectors. A ``comment`` line per frame records how it was made::

    comment hdnnp-sample calculator=gfn2-xtb temperature_K=300 step=205 seed=7 kind=md

Frames are appended one at a time and flushed, so a killed run keeps every finished
frame; SIGINT (Ctrl-C) and SIGTERM stop the run after the current MD step. Running the
same command again resumes: the frames already in the output are counted per trajectory,
i.e. per temperature and seed (from the comments), and only the missing ones are made; a run
with another seed adds new trajectories to the same file. A resumed trajectory continues from
its last frame with velocities redrawn from the Maxwell-Boltzmann distribution (velocities are
not stored in ``input.data``), so it is statistically, not bit-for-bit, the same as an uninterrupted run.

Optional diversification: every MD frame can be followed by ``copies`` perturbed
copies (Gaussian displacements of standard deviation ``rattle_A`` Å and/or a random
symmetric strain of the cell, or of the coordinates about the centre of mass for a
cluster, with components up to ``strain``), each recomputed with the calculator. Only
MD frames are counted when resuming: copies of the last frame before an interruption that
were not finished are not made up.
"""


import contextlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hdnnp.dynamics.forcefield import ASECalculatorForceField
from hdnnp.dynamics.integrators import LangevinIntegrator, MDState
from hdnnp.dynamics.run import StopSignals
from hdnnp.dynamics.thermostats import LangevinASE
from hdnnp.dynamics.velocities import ase_thermal_velocities
from hdnnp.errors import HDNNPError
from hdnnp.io.n2p2_data import format_structure
from hdnnp.io.structure_files import read_atoms as read_structure  # noqa: F401  (public name)
from hdnnp.sampling.calculators import (  # noqa: F401  (public names)
    CALCULATOR_NAMES,
    XTB_ACCURACY,
    XTB_THREAD_DEFAULTS,
    make_calculator,
    set_thread_defaults,
)
from hdnnp.sampling.frames import (  # noqa: F401  (public names)
    COMMENT_TAG,
    ExistingFrames,
    _key,
    _t_key,
    format_comment,
    parse_comment,
    scan_existing,
    split_frames,
)
from hdnnp.structure import Structure

log = logging.getLogger(__name__)


def _structure_from_atoms(atoms, energy: float, forces: np.ndarray, comment: str) -> Structure:
    return Structure(
        elements=list(atoms.get_chemical_symbols()),
        positions=np.array(atoms.positions, dtype=np.float64),
        cell=np.array(atoms.cell, dtype=np.float64) if atoms.pbc.all() else None,
        energy=float(energy),
        forces=np.array(forces, dtype=np.float64),
        comments=[comment],
    )


def _label(calculator) -> str:
    return type(calculator).__name__.lower()


@dataclass
class _Plan:
    """What one ``sample`` call does: the trajectories, their frame targets and the MD settings."""

    label: str
    output: Path
    periodic: bool
    runs: list[tuple[float, int]]  # (temperature K, seed), in order
    targets: list[int]  # MD frames per run
    done: dict[tuple[str, str], int]  # MD frames already in the output per trajectory key
    existing: ExistingFrames
    timestep_fs: float
    friction_per_fs: float
    equilibration_steps: int
    interval: int
    rattle_A: float
    strain: float
    copies: int

    @property
    def n_todo(self) -> int:
        return sum(self.targets) - sum(self.done.values())


def _log_plan(plan: _Plan, atoms, calculator, temps: list[float], trajectories: int, seed: int) -> None:
    log.info("*** SETUP: SAMPLING ***")
    log.info("structure     : %s, %d atoms, %s", atoms.get_chemical_formula(), len(atoms),
             "periodic" if plan.periodic else "non-periodic")
    params = getattr(calculator, "parameters", None) or {}
    shown = {k: v for k, v in params.items() if k in ("method", "accuracy", "charge", "multiplicity")}
    log.info("calculator    : %s (%s%s)", plan.label, type(calculator).__name__,
             "".join(f", {k}={v}" for k, v in shown.items()))
    log.info("temperatures  : %s K, %d trajector%s each (seed%s %s), frames per trajectory %s",
             " ".join(_t_key(t) for t in temps), trajectories, "y" if trajectories == 1 else "ies",
             "" if trajectories == 1 else "s", " ".join(str(seed + k) for k in range(trajectories)),
             " ".join(map(str, plan.targets)))
    log.info("MD            : Langevin, dt %g fs, friction %g/fs, %d equilibration steps, "
             "a frame every %d steps", plan.timestep_fs, plan.friction_per_fs, plan.equilibration_steps,
             plan.interval)
    if plan.copies:
        log.info("copies        : %d per frame, rattle %g A, strain %g", plan.copies, plan.rattle_A, plan.strain)
    existing = plan.existing
    if existing.n_frames:
        log.info("resuming      : %s holds %d frames (%s)%s", plan.output, existing.n_frames,
                 ", ".join(f"{k[0]} K seed {k[1]}: {v}" for k, v in
                           sorted(existing.counts.items(), key=lambda kv: (float(kv[0][0]), kv[0][1]))),
                 f", {existing.other} from elsewhere" if existing.other else "")
    log.info("to do         : %d MD frames", plan.n_todo)


class _FrameWriter:
    """Appends frames to the output one at a time (flushed); a failed write (full disk) cuts the
    partial frame and keeps every complete one."""

    def __init__(self, output: Path, n_existing: int, callback: Callable[[Structure, dict], None] | None):
        self.output = output
        self.n_existing = n_existing
        self.callback = callback
        self.written = 0
        try:
            self.fh = open(output, "a", encoding="utf-8")
        except OSError as exc:
            raise HDNNPError(f"cannot write {output}: {exc.strerror or exc}") from None

    def write(self, structure: Structure, fields: dict) -> None:
        pos = self.fh.tell()
        try:
            self.fh.write(format_structure(structure))
            self.fh.flush()
        except OSError as exc:  # full disk: cut the partial frame, keep every complete one
            with contextlib.suppress(OSError):
                os.truncate(self.output, pos)
            raise HDNNPError(f"cannot write {self.output}: {exc.strerror or exc}; the "
                             f"{self.n_existing + self.written} complete frames in it are kept: free space and "
                             "rerun the same command to continue") from None
        self.written += 1
        if self.callback is not None:
            self.callback(structure, fields)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a full disk may fail the final flush: frames are complete
            self.fh.close()


def _check_values(energy: float, forces: np.ndarray, positions: np.ndarray, label: str) -> None:
    """Refuses non-finite energies, forces or positions (no frame with them is written)."""
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        raise HDNNPError(f"calculator {label} returned a non-finite energy or force")
    if not np.isfinite(positions).all():
        raise HDNNPError("the MD blew up (non-finite positions): use a smaller --timestep-fs; no frame with "
                         "them was written")


def _evaluate(a, label: str) -> tuple[float, np.ndarray]:
    """Energy and raw (unconstrained) forces of ``a``; refuses non-finite results or positions."""
    energy = a.get_potential_energy()
    forces = a.get_forces(apply_constraint=False)
    _check_values(energy, forces, a.positions, label)
    return float(energy), np.array(forces, dtype=np.float64)


@dataclass
class _Trajectory:
    """One trajectory on the dynamics engine: its state, integrator and force field (the ASE
    calculator on a copy of the trajectory's atoms), the step and the steps to its next frame."""

    state: MDState
    integrator: LangevinIntegrator
    force_field: ASECalculatorForceField
    step: int
    steps_next: int


def _start_trajectory(plan: _Plan, atoms, calculator, temp: float, run_seed: int, n_done: int) -> _Trajectory:
    """The Langevin run of one trajectory: from ``atoms`` (new) or from its last frame in the
    output (resumed; velocities redrawn). Velocities, thermostat noise and perturbations share
    one generator, seeded by (seed, temperature, frames done), drawn in ASE's order."""
    key = _key(temp, run_seed)
    rng = np.random.default_rng([run_seed, round(temp * 1000), n_done])
    if n_done == 0:
        md_atoms = atoms.copy()
        step = 0
        steps_next = plan.equilibration_steps
    else:
        last, fields = plan.existing.last[key]
        if last.elements != list(atoms.get_chemical_symbols()):
            raise HDNNPError(
                f"{plan.output}: the last {key[0]} K (seed {run_seed}) frame has a different composition than the "
                "starting structure; write to another file (-o)"
            )
        md_atoms = last.to_ase()
        md_atoms.set_masses(atoms.get_masses())
        step = int(fields.get("step", 0))
        steps_next = plan.interval
    md_atoms.set_constraint()
    velocities = ase_thermal_velocities(md_atoms, temp, rng, fix_com=True, zero_rotation=not plan.periodic)
    state = MDState(elements=list(md_atoms.get_chemical_symbols()),
                    positions=np.array(md_atoms.positions, dtype=np.float64), velocities=velocities,
                    masses=np.array(md_atoms.get_masses(), dtype=np.float64),
                    cell=np.array(md_atoms.cell, dtype=np.float64) if plan.periodic else None, step=step)
    force_field = ASECalculatorForceField(calculator, atoms=md_atoms, per_atom_energies=False)
    thermostat = LangevinASE(temp, plan.friction_per_fs, fix_com=True)
    integrator = LangevinIntegrator(force_field, plan.timestep_fs, thermostat, rng, wrap=False, stress=False)
    return _Trajectory(state, integrator, force_field, step, steps_next)


def _frame(traj: _Trajectory, comment: str) -> Structure:
    """The current MD frame: positions, cell and the raw calculator energy and forces."""
    state = traj.state
    return Structure(elements=list(state.elements), positions=np.array(state.positions, dtype=np.float64),
                     cell=None if state.cell is None else np.array(state.cell, dtype=np.float64),
                     energy=float(state.result.energy), forces=np.array(state.result.forces, dtype=np.float64),
                     comments=[comment])


def _write_copies(plan: _Plan, writer: _FrameWriter, md_atoms, calculator, rng, t_label: str, run_seed: int,
                  step: int) -> None:
    """``plan.copies`` perturbed copies of the current MD frame, each recomputed and written."""
    label = plan.label
    for c in range(1, plan.copies + 1):
        pert = _perturbed(md_atoms, rng, plan.rattle_A, plan.strain, plan.periodic)
        pert.calc = calculator
        try:
            e_c, f_c = _evaluate(pert, label)
        except (HDNNPError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise HDNNPError(f"calculator {label} failed on copy {c} of the frame at "
                             f"{t_label} K (seed {run_seed}) step {step}: {type(exc).__name__}: {exc}") from exc
        cfields = {"calculator": label, "temperature_K": t_label, "step": step, "seed": run_seed,
                   "kind": "copy", "copy": c, "rattle_A": f"{plan.rattle_A:g}", "strain": f"{plan.strain:g}"}
        writer.write(_structure_from_atoms(pert, e_c, f_c, format_comment(**cfields)), cfields)


def _advance(traj: _Trajectory, n_steps: int, signals: StopSignals) -> None:
    """``n_steps`` steps of the integrator (forces first where unknown); a SIGINT/SIGTERM received
    meanwhile ends them after the current step with a KeyboardInterrupt."""
    integrator, state = traj.integrator, traj.state
    integrator.initialize(state)
    for _ in range(n_steps):
        integrator.step(state)
        if signals.received:
            raise KeyboardInterrupt(signals.received)


def _run_trajectory(plan: _Plan, writer: _FrameWriter, bar, atoms, calculator, temp: float, run_seed: int,
                    target: int, signals: StopSignals) -> int:
    """Make the missing MD frames (and their copies) of one trajectory; returns the MD steps run."""
    key = _key(temp, run_seed)
    t_label = key[0]
    n_done = plan.done[key]
    if n_done >= target:
        return 0
    bar.set_postfix_str(f"{t_label} K, seed {run_seed}")
    traj = _start_trajectory(plan, atoms, calculator, temp, run_seed, n_done)
    label = plan.label
    n_steps = 0
    while n_done < target:
        try:
            _advance(traj, traj.steps_next, signals)
            _check_values(traj.state.result.energy, traj.state.result.forces, traj.state.positions, label)
        except (HDNNPError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise HDNNPError(
                f"calculator {label} failed at {t_label} K (seed {run_seed}) near step {traj.step + traj.steps_next}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        n_steps += traj.steps_next
        traj.step += traj.steps_next
        traj.steps_next = plan.interval
        fields = {"calculator": label, "temperature_K": t_label, "step": traj.step, "seed": run_seed,
                  "kind": "md", "timestep_fs": f"{plan.timestep_fs:g}"}
        writer.write(_frame(traj, format_comment(**fields)), fields)
        n_done += 1
        bar.update(1)
        if plan.copies:
            _write_copies(plan, writer, traj.force_field.atoms, calculator, traj.integrator.rng, t_label, run_seed,
                          traj.step)
            # the calculator last saw the copies (an SCF code keeps their wavefunction as its next guess):
            # the next step asks again at the MD positions, as ASE's Langevin.step did
            traj.state.result = None
    return n_steps


def sample(
    atoms,
    calculator,
    temperatures_K: Sequence[float],
    output: str | Path,
    *,
    frames: int,
    timestep_fs: float = 0.5,
    equilibration_steps: int = 200,
    interval: int = 5,
    seed: int = 0,
    trajectories: int = 1,
    friction_per_fs: float = 0.02,
    rattle_A: float = 0.0,
    strain: float = 0.0,
    copies: int = 0,
    label: str | None = None,
    progress: bool = True,
    callback: Callable[[Structure, dict], None] | None = None,
) -> int:
    """Langevin MD at each temperature; append frames to an n2p2 ``input.data``.

    Parameters
    ----------
    atoms : ase.Atoms, the starting structure (Å); periodic in all directions or none.
    calculator : an ASE calculator (eV, eV/Å) or a name accepted by ``make_calculator``.
    temperatures_K : thermostat temperatures, one trajectory each, in this order.
    output : the ``input.data`` to append to (created if missing; resumed if present).
    frames : total number of MD frames, split evenly over temperatures x trajectories.
    timestep_fs : MD time step.
    equilibration_steps : steps before the first frame of each temperature.
    interval : steps between frames.
    seed : seeds the velocities, the thermostat noise and the perturbations.
    trajectories : independent trajectories per temperature (seeds seed, seed + 1, ...).
    friction_per_fs : Langevin friction (0.02 fs^-1: velocities decorrelate in ~50 fs).
    rattle_A, strain, copies : after every MD frame write ``copies`` perturbed copies.
    label : the calculator name written in the comments (default: the name or class).
    progress : show a tqdm progress bar.
    callback : called as ``callback(structure, fields)`` after each frame is written.

    Returns
    -------
    The number of frames written by this call (MD frames plus copies). A
    ``KeyboardInterrupt`` (also raised after the current step on SIGINT or SIGTERM) is
    re-raised after the file is closed; every finished frame stays in ``output``.
    """
    temps = [float(t) for t in temperatures_K]
    _check_arguments(atoms, temps, frames, timestep_fs, equilibration_steps, interval, seed,
                     friction_per_fs, rattle_A, strain, copies)
    if isinstance(calculator, str):
        label = label or (calculator if ":" in calculator else calculator.lower())
        calculator = make_calculator(calculator)
    label = (label or _label(calculator)).replace(" ", "_")
    output = Path(output)

    existing = scan_existing(output)
    if existing.calculators and label not in existing.calculators:
        raise HDNNPError(
            f"{output} already holds frames from calculator(s) {', '.join(sorted(existing.calculators))}, "
            f"not {label!r}; write to another file (-o) to avoid mixing reference methods"
        )
    if not (isinstance(trajectories, int) and trajectories >= 1):
        raise HDNNPError(f"trajectories must be an integer >= 1, got {trajectories!r}")
    runs = [(t, seed + k) for k in range(trajectories) for t in temps]  # (temperature, seed)
    targets = split_frames(frames, len(runs))
    done = {_key(t, sd): min(existing.counts.get(_key(t, sd), 0), n) for (t, sd), n in zip(runs, targets)}
    plan = _Plan(label, output, bool(atoms.pbc.all()), runs, targets, done, existing, timestep_fs,
                 friction_per_fs, equilibration_steps, interval, rattle_A, strain, copies)
    _log_plan(plan, atoms, calculator, temps, trajectories, seed)

    from tqdm import tqdm

    n_steps = 0
    t0 = time.perf_counter()
    bar = tqdm(total=sum(targets), initial=sum(done.values()), unit="frame",
               disable=not progress or plan.n_todo == 0, dynamic_ncols=True)
    writer = _FrameWriter(output, existing.n_frames, callback)
    try:
        with StopSignals() as signals:
            for (temp, run_seed), target in zip(runs, targets):
                n_steps += _run_trajectory(plan, writer, bar, atoms, calculator, temp, run_seed, target, signals)
    except KeyboardInterrupt as exc:
        bar.close()
        by = f" by {exc.args[0]}" if exc.args else ""
        log.warning("interrupted%s: %d frames written in this run and kept in %s; "
                    "run the same command again to continue", by, writer.written, output)
        raise
    finally:
        bar.close()
        writer.close()
    elapsed = time.perf_counter() - t0
    written = writer.written
    if written:
        log.info("wrote %d frames to %s in %.1f s (%d MD steps, %.3g s per step)",
                 written, output, elapsed, n_steps, elapsed / max(n_steps, 1))
    else:
        log.info("%s already holds all requested frames; nothing to do", output)
    return written


def _perturbed(atoms, rng: np.random.Generator, rattle_A: float, strain: float, periodic: bool):
    """A copy with Gaussian displacements (std ``rattle_A``) and a random symmetric strain."""
    a = atoms.copy()
    a.set_constraint()
    a.calc = None
    if strain > 0.0:
        eps = rng.uniform(-strain, strain, size=(3, 3))
        deform = np.eye(3) + 0.5 * (eps + eps.T)
        if periodic:
            a.set_cell(np.array(a.cell) @ deform, scale_atoms=True)
        else:
            com = a.get_center_of_mass()
            a.positions = (a.positions - com) @ deform + com
    if rattle_A > 0.0:
        a.positions = a.positions + rng.normal(0.0, rattle_A, size=a.positions.shape)
    return a


def _check_arguments(atoms, temps, frames, timestep_fs, equilibration_steps, interval, seed,
                     friction_per_fs, rattle_A, strain, copies) -> None:
    if not isinstance(frames, (int, np.integer)) or frames <= 0:
        raise HDNNPError(f"frames must be a positive integer, found {frames!r}")
    if not temps:
        raise HDNNPError("temperatures_K is empty; give at least one temperature")
    if any(not np.isfinite(t) or t <= 0.0 for t in temps):
        raise HDNNPError(f"temperatures_K must be > 0, found {temps}")
    if len({_t_key(t) for t in temps}) != len(temps):
        raise HDNNPError(f"temperatures_K has repeated values: {temps}")
    if frames < len(temps):
        warnings.warn(f"frames ({frames}) is less than the number of temperatures ({len(temps)}); "
                      "some temperatures get no frames", stacklevel=3)
    for name, v in (("timestep_fs", timestep_fs), ("friction_per_fs", friction_per_fs), ("rattle", rattle_A),
                    ("strain", strain)):
        if not np.isfinite(v):
            raise HDNNPError(f"--{name.replace('_', '-')} must be a finite number, found {v}")
    if not timestep_fs > 0.0:
        raise HDNNPError(f"timestep_fs must be > 0, found {timestep_fs}")
    if timestep_fs > 100.0:
        raise HDNNPError(f"--timestep-fs {timestep_fs} is far above any stable atomistic time step (at most 100 fs "
                         "accepted; 0.5-2 fs is usual)")
    if equilibration_steps < 0:
        raise HDNNPError(f"equilibration_steps must be >= 0, found {equilibration_steps}")
    if interval < 1:
        raise HDNNPError(f"interval must be >= 1, found {interval}")
    if seed < 0:
        raise HDNNPError(f"seed must be >= 0, found {seed}")
    if not friction_per_fs > 0.0:
        raise HDNNPError(f"friction_per_fs must be > 0, found {friction_per_fs}")
    if rattle_A < 0.0 or strain < 0.0 or copies < 0:
        raise HDNNPError(f"rattle, strain and copies must be >= 0, found {rattle_A}, {strain}, {copies}")
    if copies and rattle_A == 0.0 and strain == 0.0:
        raise HDNNPError("copies > 0 needs rattle > 0 or strain > 0 (the copies would equal their frame)")
    if strain >= 0.5:
        raise HDNNPError(f"strain must be < 0.5 (a fraction, e.g. 0.02), found {strain}")
    pbc = np.asarray(atoms.pbc)
    if pbc.any() and not pbc.all():
        raise HDNNPError(
            f"structure has pbc={pbc.tolist()}; n2p2 structures are periodic in all three directions "
            "or none (add vacuum and make it fully periodic, or make it non-periodic)"
        )
    if len(atoms) == 0:
        raise HDNNPError("the starting structure has no atoms")
