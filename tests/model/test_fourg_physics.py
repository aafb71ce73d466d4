"""Physics of the 4G stage: forces and stress are gradients of the energy, charge conservation,
invariances, Ewald convergence, the screening sum against a direct sum, NVE conservation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hdnnp.io.n2p2_data import read_input_data
from hdnnp.model.potential import Potential
from hdnnp.structure import Structure

DATA = Path(__file__).resolve().parents[1] / "data" / "n2p2_4g"
_POTS: dict = {}


def potential(ex: str) -> Potential:
    if ex not in _POTS:
        _POTS[ex] = Potential.from_n2p2(DATA / "potentials" / ex)
    return _POTS[ex]


def water48() -> Structure:
    return read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[3]


def carbon(charged: bool) -> Structure:
    structures = read_input_data(DATA / "dataset" / "Carbon_chain_4G" / "input.data")
    return next(s for s in structures if (s.charge or 0.0) == (1.0 if charged else 0.0))


def moved(s: Structure, positions=None, cell=None) -> Structure:
    return Structure(elements=s.elements, positions=s.positions if positions is None else positions,
                     cell=s.cell if cell is None else cell, charge=s.charge)


def _fd_error(pot, s, v, h):
    """|dE/dalpha (central difference, step h) - (-F . v)| along direction v (n, 3)."""
    F = pot.compute(s).forces
    ep = pot.compute(moved(s, s.positions + h * v), forces=False).energy
    em = pot.compute(moved(s, s.positions - h * v), forces=False).energy
    return abs((ep - em) / (2 * h) + (F * v).sum())


@pytest.mark.parametrize("case", ["water-periodic", "carbon-charged-molecule"])
def test_forces_are_minus_gradient_h2_convergence(case):
    pot = potential("H2O_RPBE-D3_4G" if case.startswith("water") else "Carbon_chain_4G")
    s = water48() if case.startswith("water") else carbon(charged=True)
    rng = np.random.default_rng(3)
    v = rng.normal(size=s.positions.shape)
    v /= np.linalg.norm(v)
    e1 = _fd_error(pot, s, v, 4e-3)
    e2 = _fd_error(pot, s, v, 2e-3)
    scale = np.abs(pot.compute(s).forces).max()
    print(case, e1, e2, scale)
    assert e2 < 1e-4 * scale
    assert 3.0 < e1 / e2 < 5.0  # error proportional to h^2


def test_stress_is_strain_derivative():
    """Stress = (1/V) dE/d(strain), with the Ewald parameters converged (they depend on V)."""
    pot = potential("H2O_RPBE-D3_4G")
    s = water48()
    pot.ewald_converged = True
    try:
        p = pot.compute(s)
        V = abs(np.linalg.det(s.cell))
        h = 1e-5
        for a, b in ((0, 0), (1, 2), (2, 1), (0, 1)):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            D = np.eye(3) + eps
            ep = pot.compute(moved(s, s.positions @ D, s.cell @ D), forces=False).energy
            em = pot.compute(moved(s, s.positions @ (2 * np.eye(3) - D), s.cell @ (2 * np.eye(3) - D)),
                             forces=False).energy
            assert (ep - em) / (2 * h) / V == pytest.approx(p.stress[a, b], abs=2e-9)
    finally:
        pot.ewald_converged = False


def test_charge_conservation():
    pot = potential("Carbon_chain_4G")
    for q in (0.0, 1.0, -2.5):
        s = carbon(charged=False)
        s.charge = q
        assert pot.compute(s).charges.sum() == pytest.approx(q, abs=1e-12)
    p = potential("H2O_RPBE-D3_4G").compute(water48())
    assert abs(p.charges.sum()) < 1e-12


def test_periodic_charged_cell_is_refused():
    s = water48()
    s.charge = 1.0
    with pytest.raises(ValueError, match="neutral"):
        potential("H2O_RPBE-D3_4G").compute(s)


def _rotation(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("periodic", [True, False])
def test_rotation_and_translation_invariance(periodic):
    pot = potential("H2O_RPBE-D3_4G" if periodic else "Carbon_chain_4G")
    s = water48() if periodic else carbon(charged=True)
    p = pot.compute(s)
    R = _rotation()
    r = pot.compute(moved(s, s.positions @ R.T, None if s.cell is None else s.cell @ R.T))
    assert r.energy == pytest.approx(p.energy, rel=1e-12)
    np.testing.assert_allclose(r.forces, p.forces @ R.T, atol=1e-10)
    np.testing.assert_allclose(r.charges, p.charges, atol=1e-11)
    t = pot.compute(moved(s, s.positions + np.array([0.3, -1.7, 2.2])))
    assert t.energy == pytest.approx(p.energy, rel=1e-12)
    np.testing.assert_allclose(t.forces, p.forces, atol=1e-10)
    np.testing.assert_allclose(t.charges, p.charges, atol=1e-11)


def test_cell_basis_change_invariance():
    """(a, b, c) -> (a, b + a, c - b): the same lattice; same energy, forces, charges, stress."""
    pot = potential("H2O_RPBE-D3_4G")
    s = water48()
    p = pot.compute(s)
    a, b, c = s.cell
    q = pot.compute(moved(s, cell=np.array([a, b + a, c - b])))
    assert q.energy == pytest.approx(p.energy, rel=1e-12)
    np.testing.assert_allclose(q.forces, p.forces, atol=1e-10)
    np.testing.assert_allclose(q.charges, p.charges, atol=1e-11)
    np.testing.assert_allclose(q.stress, p.stress, atol=1e-11)


def _with_ewald(pot, method, precision):
    from dataclasses import replace

    old = pot.electrostatics.ewald
    pot.electrostatics.ewald = replace(old, method=method, precision=precision, r_cut=None)
    return old


def test_ewald_energy_converges_as_precision_tightens():
    """E_elec approaches the converged Ewald sum as ewald_prec tightens, for both of n2p2's
    methods (different eta): the converged sums agree, so the result does not depend on eta."""
    pot = potential("H2O_RPBE-D3_4G")
    s = water48()
    old = pot.electrostatics.ewald
    try:
        ref = {}
        for method, precs in ((0, (1e-3, 1e-5, 1e-8, 1e-13)), (1, (1e-2, 1e-4, 1e-6, 1e-10))):
            errs = []
            for eps in precs:
                _with_ewald(pot, method, eps)
                errs.append(pot.compute(s, forces=False).electrostatic_energy)
            ref[method] = errs[-1]
            dev = [abs(e - errs[-1]) for e in errs[:-1]]
            assert dev[0] > dev[1] > dev[2]
            assert dev[2] < 1e-6
        assert ref[0] == pytest.approx(ref[1], abs=1e-9)
    finally:
        pot.electrostatics.ewald = old


def _direct_screening_energy(s, Q, sigma, screening, fpe):
    """1/2 sum_i sum_{(j, n) != (i, 0)} k Q_i Q_j erf(r/(sqrt2 gamma)) (f_s(r) - 1) / r over r < r_out."""
    from hdnnp.model.electrostatics import Screening

    assert isinstance(screening, Screening)
    n = len(Q)
    E = 0.0
    rng = range(-3, 4)
    for i in range(n):
        for j in range(n):
            for n1 in rng:
                for n2 in rng:
                    for n3 in rng:
                        if i == j and n1 == n2 == n3 == 0:
                            continue
                        r = np.linalg.norm(s.positions[j] - s.positions[i] + np.array([n1, n2, n3]) @ s.cell)
                        if r >= screening.r_out:
                            continue
                        g = math.sqrt(2.0 * (sigma[i] ** 2 + sigma[j] ** 2))
                        fm1 = float(screening.minus_one(torch.tensor([r], dtype=torch.float64))[0])
                        E += 0.5 * Q[i] * Q[j] * math.erf(r / g) * fm1 / r / fpe
    return E


def test_screening_in_small_cell_is_a_direct_sum():
    """A cell narrower than r_out: the screening sum counts each self-image pair once (n2p2 counts
    it twice, see hdnnp.model.electrostatics). Checked against a direct image sum: E_elec with
    screening minus E_elec without it."""
    from dataclasses import replace

    pot = potential("H2O_RPBE-D3_4G")
    s0 = water48()
    keep = [k for k in range(12)]  # 4 molecules in a 7-Bohr cell (r_out = 12 Bohr)
    s = Structure(elements=[s0.elements[k] for k in keep], positions=s0.positions[keep],
                  cell=np.diag([9.0, 8.0, 7.5]), charge=0.0)
    el = pot.electrostatics
    p = pot.compute(s, forces=False)
    scr = el.screening
    try:
        el.screening = None
        q = pot.compute(s, forces=False)
    finally:
        el.screening = scr
    # same charges: screening enters the energy, not the Qeq matrix
    np.testing.assert_allclose(q.charges, p.charges, atol=1e-13)
    species = pot.sf_set.species_of(s)
    sigma = el.sigma.numpy()[species]
    direct = _direct_screening_energy(s, p.charges, sigma, replace(scr), el.four_pi_eps)
    assert p.electrostatic_energy - q.electrostatic_energy == pytest.approx(direct, rel=1e-10, abs=1e-14)


def test_nve_energy_conservation(tmp_path):
    """Short NVE run of a 4G molecule: total energy drift small against the kinetic energy."""
    from hdnnp.dynamics.forcefield import HDNNPForceField
    from hdnnp.dynamics.run import MDSettings, run_md

    s = carbon(charged=False)
    ff = HDNNPForceField(potential("Carbon_chain_4G"), length_unit="bohr", energy_unit="hartree")
    atoms = s.to_ase()
    atoms.positions *= 0.52917721067
    settings = MDSettings(steps=200, timestep_fs=0.1, ensemble="nve", temperature_K=300.0, seed=1, plot=False,
                          progress=False)
    run_md(ff, atoms, settings, tmp_path)
    log = np.loadtxt(tmp_path / "thermo.log", comments="#")
    etot, ekin = log[:, 4], log[:, 3]
    assert np.abs(etot - etot[0]).max() < 0.01 * ekin.mean()


@pytest.mark.parametrize("case", ["water-periodic", "carbon-charged-molecule"])
def test_differentiable_path_equals_prediction_path(case):
    """``fourg_energy`` (autograd through the solve: the training path) and the adjoint prediction
    path give the same energy, charges and forces."""
    from hdnnp.model.fourg import ewald_parameters, fourg_energy

    pot = potential("H2O_RPBE-D3_4G" if case.startswith("water") else "Carbon_chain_4G")
    s = water48() if case.startswith("water") else carbon(charged=True)
    p = pot.compute(s)
    species = pot.sf_set.species_of(s)
    nl = pot.sf_set.neighbors(s)
    G = torch.as_tensor(pot.sf_set._run(s, nl, species, 0)[0])
    pos = torch.as_tensor(s.positions).requires_grad_(True)
    cell = None if s.cell is None else torch.as_tensor(s.cell)
    terms = fourg_energy(pot, G, torch.as_tensor(species), pos, cell, s.charge or 0.0, ewald_parameters(pot, s))
    assert float(terms.energy.detach()) + pot.energy_shift(s) == pytest.approx(p.energy, rel=1e-13)
    np.testing.assert_allclose(terms.charges.detach().numpy(), p.charges, atol=1e-12)
    # explicit position dependence only (G held fixed): compare with the full forces minus the SF part
    (g_pos,) = torch.autograd.grad(terms.energy, pos)
    G_leaf = G.clone().requires_grad_(True)
    t2 = fourg_energy(pot, G_leaf, torch.as_tensor(species), pos, cell, s.charge or 0.0, ewald_parameters(pot, s))
    (dEdG,) = torch.autograd.grad(t2.energy, G_leaf)
    from hdnnp.descriptors import kernels as K

    pg = pot.sf_set._run(s, nl, species, 2, np.ascontiguousarray(dEdG.numpy()))[2]
    F_sf, _ = K.forces_from_pair_gradients(len(s), nl.i, nl.j, nl.vectors, pg)
    np.testing.assert_allclose(F_sf - g_pos.numpy(), p.forces, atol=1e-12)


@pytest.mark.parametrize("ex", ["H2O_RPBE-D3_4G", "Carbon_chain_4G"])
def test_length_normalisation_is_consistent(ex, tmp_path):
    """n2p2's normalisation with conv_energy = conv_charge = 1 and only conv_length != 1 changes the
    internal units of Qeq, Ewald parameters and screening but not the physics: same predictions."""
    import shutil

    d = tmp_path / ex
    shutil.copytree(DATA / "potentials" / ex, d)
    with open(d / "input.nn", "a") as fh:
        fh.write("\nmean_energy 0.0\nconv_energy 1.0\nconv_length 1.7\nconv_charge 1.0\n")
    pot_n = Potential.from_n2p2(d)
    s = water48() if ex.startswith("H2O") else carbon(charged=True)
    a, b = potential(ex).compute(s), pot_n.compute(s)
    assert b.energy == pytest.approx(a.energy, rel=1e-13)
    np.testing.assert_allclose(b.forces, a.forces, atol=1e-11)
    np.testing.assert_allclose(b.charges, a.charges, atol=1e-12)
    if s.cell is not None:
        assert (b.ewald.eta, b.ewald.r_cut, b.ewald.k_cut) == pytest.approx((a.ewald.eta, a.ewald.r_cut, a.ewald.k_cut),
                                                                           rel=1e-12)


def test_permutation_invariance():
    pot = potential("H2O_RPBE-D3_4G")
    s = water48()
    p = pot.compute(s)
    perm = np.random.default_rng(5).permutation(len(s))
    q = pot.compute(Structure(elements=[s.elements[k] for k in perm], positions=s.positions[perm], cell=s.cell,
                              charge=0.0))
    assert q.energy == pytest.approx(p.energy, rel=1e-12)
    np.testing.assert_allclose(q.forces, p.forces[perm], atol=1e-10)
    np.testing.assert_allclose(q.charges, p.charges[perm], atol=1e-11)


def test_supercell_with_converged_ewald():
    """A 2x1x1 supercell has twice the energy and the same charges once the Ewald sum is converged
    (with n2p2's parameters, eta and the truncation change with the volume)."""
    pot = potential("H2O_RPBE-D3_4G")
    s = water48()
    pot.ewald_converged = True
    try:
        p = pot.compute(s)
        q = pot.compute(s.repeat((2, 1, 1)))
    finally:
        pot.ewald_converged = False
    assert q.energy == pytest.approx(2 * p.energy, rel=1e-12)
    assert q.electrostatic_energy == pytest.approx(2 * p.electrostatic_energy, rel=1e-8, abs=1e-10)
    np.testing.assert_allclose(q.charges, np.tile(p.charges, 2), atol=1e-10)
    np.testing.assert_allclose(q.forces, np.tile(p.forces, (2, 1)), atol=1e-9)
    np.testing.assert_allclose(q.stress, p.stress, atol=1e-10)
