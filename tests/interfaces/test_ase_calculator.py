"""``hdnnp.ase.HDNNPCalculator``: finite differences, units at the boundary, n2p2 reference."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from types import SimpleNamespace

from hdnnp import units as hdnnp_units

#: n2p2's Bohr and Hartree (the factors LAMMPS users give pair_style hdnnp)
units = SimpleNamespace(Bohr=hdnnp_units.BOHR_TO_ANGSTROM, Hartree=hdnnp_units.HARTREE_TO_EV)
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from hdnnp.ase import HDNNPCalculator
from hdnnp.dynamics import read_structure

CU2S = "potentials/Cu2S_PBE"
H2O = "potentials/H2O_RPBE-D3"


@pytest.fixture(scope="module")
def cu2s_atoms(anchors):
    d = anchors / CU2S
    atoms = read_structure(d / "input.data")
    atoms.rattle(0.05, seed=1)  # off the reference geometry, all stress components non-zero
    atoms.calc = HDNNPCalculator(d)
    return atoms


def water_cluster(anchors, n_molecules=10):
    """The first molecules of the water box as a non-periodic cluster, in Å."""
    d = anchors / H2O
    atoms = read_structure(d / "input.data", length_factor=units.Bohr, energy_factor=units.Hartree)
    cluster = atoms[: 3 * n_molecules]
    cluster.pbc = False
    cluster.cell = None
    return cluster


def test_hdnnp_ase_module_does_not_shadow_ase():
    import ase
    import ase.io

    import hdnnp.ase

    assert hdnnp.ase.HDNNPCalculator is HDNNPCalculator
    assert "hdnnp" not in ase.__file__ and hasattr(ase.io, "read")


def test_forces_match_finite_differences(cu2s_atoms):
    f = cu2s_atoms.get_forces()[[5]]
    errs = [np.abs(calculate_numerical_forces(cu2s_atoms, eps=h, iatoms=[5]) - f).max() for h in (1e-2, 5e-3)]
    # central differences: error ~ h^2 (ratio 4 when h halves) and small
    assert errs[1] < 2e-4 and errs[0] / errs[1] > 3.0, f"FD force errors {errs} eV/Å (h = 1e-2, 5e-3 Å)"


def test_stress_matches_energy_derivative_under_strain(cu2s_atoms):
    """stress = (1/V) dE/d(strain), all six components, from the Potential's virial."""
    s = cu2s_atoms.get_stress()
    assert s.shape == (6,) and np.abs(s[3:]).min() > 1e-4
    errs = [np.abs(calculate_numerical_stress(cu2s_atoms, eps=h) - s).max() for h in (1e-4, 5e-5)]
    assert errs[1] < 1e-8 and errs[0] / errs[1] > 3.0, f"FD stress errors {errs} eV/Å^3 (strain 1e-4, 5e-5)"


def test_energies_sum_to_energy(cu2s_atoms):
    e = cu2s_atoms.get_potential_energy()
    ea = cu2s_atoms.get_potential_energies()
    assert ea.shape == (len(cu2s_atoms),)
    assert abs(ea.sum() - e) < 1e-9 * abs(e)
    assert cu2s_atoms.calc.get_property("free_energy") == e


def test_bohr_hartree_potential_gives_ev_per_angstrom(anchors):
    """The whole 1080-atom water box against nnp-predict (Hartree/Bohr) converted to eV/Å."""
    d = anchors / H2O
    ref = np.loadtxt(anchors / "predict" / "H2O_RPBE-D3" / "nnforces.out", comments="#")[:, 5:8]
    e_ref = np.loadtxt(anchors / "predict" / "H2O_RPBE-D3" / "energy.out", comments="#", ndmin=2)[0, 3]
    atoms = read_structure(d / "input.data", length_factor=units.Bohr, energy_factor=units.Hartree)
    atoms.calc = HDNNPCalculator(d, length_unit="bohr", energy_unit="hartree")
    f = atoms.get_forces()
    f_ref = ref * units.Hartree / units.Bohr
    err = np.abs(f - f_ref).max()
    assert err < 1e-9, f"max |F - F_n2p2| = {err:.3g} eV/Å"
    assert abs(atoms.get_potential_energy() - e_ref * units.Hartree) < 1e-8 * abs(e_ref * units.Hartree)
    assert atoms.calc.units.length_factor == units.Bohr


def test_units_from_input_nn_keywords_and_assumed_default(anchors, tmp_path, caplog):
    d = tmp_path / "h2o"
    shutil.copytree(anchors / H2O, d, ignore=shutil.ignore_patterns("input.data"))
    cluster = water_cluster(anchors)
    explicit = HDNNPCalculator(d, length_unit="bohr", energy_unit="hartree")
    f_explicit = explicit.get_forces(cluster)
    with caplog.at_level(logging.WARNING, logger="hdnnp"):
        plain = HDNNPCalculator(d)
    assert plain.units.source == "assumed" and plain.units.length_unit == "angstrom"
    assert any("declares no" in m for m in caplog.messages)
    assert np.abs(plain.get_forces(cluster) - f_explicit).max() > 1e-3  # wrong units -> other forces
    with open(d / "input.nn", "a") as fh:
        fh.write("hdnnp_length_unit bohr\nhdnnp_energy_unit hartree\n")
    declared = HDNNPCalculator(d)
    assert declared.units.source == "input.nn"
    assert np.array_equal(declared.get_forces(cluster), f_explicit)
    assert declared.get_potential_energy(cluster) == explicit.get_potential_energy(cluster)


def test_stress_needs_a_periodic_structure(anchors):
    cluster = water_cluster(anchors, 2)
    cluster.calc = HDNNPCalculator(anchors / H2O, length_unit="bohr", energy_unit="hartree")
    assert np.isfinite(cluster.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()
    cluster.pbc = [True, False, False]
    cluster.cell = [20.0, 20.0, 20.0]
    with pytest.raises(ValueError, match="periodicity in all three"):
        cluster.get_potential_energy()
