"""4G matrix-free Qeq (hdnnp.model.qeq_cg): CG equals the dense (n2p2-exact) solve, exact forces,
charge conservation, solver selection and its errors (data: tests/data/n2p2_4g/README.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hdnnp.errors import ReadError
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.model import qeq_cg
from hdnnp.model.potential import Potential
from hdnnp.structure import Structure

DATA = Path(__file__).resolve().parents[1] / "data" / "n2p2_4g"
_POTS: dict = {}


def potential(ex: str) -> Potential:
    if ex not in _POTS:
        if ex == "AlAuMgO_4G":
            with pytest.warns(RuntimeWarning):  # its SFs with zeta = -1, -2
                _POTS[ex] = Potential.from_n2p2(DATA / "potentials" / ex)
        else:
            _POTS[ex] = Potential.from_n2p2(DATA / "potentials" / ex)
    return _POTS[ex]


def both(pot: Potential, s: Structure, **kw):
    out = []
    for solver in ("dense", "cg"):
        pot.qeq_solver = solver
        try:
            out.append(pot.compute(s, **kw))
        finally:
            pot.qeq_solver = "auto"
    return out


def assert_same(a, b):
    assert abs(a.energy - b.energy) <= 1e-12 * abs(a.energy)
    assert a.electrostatic_energy == pytest.approx(b.electrostatic_energy, rel=1e-11, abs=1e-13)
    assert np.abs(a.forces - b.forces).max() <= 1e-10
    assert np.abs(a.charges - b.charges).max() <= 1e-11
    if a.stress is not None:
        assert np.abs(a.stress - b.stress).max() <= 1e-12


@pytest.mark.parametrize("ex", ["H2O_RPBE-D3_4G", "AlAuMgO_4G", "Carbon_chain_4G"])
def test_cg_equals_dense(ex):
    s = read_input_data(DATA / "potentials" / ex / "input.data")[0]
    dense, cg = both(potential(ex), s)
    assert_same(dense, cg)
    ref = read_input_data(DATA / "predict" / ex / "output.data")[0]  # n2p2's own figures
    assert abs(cg.energy - ref.energy) <= 1e-10 * abs(ref.energy)
    assert np.abs(cg.forces - ref.forces).max() <= 1e-8
    assert np.abs(cg.charges - ref.charges).max() <= 1e-10


def test_cg_chunked_path_equals_dense(monkeypatch):
    """Nothing stored: pairs regenerated and cos/sin(k.r) recomputed per k-chunk at every product."""
    monkeypatch.setattr(qeq_cg, "MAX_STORED_PAIRS", 0)
    monkeypatch.setattr(qeq_cg, "MAX_STORED_PHASES", 0)
    monkeypatch.setattr(qeq_cg, "CHUNK_ELEMENTS", 500)
    pot = potential("H2O_RPBE-D3_4G")
    s = read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[3]
    dense, cg = both(pot, s)
    assert_same(dense, cg)
    assert pot.electrostatics.last_cg["stored"] is False


def test_cg_forces_are_minus_gradient():
    """Central differences (error ~ h^2) of the CG energy, periodic 48-atom water box."""
    pot = potential("H2O_RPBE-D3_4G")
    s = read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[3]
    v = np.random.default_rng(5).normal(size=s.positions.shape)
    v /= np.linalg.norm(v)
    pot.qeq_solver = "cg"
    try:
        F = pot.compute(s).forces
        errs = []
        for h in (4e-3, 2e-3):
            e = [pot.compute(Structure(elements=s.elements, positions=s.positions + sign * h * v, cell=s.cell,
                                       charge=s.charge), forces=False).energy for sign in (1, -1)]
            errs.append(abs((e[0] - e[1]) / (2 * h) + (F * v).sum()))
    finally:
        pot.qeq_solver = "auto"
    assert errs[1] < 1e-4 * np.abs(F).max()
    assert 3.0 < errs[0] / errs[1] < 5.0


def test_cg_charge_conservation():
    pot = potential("Carbon_chain_4G")
    s = read_input_data(DATA / "dataset" / "Carbon_chain_4G" / "input.data")[0]
    pot.qeq_solver = "cg"
    try:
        for q in (0.0, 1.0, -2.5):
            s.charge = q
            assert pot.compute(s).charges.sum() == pytest.approx(q, abs=1e-12)
    finally:
        pot.qeq_solver = "auto"


def test_solver_selection():
    assert qeq_cg.resolve_solver("auto", qeq_cg.AUTO_DENSE_MAX_ATOMS, True) == "dense"
    assert qeq_cg.resolve_solver("auto", qeq_cg.AUTO_DENSE_MAX_ATOMS + 1, True) == "cg"
    assert qeq_cg.resolve_solver("auto", 10 ** 6, False) == "dense"  # n2p2's Ewald parameters, molecules
    assert qeq_cg.resolve_solver("dense", 10 ** 6, True) == "dense"
    assert qeq_cg.resolve_solver("cg", 10, False) == "cg"
    with pytest.raises(ValueError, match="dense, cg"):
        qeq_cg.resolve_solver("lu", 10, False)


@pytest.mark.parametrize("value,ok", [("cg", True), ("DENSE", True), ("lu", False), ("", False)])
def test_keyword(tmp_path, value, ok):
    src = DATA / "potentials" / "Carbon_chain_4G"
    d = tmp_path / "pot"
    shutil.copytree(src, d)
    text = (d / "input.nn").read_text()
    (d / "input.nn").write_text(text + f"hdnnp_qeq_solver {value}\n")
    lineno = len((text + "x").splitlines())
    if ok:
        assert Potential.from_n2p2(d).qeq_solver == value.lower()
        return
    with pytest.raises(ReadError) as err:
        Potential.from_n2p2(d)
    msg = str(err.value)
    assert f"input.nn:{lineno}" in msg and "hdnnp_qeq_solver" in msg and "\n" not in msg


def test_scaled_ewald_is_within_the_ewald_precision():
    """hdnnp_ewald_parameters scaled: a smaller splitting width (r_c bounded), forces within ewald_prec
    (1e-5 Ha/Bohr for this potential) of the converged Ewald sum, as n2p2's own parameters are."""
    pot = potential("H2O_RPBE-D3_4G")
    s = read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[3]
    try:
        pot.qeq_solver = "dense"
        n2p2 = pot.compute(s)
        pot.ewald_converged = True
        conv = pot.compute(s)
        pot.ewald_converged = False
        pot.qeq_solver, pot.ewald_scaled = "cg", True
        scaled = pot.compute(s)
        pot.qeq_solver = "dense"
        scaled_dense = pot.compute(s)
    finally:
        pot.qeq_solver, pot.ewald_scaled, pot.ewald_converged = "auto", False, False
    assert scaled.ewald.r_cut < 0.6 * n2p2.ewald.r_cut
    assert_same(scaled_dense, scaled)
    assert np.abs(scaled.forces - conv.forces).max() < 1e-5
    assert np.abs(n2p2.forces - conv.forces).max() < 1e-5
    assert abs(scaled.energy - conv.energy) / len(s) < 1e-5


@pytest.mark.parametrize("value,ok", [("scaled", True), ("n2p2", True), ("fast", False)])
def test_ewald_keyword(tmp_path, value, ok):
    d = tmp_path / "pot"
    shutil.copytree(DATA / "potentials" / "Carbon_chain_4G", d)
    text = (d / "input.nn").read_text()
    (d / "input.nn").write_text(text + f"hdnnp_ewald_parameters {value}\n")
    if ok:
        assert Potential.from_n2p2(d).ewald_scaled == (value == "scaled")
        return
    with pytest.raises(ReadError, match=rf"input.nn:{len((text + 'x').splitlines())}: hdnnp_ewald_parameters"):
        Potential.from_n2p2(d)


def test_ase_calculator_uses_the_chosen_solver():
    """The calculator (and hdnnp md, same force field) run Potential.compute, so the solver applies."""
    from hdnnp.interfaces.ase_calculator import HDNNPCalculator

    pot = potential("H2O_RPBE-D3_4G")
    s = read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[3]
    out = {}
    try:
        for solver in ("dense", "cg"):
            pot.qeq_solver = solver
            pot.electrostatics.last_cg = None
            atoms = s.to_ase()
            atoms.set_initial_charges(np.zeros(len(atoms)))  # total 0 (the file's reference charges sum to 2e-4)
            atoms.calc = HDNNPCalculator(pot, length_unit="bohr", energy_unit="hartree")
            out[solver] = (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_charges())
            assert (pot.electrostatics.last_cg is not None) == (solver == "cg")
    finally:
        pot.qeq_solver = "auto"
    assert out["cg"][0] == pytest.approx(out["dense"][0], rel=1e-12)
    assert np.abs(out["cg"][1] - out["dense"][1]).max() < 1e-9
    assert np.abs(out["cg"][2] - out["dense"][2]).max() < 1e-11


def test_cg_float32_converges():
    """float32 potentials: CG stops at 100 machine epsilons (1.2e-5) instead of failing at 1e-13."""
    import torch

    s = read_input_data(DATA / "dataset" / "Carbon_chain_4G" / "input.data")[0]
    pot32 = Potential.from_n2p2(DATA / "potentials" / "Carbon_chain_4G", dtype=torch.float32)
    pot32.qeq_solver = "cg"
    p32 = pot32.compute(s)
    ref = both(potential("Carbon_chain_4G"), s)[0]
    assert np.abs(p32.charges - ref.charges).max() < 1e-4
    assert np.abs(p32.forces - ref.forces).max() < 1e-4


@pytest.mark.parametrize("skew", [False, True])
def test_cg_cell_list_pairs_equal_dense(skew):
    """Scaled Ewald on the 384-atom box: CG takes its pairs from vesin's cell list (ewald_pairs.VesinPairs),
    the dense path from the blocked image search; both agree, also for a skewed basis of the same lattice."""
    pot = potential("H2O_RPBE-D3_4G")
    s = read_input_data(DATA / "potentials" / "H2O_RPBE-D3_4G" / "input.data")[0]
    if skew:
        cell = np.array(s.cell, dtype=float)
        cell[1] += cell[0]
        cell[2] -= 2.0 * cell[0] - cell[1]
        s = Structure(elements=s.elements, positions=s.positions, cell=cell, charge=s.charge)
    pot.ewald_scaled = True
    try:
        dense, cg = both(pot, s)
    finally:
        pot.ewald_scaled = False
    assert_same(dense, cg)
    assert pot.electrostatics.last_cg["pairs"] > 0
    from hdnnp.model.fourg import image_pairs
    import torch

    from hdnnp.model.ewald_pairs import VesinPairs

    c = torch.as_tensor(np.asarray(s.cell, dtype=float))
    pos = torch.as_tensor(s.positions)
    pos = pos - torch.floor(pos @ torch.linalg.inv(c)) @ c
    assert isinstance(image_pairs(pot, pos, c, cg.ewald, "cg"), VesinPairs)
