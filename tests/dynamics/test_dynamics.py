"""Molecular dynamics: integrator, energy conservation, outputs, restart, CLI, prototype entry point.

Cheap force fields keep this fast: the 144-atom Cu2S potential (~0.1 s per call) where the
HDNNP path matters, a force-shifted Lennard-Jones argon cell (~1 ms) elsewhere.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from ase import units
from ase.build import bulk

from hdnnp.dynamics import (
    HDNNPForceField,
    MDSettings,
    MDState,
    VelocityVerlet,
    maxwell_boltzmann_velocities,
    read_restart,
    read_structure,
    read_thermo_log,
    read_traj_data,
    run_md,
    wrap_positions,
)
from hdnnp.dynamics.forcefield import LennardJonesForceField
from hdnnp.dynamics.velocities import degrees_of_freedom, kinetic_energy, temperature

CU2S = "potentials/Cu2S_PBE"


@pytest.fixture(scope="module")
def cu2s(anchors):
    d = anchors / CU2S
    return HDNNPForceField(d), read_structure(d / "input.data"), d


def argon(reps=(2, 2, 2), a=5.26):
    return bulk("Ar", "fcc", a=a, cubic=True).repeat(reps)


def quiet(**kw):
    kw.setdefault("progress", False)
    kw.setdefault("plot", False)
    return MDSettings(**kw)


# --------------------------------------------------------------------- velocities
def test_maxwell_boltzmann_velocities_ks():
    from scipy import stats

    rng = np.random.default_rng(7)
    masses = np.where(np.arange(20000) % 3 == 0, 63.546, 32.06)
    v = maxwell_boltzmann_velocities(masses, 300.0, rng, rescale=False)
    z = (v / np.sqrt(units.kB * 300.0 / masses)[:, None]).ravel()
    res = stats.kstest(z, "norm")
    assert res.pvalue > 0.01, f"KS p = {res.pvalue:.3g}, statistic {res.statistic:.3g}"
    p_total = masses @ v
    assert np.abs(p_total).max() < 1e-9, f"total momentum {p_total}"


def test_initial_velocities_rescaled_to_exact_temperature():
    rng = np.random.default_rng(1)
    masses = np.full(50, 39.948)
    v = maxwell_boltzmann_velocities(masses, 123.0, rng)
    t = temperature(kinetic_energy(masses, v), degrees_of_freedom(50))
    assert abs(t - 123.0) < 1e-10, t
    assert np.abs(masses @ v).max() < 1e-12


# --------------------------------------------------------------------- integrator
def test_velocity_verlet_is_the_thesis_scheme():
    """r += v dt + F/(2m) dt^2; v += (F(t) + F(t+dt))/(2m) dt, one force call per step."""
    atoms = argon()
    atoms.rattle(0.05, seed=3)
    ff = LennardJonesForceField()
    m = atoms.get_masses()
    v0 = maxwell_boltzmann_velocities(m, 80.0, np.random.default_rng(0))
    state = MDState(atoms.get_chemical_symbols(), atoms.positions.copy(), v0.copy(), m, np.array(atoms.cell))
    vv = VelocityVerlet(ff, 4.0, wrap=False)
    vv.initialize(state)
    f0 = state.result.forces.copy()
    r0 = state.positions.copy()
    vv.step(state)
    dt = 4.0 * units.fs
    r1 = r0 + v0 * dt + f0 / (2 * m[:, None]) * dt ** 2
    f1 = ff.compute(state.elements, r1, state.cell).forces
    v1 = v0 + (f0 + f1) / (2 * m[:, None]) * dt
    assert np.abs(state.positions - r1).max() < 1e-13
    assert np.abs(state.velocities - v1).max() < 1e-13
    assert ff.n_calls == 3 and state.step == 1 and state.time_fs == 4.0


def test_wrap_positions_leaves_inside_atoms_unchanged():
    cell = np.array([[4.0, 0, 0], [1.0, 5.0, 0], [0.5, 0.3, 6.0]])
    rng = np.random.default_rng(0)
    inside = rng.random((20, 3)) @ cell
    pos = inside.copy()
    pos[3] += cell[0] * 2 - cell[2]
    pos[7] -= cell[1]
    out = wrap_positions(pos, cell)
    keep = np.ones(20, bool)
    keep[[3, 7]] = False
    assert np.array_equal(out[keep], pos[keep])
    assert np.abs(out - inside).max() < 1e-12


# --------------------------------------------------------------------- NVE
def test_nve_energy_conservation_cu2s(cu2s, tmp_path):
    ff, atoms, _ = cu2s
    r = run_md(ff, atoms, quiet(steps=40, timestep_fs=2.0, temperature_K=300.0, seed=1, write_every=100), tmp_path)
    th = read_thermo_log(tmp_path / "thermo.log")
    n = len(atoms)
    dev = np.abs(th["etot_eV"] - th["etot_eV"][0]).max() / n
    # velocity Verlet at 2 fs: E_tot oscillates by ~4e-5 eV/atom around a constant (no drift)
    assert dev < 1e-4, f"max |E(t)-E(0)| = {dev:.3g} eV/atom > 1e-4 (80 fs NVE at 2 fs)"
    assert abs(th["etot_eV"][-1] - th["etot_eV"][0]) / n < 1e-4
    assert th["epot_eV"].std() > 50 * dev  # the energy does move between kinetic and potential
    assert r.timings.steps == 40 and np.array_equal(th["econs_eV"], th["etot_eV"])


def test_nve_energy_conservation_water_bohr_hartree(anchors, tmp_path):
    """The 1080-atom H2O_RPBE-D3 box (Bohr/Hartree potential) at 0.5 fs: 20 steps in CI
    (bench/bench_md.py runs 1 ps and fits the drift)."""
    from hdnnp.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

    d = anchors / "potentials/H2O_RPBE-D3"
    ff = HDNNPForceField(d, length_unit="bohr", energy_unit="hartree")
    atoms = read_structure(d / "input.data", BOHR_TO_ANGSTROM, HARTREE_TO_EV)
    run_md(ff, atoms, quiet(steps=20, timestep_fs=0.5, temperature_K=300.0, seed=2, write_every=100), tmp_path)
    th = read_thermo_log(tmp_path / "thermo.log")
    n = len(atoms)
    dev = np.abs(th["etot_eV"] - th["etot_eV"][0]).max() / n
    # Verlet oscillation: ~1e-5 RMS, 3.5e-5 max over 1 ps in bench_md (no drift)
    assert dev < 5e-5, f"max |E(t)-E(0)| = {dev:.3g} eV/atom over 10 fs at 0.5 fs"
    assert np.ptp(th["epot_eV"]) / n > 10 * dev


def test_nve_energy_error_scales_as_dt_squared(tmp_path):
    atoms = argon()
    ff = LennardJonesForceField()
    devs = []
    for dt in (10.0, 5.0):
        s = quiet(steps=int(2000 / dt), timestep_fs=dt, temperature_K=60.0, seed=4, write_every=10 ** 6)
        run_md(ff, atoms, s, tmp_path / f"dt{dt}")
        e = read_thermo_log(tmp_path / f"dt{dt}" / "thermo.log")["etot_eV"]
        devs.append(np.abs(e - e[0]).max() / len(atoms))
    ratio = devs[0] / devs[1]
    assert 3.0 < ratio < 5.5, f"energy error ratio for dt 10 fs / 5 fs = {ratio:.2f}, expected ~4 ({devs})"
    assert devs[1] < 1e-4


# --------------------------------------------------------------------- outputs
def test_outputs_roundtrip_through_ase(cu2s, tmp_path):
    import ase.io

    ff, atoms, _ = cu2s
    r = run_md(ff, atoms, quiet(steps=4, timestep_fs=1.0, temperature_K=300.0, seed=2, write_every=2, plot=True),
               tmp_path)
    frames = ase.io.read(tmp_path / "trajectory.extxyz", ":")
    traj = read_traj_data(tmp_path / "traj.data")
    assert [s for s, _ in traj] == [0, 2, 4] == [f.info["step"] for f in frames]
    for (_, pos), fr in zip(traj, frames):
        assert pos.shape == (len(atoms), 3)
        assert np.abs(fr.positions - pos).max() < 1e-7
        assert fr.get_chemical_symbols() == atoms.get_chemical_symbols()
        assert np.abs(np.array(fr.cell) - np.array(atoms.cell)).max() < 1e-7
        assert abs(fr.get_potential_energies().sum() - fr.get_potential_energy()) < 1e-6
        assert fr.get_stress().shape == (6,)
    last = frames[-1]
    st = r.state
    assert np.abs(last.get_velocities() - st.velocities).max() < 1e-7
    assert np.abs(last.get_forces() - st.result.forces).max() < 1e-7
    assert abs(last.get_potential_energy() - st.result.energy) < 1e-6
    header = (tmp_path / "thermo.log").read_text().splitlines()[0].split()
    for col in ("step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "temperature_K", "pressure_GPa", "n_extrap"):
        assert col in header, header
    assert (tmp_path / "thermo.png").stat().st_size > 1000
    assert (tmp_path / "md.json").is_file()


# --------------------------------------------------------------------- restart
@pytest.mark.parametrize("ensemble", ["langevin", "langevin-ase", "bussi", "nose-hoover", "npt-berendsen",
                                      "npt-crescale"])
def test_restart_continues_bit_identically_lj(ensemble, tmp_path):
    atoms = argon()
    ff = LennardJonesForceField()
    kw = dict(timestep_fs=5.0, ensemble=ensemble, temperature_K=70.0, seed=11, write_every=5, tau_fs=50.0)
    run_md(ff, atoms, quiet(steps=40, **kw), tmp_path / "one")
    run_md(ff, atoms, quiet(steps=25, **kw), tmp_path / "two")
    run_md(ff, None, quiet(steps=15, **kw), tmp_path / "two", restart=tmp_path / "two" / "restart.npz")
    a, _, ma = read_restart(tmp_path / "one" / "restart.npz")
    b, _, mb = read_restart(tmp_path / "two" / "restart.npz")
    assert a.step == b.step == 40
    for name in ("positions", "velocities"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.cell, b.cell)
    assert ma["rng_state"] == mb["rng_state"] and ma["thermostat"] == mb["thermostat"]
    for f in ("thermo.log", "traj.data", "trajectory.extxyz"):
        assert (tmp_path / "one" / f).read_text() == (tmp_path / "two" / f).read_text(), f


def test_restart_continues_bit_identically_cu2s(cu2s, tmp_path):
    ff, atoms, _ = cu2s
    kw = dict(timestep_fs=2.0, temperature_K=300.0, seed=5, write_every=2)
    run_md(ff, atoms, quiet(steps=4, **kw), tmp_path / "one")
    run_md(ff, atoms, quiet(steps=2, **kw), tmp_path / "two")
    run_md(ff, None, quiet(steps=2, **kw), tmp_path / "two", restart=tmp_path / "two" / "restart.npz")
    a, _, _ = read_restart(tmp_path / "one" / "restart.npz")
    b, _, _ = read_restart(tmp_path / "two" / "restart.npz")
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.velocities, b.velocities)
    assert (tmp_path / "one" / "thermo.log").read_text() == (tmp_path / "two" / "thermo.log").read_text()


def test_restart_file_has_no_pickles(tmp_path):
    run_md(LennardJonesForceField(), argon(), quiet(steps=1, timestep_fs=5.0, temperature_K=50.0, seed=0), tmp_path)
    with np.load(tmp_path / "restart.npz", allow_pickle=False) as z:
        assert {"positions", "velocities", "cell", "masses", "numbers", "forces", "meta"} <= set(z.files)
        assert all(z[k].dtype != object for k in z.files)


# --------------------------------------------------------------------- extrapolation
def test_extrapolation_warnings_counted_and_limit_at_start(cu2s, tmp_path, caplog):
    ff, atoms, _ = cu2s
    squeezed = atoms.copy()
    squeezed.set_cell(np.array(atoms.cell) * 0.9, scale_atoms=True)  # denser than any training structure
    with caplog.at_level(logging.WARNING, logger="hdnnp"):
        r = run_md(ff, squeezed, quiet(steps=2, timestep_fs=1.0), tmp_path)
    th = read_thermo_log(tmp_path / "thermo.log")
    assert np.all(th["n_extrap"] > 100) and th["n_extrap_total"][-1] == th["n_extrap"].sum()
    assert r.n_extrapolations_total == th["n_extrap"].sum() and r.stopped_reason is None
    printed = sum("EXTRAPOLATION WARNING" in m for m in caplog.messages)
    assert 0 < printed <= 10, printed  # only the first call's messages are printed
    r = run_md(ff, squeezed, quiet(steps=5, timestep_fs=1.0, max_extrapolation_warnings=0), tmp_path)
    assert r.stopped_reason and "extrapolation" in r.stopped_reason and r.state.step == 0


class _CountingForceField(LennardJonesForceField):
    """LJ that reports ``n_calls - 1`` extrapolation warnings (step k reports k)."""

    def compute(self, *args, **kw):
        res = super().compute(*args, **kw)
        res.n_extrapolations = self.n_calls - 1
        return res


def test_stop_after_max_extrapolation_warnings_per_step(tmp_path):
    r = run_md(_CountingForceField(), argon(), quiet(steps=10, timestep_fs=5.0, temperature_K=50.0, seed=0,
                                                     write_every=100, max_extrapolation_warnings=3), tmp_path)
    assert r.state.step == 4 and r.stopped_reason.startswith("step 4: 4 extrapolation warnings")
    th = read_thermo_log(tmp_path / "thermo.log")
    assert list(th["n_extrap"]) == [0, 1, 2, 3, 4] and th["n_extrap_total"][-1] == 10
    assert [s for s, _ in read_traj_data(tmp_path / "traj.data")] == [0, 4]  # the last frame is kept
    assert read_restart(tmp_path / "restart.npz")[0].step == 4


# --------------------------------------------------------------------- CLI and prototype
@pytest.mark.parametrize("ensemble", ["langevin", "langevin-ase"])
def test_cli_md_langevin(ensemble, cu2s, tmp_path):
    from hdnnp.cli import main

    _, _, d = cu2s
    out = tmp_path / "md"
    rc = main(["md", str(d), str(d / "input.data"), "--steps", "3", "--timestep-fs", "1", "--ensemble",
               ensemble, "--temperature-K", "300", "--seed", "3", "--write-every", "1", "-o", str(out),
               "--no-progress"])
    assert rc == 0
    for f in ("traj.data", "trajectory.extxyz", "thermo.log", "thermo.png", "restart.npz", "md.json"):
        assert (out / f).is_file(), f
    assert len(read_traj_data(out / "traj.data")) == 4


def test_cli_md_user_errors(cu2s, tmp_path, capsys):
    from hdnnp.cli import main

    _, _, d = cu2s
    rc = main(["md", str(d), str(d / "input.data"), "--steps", "3", "--timestep-fs", "1", "--ensemble",
               "nose-hoover", "-o", str(tmp_path)])
    assert rc == 1 and "--temperature-K" in capsys.readouterr().err
    rc = main(["md", str(d), str(tmp_path / "missing.xyz"), "--steps", "3", "--timestep-fs", "1"])
    assert rc == 1 and "not found" in capsys.readouterr().err


def test_prototype_molecular_dynamics(cu2s, tmp_path):
    from hdnnp import molecular_dynamics

    _, _, d = cu2s
    (tmp_path / "control.in").write_text(
        f"""# prototype MD input
model_path        {d}
atomic_data_path  {d / 'input.data'}
iterations        3
timestep          1.0
length_unit       Ang
atom_type_1 S 16 32.06 S-SymFunc.smf
atom_type_2 Cu 29 63.546 Cu-SymFunc.smf
""")
    r = molecular_dynamics(tmp_path / "control.in", progress=False)
    frames = read_traj_data(tmp_path / "traj.data")
    assert [s for s, _ in frames] == [0, 1, 2, 3]
    assert all(p.shape == (144, 3) for _, p in frames)
    assert r.state.step == 3
    assert np.all(r.state.velocities[0] != 0.0)  # started at rest, forces moved it
