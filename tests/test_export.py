"""``hdnnp export lammps``: an n2p2 directory n2p2 loads unchanged, a data file, in.lammps."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from types import SimpleNamespace

from hdnnp import units as hdnnp_units

#: n2p2's Bohr and Hartree (the factors LAMMPS users give pair_style hdnnp)
units = SimpleNamespace(Bohr=hdnnp_units.BOHR_TO_ANGSTROM, Hartree=hdnnp_units.HARTREE_TO_EV)

from hdnnp.dynamics import read_structure
from hdnnp.interfaces.lammps import export_lammps, strip_hdnnp_keywords
from hdnnp.model.potential import Potential

H2O = "potentials/H2O_RPBE-D3"
CU2S = "potentials/Cu2S_PBE"


@pytest.fixture()
def h2o_with_units(anchors, tmp_path):
    """The water potential as hdnnp would write it: input.nn declares Bohr/Hartree."""
    d = tmp_path / "h2o"
    shutil.copytree(anchors / H2O, d)
    with open(d / "input.nn", "a") as fh:
        fh.write("hdnnp_length_unit   bohr      # hdnnp only\nhdnnp_energy_unit hartree\n")
    return d


def pair_style(text):
    m = re.search(r"^pair_style\s+hdnnp\s+(\S+)\s+dir\s+(\S+)(.*)$", text, re.M)
    assert m, text
    opts = m.group(3).split()
    return float(m.group(1)), m.group(2), dict(zip(opts[::2], opts[1::2]))


def test_strip_hdnnp_keywords_keeps_every_other_byte():
    text = "a 1\r\nhdnnp_length_unit bohr\r\n  hdnnp_energy_unit ev # c\n# hdnnp_x in a comment\nb 2"
    new, removed = strip_hdnnp_keywords(text)
    assert new == "a 1\r\n# hdnnp_x in a comment\nb 2"
    assert removed == ["hdnnp_length_unit bohr", "  hdnnp_energy_unit ev # c"]


def test_export_h2o_bohr_hartree(anchors, h2o_with_units, tmp_path):
    info = export_lammps(h2o_with_units, tmp_path / "out", structure=h2o_with_units / "input.data")
    nnp = tmp_path / "out" / "nnp"
    # input.nn: the original n2p2 file byte for byte (hdnnp_* lines removed), the rest copied
    assert (nnp / "input.nn").read_bytes() == (anchors / H2O / "input.nn").read_bytes()
    for f in ("scaling.data", "weights.001.data", "weights.008.data"):
        assert (nnp / f).read_bytes() == (anchors / H2O / f).read_bytes(), f
    assert len(info.removed_keywords) == 2
    # n2p2 (here: our loader) gets the same potential: identical energies and forces
    orig, exported = Potential.from_n2p2(h2o_with_units), Potential.from_n2p2(nnp)
    assert exported.length_unit is None and orig.length_unit == "bohr"
    s = read_structure(anchors / H2O / "input.data")
    from hdnnp.structure import Structure

    cluster = Structure(elements=s.get_chemical_symbols()[:30], positions=s.positions[:30])
    a, b = orig.compute(cluster), exported.compute(cluster)
    assert a.energy == b.energy and np.array_equal(a.forces, b.forces)
    # in.lammps: Å -> Bohr and eV -> Hartree conversion factors, cutoff in Å >= 12 Bohr
    text = (tmp_path / "out" / "in.lammps").read_text()
    cutoff, pdir, opts = pair_style(text)
    assert pdir == "nnp"
    # exactly the factors n2p2's own LAMMPS examples (and TIMINGS.md's LAMMPS run) use
    assert opts["cflength"] == "1.8897261328" and opts["cfenergy"] == "0.0367493254"
    assert abs(float(opts["cflength"]) - 1.0 / units.Bohr) < 1e-7  # ASE's CODATA 2014: ~1e-8 relative
    assert cutoff >= 12.0 * units.Bohr and cutoff - 12.0 * units.Bohr < 1e-5
    assert opts["maxew"] == "100" and opts["showew"] == "no" and opts["resetew"] == "yes"
    assert re.search(r"^pair_coeff\s+\* \*\s+H O\s*$", text, re.M)
    assert re.search(r"^units\s+metal\s*$", text, re.M) and "read_data       structure.lammps-data" in text
    assert re.search(r"^fix\s+\S+\s+all\s+nve", text, re.M)


def test_lammps_data_file_is_in_angstrom_with_stated_types(anchors, tmp_path):
    import ase.io

    export_lammps(anchors / CU2S, tmp_path / "out", structure=anchors / CU2S / "input.data")
    atoms = read_structure(anchors / CU2S / "input.data")
    back = ase.io.read(tmp_path / "out" / "structure.lammps-data", format="lammps-data", atom_style="atomic",
                       units="metal")
    assert len(back) == len(atoms)
    # types: 1 = S, 2 = Cu (by atomic number), whatever the order in the structure
    types = back.arrays["type"]
    symbols = np.array(atoms.get_chemical_symbols())
    assert set(types[symbols == "S"]) == {1} and set(types[symbols == "Cu"]) == {2}
    assert abs(back.get_volume() - atoms.get_volume()) < 1e-6 * atoms.get_volume()
    i = np.arange(10)
    assert np.allclose(back.get_distances(0, i, mic=True), atoms.get_distances(0, i, mic=True), atol=1e-8)
    text = (tmp_path / "out" / "in.lammps").read_text()
    _, _, opts = pair_style(text)
    assert float(opts["cflength"]) == 1.0 and float(opts["cfenergy"]) == 1.0  # plain n2p2: Å/eV assumed
    assert re.search(r"^pair_coeff\s+\* \*\s+S Cu\s*$", text, re.M)


def test_cli_export(anchors, tmp_path, capsys):
    from hdnnp.cli import main

    out = tmp_path / "lmp"
    rc = main(["export", "lammps", str(anchors / H2O), str(out), "--length-unit", "bohr", "--energy-unit",
               "hartree", "--ensemble", "nvt", "--timestep-fs", "0.5"])
    assert rc == 0
    for f in ("in.lammps", "structure.lammps-data", "nnp/input.nn", "nnp/scaling.data", "nnp/weights.008.data"):
        assert (out / f).is_file(), f
    text = (out / "in.lammps").read_text()
    assert "cflength 1.8897261328 cfenergy 0.0367493254" in text and re.search(r"^fix\s+\S+\s+all\s+nvt temp 300", text, re.M)
    assert re.search(r"^timestep\s+0.0005\b", text, re.M)
    rc = main(["export", "lammps", str(anchors / H2O), str(out)])
    assert rc == 1 and "not empty" in capsys.readouterr().err
