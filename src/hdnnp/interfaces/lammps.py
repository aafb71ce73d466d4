"""Export a potential for LAMMPS ``pair_style hdnnp`` (n2p2's ML-HDNNP package).

``export_lammps`` writes into OUTDIR:

  nnp/input.nn, nnp/scaling.data, nnp/weights.XXX.data
      the n2p2 potential; input.nn without the hdnnp-only ``hdnnp_*`` keywords (n2p2
      stops on unknown keywords), every other byte as in the source; scaling.data and
      weights copied byte for byte.
  structure.lammps-data   (when a structure is given) ``atom_style atomic``, ``units metal``
      (Å, amu); atom types 1..K = the potential's elements by increasing atomic number
      (n2p2's element order), whether or not the structure contains all of them.
  in.lammps   units metal; ``pair_style hdnnp <cutoff Å> dir nnp showew no showewsum 10
      resetew yes maxew 100 cflength <Å -> potential length> cfenergy <eV -> potential energy>``;
      ``pair_coeff * * <element of type 1> <type 2> ...``; velocities, an NVE or NVT fix,
      thermo output, a dump.

LAMMPS (units metal) passes Å to n2p2 multiplied by ``cflength`` and divides n2p2's energies
by ``cfenergy``: for a Bohr/Hartree potential cflength = 1/0.529177... = 1.8897261...
Bohr per Å and cfenergy = 1/27.2114 = 0.0367493... Hartree per eV. The pair-style cutoff
is in LAMMPS units (Å) and must be >= the largest symmetry-function cutoff in Å; it is
written rounded up.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from hdnnp.dynamics.forcefield import resolve_units
from hdnnp.errors import HDNNPError, ReadError

#: input.nn keywords only hdnnp understands (n2p2 would stop on them)
HDNNP_KEYWORD_PREFIX = "hdnnp_"


@dataclass
class LammpsExport:
    """What ``export_lammps`` wrote."""

    directory: Path
    potential_dir: Path
    input_file: Path
    data_file: Path | None
    elements: list[str]
    cutoff_angstrom: float
    cflength: float
    cfenergy: float
    length_unit: str
    energy_unit: str
    removed_keywords: list[str] = field(default_factory=list)


def strip_hdnnp_keywords(text: str) -> tuple[str, list[str]]:
    """Remove lines whose first word starts with ``hdnnp_`` (kept: everything else, byte
    for byte, line endings included). Returns (new text, removed lines)."""
    kept, removed = [], []
    for line in text.splitlines(keepends=True):
        words = line.split()
        if words and words[0].startswith(HDNNP_KEYWORD_PREFIX):
            removed.append(line.rstrip("\r\n"))
        else:
            kept.append(line)
    return "".join(kept), removed


def _ceil(x: float, digits: int = 6) -> float:
    """x rounded up at ``digits`` decimals (the pair-style cutoff must not be below it)."""
    scale = 10.0 ** digits
    y = math.ceil(x * scale) / scale
    return y if y >= x else y + 1.0 / scale


def write_potential_dir(potential_dir: Path, target: Path, elements: list[str]) -> list[str]:
    """Copy an n2p2 potential directory for n2p2/LAMMPS; returns the stripped keyword lines."""
    target.mkdir(parents=True, exist_ok=True)
    raw = (potential_dir / "input.nn").read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReadError(potential_dir / "input.nn", None, "not UTF-8 text") from None
    new, removed = strip_hdnnp_keywords(text)
    (target / "input.nn").write_bytes(new.encode("utf-8") if removed else raw)
    shutil.copyfile(potential_dir / "scaling.data", target / "scaling.data")
    for e in elements:
        name = f"weights.{atomic_numbers[e]:03d}.data"
        shutil.copyfile(potential_dir / name, target / name)
    return removed


def write_lammps_data(path: Path, atoms, elements: list[str]) -> None:
    """LAMMPS data file (atomic, metal units) with types in ``elements`` order."""
    from ase.io import write

    atoms = atoms.copy()
    atoms.calc = None
    if not np.asarray(atoms.get_pbc()).all():
        # non-periodic: a box around the atoms; in.lammps uses shrink-wrapped boundaries
        atoms.center(vacuum=5.0)
        atoms.pbc = False
    write(path, atoms, format="lammps-data", specorder=list(elements), masses=True, units="metal",
          atom_style="atomic")


def lammps_input(elements: list[str], cutoff_angstrom: float, cflength: float, cfenergy: float,
                 data_file: str | None, potential_subdir: str = "nnp", periodic: bool = True,
                 timestep_fs: float = 0.5, temperature_K: float = 300.0, steps: int = 1000,
                 ensemble: str = "nve", seed: int = 12345, thermo_every: int = 10, dump_every: int = 100) -> str:
    """Text of in.lammps (see module docstring)."""
    types = ", ".join(f"{k + 1} = {e}" for k, e in enumerate(elements))
    masses = "\n".join(f"{'' if data_file else '# '}mass            {k + 1} "
                       f"{atomic_masses[atomic_numbers[e]]:.6f}  # {e}" for k, e in enumerate(elements))
    if ensemble == "nve":
        fix = "fix             integrate all nve"
    elif ensemble == "nvt":
        fix = f"fix             integrate all nvt temp {temperature_K} {temperature_K} {100 * timestep_fs / 1000:.6g}"
    else:
        raise HDNNPError(f"ensemble must be nve or nvt for the LAMMPS input, got {ensemble!r}")
    pair_style = (f"pair_style      hdnnp {cutoff_angstrom:.6f} dir {potential_subdir} "
                  f"showew no showewsum 10 resetew yes maxew 100 cflength {cflength:.10f} cfenergy {cfenergy:.10f}")
    read = (f"read_data       {data_file}" if data_file else
            "# read_data    structure.lammps-data   # (no structure was exported: add your own)")
    return f"""\
# LAMMPS input written by hdnnp export: an n2p2 potential through pair_style hdnnp.
# Needs a LAMMPS built with the ML-HDNNP package (cmake -D PKG_ML-HDNNP=on, n2p2 library).
# Atom types: {types} (the potential's elements by increasing atomic number).
units           metal
boundary        {"p p p" if periodic else "s s s"}
atom_style      atomic
{read}
{masses}

# cutoff in Å (LAMMPS units), >= the largest symmetry-function cutoff;
# cflength: potential length units per Å; cfenergy: potential energy units per eV
{pair_style}
pair_coeff      * * {" ".join(elements)}
neighbor        2.0 bin
neigh_modify    every 1 delay 0 check yes

timestep        {timestep_fs / 1000.0:.6g}  # ps ({timestep_fs} fs)
velocity        all create {temperature_K} {seed} dist gaussian mom yes rot no
{fix}
thermo_style    custom step time temp pe ke etotal press vol
thermo_modify   format float %.10g
thermo          {thermo_every}
dump            traj all custom {dump_every} dump.lammpstrj id type x y z vx vy vz fx fy fz
run             {steps}
"""


def export_lammps(potential_dir: str | Path, outdir: str | Path, structure=None, length_unit: str | None = None,
                  energy_unit: str | None = None, overwrite: bool = False, **input_options) -> LammpsExport:
    """Write a LAMMPS-ready directory for an n2p2/hdnnp potential (see module docstring).

    structure : ``ase.Atoms`` in Å, a file path (n2p2 input.data in the potential's units,
        or anything ``ase.io.read`` reads, in Å), or None (no data file).
    length_unit, energy_unit : the potential's units (else input.nn's ``hdnnp_*`` keywords,
        else Å/eV, logged).
    input_options : passed to ``lammps_input`` (timestep_fs, temperature_K, steps, ensemble, ...).
    """
    from hdnnp.dynamics.run import check_elements
    from hdnnp.io.structure_files import read_atoms as read_structure
    from hdnnp.model.potential import Potential

    potential_dir = Path(potential_dir)
    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()) and not overwrite:
        raise HDNNPError(f"output directory {outdir} exists and is not empty (choose a new one, or --force)")
    potential = Potential.from_n2p2(potential_dir)
    units = resolve_units(potential, length_unit, energy_unit)
    elements = list(potential.elements)  # n2p2 order: increasing atomic number
    lf, ef = units.length_factor, units.energy_factor
    cutoff_A = _ceil(potential.sf_set.cutoff * lf)
    cflength, cfenergy = 1.0 / lf, 1.0 / ef
    outdir.mkdir(parents=True, exist_ok=True)
    removed = write_potential_dir(potential_dir, outdir / "nnp", elements)
    data_file = None
    periodic = True
    if structure is not None:
        atoms = read_structure(structure, length_factor=lf, energy_factor=ef) if isinstance(structure, (str, Path)) \
            else structure
        check_elements(atoms.get_chemical_symbols(), elements, str(structure) if isinstance(structure, (str, Path))
                       else "structure")
        periodic = bool(np.asarray(atoms.get_pbc()).all())
        data_file = outdir / "structure.lammps-data"
        write_lammps_data(data_file, atoms, elements)
    text = lammps_input(elements, cutoff_A, cflength, cfenergy, data_file.name if data_file else None,
                        periodic=periodic, **input_options)
    (outdir / "in.lammps").write_text(text, encoding="utf-8")
    info = LammpsExport(directory=outdir, potential_dir=outdir / "nnp", input_file=outdir / "in.lammps",
                        data_file=data_file, elements=elements, cutoff_angstrom=cutoff_A, cflength=cflength,
                        cfenergy=cfenergy, length_unit=units.length_unit, energy_unit=units.energy_unit,
                        removed_keywords=removed)
    return info
