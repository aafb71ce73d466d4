"""n2p2 / RuNNer ``input.data`` reader and writer (SPEC §1).

One structure per ``begin`` ... ``end`` block; lines are keyed on their first word.
No units are imposed. Positions of periodic structures are wrapped into the cell
on reading (as n2p2 does) unless ``wrap=False``.
Numbers are written as ``%24.16E`` (17 significant digits), so a write/read
round trip is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from hdnnp.errors import ReadError
from hdnnp.io.validation import check_line_utf8, check_structure_geometry, finite_float, open_text
from hdnnp.structure import Structure

_FMT = "%24.16E"


def _float(tok: str, path, lineno: int, what: str) -> float:
    try:
        return float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise ReadError(path, lineno, f"expected a number for {what}, found {tok!r}") from None


def _check_finite(path: Path, block: dict, end_line: int) -> None:
    """NaN/inf positions or lattice vectors: a ReadError naming the line and the token (checked
    in bulk per structure; the file is re-read only to name the offending line). Non-finite
    reference energies, forces and charges are left to their users (the training-data checks,
    ``hdnnp predict``'s error statistics), which name the structure."""
    if np.isfinite(block["pos"]).all() and np.isfinite(block["lattice"]).all():
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno > end_line:
                break
            words = raw.split()
            if lineno < block["begin_line"] or not words or words[0] not in ("atom", "lattice"):
                continue
            what = "a coordinate" if words[0] == "atom" else "a lattice component"
            for tok in words[1:4]:
                finite_float(tok, path, lineno, what)
    raise ReadError(path, end_line, "structure holds a non-finite position")  # not reached


def iter_input_data(path: str | Path, wrap: bool = True) -> Iterator[Structure]:
    """Yield the structures of an n2p2 ``input.data`` file one by one."""
    path = Path(path)
    fh = open_text(path, "structure file (input.data)")
    with fh:
        block: dict | None = None
        begin_line = 0
        for lineno, raw in enumerate(fh, start=1):
            check_line_utf8(path, lineno, raw)
            words = (raw.lstrip("\ufeff") if lineno == 1 else raw).split()  # a byte-order mark
            if not words:
                continue
            key = words[0]
            if key == "begin":
                if block is not None:
                    raise ReadError(
                        path, lineno, f"'begin' before the 'end' of the structure begun on line {begin_line}"
                    )
                begin_line = lineno
                block = {"begin_line": lineno, "elements": [], "pos": [], "atom_lines": [], "q": [], "e": [], "f": [], "lattice": [],
                         "comments": [], "energy": None, "charge": None, "set": None}
                for w in words[1:]:
                    if w.startswith("set="):
                        block["set"] = w[4:]
                continue
            if block is None:
                raise ReadError(path, lineno, f"expected 'begin', found {key!r}")
            if key == "comment":
                block["comments"].append(raw.strip()[len("comment"):].strip())
            elif key == "lattice":
                if len(words) < 4:
                    raise ReadError(path, lineno, "expected 'lattice ax ay az' (3 numbers)")
                block["lattice"].append([_float(w, path, lineno, "a lattice component") for w in words[1:4]])
            elif key == "atom":
                if len(words) < 10:
                    raise ReadError(
                        path, lineno,
                        f"expected 'atom x y z element charge energy fx fy fz' (9 fields), found {len(words) - 1}",
                    )
                el = words[4]
                if el not in atomic_numbers or el == "X":
                    raise ReadError(path, lineno, f"unknown element symbol {el!r}")
                block["elements"].append(el)
                block["atom_lines"].append(lineno)
                block["pos"].append([_float(w, path, lineno, "a coordinate") for w in words[1:4]])
                block["q"].append(_float(words[5], path, lineno, "the atomic charge"))
                block["e"].append(_float(words[6], path, lineno, "the atomic energy"))
                block["f"].append([_float(w, path, lineno, "a force component") for w in words[7:10]])
            elif key == "energy":
                if len(words) < 2:
                    raise ReadError(path, lineno, "expected 'energy E'")
                block["energy"] = _float(words[1], path, lineno, "the energy")
            elif key == "charge":
                if len(words) < 2:
                    raise ReadError(path, lineno, "expected 'charge Q'")
                block["charge"] = _float(words[1], path, lineno, "the charge")
            elif key == "end":
                nlat = len(block["lattice"])
                if nlat not in (0, 3):
                    raise ReadError(path, lineno, f"structure begun on line {begin_line} has {nlat} 'lattice' lines; expected 0 or 3")
                if not block["elements"]:
                    raise ReadError(path, lineno, f"structure begun on line {begin_line} has no atoms")
                _check_finite(path, block, lineno)
                s = Structure(
                    elements=block["elements"],
                    positions=np.array(block["pos"]),
                    cell=np.array(block["lattice"]) if nlat == 3 else None,
                    energy=block["energy"],
                    forces=np.array(block["f"]),
                    charges=np.array(block["q"]),
                    atomic_energies=np.array(block["e"]),
                    charge=block["charge"],
                    comments=block["comments"],
                    set_tag=block["set"],
                )
                if s.cell is not None and abs(np.linalg.det(s.cell)) < 1e-12:
                    raise ReadError(path, lineno, f"structure begun on line {begin_line} has a singular cell (zero volume)")
                check_structure_geometry(path, s.positions, s.cell, block["atom_lines"],
                                         label=f"structure begun on line {begin_line}: ")
                yield s.wrapped() if wrap else s
                block = None
            else:
                raise ReadError(
                    path, lineno,
                    f"unknown keyword {key!r}; expected one of begin, comment, lattice, atom, energy, charge, end",
                )
        if block is not None:
            raise ReadError(path, lineno if begin_line else None,
                            f"file ends inside the structure begun on line {begin_line} (missing 'end'; truncated file?)")


def read_input_data(path: str | Path, wrap: bool = True) -> list[Structure]:
    """Read all structures of an n2p2 ``input.data`` file."""
    structures = list(iter_input_data(path, wrap=wrap))
    if not structures:
        raise ReadError(path, None, "no structures found (expected 'begin' ... 'end' blocks)")
    return structures


def format_structure(s: Structure, energy: float | None = None, forces: np.ndarray | None = None,
                     charges: np.ndarray | None = None) -> str:
    """One ``begin``...``end`` block. ``energy``/``forces``/``charges`` override the reference values
    (with ``charges``, the ``charge`` line is their sum, as n2p2's output.data)."""
    e = s.energy if energy is None else energy
    f = s.forces if forces is None else np.asarray(forces)
    q = s.charges if charges is None else np.asarray(charges)
    q_tot = s.charge if charges is None else float(np.sum(q))
    lines = ["begin" + (f" set={s.set_tag}" if s.set_tag else "")]
    lines += [f"comment {c}" for c in s.comments]
    if s.cell is not None:
        lines += ["lattice " + " ".join(_FMT % v for v in row) for row in s.cell]
    zeros3 = (0.0, 0.0, 0.0)
    for i, el in enumerate(s.elements):
        fi = zeros3 if f is None else f[i]
        lines.append(
            "atom " + " ".join(_FMT % v for v in s.positions[i]) + f" {el:>2s} "
            + _FMT % q[i] + " " + _FMT % s.atomic_energies[i] + " "
            + " ".join(_FMT % v for v in fi)
        )
    lines.append("energy " + _FMT % (0.0 if e is None else e))
    lines.append("charge " + _FMT % (0.0 if q_tot is None else q_tot))
    lines.append("end")
    return "\n".join(lines) + "\n"


def write_input_data(path: str | Path, structures: Iterable[Structure], append: bool = False) -> None:
    """Write structures to an n2p2 ``input.data`` file (``append`` adds to an existing file)."""
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        for s in structures:
            fh.write(format_structure(s))
