"""Writers for n2p2 ``nnp-predict`` style outputs: energy.out, nnforces.out, nnatoms.out.

Same columns and ``%24.16E`` numbers as n2p2, so existing n2p2 scripts keep working.
Reference columns are 0 when the input has no reference data (as in n2p2).
"""

from __future__ import annotations

from pathlib import Path

from hdnnp.io.validation import atomic_write_text

import numpy as np
from ase.data import atomic_numbers

_RULE = "#" * 80

ENERGY_HEADER = f"""{_RULE}
# Energy comparison.
{_RULE}
# Col  Name     Description
{_RULE}
# 1    conf     Configuration index (starting with 1).
# 2    natoms   Number of atoms in configuration.
# 3    Eref     Reference potential energy.
# 4    Ennp     Potential energy predicted by NNP.
# 5    Ediff    Difference in energy per atom between reference and NNP prediction.
# 6    E_offset Sum of atomic offset energies (included in column Ennp).
{"#" * 121}
#        1          2                        3                        4                        5                        6
#     conf     natoms                     Eref                     Ennp                    Ediff                 E_offset
{"#" * 121}
"""

FORCES_HEADER = f"""{_RULE}
# Atomic force comparison (ordered by atom index).
{_RULE}
# Col  Name  Description
{_RULE}
# 1    conf  Configuration index (starting with 1).
# 2    index Atom index (starting with 1).
# 3    fxRef Reference force in x direction.
# 4    fyRef Reference force in y direction.
# 5    fzRef Reference force in z direction.
# 6    fx    Force in x direction.
# 7    fy    Force in y direction.
# 8    fz    Force in z direction.
{"#" * 171}
#        1          2                        3                        4                        5                        6                        7                        8
#     conf      index                    fxRef                    fyRef                    fzRef                       fx                       fy                       fz
{"#" * 171}
"""

ATOMS_HEADER = f"""{_RULE}
# Energy contributions calculated from NNP.
{_RULE}
# Col  Name      Description
{_RULE}
# 1    conf      Configuration index (starting with 1).
# 2    index     Atom index (starting with 1).
# 3    Z         Nuclear charge of atom.
# 4    Qref      Reference atomic charge.
# 5    Qnnp      NNP atomic charge.
# 6    Eref_atom Reference atomic energy contribution.
# 7    Ennp_atom Atomic energy contribution (physical units, no mean or offset energy added).
{"#" * 125}
#        1          2   3                        4                        5                        6                        7
#     conf      index   Z                     Qref                     Qnnp                Eref_atom                Ennp_atom
{"#" * 125}
"""


def _e(x: float) -> str:
    return f"{x:24.16E}"


def write_predict_outputs(outdir: str | Path, structures, predictions, offsets: list[float]) -> list[Path]:
    """Write energy.out, nnforces.out, nnatoms.out for structures and their predictions.

    offsets : per structure, the sum of atom_energy offsets (column 6 of energy.out).
    """
    outdir = Path(outdir)
    e_lines, f_lines, a_lines = [ENERGY_HEADER], [FORCES_HEADER], [ATOMS_HEADER]
    for c, (s, p, off) in enumerate(zip(structures, predictions, offsets), start=1):
        n = len(s)
        eref = 0.0 if s.energy is None else s.energy
        ediff = (eref - p.energy) / n if s.energy is not None else (0.0 - p.energy) / n
        e_lines.append(f"{c:10d} {n:10d} {_e(eref)} {_e(p.energy)} {_e(ediff)} {_e(off)}\n")
        fref = s.forces if s.forces is not None else np.zeros((n, 3))
        qnnp = getattr(p, "charges", None)  # 4G: NN charges (n2p2 writes 0 for 2G)
        qnnp = np.zeros(n) if qnnp is None else qnnp
        for i in range(n):
            f_lines.append(
                f"{c:10d} {i + 1:10d} " + " ".join(_e(v) for v in fref[i]) + " "
                + " ".join(_e(v) for v in p.forces[i]) + "\n"
            )
            a_lines.append(
                f"{c:10d} {i + 1:10d} {atomic_numbers[s.elements[i]]:3d} {_e(s.charges[i])} {_e(qnnp[i])} "
                f"{_e(s.atomic_energies[i])} {_e(p.atomic_energies[i])}\n"
            )
    paths = [outdir / "energy.out", outdir / "nnforces.out", outdir / "nnatoms.out"]
    for path, lines in zip(paths, (e_lines, f_lines, a_lines)):
        atomic_write_text(path, "".join(lines))  # a full disk leaves no half-written file
    return paths
