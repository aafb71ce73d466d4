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


# ------------------------------------------------------------- periodicity: what LAMMPS receives
def _data_file(path):
    """(box bounds {'x': (lo, hi), ...}, tilt (xy, xz, yz) or None, positions by atom id)."""
    bounds, tilt, atoms = {}, None, {}
    lines = path.read_text().splitlines()
    for ln in lines:
        w = ln.split()
        if len(w) == 4 and w[2].endswith("lo") and w[3].endswith("hi"):
            bounds[w[2][0]] = (float(w[0]), float(w[1]))
        elif len(w) == 6 and w[3:] == ["xy", "xz", "yz"]:
            tilt = tuple(map(float, w[:3]))
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Atoms")) + 2
    for ln in lines[start:]:
        w = ln.split()
        atoms[int(w[0])] = [float(x) for x in w[2:5]]
    return bounds, tilt, np.array([atoms[k] for k in sorted(atoms)])


def _boundary(text):
    m = re.search(r"^boundary\s+(\S) (\S) (\S)\s*$", text, re.M)
    assert m, text
    return " ".join(m.groups())


def _cu2s(anchors, pbc, rotate=False):
    from ase import Atoms

    bulk = read_structure(anchors / CU2S / "input.data")
    cell = np.array(bulk.cell) @ np.array([[1, 0, 0], [0.2, 1, 0], [0.3, -0.2, 1.0]])
    atoms = Atoms(bulk.get_chemical_symbols(), scaled_positions=bulk.get_scaled_positions(), cell=cell, pbc=pbc)
    if rotate:
        q = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
        atoms.set_cell(np.array(atoms.cell) @ (q * np.sign(np.linalg.det(q))).T, scale_atoms=True)
    return atoms


def _same_geometry(atoms, back_positions, lammps_cell, lammps_pbc):
    """All interatomic distances (minimum image along the periodic directions) agree."""
    from ase import Atoms

    back = Atoms(atoms.get_chemical_symbols(), positions=back_positions, cell=lammps_cell, pbc=lammps_pbc)
    assert np.allclose(back.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-9)


@pytest.mark.parametrize("rotate", [False, True])
def test_slab_is_exported_periodic_in_plane(anchors, tmp_path, rotate):
    """pbc T T F: boundary p p s; x/y box and xy tilt are the slab's a and b; z shrink-wrapped
    around the atoms (no tilt towards it); every distance as in the slab."""
    slab = _cu2s(anchors, (True, True, False), rotate=rotate)
    info = export_lammps(anchors / CU2S, tmp_path / "out", structure=slab)
    text = (tmp_path / "out" / "in.lammps").read_text()
    assert _boundary(text) == "p p s" and info.boundary == "p p s"
    assert "velocity        all create 300.0 12345 dist gaussian mom yes rot no" in text
    assert ("ROTATED" in text) == rotate == info.rotated
    bounds, tilt, pos = _data_file(tmp_path / "out" / "structure.lammps-data")
    a, b = np.array(slab.cell[0]), np.array(slab.cell[1])
    lx, ly = bounds["x"][1] - bounds["x"][0], bounds["y"][1] - bounds["y"][0]
    assert lx == pytest.approx(np.linalg.norm(a), abs=1e-12)
    assert tilt[0] == pytest.approx(a @ b / np.linalg.norm(a), abs=1e-12) and tilt[1:] == (0.0, 0.0)
    assert lx * ly == pytest.approx(np.linalg.norm(np.cross(a, b)), rel=1e-13)
    z = pos[:, 2]
    assert bounds["z"][0] <= z.min() - 5.0 + 1e-9 and z.max() + 5.0 - 1e-9 <= bounds["z"][1]
    cell = [[lx, 0, 0], [tilt[0], ly, 0], [0, 0, bounds["z"][1] - bounds["z"][0]]]
    _same_geometry(slab, pos, cell, (True, True, False))


def test_other_partial_periodicity_is_renamed_cyclically(anchors, tmp_path):
    """pbc T F T (periodic a and c) -> p p s with c, a as LAMMPS's x, y; a wire (F F T) -> p s s."""
    slab = _cu2s(anchors, (True, False, True))
    info = export_lammps(anchors / CU2S, tmp_path / "slab", structure=slab)
    assert info.boundary == "p p s"
    text = (tmp_path / "slab" / "in.lammps").read_text()
    assert "cell vectors renamed c->x a->y b->z" in text
    bounds, tilt, pos = _data_file(tmp_path / "slab" / "structure.lammps-data")
    c, a = np.array(slab.cell[2]), np.array(slab.cell[0])
    lx, ly = bounds["x"][1] - bounds["x"][0], bounds["y"][1] - bounds["y"][0]
    assert lx == pytest.approx(np.linalg.norm(c), abs=1e-12)
    assert lx * ly == pytest.approx(np.linalg.norm(np.cross(c, a)), rel=1e-13)
    _same_geometry(slab, pos, [[lx, 0, 0], [tilt[0], ly, 0], [0, 0, bounds["z"][1] - bounds["z"][0]]],
                   (True, True, False))

    wire = _cu2s(anchors, (False, False, True))
    info = export_lammps(anchors / CU2S, tmp_path / "wire", structure=wire)
    assert info.boundary == "p s s" and _boundary((tmp_path / "wire" / "in.lammps").read_text()) == "p s s"
    bounds, tilt, pos = _data_file(tmp_path / "wire" / "structure.lammps-data")
    assert bounds["x"][1] - bounds["x"][0] == pytest.approx(np.linalg.norm(wire.cell[2]), abs=1e-12)
    assert tilt is None  # perpendicular non-periodic edges: an orthogonal box
    _same_geometry(wire, pos, np.diag([bounds[k][1] - bounds[k][0] for k in "xyz"]), (True, False, False))


def test_cluster_is_exported_with_zero_angular_momentum_and_exact_positions(anchors, tmp_path):
    """pbc F F F: boundary s s s, positions written unchanged to the last bit, a box 5 Å beyond
    the atoms, velocities without linear and angular momentum; full-precision outputs."""
    from ase import Atoms

    s = read_structure(anchors / H2O / "input.data", length_factor=units.Bohr)
    cluster = Atoms(s.get_chemical_symbols()[:30], positions=s.positions[:30] + np.pi / 7, pbc=False)
    info = export_lammps(anchors / H2O, tmp_path / "out", structure=cluster, length_unit="bohr",
                         energy_unit="hartree")
    text = (tmp_path / "out" / "in.lammps").read_text()
    assert info.boundary == "s s s" and _boundary(text) == "s s s" and not info.rotated
    assert re.search(r"^velocity\s+all create \S+ \d+ dist gaussian mom yes rot yes\s*$", text, re.M)
    assert "ROTATED" not in text
    bounds, tilt, pos = _data_file(tmp_path / "out" / "structure.lammps-data")
    assert tilt is None and np.array_equal(pos, cluster.positions)  # every bit of every coordinate
    for k, ax in enumerate("xyz"):
        assert bounds[ax][0] == pytest.approx(pos[:, k].min() - 5.0) and bounds[ax][1] == pytest.approx(
            pos[:, k].max() + 5.0)
    assert re.search(r"^thermo_modify\s+format float %\.17g\s*$", text, re.M)
    assert re.search(r"^dump_modify\s+traj sort id format float %\.17g\s*$", text, re.M)


def test_export_of_an_old_hdnnp_input_nn_strips_unknown_keywords(anchors, tmp_path):
    """write_traincurve (written by earlier hdnnp versions) is not an n2p2 keyword: removed on export."""
    d = tmp_path / "pot"
    shutil.copytree(anchors / CU2S, d)
    with open(d / "input.nn", "a") as fh:
        fh.write("write_traincurve          # old hdnnp\nhdnnp_optimizer lbfgs\n")
    info = export_lammps(d, tmp_path / "out")
    assert [r.split()[0] for r in info.removed_keywords] == ["write_traincurve", "hdnnp_optimizer"]
    assert (tmp_path / "out" / "nnp" / "input.nn").read_bytes() == (anchors / CU2S / "input.nn").read_bytes()


def test_left_handed_and_degenerate_cells(anchors, tmp_path):
    """A left-handed cell is the same lattice with c reversed (no error, distances kept); a cell
    whose periodic vectors do not span a cell is refused with a clear error."""
    from hdnnp.errors import HDNNPError
    from hdnnp.interfaces.lammps import lammps_box

    atoms = _cu2s(anchors, True)
    left = atoms.copy()
    left.set_cell(np.array(atoms.cell)[[1, 0, 2]], scale_atoms=False)  # a <-> b: det < 0
    assert np.linalg.det(left.cell) < 0
    box = lammps_box(left.positions, np.array(left.cell), left.pbc)
    assert box.hi[2] > 0 and any("left-handed" in n for n in box.notes)
    cell = [[box.hi[0], 0, 0], [box.tilt[0], box.hi[1], 0], [box.tilt[1], box.tilt[2], box.hi[2]]]
    _same_geometry(left, box.positions, cell, (True, True, True))
    flat = np.array(atoms.cell)
    flat[1] = 2.0 * flat[0]
    with pytest.raises(HDNNPError, match="linearly dependent"):
        lammps_box(atoms.positions, flat, (True, True, False))
    with pytest.raises(HDNNPError, match="finite and non-zero"):
        lammps_box(atoms.positions, np.zeros((3, 3)), (True, True, True))


def test_cli_export_with_plugin_loads_it_before_the_pair_style(anchors, tmp_path):
    from hdnnp.cli import main

    out = tmp_path / "lmp"
    plugin = tmp_path / "hdnnpplugin.so"
    assert main(["export", "lammps", str(anchors / CU2S), str(out), "--plugin", str(plugin)]) == 0
    text = (out / "in.lammps").read_text()
    assert text.index(f"plugin load     {plugin.resolve()}") < text.index("pair_style      hdnnp")


def test_large_tilts_are_reduced_to_an_equivalent_cell(anchors):
    """A periodic cell with tilts beyond LAMMPS's limits (|xy| > lx/2, ...) is written as the
    same lattice with reduced tilts: every distance (minimum image) is unchanged."""
    from ase import Atoms

    from hdnnp.interfaces.lammps import lammps_box

    atoms = _cu2s(anchors, True)
    a, b, c = np.array(atoms.cell)
    sheared = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=[a, b + 2 * a, c - 3 * b + a],
                    pbc=True)
    box = lammps_box(sheared.positions, np.array(sheared.cell), sheared.pbc)
    lx, ly = box.hi[0], box.hi[1]
    xy, xz, yz = box.tilt
    assert abs(xy) <= lx / 2 + 1e-9 and abs(xz) <= lx / 2 + 1e-9 and abs(yz) <= ly / 2 + 1e-9
    assert any("tilt factors reduced" in n for n in box.notes)
    cell = [[lx, 0, 0], [xy, ly, 0], [xz, yz, box.hi[2]]]
    assert abs(np.linalg.det(cell)) == pytest.approx(abs(np.linalg.det(sheared.cell)), rel=1e-12)
    _same_geometry(atoms, box.positions, cell, (True, True, True))
