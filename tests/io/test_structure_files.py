"""Reading user structure files: n2p2 input.data by content, anything else through ASE."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from hdnnp.errors import ReadError
from hdnnp.io.n2p2_data import write_input_data
from hdnnp.io.structure_files import is_input_data, read_atoms, read_structures
from hdnnp.structure import Structure


@pytest.fixture
def frames():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    out = []
    for k in range(3):
        a = cu.copy()
        a.positions += 0.01 * k
        out.append(Structure.from_ase(a))
    return out


def test_input_data_recognised_by_content_and_indexed(frames, tmp_path):
    p = tmp_path / "frames.txt"  # no .data suffix: recognised by its 'begin'
    write_input_data(p, frames)
    assert is_input_data(p)
    assert np.allclose(read_atoms(p).positions, frames[0].positions)
    assert np.allclose(read_atoms(p, index=-1).positions, frames[2].positions)
    bohr = read_atoms(p, length_factor=0.5, index=1)
    assert np.allclose(bohr.positions, 0.5 * frames[1].positions) and np.allclose(bohr.cell, 0.5 * frames[1].cell)
    assert bohr.calc is None
    assert len(read_structures(p)) == 3
    for bad in (3, -4):
        with pytest.raises(ReadError, match=r"frames.txt: structure index .* out of range \(3 structures\)"):
            read_atoms(p, index=bad)


def test_ase_formats_and_errors(frames, tmp_path):
    p = tmp_path / "cu.extxyz"
    frames[1].to_ase().write(p)
    assert not is_input_data(p)
    assert np.allclose(read_atoms(p).positions, frames[1].positions)
    assert len(read_structures(p)) == 1
    with pytest.raises(ReadError, match="missing.xyz: structure file not found"):
        read_atoms(tmp_path / "missing.xyz")
    bad = tmp_path / "bad.xyz"
    bad.write_text("this is not a structure\n")
    with pytest.raises(ReadError, match="bad.xyz: cannot read structure file with ase.io.read"):
        read_structures(bad)
