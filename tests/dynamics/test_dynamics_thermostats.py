"""Thermostats and barostat: canonical averages and fluctuations, Maxwell-Boltzmann velocities,
conserved quantities. Driven through the same ``run_md`` path as the HDNNP, with a cheap
force-shifted Lennard-Jones argon cell (32 atoms, ~1 ms per step) so that runs of a few
thousand steps give meaningful statistics.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk

from hdnnp.dynamics import MDSettings, read_thermo_log, run_md
from hdnnp.dynamics.forcefield import ASECalculatorForceField, LennardJonesForceField

T0 = 60.0  # K: solid LJ argon
STEPS = 2400
EQUIL = 400
DT_FS = 5.0


def argon(a=5.26):
    return bulk("Ar", "fcc", a=a, cubic=True).repeat((2, 2, 2))


_RUNS: dict = {}


def thermostat_run(ensemble, tmp_path_factory):
    if ensemble not in _RUNS:
        out = tmp_path_factory.mktemp(ensemble)
        s = MDSettings(steps=STEPS, timestep_fs=DT_FS, ensemble=ensemble, temperature_K=T0, seed=2024,
                       tau_fs=100.0, friction_per_fs=0.01, write_every=50, progress=False, plot=False)
        run_md(LennardJonesForceField(), argon(), s, out)
        _RUNS[ensemble] = out
    return _RUNS[ensemble]


def block_error(x, n_blocks=10):
    b = x[: len(x) // n_blocks * n_blocks].reshape(n_blocks, -1).mean(axis=1)
    return b.std(ddof=1) / np.sqrt(n_blocks)


@pytest.mark.parametrize("ensemble,n_dof", [("langevin", 96), ("langevin-ase", 93), ("bussi", 93),
                                           ("nose-hoover", 93)])
def test_canonical_temperature_mean_and_fluctuation(ensemble, n_dof, tmp_path_factory):
    d = read_thermo_log(thermostat_run(ensemble, tmp_path_factory) / "thermo.log")
    t = d["temperature_K"][EQUIL:]
    err = block_error(t)
    assert abs(t.mean() - T0) < 4 * err + 0.5, f"<T> = {t.mean():.2f} K, target {T0} ± {4 * err:.2f} (4 block errors)"
    # canonical kinetic-energy fluctuations: std(T) = T sqrt(2 / N_f)
    expected = T0 * np.sqrt(2.0 / n_dof)
    assert abs(t.std() / expected - 1.0) < 0.2, f"std(T) = {t.std():.2f} K, canonical {expected:.2f} K"


@pytest.mark.parametrize("ensemble", ["langevin", "langevin-ase", "bussi", "nose-hoover"])
def test_conserved_quantity(ensemble, tmp_path_factory):
    d = read_thermo_log(thermostat_run(ensemble, tmp_path_factory) / "thermo.log")
    drift = abs(d["econs_eV"][-1] - d["econs_eV"][0]) / 32
    moved = np.ptp(d["etot_eV"]) / 32
    assert drift < 2e-5, f"conserved quantity drifted {drift:.2e} eV/atom in {STEPS * DT_FS / 1000} ps"
    assert moved > 50 * drift  # while the thermostat moves E_tot by much more


@pytest.mark.parametrize("ensemble", ["langevin", "langevin-ase", "bussi"])
def test_velocities_are_maxwell_boltzmann(ensemble, tmp_path_factory):
    import ase.io
    from scipy import stats

    frames = ase.io.read(thermostat_run(ensemble, tmp_path_factory) / "trajectory.extxyz", ":")
    frames = [f for f in frames if f.info["step"] >= EQUIL]
    m = frames[0].get_masses()
    z = np.concatenate([(f.get_velocities() / np.sqrt(units.kB * T0 / m)[:, None]).ravel() for f in frames])
    res = stats.kstest(z, "norm")
    assert len(z) > 3000 and res.pvalue > 1e-3, f"KS against N(0, kT/m): p = {res.pvalue:.3g}, D = {res.statistic:.3g}"


def test_berendsen_thermostat_suppresses_fluctuations(tmp_path_factory):
    d = read_thermo_log(thermostat_run("berendsen", tmp_path_factory) / "thermo.log")
    t = d["temperature_K"][EQUIL:]
    assert abs(t.mean() - T0) < 1.5
    assert t.std() < 0.7 * T0 * np.sqrt(2.0 / 93)  # the known defect of weak coupling


@pytest.mark.parametrize("ensemble", ["npt-berendsen", "npt-crescale"])
@pytest.mark.parametrize("target_GPa", [0.0, 0.5])
def test_barostat_reaches_target_pressure(ensemble, target_GPa, tmp_path):
    s = MDSettings(steps=1200, timestep_fs=DT_FS, ensemble=ensemble, temperature_K=T0, seed=1,
                   pressure_GPa=target_GPa, barostat_tau_fs=500.0, compressibility_per_GPa=0.3,
                   write_every=10 ** 6, progress=False, plot=False)
    run_md(LennardJonesForceField(), argon(a=5.0), s, tmp_path)  # starts compressed, ~0.95 GPa
    d = read_thermo_log(tmp_path / "thermo.log")
    p = d["pressure_GPa"][-400:]
    assert d["pressure_GPa"][0] > 0.9
    assert abs(p.mean() - target_GPa) < 0.03, f"<P> = {p.mean():.3f} GPa, target {target_GPa}"
    assert d["volume_A3"][-1] > d["volume_A3"][0]


def test_langevin_with_an_ase_calculator(tmp_path):
    """Any ASE calculator drives the same integrator (EMT copper, short)."""
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    s = MDSettings(steps=150, timestep_fs=5.0, ensemble="langevin", temperature_K=500.0, seed=3,
                   friction_per_fs=0.05, write_every=50, progress=False, plot=False)
    r = run_md(ASECalculatorForceField(EMT()), atoms, s, tmp_path)
    d = read_thermo_log(tmp_path / "thermo.log")
    assert r.state.step == 150 and 250 < d["temperature_K"][50:].mean() < 750
    assert np.all(np.isfinite(d["pressure_GPa"]))


class _IdealGas:
    """No interactions: the pressure is the kinetic term alone."""

    def compute(self, elements, positions, cell, stress=True, forces=True):
        from hdnnp.dynamics.forcefield import ForceResult

        n = len(elements)
        return ForceResult(energy=0.0, forces=np.zeros((n, 3)), stress=np.zeros((3, 3)) if cell is not None else None,
                           energies=np.zeros(n))


def test_crescale_barostat_samples_the_ideal_gas_volume_distribution(tmp_path):
    """Bussi + C-rescale on 32 non-interacting atoms: the NPT volume distribution of an ideal gas of
    N atoms with fixed centre of mass is V^N exp(-P V / kT): mean (N+1) kT/P, variance (N+1) (kT/P)^2.
    Berendsen relaxes to the same mean pressure but suppresses the fluctuations."""
    n, T, P = 32, 300.0, 0.01  # K, GPa
    kT_over_P = units.kB * T / (P * units.GPa)  # Å^3
    box = (n * kT_over_P) ** (1 / 3)
    gas = argon()
    gas.set_cell(np.eye(3) * box, scale_atoms=True)
    out = {}
    for ens, steps in (("npt-crescale", 100000), ("npt-berendsen", 20000)):
        # dt 1 fs: with beta = 1/P (an ideal gas) the volume moves ~1 % per fs; larger steps bias the variance
        s = MDSettings(steps=steps, timestep_fs=1.0, ensemble=ens, temperature_K=T, seed=11, tau_fs=100.0,
                       pressure_GPa=P, barostat_tau_fs=500.0, compressibility_per_GPa=1.0 / P,
                       write_every=10 ** 6, progress=False, plot=False)
        run_md(_IdealGas(), gas, s, tmp_path / ens)
        out[ens] = read_thermo_log(tmp_path / ens / "thermo.log")["volume_A3"][steps // 10:]
    v = out["npt-crescale"]
    mean_ref, var_ref = (n + 1) * kT_over_P, (n + 1) * kT_over_P ** 2
    err = block_error(v, 20)
    assert abs(v.mean() - mean_ref) < max(4 * err, 0.03 * mean_ref), (v.mean(), mean_ref, err)
    assert 0.8 < v.var() / var_ref < 1.25, f"Var(V) / (N+1)(kT/P)^2 = {v.var() / var_ref:.2f}"
    vb = out["npt-berendsen"]
    assert vb.var() < 0.3 * var_ref  # Berendsen: not an NPT ensemble
