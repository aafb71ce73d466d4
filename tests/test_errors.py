"""Bad input gives one-line errors naming file:line and what was expected (no traceback)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hdnnp.cli import main
from hdnnp.errors import HDNNPError, ReadError
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.model.potential import Potential


@pytest.fixture
def cu2s(anchors, tmp_path):
    d = tmp_path / "pot"
    shutil.copytree(anchors / "potentials" / "Cu2S_PBE", d)
    return d


def _edit(path, old, new, count=1):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def test_truncated_input_data(anchors, tmp_path):
    lines = (anchors / "potentials" / "Cu2S_PBE" / "input.data").read_text().splitlines()[:40]
    p = tmp_path / "input.data"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"input\.data:40: file ends inside the structure begun on line 1"):
        read_input_data(p)


def test_bad_atom_line(tmp_path):
    p = tmp_path / "input.data"
    p.write_text("begin\natom 0 0 0 H 0 0 0 0\nend\n")
    with pytest.raises(ReadError, match=r"input\.data:2: expected 'atom x y z element charge energy fx fy fz'"):
        read_input_data(p)
    p.write_text("begin\natom 0 0 zero H 0 0 0 0 0\nend\n")
    with pytest.raises(ReadError, match=r":2: expected a number for a coordinate, found 'zero'"):
        read_input_data(p)
    p.write_text("begin\nlattice 1 0 0\natom 0 0 0 H 0 0 0 0 0\nend\n")
    with pytest.raises(ReadError, match=r":4: .* has 1 'lattice' lines; expected 0 or 3"):
        read_input_data(p)
    p.write_text("begin\nposition 0 0 0\nend\n")
    with pytest.raises(ReadError, match=r":2: unknown keyword 'position'"):
        read_input_data(p)


def test_element_missing_from_potential(cu2s, tmp_path):
    pot = Potential.from_n2p2(cu2s)
    s = read_input_data(cu2s / "input.data")[0]
    s.elements[0] = "O"
    with pytest.raises(HDNNPError, match=r"element O is in the structure but not in the potential \(elements: S Cu\)"):
        pot.compute(s)


def test_weights_too_few(cu2s):
    w = cu2s / "weights.016.data"
    lines = w.read_text().splitlines()
    w.write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(ReadError, match=r"weights\.016\.data: found \d+ values; the network \[72, 25, 25, 1\] needs 2501"):
        Potential.from_n2p2(cu2s)


def test_scaling_wrong_rows(cu2s):
    s = cu2s / "scaling.data"
    lines = [ln for ln in s.read_text().splitlines() if not (ln.split()[:2] == ["1", "72"])]
    s.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=r"scaling\.data:\d+: element index 1 has 71 rows \(last one here\); input\.nn defines 72"):
        Potential.from_n2p2(cu2s)


def test_symfunction_bad_parameter_count(cu2s):
    _edit(cu2s / "input.nn", "symfunction_short S  2 S  2.000E+00 1.500E+00 6.000E+00",
          "symfunction_short S  2 S  2.000E+00 1.500E+00")
    with pytest.raises(ReadError, match=r"input\.nn:\d+: symfunction_short: type 2 takes 4 parameters after the type "
                                        r"\(<e1> <eta> <r_shift> <r_cut>\), found 3"):
        Potential.from_n2p2(cu2s)


def test_symfunction_unknown_type(cu2s):
    _edit(cu2s / "input.nn", "symfunction_short S  2 S  2.000E+00 1.500E+00 6.000E+00",
          "symfunction_short S  7 S  2.000E+00 1.500E+00 6.000E+00")
    with pytest.raises(ReadError, match=r"input\.nn:\d+: symfunction_short: unknown symmetry-function type 7; "
                                        r"supported types: 2, 3, 9, 12, 13, 20, 21, 22, 23, 24, 25"):
        Potential.from_n2p2(cu2s)


def test_zero_scaling_range(cu2s):
    s = cu2s / "scaling.data"
    out = []
    for ln in s.read_text().splitlines():
        w = ln.split()
        if w[:2] == ["1", "3"]:
            ln = f"1 3 {w[2]} {w[2]} {w[4]} 0.0"
        out.append(ln)
    s.write_text("\n".join(out) + "\n")
    with pytest.raises(ReadError, match=r"scaling\.data:\d+: symmetry function 3 of element S has a zero scaling range"):
        Potential.from_n2p2(cu2s)


def test_cli_reports_one_line(cu2s, tmp_path, capsys):
    w = cu2s / "weights.029.data"
    w.write_text("1.0\n")
    rc = main(["predict", str(cu2s), str(cu2s / "input.data"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and "weights.029.data" in err and "Traceback" not in err


def test_predict_cli_outputs(anchors, tmp_path):
    pot_dir = anchors / "potentials" / "Cu2S_PBE"
    out = tmp_path / "out"
    assert main(["predict", str(pot_dir), str(pot_dir / "input.data"), "-o", str(out)]) == 0
    e = np.loadtxt(out / "energy.out")
    e_ref = np.loadtxt(anchors / "predict" / "Cu2S_PBE" / "energy.out")
    assert abs(e[3] - e_ref[3]) < 1e-10 * abs(e_ref[3])
    f = np.loadtxt(out / "nnforces.out")
    f_ref = np.loadtxt(anchors / "predict" / "Cu2S_PBE" / "nnforces.out")
    assert f.shape == f_ref.shape and np.abs(f - f_ref).max() < 1e-8
    import ase.io

    atoms = ase.io.read(out / "predictions.extxyz")
    assert abs(atoms.get_potential_energy() - e_ref[3]) < 1e-8
    # refuses to overwrite without --overwrite
    assert main(["predict", str(pot_dir), str(pot_dir / "input.data"), "-o", str(out)]) == 1


def test_predict_reports_errors_against_the_reference(anchors, tmp_path, caplog):
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.training.metrics import reference_errors

    pot_dir = anchors / "potentials" / "Cu2S_PBE"
    ref = read_input_data(pot_dir / "input.data")[0]
    e_nn = np.loadtxt(anchors / "predict" / "Cu2S_PBE" / "energy.out")[3]
    f_nn = np.loadtxt(anchors / "predict" / "Cu2S_PBE" / "nnforces.out")[:, 5:8]
    with caplog.at_level("INFO", logger="hdnnp"):
        assert main(["predict", str(pot_dir), str(pot_dir / "input.data"), "-o", str(tmp_path / "o")]) == 0
    text = caplog.text
    rmse_e = abs(e_nn - ref.energy) / len(ref)
    rmse_f = float(np.sqrt(np.mean((f_nn - ref.forces) ** 2)))
    assert f"energy per atom: RMSE {rmse_e:.6g}" in text and f"force component: RMSE {rmse_f:.6g}" in text

    class P:  # a prediction without forces counts energies only
        energy, forces = ref.energy + 2.0 * len(ref), None

    m = reference_errors([ref], [P()])
    assert m["rmse_epa"] == 2.0 and m["n_comp"] == 0
    ref.energy = None
    assert reference_errors([ref], [P()]) is None
