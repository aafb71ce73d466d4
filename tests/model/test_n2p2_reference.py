"""hdnnp reproduces n2p2 v2.3.0 (energies 1e-10 relative, forces 1e-8 absolute, SFs 1e-10).

Reference files: tests/data/n2p2 (nnp-predict, nnp-dataset and an SF dump of n2p2 v2.3.0; see its README).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_potential

from hdnnp.io.n2p2_data import read_input_data

E_REL = 1e-10
F_ABS = 1e-8


@pytest.mark.parametrize("example", ["H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"])
def test_predict_first_structure(anchors, example):
    pot = load_potential(anchors / "potentials" / example)
    s = read_input_data(anchors / "potentials" / example / "input.data")[0]
    r = pot.compute(s)
    e_ref = np.loadtxt(anchors / "predict" / example / "energy.out")[3]
    f_ref = np.loadtxt(anchors / "predict" / example / "nnforces.out")[:, 5:8]
    a_ref = np.loadtxt(anchors / "predict" / example / "nnatoms.out")[:, 6]
    rel = abs(r.energy - e_ref) / abs(e_ref)
    assert rel < E_REL, f"energy {r.energy!r} vs n2p2 {e_ref!r}: relative error {rel:.2e} > {E_REL}"
    ferr = np.abs(r.forces - f_ref).max()
    assert ferr < F_ABS, f"max force error {ferr:.2e} > {F_ABS}"
    aerr = np.abs(r.atomic_energies - a_ref).max()
    assert aerr < 1e-10, f"max atomic-energy error {aerr:.2e}"
    assert r.n_extrapolations == 0


@pytest.mark.parametrize("example", ["H2O_RPBE-D3", "Cu2S_PBE"])
def test_dataset_all_structures(anchors, example):
    pot = load_potential(anchors / "potentials" / example)
    structures = read_input_data(anchors / "dataset" / example / "input.data")
    refs = read_input_data(anchors / "dataset" / example / "output.data")
    assert len(structures) == len(refs) == 20
    worst_e = worst_f = 0.0
    for s, ref in zip(structures, refs):
        r = pot.compute(s, stress=False)
        worst_e = max(worst_e, abs(r.energy - ref.energy) / abs(ref.energy))
        worst_f = max(worst_f, np.abs(r.forces - ref.forces).max())
    assert worst_e < E_REL, f"worst relative energy error {worst_e:.2e}"
    assert worst_f < F_ABS, f"worst force error {worst_f:.2e}"


@pytest.mark.parametrize("example", ["H2O_RPBE-D3", "Cu2S_PBE"])
def test_symmetry_function_dump(anchors, example):
    """Raw G, scaled G, dE/dG (physical energy per scaled G) and atomic energies of sf-dump."""
    pot = load_potential(anchors / "potentials" / example)
    s = read_input_data(anchors / "potentials" / example / "input.data")[0]
    desc = pot.sf_set.compute(s)
    ref = np.loadtxt(anchors / "sf-dump" / example / "sf-values.out", usecols=(0, 2, 3, 4, 5))
    atom = ref[:, 0].astype(int) - 1
    sf = ref[:, 1].astype(int) - 1
    g_raw = desc.G[atom, sf]
    err = np.abs(g_raw - ref[:, 2]).max()
    assert err < 1e-10, f"raw G max error {err:.2e}"
    # scaled G and dE/dG_scaled through the networks
    scaled = np.zeros_like(g_raw)
    dEdGs = np.zeros_like(g_raw)
    species = desc.species
    for k, e in enumerate(pot.elements):
        idx = np.flatnonzero(species == k)
        n = pot.sf_set.n_sf[e]
        sc = pot.scalings[e]
        gs = torch.tensor(sc.apply(desc.G[idx, :n]), requires_grad=True)
        (grad,) = torch.autograd.grad(pot.networks[e](gs).sum() / pot.conv_energy, gs)
        full_s = np.zeros((len(s), n))
        full_d = np.zeros((len(s), n))
        full_s[idx] = gs.detach().numpy()
        full_d[idx] = grad.numpy()
        rows = species[atom] == k
        scaled[rows] = full_s[atom[rows], sf[rows]]
        dEdGs[rows] = full_d[atom[rows], sf[rows]]
    err_s = np.abs(scaled - ref[:, 3]).max()
    err_d = np.abs(dEdGs - ref[:, 4]).max()
    assert err_s < 1e-10, f"scaled G max error {err_s:.2e}"
    assert err_d < 1e-10, f"dE/dG max error {err_d:.2e}"
    e_atoms = np.loadtxt(anchors / "sf-dump" / example / "atomic-energies.out", usecols=(2, 3, 4, 5))
    r = pot.compute(s)
    assert np.abs(r.atomic_energies - e_atoms[:, 0]).max() < 1e-10
    assert np.abs(r.forces - e_atoms[:, 1:]).max() < F_ABS
    total = float(open(anchors / "sf-dump" / example / "total-energy.out").read().split()[0])
    assert abs(r.energy - total) / abs(total) < E_REL


def test_sf_order_matches_n2p2(anchors):
    """Our sorted order equals n2p2's sf-params.out (input.nn line of each SF)."""
    for example in ["H2O_RPBE-D3", "Cu2S_PBE"]:
        pot = load_potential(anchors / "potentials" / example)
        current = None
        ref: dict[str, list[int]] = {}
        for line in open(anchors / "sf-dump" / example / "sf-params.out"):
            if line.startswith("# element"):
                current = line.split()[3]
                ref[current] = []
            elif not line.startswith("#") and line.strip():
                ref[current].append(int(line.split()[-1]))
        for e in pot.elements:
            ours = [sf.line for sf in pot.sf_set.functions[e]]
            assert ours == ref[e], f"{example} {e}: SF order differs from n2p2"


@pytest.mark.parametrize("example", ["DMABN_SCAN", "Ethylbenzene_SCAN"])
def test_other_potentials_load_and_predict(anchors, example):
    """No n2p2 answers given: check that they load, give finite results and exact forces."""
    from hdnnp.testing import central_difference_forces

    pot = load_potential(anchors / "potentials" / example)
    s = read_input_data(anchors / "potentials" / example / "input.data")[0]
    r = pot.compute(s)
    assert np.isfinite(r.energy) and np.isfinite(r.forces).all()
    fd = central_difference_forces(lambda x: pot.compute(x, forces=False).energy, s, [0, len(s) - 1], 1e-4)
    err = np.abs(fd - r.forces[[0, len(s) - 1]]).max()
    assert err < 1e-6, f"finite-difference force error {err:.2e}"
