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
import os
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from hdnnp.dynamics.forcefield import ForceResult
from hdnnp.dynamics.integrators import MDState
from hdnnp.errors import ReadError

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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)
    return path


def read_restart(path: str | Path) -> tuple[MDState, np.random.Generator, dict]:
    """Read a restart file: (state with its last force result, generator, meta dict)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ReadError(path, None, f"not a readable restart file (.npz): {exc}") from None
    if "meta" not in data:
        raise ReadError(path, None, "no 'meta' entry: not an hdnnp restart file")
    meta = json.loads(str(data["meta"]))
    if meta.get("format") != RESTART_FORMAT:
        raise ReadError(path, None, f"restart format {meta.get('format')!r}, expected {RESTART_FORMAT!r}")
    elements = [chemical_symbols[int(z)] for z in data["numbers"]]
    result = ForceResult(energy=float(meta["energy"]), forces=data["forces"], stress=data.get("stress"),
                         energies=data.get("energies"), n_extrapolations=int(meta.get("n_extrapolations", 0)))
    state = MDState(elements=elements, positions=data["positions"], velocities=data["velocities"],
                    masses=data["masses"], cell=data.get("cell"), step=int(meta["step"]),
                    time_fs=float(meta["time_fs"]), result=result)
    bitgen = getattr(np.random, meta.get("rng_bit_generator", "PCG64"))()
    bitgen.state = meta["rng_state"]
    return state, np.random.Generator(bitgen), meta
