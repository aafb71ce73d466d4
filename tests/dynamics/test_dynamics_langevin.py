"""``LangevinIntegrator`` (ensemble ``langevin-ase``): step for step bit-identical to ASE's
``ase.md.langevin.Langevin`` (with and without ``FixCom``), the temperature it reaches under
``hdnnp md``, and its heat bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.constraints import FixCom
from ase.md.langevin import Langevin

from hdnnp.dynamics import (ASECalculatorForceField, LangevinASE, LangevinIntegrator, MDSettings, MDState,
                            ase_thermal_velocities, read_thermo_log, run_md)


def _cual():
    a = bulk("Cu", "fcc", a=3.70, cubic=True).repeat((2, 1, 1))
    a.symbols[[1, 4, 6]] = "Al"
    a.rattle(0.03, seed=11)
    return a


def _cluster():
    a = Icosahedron("Cu", 2)
    a.symbols[[0, 3]] = "Al"
    a.rattle(0.02, seed=5)
    a.pbc = False
    return a


@pytest.mark.parametrize("system,fix_com", [("cual", True), ("cluster", True), ("cual", False)])
def test_fifty_steps_bitwise_equal_to_ase_langevin(system, fix_com):
    atoms = _cual() if system == "cual" else _cluster()
    periodic = bool(atoms.pbc.all())
    temperature_K, dt_fs, friction_per_fs, steps = 700.0, 2.0, 0.05, 50
    v0 = ase_thermal_velocities(atoms, temperature_K, np.random.default_rng(1), fix_com=fix_com,
                                zero_rotation=not periodic)
    # ASE: the loop hdnnp sample ran before it moved onto hdnnp.dynamics
    ref = atoms.copy()
    ref.set_constraint(FixCom() if fix_com else None)
    ref.set_velocities(v0)
    ref.calc = EMT()
    dyn = Langevin(ref, dt_fs * units.fs, temperature_K=temperature_K, friction=friction_per_fs / units.fs,
                   fixcm=False, rng=np.random.default_rng(2))
    # ours
    state = MDState(elements=list(atoms.get_chemical_symbols()), positions=atoms.positions.copy(),
                    velocities=ref.get_velocities(), masses=atoms.get_masses(),
                    cell=np.array(atoms.cell) if periodic else None)
    integ = LangevinIntegrator(ASECalculatorForceField(EMT(), atoms=atoms), dt_fs,
                               LangevinASE(temperature_K, friction_per_fs, fix_com=fix_com),
                               np.random.default_rng(2), wrap=False, stress=False)
    integ.initialize(state)
    moved = 0.0
    for k in range(steps):
        dyn.run(1)
        integ.step(state)
        for name, ours, theirs in (("positions", state.positions, ref.positions),
                                   ("velocities", state.velocities, ref.get_velocities()),
                                   ("forces", state.result.forces, ref.get_forces(apply_constraint=False))):
            assert np.array_equal(ours, theirs), (
                f"step {k + 1}: {name} differ from ASE's Langevin by {np.abs(ours - theirs).max():.3e}")
        moved = max(moved, float(np.abs(state.positions - atoms.positions).max()))
    assert moved > 0.05, f"atoms moved only {moved:.3f} A in {steps} steps"
    if fix_com:
        m = state.masses
        assert np.allclose(m @ state.positions / m.sum(), m @ atoms.positions / m.sum(), atol=1e-12)
        assert np.abs(m @ state.velocities).max() < 1e-12


def test_md_langevin_ase_reaches_the_target_temperature_emt(tmp_path):
    """``run_md`` with ensemble langevin-ase on 32-atom EMT copper: <T> (N_f = 3N - 3) within 5 % of
    the target (seeds 0-5 gave 495.6-512.3 K), total momentum zero, and E_tot plus the heat given to
    the bath conserved (tests/dynamics/test_dynamics_thermostats.py checks the canonical statistics on LJ)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    target = 500.0
    s = MDSettings(steps=800, timestep_fs=4.0, ensemble="langevin-ase", temperature_K=target, seed=7,
                   friction_per_fs=0.05, write_every=500, progress=False, plot=False)
    r = run_md(ASECalculatorForceField(EMT()), atoms, s, tmp_path)
    d = read_thermo_log(tmp_path / "thermo.log")
    t = d["temperature_K"][200:]
    assert r.state.step == 800
    assert abs(t.mean() / target - 1.0) < 0.05, f"<T> = {t.mean():.1f} K, target {target} K"
    assert np.abs(r.state.masses @ r.state.velocities).max() < 1e-10
    drift = np.ptp(d["econs_eV"]) / len(atoms)
    assert drift < 0.02 * np.ptp(d["etot_eV"]) / len(atoms), (
        f"econs moved {drift:.2e} eV/atom, E_tot {np.ptp(d['etot_eV']) / len(atoms):.2e}")
