"""Structure files of any kind: n2p2 ``input.data`` (recognised by content) or anything
``ase.io.read`` reads (extxyz, POSCAR, cif, ...).

The one place the commands (``md``, ``sample``, ``predict``, ``export``) read the structures a
user gives them. ``input.data`` keeps its own units (the potential's); ASE formats are in Å/eV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hdnnp.errors import ReadError


def is_input_data(path: str | Path) -> bool:
    """True when the first non-blank word of the file is ``begin`` (n2p2 ``input.data``)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.lstrip("\ufeff")  # a UTF-8 byte-order mark (Windows editors)
                if line.strip():
                    return line.split()[0] == "begin"
    except OSError as exc:
        raise ReadError(path, None, f"cannot open structure file: {exc.strerror}") from None
    return False


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise ReadError(path, None, "is a directory, expected a structure file")
    if not path.is_file():
        raise ReadError(path, None, "structure file not found (no such file)")
    if path.stat().st_size == 0:
        raise ReadError(path, None, "empty file, expected structures (n2p2 input.data or a format ASE reads)")


def _check_ase_atoms(path: Path, atoms, label: str = "") -> None:
    """Positions from ASE formats: finite, no coinciding atoms (Å)."""
    from hdnnp.io.validation import check_structure_geometry

    pbc = atoms.get_pbc()
    cell = np.array(atoms.cell, dtype=np.float64) if pbc.all() else None
    check_structure_geometry(path, atoms.positions, cell, unit="Å", label=label)


def _ase_error(path: Path, exc: Exception) -> ReadError:
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else type(exc).__name__
    return ReadError(path, None, f"cannot read structure file with ase.io.read: {msg}")


def read_atoms(path: str | Path, length_factor: float = 1.0, energy_factor: float = 1.0, index: int = 0):
    """One structure as ``ase.Atoms`` in Å, without a calculator.

    ``input.data``: structure ``index`` (negative counts from the end), positions and cell
    multiplied by ``length_factor`` (Å per file length unit). Other files: ``ase.io.read(path,
    index)``, already in Å (the factors are not applied).
    """
    path = Path(path)
    _check_file(path)
    if is_input_data(path):
        from hdnnp.io.n2p2_data import iter_input_data, read_input_data

        if index >= 0:
            k = -1
            for k, s in enumerate(iter_input_data(path, wrap=False)):
                if k == index:
                    break
            else:
                raise ReadError(path, None, f"structure index {index} out of range ({k + 1} structures)")
        else:
            structures = read_input_data(path, wrap=False)
            if index < -len(structures):
                raise ReadError(path, None, f"structure index {index} out of range ({len(structures)} structures)")
            s = structures[index]
        atoms = s.to_ase(length_factor, energy_factor)
        atoms.calc = None
        return atoms
    import ase.io

    try:
        atoms = ase.io.read(path, index=index)
    except Exception as exc:  # ASE raises many kinds for unreadable files
        raise _ase_error(path, exc) from None
    _check_ase_atoms(path, atoms)
    atoms.calc = None
    return atoms


def read_structures(path: str | Path) -> list:
    """Every structure of a file as ``hdnnp.structure.Structure`` in the file's own units
    (``input.data``: the potential's; ASE formats: Å/eV), reference energies and forces kept."""
    from hdnnp.structure import Structure

    path = Path(path)
    _check_file(path)
    if is_input_data(path):
        from hdnnp.io.n2p2_data import read_input_data

        return read_input_data(path, wrap=False)
    import ase.io

    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # ASE raises many kinds for unreadable files
        raise _ase_error(path, exc) from None
    for k, a in enumerate(frames):
        _check_ase_atoms(path, a, label=f"frame {k}: " if len(frames) > 1 else "")
    return [Structure.from_ase(a) for a in frames]
