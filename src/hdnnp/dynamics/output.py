"""Trajectory writers (prototype ``traj.data``, extended XYZ), the thermo log and its plot.

All outputs are in ASE units: Å, eV, fs, K, GPa (whatever the potential's own units).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hdnnp.errors import ReadError


class TrajDataWriter:
    """The prototype's ``traj.data``: for each written step a line with the step (iteration)
    number, then one line ``index x y z`` per atom (index from 0, positions in Å)."""

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")

    def write(self, step: int, positions: np.ndarray) -> None:
        n = len(positions)
        rows = np.empty((n, 4), dtype=object)
        rows[:, 0] = range(n)
        rows[:, 1:] = positions.tolist()
        self._fh.write(f"{step}\n" + ("%d %.10f %.10f %.10f\n" * n) % tuple(rows.ravel()))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_traj_data(path: str | Path) -> list[tuple[int, np.ndarray]]:
    """Read a ``traj.data`` file: list of (step, positions (n_atoms, 3))."""
    path = Path(path)
    frames: list[tuple[int, np.ndarray]] = []
    step = None
    rows: list[list[float]] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            words = line.split()
            if not words:
                continue
            if len(words) == 1:
                if step is not None:
                    frames.append((step, np.array(rows).reshape(-1, 3)))
                try:
                    step = int(words[0])
                except ValueError:
                    raise ReadError(path, lineno, f"expected a step number, found {words[0]!r}") from None
                rows = []
            elif len(words) == 4 and step is not None:
                try:
                    rows.append([float(w) for w in words[1:]])
                except ValueError:
                    raise ReadError(path, lineno, "expected 'index x y z'") from None
            else:
                raise ReadError(path, lineno, "expected a step number or 'index x y z'")
    if step is not None:
        frames.append((step, np.array(rows).reshape(-1, 3)))
    return frames


class ExtxyzWriter:
    """Extended XYZ frames readable by ``ase.io.read(path, ':')``: positions, momenta
    (``atoms.get_velocities()`` gives velocities), cell, energy, free_energy, forces,
    per-atom energies, stress; ``info`` has step, time_fs, temperature_K."""

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")

    def write(self, state, n_dof: int) -> None:
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.io import write

        periodic = state.cell is not None
        atoms = Atoms(symbols=state.elements, positions=state.positions,
                      cell=state.cell if periodic else None, pbc=periodic, masses=state.masses)
        atoms.set_velocities(state.velocities)
        res = state.result
        results = {"energy": res.energy, "free_energy": res.energy, "forces": res.forces}
        if res.energies is not None:
            results["energies"] = res.energies
        if res.stress is not None:
            results["stress"] = res.stress
        atoms.calc = SinglePointCalculator(atoms, **results)
        atoms.info["step"] = int(state.step)
        atoms.info["time_fs"] = float(state.time_fs)
        atoms.info["temperature_K"] = float(state.temperature(n_dof))
        write(self._fh, atoms, format="extxyz")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


#: columns of thermo.log, in order; pressure/volume only for periodic systems
THERMO_COLUMNS = ("step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "econs_eV", "temperature_K",
                  "pressure_GPa", "volume_A3", "n_extrap", "n_extrap_total")


class ThermoLog:
    """``thermo.log``: whitespace columns under a ``#`` header line naming them.

    econs_eV is the conserved quantity of the integrator (etot plus the energy exchanged
    with the thermostat; with the Berendsen barostat the work of the box scaling is not
    included, so it is not conserved there); n_extrap counts symmetry-function values outside the scaling
    range in that step, n_extrap_total all so far.
    """

    def __init__(self, path: str | Path, periodic: bool, append: bool = False):
        self.path = Path(path)
        self.columns = [c for c in THERMO_COLUMNS if periodic or c not in ("pressure_GPa", "volume_A3")]
        #: whether this log starts a new file (else it continues one, e.g. after a restart)
        self.new = not (append and self.path.exists() and self.path.stat().st_size > 0)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")
        if self.new:
            self._fh.write("# " + " ".join(self.columns) + "\n")

    def write(self, values: dict) -> None:
        out = []
        for c in self.columns:
            v = values[c]
            if c in ("step", "n_extrap", "n_extrap_total"):
                out.append(f"{int(v):d}")
            elif c.endswith("_eV"):
                out.append(f"{v:.10f}")
            else:
                out.append(f"{v:.6f}")
        self._fh.write(" ".join(out) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_thermo_log(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a thermo.log by name."""
    path = Path(path)
    names = None
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                if names is None:
                    names = line[1:].split()
                continue
            if line.strip():
                rows.append([float(w) for w in line.split()])
    if names is None:
        raise ReadError(path, 1, "no '#' header line naming the columns")
    data = np.array(rows, dtype=np.float64).reshape(-1, len(names))
    return {n: data[:, k] for k, n in enumerate(names)}


def plot_thermo(log_path: str | Path, png_path: str | Path, n_atoms: int | None = None) -> Path:
    """Plot thermo.log (energies per atom relative to the start, temperature, pressure,
    extrapolation warnings) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = read_thermo_log(log_path)
    t_ps = d["time_fs"] / 1000.0
    panels = ["energy", "temperature"] + (["pressure"] if "pressure_GPa" in d else []) + ["extrap"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.2 * len(panels)), sharex=True)
    per = float(n_atoms) if n_atoms else 1.0
    unit = "eV/atom" if n_atoms else "eV"
    for ax, p in zip(axes, panels):
        if p == "energy" and len(t_ps):
            for key, label in (("epot_eV", "E_pot"), ("etot_eV", "E_tot"), ("econs_eV", "conserved")):
                ax.plot(t_ps, (d[key] - d[key][0]) / per, label=label)
            ax.set_ylabel(f"E - E(0) ({unit})")
            ax.legend(fontsize=8)
        elif p == "temperature":
            ax.plot(t_ps, d["temperature_K"])
            ax.set_ylabel("T (K)")
        elif p == "pressure":
            ax.plot(t_ps, d["pressure_GPa"])
            ax.set_ylabel("P (GPa)")
        elif p == "extrap":
            ax.plot(t_ps, d["n_extrap"], drawstyle="steps-mid")
            ax.set_ylabel("extrapolation\nwarnings")
    axes[-1].set_xlabel("time (ps)")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def ns_per_day(steps_per_s: float, timestep_fs: float) -> float:
    """Simulated nanoseconds per day of wall time."""
    return steps_per_s * timestep_fs * 1e-6 * 86400.0




# ------------------------------------------------------------------ continuing a run
def _cut_offset(path: Path, frames: list[tuple[int, int]], step: int) -> int | None:
    """Byte offset of the first frame after ``step`` (frames: (offset, step)), None: keep all."""
    for off, s in frames:
        if s > step:
            return off
    return None


def _traj_frames(path: Path) -> tuple[list[tuple[int, int]], int | None]:
    """(offset, step) of each traj.data frame and the atom count of the first one."""
    frames, n_first, pos, count = [], None, 0, 0
    with open(path, "rb") as fh:
        for line in fh:
            words = line.split()
            if len(words) == 1:
                if len(frames) == 1:
                    n_first = count
                try:
                    frames.append((pos, int(words[0])))
                except ValueError:
                    raise ReadError(path, None, f"expected a step number at byte {pos}, found {words[0]!r}") from None
                count = 0
            elif words:
                count += 1
            pos += len(line)
    if len(frames) == 1:
        n_first = count
    return frames, n_first


def _extxyz_frames(path: Path) -> list[tuple[int, int]]:
    """(offset, step) of each frame of trajectory.extxyz (step from the comment line)."""
    import re

    frames, pos = [], 0
    with open(path, "rb") as fh:
        while True:
            head = fh.readline()
            if not head.strip():
                break
            try:
                n = int(head)
            except ValueError:
                raise ReadError(path, None, f"expected an atom count at byte {pos}") from None
            comment = fh.readline()
            m = re.search(rb"\bstep=(\d+)", comment)
            frames.append((pos, int(m.group(1)) if m else -1))
            pos += len(head) + len(comment)
            for _ in range(n):
                pos += len(fh.readline())
    return frames


def _thermo_rows(path: Path) -> list[tuple[int, int]]:
    frames, pos = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            words = line.split()
            if words and not line.startswith(b"#"):
                try:
                    frames.append((pos, int(float(words[0]))))
                except ValueError:
                    raise ReadError(path, None, f"expected a step number at byte {pos}") from None
            pos += len(line)
    return frames


def truncate_after_step(paths: dict, step: int, n_atoms: int) -> list[str]:
    """Make a run directory continue consistently from a restart at ``step``: cut the frames
    of traj.data and trajectory.extxyz and the rows of thermo.log after ``step`` (written by
    the run after its last restart file). paths: FILES keys -> Path. Refuses (ReadError)
    outputs that cannot belong to this run (another atom count, or starting after ``step``).
    Returns what was cut, for the log."""
    cut: list[str] = []
    found = [(k, p) for k, p in paths.items() if k in ("traj_data", "extxyz", "thermo") and p.is_file()]
    for key, p in found:
        if key == "traj_data":
            frames, n_first = _traj_frames(p)
            if n_first is not None and n_first != n_atoms:
                raise ReadError(p, None, f"holds frames of {n_first} atoms, the restart file {n_atoms}: it belongs to "
                                         "another run; continue into another -o directory or use --overwrite")
        elif key == "extxyz":
            frames = _extxyz_frames(p)
        else:
            frames = _thermo_rows(p)
        if frames and frames[0][1] > step:
            raise ReadError(p, None, f"starts at step {frames[0][1]}, after the restart step {step}: it belongs to "
                                     "another run; continue into another -o directory or use --overwrite")
        off = _cut_offset(p, frames, step)
        if off is not None:
            n_cut = sum(1 for _, s in frames if s > step)
            os.truncate(p, off)
            cut.append(f"{p.name}: {n_cut} {'rows' if key == 'thermo' else 'frames'} after step {step}")
    return cut


__all__ = ["TrajDataWriter", "read_traj_data", "ExtxyzWriter", "ThermoLog", "read_thermo_log",
           "plot_thermo", "ns_per_day", "THERMO_COLUMNS", "truncate_after_step"]
