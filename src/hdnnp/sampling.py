"""Reference-data sampling: Langevin MD with any ASE calculator, written as n2p2 ``input.data``.

``sample`` runs ``trajectories`` independent Langevin trajectories per temperature (ASE
``Langevin``; trajectory k uses seed ``seed + k``), all starting from the same structure, and writes a frame every ``interval`` steps after
``equilibration_steps`` steps. Each frame holds the calculator's energy (eV) and
forces (eV/Å; the raw calculator forces, not the centre-of-mass-constrained ones the
integrator uses), positions in Å and, for periodic structures, the three lattice
vectors. A ``comment`` line per frame records how it was made::

    comment hdnnp-sample calculator=gfn2-xtb temperature_K=300 step=205 seed=7 kind=md

Frames are appended one at a time and flushed, so a killed run keeps every finished
frame. Running the same command again resumes: the frames already in the output are
counted per trajectory, i.e. per temperature and seed (from the comments), and only the
missing ones are made; a run with another seed adds new trajectories to the same file. A
resumed trajectory continues from its last frame with velocities
redrawn from the Maxwell-Boltzmann distribution (velocities are not stored in
``input.data``), so it is statistically, not bit-for-bit, the same as an uninterrupted run.

Optional diversification: every MD frame can be followed by ``copies`` perturbed
copies (Gaussian displacements of standard deviation ``rattle_A`` Å and/or a random
symmetric strain of the cell, or of the coordinates about the centre of mass for a
cluster, with components up to ``strain``), each recomputed with the calculator. Only
MD frames are counted when resuming: copies of the last frame before an interruption that
were not finished are not made up.
"""

from __future__ import annotations

import contextlib

import importlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdnnp.errors import HDNNPError, ReadError
from hdnnp.io.n2p2_data import format_structure, iter_input_data
from hdnnp.io.structure_files import read_atoms as read_structure  # noqa: F401  (public name)
from hdnnp.structure import Structure

log = logging.getLogger(__name__)

#: the built-in calculator names accepted by ``make_calculator``
CALCULATOR_NAMES = ("emt", "gfn2-xtb", "gfn1-xtb")
#: first word of the comment line written with every frame
COMMENT_TAG = "hdnnp-sample"

#: thread settings for tblite (anchors/ENGINES.md: with several OpenMP threads and
#: the default wait policy, GFN2-xTB calls slowed down 2-20x at random; one OpenMP
#: thread is stable). Applied with ``setdefault``: a value the user set wins.
XTB_THREAD_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


# --------------------------------------------------------------------- calculators
def set_thread_defaults(defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Set thread environment variables the user has not set; return the ones set here.

    Must run before the library that reads them (tblite's OpenMP runtime) is loaded.
    """
    chosen = {}
    for key, value in (XTB_THREAD_DEFAULTS if defaults is None else defaults).items():
        if key not in os.environ:
            os.environ[key] = value
            chosen[key] = value
    return chosen


#: tblite SCF accuracy used for reference data. tblite's default (1.0) leaves force noise of
#: ~2e-4 eV/Å between a call that starts from the previous step's wavefunction and a fresh
#: call; 0.1 brings it to ~1e-5 eV/Å for ~15 % more time (56-atom Al/O/H cluster, GFN2-xTB).
XTB_ACCURACY = 0.1


def make_calculator(spec: str, charge: int | None = None, multiplicity: int | None = None,
                    accuracy: float = XTB_ACCURACY):
    """Build an ASE calculator from a name or an import path.

    spec : ``emt`` (ASE's EMT), ``gfn2-xtb`` / ``gfn1-xtb`` (tblite, optional extra
        ``pip install tblite``), or ``package.module:factory`` where ``factory()``
        returns an ASE calculator (a calculator object at that path is used as is).
    charge, multiplicity : total charge and spin multiplicity (tblite only).
    accuracy : tblite's SCF accuracy (smaller is tighter; tblite's own default is 1.0).

    Returns the calculator; energies must be in eV and forces in eV/Å (ASE units).
    """
    name = spec.strip()
    key = name.lower()
    if key == "emt":
        if charge or multiplicity:
            raise HDNNPError("--charge/--multiplicity apply to gfn1-xtb/gfn2-xtb only, not to emt")
        from ase.calculators.emt import EMT

        return EMT()
    if key in ("gfn2-xtb", "gfn1-xtb"):
        chosen = set_thread_defaults()
        if chosen:
            log.info("tblite threads: %s (set OMP_NUM_THREADS yourself to override)",
                     " ".join(f"{k}={v}" for k, v in chosen.items()))
        try:
            from tblite.ase import TBLite
        except ImportError:
            raise HDNNPError(
                f"calculator {name!r} needs tblite, which is not installed; "
                "install it with 'pip install tblite' (or 'pip install hdnnp[xtb]')"
            ) from None
        if not accuracy > 0.0:
            raise HDNNPError(f"accuracy must be > 0, found {accuracy}")
        kwargs = {"method": "GFN2-xTB" if key == "gfn2-xtb" else "GFN1-xTB", "verbosity": 0,
                  "accuracy": float(accuracy)}
        if charge is not None:
            kwargs["charge"] = charge
        if multiplicity is not None:
            kwargs["multiplicity"] = multiplicity
        return TBLite(**kwargs)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise HDNNPError(f"calculator {name!r}: cannot import module {module_name!r} ({exc})") from None
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise HDNNPError(f"calculator {name!r}: module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not isinstance(obj, type) and hasattr(obj, "get_potential_energy"):
            return obj  # a calculator object
        if not callable(obj):
            raise HDNNPError(f"calculator {name!r}: {attr!r} is neither a calculator nor callable")
        try:
            calc = obj()
        except Exception as exc:
            raise HDNNPError(f"calculator {name!r}: calling {attr}() failed: {type(exc).__name__}: {exc}") from exc
        if not hasattr(calc, "get_potential_energy"):
            raise HDNNPError(f"calculator {name!r}: {attr}() returned {type(calc).__name__}, not an ASE calculator")
        return calc
    raise HDNNPError(
        f"unknown calculator {name!r}; expected one of {', '.join(CALCULATOR_NAMES)} "
        "or an import path 'package.module:factory' returning an ASE calculator"
    )


# ------------------------------------------------------------------ starting structure
# ------------------------------------------------------------------ frame bookkeeping
def split_frames(frames: int, n_temperatures: int) -> list[int]:
    """Split a frame budget over temperatures as evenly as possible (earlier ones get the rest)."""
    base, rest = divmod(frames, n_temperatures)
    return [base + (1 if k < rest else 0) for k in range(n_temperatures)]


def _t_key(temperature_K: float) -> str:
    return f"{float(temperature_K):g}"


def _key(temperature_K: float, seed) -> tuple[str, str]:
    """A trajectory: (temperature as written in the comments, seed)."""
    return _t_key(temperature_K), str(seed)


def format_comment(**fields) -> str:
    """The ``comment`` text of one frame: ``hdnnp-sample key=value ...``."""
    return " ".join([COMMENT_TAG] + [f"{k}={v}" for k, v in fields.items()])


def parse_comment(comment: str) -> dict[str, str] | None:
    """``key=value`` fields of an ``hdnnp-sample`` comment, or None for other comments."""
    words = comment.split()
    if not words or words[0] != COMMENT_TAG:
        return None
    out = {}
    for w in words[1:]:
        k, sep, v = w.partition("=")
        if sep:
            out[k] = v
    return out


@dataclass
class ExistingFrames:
    """What an output file already holds (for resuming).

    counts : MD frames per trajectory key (``(f"{T:g}", seed)``, see ``_key``).
    last : the last MD frame (Structure) and its fields per trajectory key.
    calculators : calculator labels seen; seeds : seeds seen; other : frames without our comment.
    """

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    last: dict[tuple[str, str], tuple[Structure, dict[str, str]]] = field(default_factory=dict)
    calculators: set[str] = field(default_factory=set)
    seeds: set[str] = field(default_factory=set)
    n_frames: int = 0
    other: int = 0


def _repair_tail(path: Path) -> None:
    """Cut a partly written last frame (a kill during a write) and ensure a final newline.

    Only a trailing block that starts with ``begin`` and has no ``end`` is removed;
    anything else is left for the reader to report.
    """
    data = path.read_bytes()
    pos = last_end = 0
    tail_first_word = None
    for line in data.splitlines(keepends=True):
        pos += len(line)
        words = line.split()
        if not words:
            continue
        if words[0] == b"end":
            last_end = pos
            tail_first_word = None
        elif tail_first_word is None:
            tail_first_word = words[0]
    if last_end < len(data) and data[last_end:].strip() and tail_first_word == b"begin":
        _check_own_partial_frame(path, data, last_end)
        log.warning("%s: removing a partly written last frame (%d bytes after the last 'end')",
                    path, len(data) - last_end)
        os.truncate(path, last_end)
        data = data[:last_end]
    if data and not data.endswith(b"\n"):
        with open(path, "ab") as fh:
            fh.write(b"\n")


def _check_own_partial_frame(path: Path, data: bytes, last_end: int) -> None:
    """A trailing block without ``end`` is cut only when ``hdnnp sample`` wrote it (its comment
    line, or no complete line after ``begin``); a user's own last frame is reported instead."""
    tail = data[last_end:]
    complete = tail.split(b"\n")[:-1]  # lines that end with a newline
    words = [ln.split() for ln in complete if ln.strip()]
    ours = len(words) <= 1 or (words[1][:2] == [b"comment", COMMENT_TAG.encode()])
    if not ours:
        begin_line = data.count(b"\n", 0, last_end) + 1 + next(
            k for k, ln in enumerate(tail.split(b"\n")) if ln.strip())
        raise ReadError(path, begin_line, "the last structure has no 'end' (truncated file?); it was not written "
                                          "by hdnnp sample, so it is not removed: add its 'end' line or delete it, "
                                          "then rerun")


def scan_existing(path: str | Path) -> ExistingFrames:
    """Count the frames already in ``path`` per trajectory (temperature and seed, from the comments)."""
    path = Path(path)
    ex = ExistingFrames()
    if not path.exists() or path.stat().st_size == 0:
        return ex
    _repair_tail(path)
    for s in iter_input_data(path, wrap=False):
        ex.n_frames += 1
        fields = None
        for c in s.comments:
            fields = parse_comment(c)
            if fields is not None:
                break
        if fields is None or "temperature_K" not in fields:
            ex.other += 1
            continue
        ex.calculators.add(fields.get("calculator", "?"))
        ex.seeds.add(fields.get("seed", "?"))
        if fields.get("kind", "md") != "md":
            continue
        try:
            key = _key(float(fields["temperature_K"]), fields.get("seed", "?"))
        except ValueError:
            ex.other += 1
            continue
        ex.counts[key] = ex.counts.get(key, 0) + 1
        ex.last[key] = (s, fields)
    return ex


# ------------------------------------------------------------------------- sampling
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


def _evaluate(a, label: str) -> tuple[float, np.ndarray]:
    """Energy and raw (unconstrained) forces of ``a``; refuses non-finite results or positions."""
    energy = a.get_potential_energy()
    forces = a.get_forces(apply_constraint=False)
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        raise HDNNPError(f"calculator {label} returned a non-finite energy or force")
    if not np.isfinite(a.positions).all():
        raise HDNNPError("the MD blew up (non-finite positions): use a smaller --timestep-fs; no frame with "
                         "them was written")
    return float(energy), np.array(forces, dtype=np.float64)


def _start_trajectory(plan: _Plan, atoms, calculator, temp: float, run_seed: int, n_done: int):
    """The Langevin integrator of one trajectory: from ``atoms`` (new) or from its last frame in the
    output (resumed; velocities redrawn). Returns (dyn, atoms, step, steps to the next frame, rng)."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md import velocitydistribution as vd
    from ase.md.langevin import Langevin

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
    md_atoms.set_constraint(FixCom())
    md_atoms.calc = calculator
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(md_atoms, temperature_K=temp, rng=rng)
    else:  # pragma: no cover - older ASE
        vd.MaxwellBoltzmannDistribution(md_atoms, temperature_K=temp, rng=rng)
    vd.Stationary(md_atoms)
    if not plan.periodic:
        vd.ZeroRotation(md_atoms)
    dyn = Langevin(md_atoms, plan.timestep_fs * units.fs, temperature_K=temp,
                   friction=plan.friction_per_fs / units.fs, fixcm=False, rng=rng)
    return dyn, md_atoms, step, steps_next, rng


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


def _run_trajectory(plan: _Plan, writer: _FrameWriter, bar, atoms, calculator, temp: float, run_seed: int,
                    target: int) -> int:
    """Make the missing MD frames (and their copies) of one trajectory; returns the MD steps run."""
    key = _key(temp, run_seed)
    t_label = key[0]
    n_done = plan.done[key]
    if n_done >= target:
        return 0
    bar.set_postfix_str(f"{t_label} K, seed {run_seed}")
    dyn, md_atoms, step, steps_next, rng = _start_trajectory(plan, atoms, calculator, temp, run_seed, n_done)
    label = plan.label
    n_steps = 0
    while n_done < target:
        try:
            dyn.run(steps_next)
            energy, forces = _evaluate(md_atoms, label)
        except (HDNNPError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise HDNNPError(
                f"calculator {label} failed at {t_label} K (seed {run_seed}) near step {step + steps_next}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        n_steps += steps_next
        step += steps_next
        steps_next = plan.interval
        fields = {"calculator": label, "temperature_K": t_label, "step": step, "seed": run_seed,
                  "kind": "md", "timestep_fs": f"{plan.timestep_fs:g}"}
        writer.write(_structure_from_atoms(md_atoms, energy, forces, format_comment(**fields)), fields)
        n_done += 1
        bar.update(1)
        _write_copies(plan, writer, md_atoms, calculator, rng, t_label, run_seed, step)
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
    ``KeyboardInterrupt`` is re-raised after the file is closed; every finished frame
    stays in ``output``.
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
        for (temp, run_seed), target in zip(runs, targets):
            n_steps += _run_trajectory(plan, writer, bar, atoms, calculator, temp, run_seed, target)
    except KeyboardInterrupt:
        bar.close()
        log.warning("interrupted: %d frames written in this run and kept in %s; "
                    "run the same command again to continue", writer.written, output)
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
