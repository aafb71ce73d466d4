"""Restart files: a plain ``.npz`` (no pickle) holding everything needed to continue a run
bit for bit.

Arrays: ``numbers`` (n,), ``positions`` (n, 3) Å, ``velocities`` (n, 3) Å per ASE time
unit (``ase.units``; multiply by ``ase.units.fs`` for Å/fs), ``masses`` (n,) amu, ``cell``
(3, 3) Å (absent for non-periodic systems), and the last force call: ``forces`` (n, 3)
eV/Å, ``energies`` (n,) eV, ``stress`` (3, 3) eV/Å^3. ``meta`` is a JSON string with step,
time_fs, energy, n_extrapolations, the thermostat state, the random generator state
(``numpy`` bit-generator state dict) and provenance. Floats go through JSON with ``repr``,
which round-trips exactly.

The stored forces are reused on restart (no recomputation), so a continued run is
identical to an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from hdnnp.dynamics.forcefield import ForceResult
from hdnnp.dynamics.integrators import MDState
from hdnnp.errors import ReadError
from hdnnp.io.validation import atomic_write_bytes

RESTART_FORMAT = "hdnnp-md-restart-1"


def write_restart(path: str | Path, state: MDState, rng: np.random.Generator, thermostat_state: dict,
                  extra: dict | None = None) -> Path:
    """Write ``state`` (after ``state.step`` steps) atomically (temporary file + rename)."""
    path = Path(path)
    res = state.result
    arrays = {
        "numbers": np.array([atomic_numbers[e] for e in state.elements], dtype=np.int64),
        "positions": state.positions,
        "velocities": state.velocities,
        "masses": state.masses,
        "forces": res.forces,
    }
    if state.cell is not None:
        arrays["cell"] = state.cell
    if res.energies is not None:
        arrays["energies"] = res.energies
    if res.stress is not None:
        arrays["stress"] = res.stress
    meta = {
        "format": RESTART_FORMAT,
        "step": int(state.step),
        "time_fs": float(state.time_fs),
        "energy": float(res.energy),
        "n_extrapolations": int(res.n_extrapolations),
        "rng_state": rng.bit_generator.state,
        "rng_bit_generator": type(rng.bit_generator).__name__,
        "thermostat": thermostat_state,
        "velocity_unit": "Angstrom per ASE time unit (ase.units.fs per fs)",
        **(extra or {}),
    }
    arrays["meta"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())  # a full disk keeps the previous restart file


def _restart_arrays(path: Path) -> dict:
    if path.is_dir():
        raise ReadError(path, None, "is a directory, expected a restart file (restart.npz)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ReadError(path, None, "restart file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ReadError(path, None, f"not a readable restart file (.npz): {exc}") from None
    except AttributeError:  # np.load of a plain .npy gives an array without .files
        raise ReadError(path, None, "not a restart file (.npz archive)") from None


def _check_array(path: Path, data: dict, name: str, shape: tuple, required: bool = True) -> None:
    """``data[name]`` must have ``shape`` (-1: any length) and finite float values."""
    if name not in data:
        if required:
            raise ReadError(path, None, f"array {name!r} is missing (written by another program or damaged?)")
        return
    a = data[name]
    ok = a.ndim == len(shape) and all(want in (-1, got) for want, got in zip(shape, a.shape))
    if not ok:
        want = "(" + ", ".join("n" if w == -1 else str(w) for w in shape) + ")"
        raise ReadError(path, None, f"array {name!r} has shape {a.shape}, expected {want}")
    if a.dtype.kind not in "fiu":
        raise ReadError(path, None, f"array {name!r} has type {a.dtype}, expected numbers")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ReadError(path, None, f"array {name!r} holds non-finite values")


def read_restart(path: str | Path) -> tuple[MDState, np.random.Generator, dict]:
    """Read a restart file: (state with its last force result, generator, meta dict).
    Every array is checked (present, shape, finite) so a damaged file gives one clear error."""
    path = Path(path)
    data = _restart_arrays(path)
    if "meta" not in data:
        raise ReadError(path, None, "no 'meta' entry: not an hdnnp restart file")
    try:
        meta = json.loads(str(data["meta"]))
    except ValueError:
        raise ReadError(path, None, "the 'meta' entry is not valid JSON (damaged restart file)") from None
    if not isinstance(meta, dict) or meta.get("format") != RESTART_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise ReadError(path, None, f"restart format {got!r}, expected {RESTART_FORMAT!r}")
    _check_array(path, data, "numbers", (-1,))
    n = len(data["numbers"])
    if n == 0:
        raise ReadError(path, None, "array 'numbers' is empty: no atoms")
    for name in ("positions", "velocities", "forces"):
        _check_array(path, data, name, (n, 3))
    _check_array(path, data, "masses", (n,))
    _check_array(path, data, "cell", (3, 3), required=False)
    _check_array(path, data, "energies", (n,), required=False)
    _check_array(path, data, "stress", (3, 3), required=False)
    if not (data["masses"] > 0).all():
        raise ReadError(path, None, "array 'masses' holds masses <= 0")
    if not all(0 < int(z) < len(chemical_symbols) for z in data["numbers"]):
        raise ReadError(path, None, "array 'numbers' holds invalid atomic numbers")
    try:
        elements = [chemical_symbols[int(z)] for z in data["numbers"]]
        result = ForceResult(energy=float(meta["energy"]), forces=data["forces"], stress=data.get("stress"),
                             energies=data.get("energies"), n_extrapolations=int(meta.get("n_extrapolations", 0)))
        state = MDState(elements=elements, positions=data["positions"], velocities=data["velocities"],
                        masses=data["masses"], cell=data.get("cell"), step=int(meta["step"]),
                        time_fs=float(meta["time_fs"]), result=result)
        bitgen = getattr(np.random, str(meta.get("rng_bit_generator", "PCG64")))()
        bitgen.state = meta["rng_state"]
    except KeyError as exc:
        raise ReadError(path, None, f"meta entry {exc.args[0]!r} is missing (damaged restart file)") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReadError(path, None, f"meta entry is damaged: {exc}") from None
    return state, np.random.Generator(bitgen), meta
