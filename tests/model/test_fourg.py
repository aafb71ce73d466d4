"""4G-HDNNP (n2p2 ``nnp_generation 4``) prediction against n2p2 v2.3.0 (tests/data/n2p2_4g/README.md)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hdnnp.errors import ReadError
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.model.potential import Potential

DATA = Path(__file__).resolve().parents[1] / "data" / "n2p2_4g"
EXAMPLES = ["H2O_RPBE-D3_4G", "AlAuMgO_4G", "Carbon_chain_4G"]
_POTS: dict = {}


def potential(ex: str) -> Potential:
    if ex not in _POTS:
        with pytest.warns(RuntimeWarning) if ex == "AlAuMgO_4G" else _nullcontext():  # zeta = -1, -2
            _POTS[ex] = Potential.from_n2p2(DATA / "potentials" / ex)
    return _POTS[ex]


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def log_value(ex: str, label: str) -> float:
    text = (DATA / "predict" / ex / "log-excerpt.txt").read_text()
    m = re.search(rf"^{re.escape(label)}:?\s+(\S+)", text, re.M)
    return float(m.group(1))


def nnatoms(ex: str) -> np.ndarray:
    return np.loadtxt(DATA / "predict" / ex / "nnatoms.out", comments="#")


@pytest.mark.parametrize("ex", EXAMPLES)
def test_predict_matches_n2p2(ex):
    pot = potential(ex)
    assert pot.is_fourg
    s = read_input_data(DATA / "potentials" / ex / "input.data")[0]
    ref = read_input_data(DATA / "predict" / ex / "output.data")[0]
    p = pot.compute(s)
    assert abs(p.energy - ref.energy) <= 1e-10 * abs(ref.energy)
    assert np.abs(p.forces - ref.forces).max() <= 1e-8
    assert np.abs(p.charges - ref.charges).max() <= 1e-10
    assert abs(p.charges.sum() - (s.charge or 0.0)) <= 1e-12
    atoms = nnatoms(ex)
    np.testing.assert_allclose(p.charges, atoms[:, 4], rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.atomic_energies, atoms[:, 6], rtol=1e-12, atol=1e-10)
    # the log prints 9 significant digits
    assert p.electrostatic_energy == pytest.approx(log_value(ex, "NNP electrostatic energy"), rel=1e-8, abs=1e-13)
    if s.cell is not None:
        assert p.ewald.r_cut == pytest.approx(log_value(ex, "Real space cutoff"), rel=1e-8)
        assert p.ewald.k_cut == pytest.approx(log_value(ex, "Reciprocal space cutoff"), rel=1e-8)
        assert p.ewald.eta == pytest.approx(log_value(ex, "Ewald screening parameter"), rel=1e-8)
    else:
        assert p.ewald is None
    hard = pot.hardness_physical()
    for e, J in zip(pot.elements, hard):
        m = re.search(rf"element\s+{e} from file \S+:\s+(\S+)", (DATA / "predict" / ex / "log-excerpt.txt").read_text())
        assert J == pytest.approx(float(m.group(1)), rel=1e-8)


def test_ewald_parameters_as_spec():
    """SPEC-4G §2.6: H2O eta 9.83401, r_c 35.6827, k_c 0.368974; AlAuMgO 7.94463 / 29.3444 / 0.464920."""
    from hdnnp.model.fourg import ewald_parameters

    for ex, want in (("H2O_RPBE-D3_4G", (9.83401, 35.6827, 0.368974)), ("AlAuMgO_4G", (7.94463, 29.3444, 0.464920))):
        s = read_input_data(DATA / "potentials" / ex / "input.data")[0]
        p = ewald_parameters(potential(ex), s)
        assert (p.eta, p.r_cut, p.k_cut) == pytest.approx(want, rel=2e-6)


@pytest.mark.parametrize("ex", ["H2O_RPBE-D3_4G", "Carbon_chain_4G"])
def test_dataset_matches_n2p2(ex):
    """Every structure of n2p2's training set (20 periodic / 128 molecules, some charged) against nnp-dataset."""
    pot = potential(ex)
    structures = read_input_data(DATA / "dataset" / ex / "input.data")
    refs = read_input_data(DATA / "dataset" / ex / "output.data")
    assert len(structures) == len(refs) == {"H2O_RPBE-D3_4G": 20, "Carbon_chain_4G": 128}[ex]
    for s, ref, p in zip(structures, refs, pot.predict(structures)):
        assert abs(p.energy - ref.energy) <= 1e-10 * abs(ref.energy)
        assert np.abs(p.forces - ref.forces).max() <= 1e-8
        assert np.abs(p.charges - ref.charges).max() <= 1e-10
        assert p.charges.sum() == pytest.approx(s.charge or 0.0, abs=1e-12)


def test_torch_backend_matches_numba():
    """The device path (torch symmetry functions, as on a GPU) gives the same 4G result."""
    ex = "AlAuMgO_4G"
    pot = potential(ex)
    s = read_input_data(DATA / "potentials" / ex / "input.data")[0]
    a = pot.compute(s, sf_backend="numba")
    b = pot.compute(s, sf_backend="torch")
    assert b.energy == pytest.approx(a.energy, rel=1e-13)
    np.testing.assert_allclose(b.forces, a.forces, atol=1e-11)
    np.testing.assert_allclose(b.charges, a.charges, atol=1e-12)
    np.testing.assert_allclose(b.stress, a.stress, atol=1e-12)


def _copy_potential(ex, tmp_path):
    import shutil

    d = tmp_path / ex
    shutil.copytree(DATA / "potentials" / ex, d)
    return d


def test_short_weightse_file_is_an_error(tmp_path):
    """n2p2 reads past the end of a short weights file; hdnnp names the file."""
    d = _copy_potential("Carbon_chain_4G", tmp_path)
    lines = (d / "weightse.006.data").read_text().splitlines()
    (d / "weightse.006.data").write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(ReadError, match=r"weightse\.006\.data.*needs"):
        Potential.from_n2p2(d)


def test_bad_hardness_file_is_an_error(tmp_path):
    d = _copy_potential("Carbon_chain_4G", tmp_path)
    (d / "hardness.001.data").write_text("0.1\n0.2\n")
    with pytest.raises(ReadError, match=r"hardness\.001\.data:2"):
        Potential.from_n2p2(d)
    (d / "hardness.001.data").unlink()
    with pytest.raises(ReadError, match=r"hardness\.001\.data"):
        Potential.from_n2p2(d)


@pytest.mark.parametrize("edit, match", [
    (("fixed_gausswidth H 0.585815056466", ""), "fixed_gausswidth' missing for H"),
    (("nnp_generation 4", "nnp_generation 3"), r"input\.nn:\d+: nnp_generation"),
    (("ewald_prec 1.e-5 0.16", "ewald_prec 1.e-5 0.16 3 4"), r"input\.nn:\d+: ewald_prec"),
    (("screen_electrostatics 4.8 8.0", "screen_electrostatics 4.8 8.0 q"), r"input\.nn:\d+: screening core"),
    (("global_nodes_electrostatic 15 15", "global_nodes_electrostatic 15"), r"input\.nn:\d+: global_nodes_electrostatic"),
])
def test_bad_4g_settings_name_file_and_line(tmp_path, edit, match):
    d = _copy_potential("Carbon_chain_4G", tmp_path)
    text = (d / "input.nn").read_text()
    assert edit[0] in text
    (d / "input.nn").write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ReadError, match=match):
        Potential.from_n2p2(d)


def test_one_argument_ewald_prec_fails_for_periodic_only(tmp_path):
    """n2p2 accepts 'ewald_prec eps' under method 1 for molecules and fails for periodic structures."""
    from hdnnp.errors import SettingsError

    d = _copy_potential("H2O_RPBE-D3_4G", tmp_path)
    text = (d / "input.nn").read_text()
    (d / "input.nn").write_text(text.replace("ewald_prec 1.e-5 0.36", "ewald_prec 1.e-5"))
    pot = Potential.from_n2p2(d)
    s = read_input_data(d / "input.data")[0]
    with pytest.raises(SettingsError, match=r"input\.nn:\d+: ewald_prec"):
        pot.compute(s)


def test_save_roundtrip(tmp_path):
    pot = potential("Carbon_chain_4G")
    s = read_input_data(DATA / "potentials" / "Carbon_chain_4G" / "input.data")[0]
    pot.save(tmp_path / "out")
    again = Potential.from_n2p2(tmp_path / "out")
    assert again.compute(s).energy == pytest.approx(pot.compute(s).energy, rel=1e-15)


def test_cli_predict_writes_4g_columns(tmp_path, caplog, capsys):
    """hdnnp predict: nnatoms.out Q_nnp, output.data charges and charge line, extxyz charges, charge RMSE."""
    import logging

    import ase.io

    from hdnnp.cli import main

    ex = "AlAuMgO_4G"
    out = tmp_path / "pred"
    with caplog.at_level(logging.INFO, logger="hdnnp"):
        assert main(["predict", str(DATA / "potentials" / ex), str(DATA / "potentials" / ex / "input.data"),
                     "-o", str(out)]) == 0
    # the CLI prints Python warnings as one line each (zeta < 1 in this potential)
    assert "hdnnp predict: warning: angular symmetry function with zeta" in capsys.readouterr().err
    ours, ref = nnatoms_file(out / "nnatoms.out"), nnatoms(ex)
    np.testing.assert_allclose(ours[:, 3:5], ref[:, 3:5], rtol=0, atol=1e-10)  # Q_ref, Q_nnp
    got = read_input_data(out / "output.data")[0]
    want = read_input_data(DATA / "predict" / ex / "output.data")[0]
    np.testing.assert_allclose(got.charges, want.charges, atol=1e-10)
    assert got.charge == pytest.approx(want.charge, abs=1e-12)
    assert got.energy == pytest.approx(want.energy, rel=1e-12)
    atoms = ase.io.read(out / "predictions.extxyz")
    np.testing.assert_allclose(atoms.get_charges(), want.charges, atol=1e-7)  # extxyz: 8 decimals
    assert "atomic charge: RMSE" in caplog.text
    assert "NNP electrostatic energy" in caplog.text and "Ewald parameters" in caplog.text


def nnatoms_file(path):
    return np.loadtxt(path, comments="#")


def test_cli_export_lammps_refuses_4g(tmp_path, capsys):
    from hdnnp.cli import main

    rc = main(["export", "lammps", str(DATA / "potentials" / "Carbon_chain_4G"), str(tmp_path / "lmp")])
    assert rc != 0
    assert "4G-HDNNP" in capsys.readouterr().err
    assert not (tmp_path / "lmp" / "in.lammps").exists()


def test_cli_md_with_4g_potential(tmp_path):
    from hdnnp.cli import main

    ex = "Carbon_chain_4G"
    rc = main(["md", str(DATA / "potentials" / ex), str(DATA / "potentials" / ex / "input.data"), "--steps", "5",
               "--timestep-fs", "0.2", "--temperature-K", "300", "--seed", "1", "--length-unit", "bohr",
               "--energy-unit", "hartree", "--no-plot", "--no-progress", "-o", str(tmp_path / "md")])
    assert rc == 0
    assert len(np.loadtxt(tmp_path / "md" / "thermo.log", comments="#")) == 6


def test_ase_calculator_charges():
    from hdnnp.ase import HDNNPCalculator

    ex = "Carbon_chain_4G"
    s = read_input_data(DATA / "potentials" / ex / "input.data")[0]
    atoms = s.to_ase()
    atoms.positions *= 0.52917721067
    atoms.calc = HDNNPCalculator(potential(ex), length_unit="bohr", energy_unit="hartree")
    ref = read_input_data(DATA / "predict" / ex / "output.data")[0]
    np.testing.assert_allclose(atoms.get_charges(), ref.charges, atol=1e-9)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)


def test_cli_train_without_stage_refuses_4g_clearly(tmp_path, capsys):
    from hdnnp.cli import main

    ex = "Carbon_chain_4G"
    rc = main(["train", str(DATA / "potentials" / ex / "input.nn"), "-o", str(tmp_path / "run"), "--data",
               str(DATA / "dataset" / ex / "input.data")])
    assert rc != 0
    assert "--stage" in capsys.readouterr().err


def test_stage1_training_fits_charges_and_writes_a_potential(tmp_path):
    """n2p2's stage 1 (chi networks + hardness on reference charges), short run on the H2O 4G training set;
    the run directory is a 4G potential whose predicted charges are the trained ones."""
    import shutil

    from hdnnp.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for f in ("input.nn", "scaling.data") + tuple(f"weights.{z:03d}.data" for z in (1, 8)):
        shutil.copy(DATA / "potentials" / "H2O_RPBE-D3_4G" / f, src / f)
    from hdnnp.io.n2p2_data import write_input_data

    data = tmp_path / "input.data"  # 8 of the 20 structures (test time)
    write_input_data(data, read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[:8])
    run = tmp_path / "run"
    assert main(["train", str(src / "input.nn"), "--stage", "1", "--epochs", "1", "--data", str(data),
                 "-o", str(run), "--seed", "2", "--optimizer", "lbfgs"]) == 0  # kalman: test_fourg_kalman.py
    curve = np.loadtxt(run / "learning-curve.out.stage-1", comments="#")
    assert curve[0, 1] > 0.05 and curve[-1, 1] < 2e-3 and curve[-1, 2] < 3e-3
    pot = Potential.from_n2p2(run)
    structures = read_input_data(data)
    d = np.concatenate([p.charges - s.charges for s, p in zip(structures, pot.predict(structures, forces=False))])
    assert np.sqrt(np.mean(d * d)) < 3e-3
    assert (run / "hardness.001.data").is_file() and (run / "weightse.008.data").is_file()


def test_stage2_model_is_the_prediction_model():
    """Stage 2's fixed-charge training model (precomputed G, dG/dr, Q, dQ/dr, E_elec, F_elec) gives the
    energies and forces of Potential.compute (shipped H2O_RPBE-D3_4G potential)."""
    from hdnnp.training.fourg_stages import _energy_forces, _prepare2

    pot = potential("H2O_RPBE-D3_4G")
    structures = read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[:2]
    for s, item in zip(structures, _prepare2(pot, structures)):
        p = pot.compute(s)
        E, F = _energy_forces(pot, item, False)
        assert p.energy == pytest.approx(float(E.detach()), rel=1e-13)
        np.testing.assert_allclose(p.forces, F.detach().numpy(), atol=1e-12)


@pytest.mark.slow
def test_stage2_training_fits_energies_and_forces_consistently(tmp_path):
    """n2p2's stage 2 (short networks, chi and J fixed from the shipped potential), short run: errors
    drop, and the written potential's Potential.compute gives exactly the model that was trained."""
    import shutil

    from hdnnp.io.n2p2_data import write_input_data
    from hdnnp.training.fourg_stages import _energy_forces, _prepare2, train_stage2

    src = tmp_path / "stage1"
    shutil.copytree(DATA / "potentials" / "H2O_RPBE-D3_4G", src)
    for z in (1, 8):  # stage 2 starts from random short networks
        (src / f"weights.{z:03d}.data").unlink()
    data = tmp_path / "input.data"
    structures = read_input_data(DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data")[:5]
    write_input_data(data, structures)
    run = tmp_path / "run"
    train_stage2(src, data, run, epochs=1, lbfgs_iterations=8, seed=3)
    curve = np.loadtxt(run / "learning-curve.out.stage-2", comments="#")
    assert curve[-1, 1] < 0.1 * curve[0, 1] and curve[-1, 3] < curve[0, 3]
    pot = Potential.from_n2p2(run)
    for s, item in zip(structures[:2], _prepare2(pot, structures[:2])):
        p = pot.compute(s)
        E, F = _energy_forces(pot, item, False)
        assert p.energy == pytest.approx(float(E.detach()), rel=1e-13)
        np.testing.assert_allclose(p.forces, F.detach().numpy(), atol=1e-12)


def test_hardness_file_non_finite_and_non_utf8(tmp_path):
    """A hardness file with nan or non-UTF-8 bytes: file:line error (as the weights files)."""
    from hdnnp.errors import ReadError
    from hdnnp.io.weights_data import read_hardness

    p = tmp_path / "hardness.008.data"
    p.write_text("nan\n")
    with pytest.raises(ReadError, match=r"hardness\.008\.data:1: expected a finite number"):
        read_hardness(p)
    p.write_bytes(b"# caf\xe9\n1.0\n")
    with pytest.raises(ReadError, match=r"hardness\.008\.data:1"):
        read_hardness(p)
