"""Exact write/read round trips of n2p2 files and conversion to and from ASE."""

from __future__ import annotations

import numpy as np

from hdnnp.io.n2p2_data import read_input_data, write_input_data
from hdnnp.io.scaling_data import read_scaling_data, write_scaling_data
from hdnnp.io.weights_data import read_weights, write_weights
from hdnnp.structure import Structure


def test_input_data_roundtrip(anchors, tmp_path):
    for ex in ("H2O_RPBE-D3", "Cu2S_PBE"):
        src = read_input_data(anchors / "dataset" / ex / "input.data", wrap=False)
        src[0].set_tag = "train"
        src[1].set_tag = "test"
        p = tmp_path / f"{ex}.data"
        write_input_data(p, src)
        back = read_input_data(p, wrap=False)
        assert len(back) == len(src)
        for a, b in zip(src, back):
            assert a.elements == b.elements and a.comments == b.comments and a.set_tag == b.set_tag
            assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell, b.cell)
            assert a.energy == b.energy and np.array_equal(a.forces, b.forces)


def test_non_periodic_and_comments(tmp_path):
    s = Structure(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], energy=-14.2,
                  forces=np.arange(9.0).reshape(3, 3) / 7, comments=["water", "second line"])
    p = tmp_path / "w.data"
    write_input_data(p, [s])
    write_input_data(p, [s], append=True)
    back = read_input_data(p)
    assert len(back) == 2 and back[1].cell is None and back[1].comments == ["water", "second line"]
    assert np.array_equal(back[0].forces, s.forces) and back[0].energy == s.energy


def test_wrapping_and_ase(anchors):
    s = read_input_data(anchors / "potentials" / "Cu2S_PBE" / "input.data", wrap=False)[0]
    w = read_input_data(anchors / "potentials" / "Cu2S_PBE" / "input.data")[0]
    frac = np.linalg.solve(w.cell.T, w.positions.T).T
    assert frac.min() >= 0 and frac.max() < 1
    assert (s.positions != w.positions).any()
    atoms = s.to_ase(length_factor=0.5, energy_factor=2.0)
    assert np.allclose(atoms.positions, s.positions * 0.5) and atoms.pbc.all()
    assert np.isclose(atoms.get_potential_energy(), s.energy * 2.0)
    assert np.allclose(atoms.get_forces(), s.forces * 4.0)
    back = Structure.from_ase(atoms, length_factor=2.0, energy_factor=0.5)
    assert np.allclose(back.positions, s.positions) and np.isclose(back.energy, s.energy)
    assert np.allclose(back.forces, s.forces)


def test_scaling_and_weights_roundtrip(anchors, tmp_path):
    d = anchors / "potentials" / "H2O_RPBE-D3"
    stats = read_scaling_data(d / "scaling.data", [27, 30])
    write_scaling_data(tmp_path / "scaling.data", stats)
    back = read_scaling_data(tmp_path / "scaling.data", [27, 30])
    for a, b in zip(stats, back):
        for f in ("g_min", "g_max", "g_mean", "g_sigma"):
            assert np.array_equal(getattr(a, f), getattr(b, f))
    layers = read_weights(d / "weights.008.data", [30, 25, 25, 1])
    write_weights(tmp_path / "w.data", layers)
    assert (tmp_path / "w.data").read_text() == (d / "weights.008.data").read_text()
