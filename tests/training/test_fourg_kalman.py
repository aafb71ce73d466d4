"""n2p2's Kalman filter in the 4G training stages (hdnnp.training.fourg_kalman): one stage-1 (charge) and
one stage-2 (energy, force) update equal a hand-computed EKF step with finite-difference Jacobians, and a
few epochs on the H2O_RPBE-D3_4G training set lower the errors (data: tests/data/n2p2_4g/README.md)."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hdnnp.io.input_nn import Settings
from hdnnp.io.n2p2_data import read_input_data, write_input_data
from hdnnp.io.potential_directory import PotentialDirectory
from hdnnp.model.potential import Potential

DATA = Path(__file__).resolve().parents[1] / "data" / "n2p2_4g"
TRAIN = DATA / "train" / "H2O_RPBE-D3_4G"
STRUCTURES = DATA / "dataset" / "H2O_RPBE-D3_4G" / "input.data"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """As the stages run (fourg_stages._one_torch_thread): small networks, one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_setup(tmp_path: Path, extra: str = "") -> tuple[Settings, Potential, list]:
    """The H2O 4G training input.nn with 3-3 networks (a few hundred weights) and normalisation factors
    that are not 1 (so the units of xi and H are checked), and 2 structures."""
    d = tmp_path / "tiny"
    d.mkdir()
    text = (TRAIN / "input.nn").read_text()
    text = re.sub(r"^global_nodes_(short|electrostatic) .*$", r"global_nodes_\1 3 3", text, flags=re.M)
    for line in extra.splitlines():  # extra keywords replace the file's
        text = re.sub(rf"^{line.split()[0]}\s.*$", "", text, flags=re.M)
    text += "\nmean_energy -17.2\nconv_energy 3.0\nconv_length 1.7\nconv_charge 0.6\n" + extra
    (d / "input.nn").write_text(text)
    shutil.copy(TRAIN / "scaling.data", d / "scaling.data")
    settings = Settings.read(d / "input.nn")
    pot = Potential.from_settings(settings, scaling_path=d / "scaling.data", seed=5,
                                  source=PotentialDirectory(d))
    return settings, pot, read_input_data(STRUCTURES)[:2]


def flat(params) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()


def set_flat(params, w: np.ndarray) -> None:
    pos = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.as_tensor(w[pos:pos + p.numel()]).view_as(p))
            pos += p.numel()


def fd_jacobian(f, params, w0: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central differences of f() (a scalar or a vector) in the flat weights: (n_w, ...) (restores w0)."""
    H = [None] * len(w0)
    for i in range(len(w0)):
        w = w0.copy()
        w[i] += step
        set_flat(params, w)
        fp = f()
        w[i] -= 2 * step
        set_flat(params, w)
        H[i] = (fp - f()) / (2 * step)
    set_flat(params, w0)
    return np.array(H)


def hand_ekf(w, P, xi, H, eta, q, lam=None):
    """EKF step by hand (n2p2 KalmanFilter::update, one observation): standard (R = 1/eta) or, with lam,
    fading memory (R = lambda, P <- P / lambda before q is added)."""
    X = P @ H
    A = H @ X + (1.0 / eta if lam is None else lam)
    K = X / A
    P1 = P - np.outer(K, X)
    if lam is not None:
        P1 = P1 / lam
    return w + K * xi, P1 + q * np.eye(len(w))


def next_schedule(kf, eta, q):
    """eta grows before the update (if below etamax), q decays after it (if above qmin)."""
    eta1 = eta * math.exp(kf.etatau) if eta < kf.etamax else eta
    q1 = q * math.exp(-kf.qtau) if q > kf.params.qmin else q
    return eta1, q1


@pytest.mark.parametrize("kalman_type", [0, 1])
def test_stage1_charge_update_is_a_hand_ekf_step(tmp_path, kalman_type):
    """xi = -||Q - Q_ref||, H = d||Q - Q_ref||/d(chi weights, h) by central differences; one update of the
    standard (0) and the fading-memory (1) filter."""
    from hdnnp.training.fourg_kalman import ChargeKalman, kalman_setup
    from hdnnp.training.fourg_stages import _charges, _prepare

    extra = "kalman_type 1\nkalman_lambda_short 0.96\nkalman_nue_short 0.9995\n" if kalman_type else ""
    settings, pot, structures = tiny_setup(tmp_path, extra)
    items = _prepare(pot, structures)
    h = torch.sqrt(pot.electrostatics.hardness.detach().clone()).requires_grad_(True)
    kp, plans = kalman_setup(settings, 1)
    kal = ChargeKalman(pot, h, items, kp, plans["charge"], seed=1)
    assert kal.n_updates == 2 and kal.params[-1] is h
    item = items[1]

    def norm():
        with torch.no_grad():
            return float(torch.linalg.vector_norm(_charges(pot, item, h) - item.q_ref))

    w0, P0 = flat(kal.params), kal.kf.P[0].numpy().copy()
    H = fd_jacobian(norm, kal.params, w0)
    xi = -norm()
    assert abs(xi) > 1e-3 and np.abs(H[-2:]).min() > 0  # the hardness entries take part
    eta1, _ = next_schedule(kal.kf, kal.kf.eta, kal.kf.q)
    assert kal.kf.params.type == kalman_type
    w1, P1 = hand_ekf(w0, P0, xi, H, eta1, kal.kf.q, 0.96 if kalman_type else None)
    kal.update(item)
    np.testing.assert_allclose(flat(kal.params) - w0, w1 - w0, rtol=1e-6, atol=1e-9 * np.abs(w1 - w0).max())
    np.testing.assert_allclose(kal.kf.P[0].numpy(), P1, rtol=0, atol=1e-7 * np.abs(P1).max())
    if kalman_type == 0:
        assert kal.kf.eta == pytest.approx(eta1, rel=1e-15)
    else:  # lambda <- nu lambda + 1 - nu after the update
        assert kal.kf.lam == pytest.approx(0.9995 * 0.96 + 1 - 0.9995, rel=1e-15)


def test_stage2_energy_and_force_updates_are_hand_ekf_steps(tmp_path):
    """From the same start, an energy update (xi = (E_ref - E) conv_energy, H = dE/dw conv_energy) and a force
    update (one component: (F_ref - F) conv_energy/conv_length and its dF/dw, both x force_weight), with the
    Jacobians by central differences."""
    from hdnnp.training.fourg_kalman import ShortKalman, kalman_setup
    from hdnnp.training.fourg_stages import _energy_forces, _prepare2

    settings, pot, structures = tiny_setup(tmp_path)
    items = _prepare2(pot, structures[:1])
    kp, plans = kalman_setup(settings, 2)
    fw = settings.get_float("force_weight")
    ce, cf = 3.0, 3.0 / 1.7
    item, a, c = items[0], 7, 2
    kals = [ShortKalman(pot, items, kp, plans, fw, True, seed=1) for _ in range(2)]
    assert kals[0].n_updates == {"energy": 1, "force": int(3 * 48 * 0.025)}
    params = kals[0].params
    w0, P0 = flat(params), kals[0].kf.P[0].numpy().copy()

    def e_and_f():
        E, F = _energy_forces(pot, item, False)
        return np.array([float(E.detach()) * ce, float(F[a, c].detach()) * cf])

    # both Jacobians in one pass; step 1e-5: E is ~2 500 here, so a smaller step loses digits to round-off
    HE, HF = fd_jacobian(e_and_f, params, w0, step=1e-5).T
    E0, F0 = e_and_f()
    eta1, _ = next_schedule(kals[0].kf, kals[0].kf.eta, kals[0].kf.q)
    for kal, (xi, H) in zip(kals, [(item.e_ref * ce - E0, HE), (fw * (float(item.f_ref[a, c]) * cf - F0), fw * HF)]):
        set_flat(params, w0)
        w1, P1 = hand_ekf(w0, P0, xi, H, eta1, kal.kf.q)
        if kal is kals[0]:
            kal.update_energy(item)
        else:
            kal.update_force(item, a, c)
        dw = w1 - w0
        np.testing.assert_allclose(flat(params) - w0, dw, rtol=1e-5, atol=1e-6 * np.abs(dw).max())
        np.testing.assert_allclose(kal.kf.P[0].numpy(), P1, rtol=0, atol=1e-6 * np.abs(P1).max())


def test_kalman_stages_lower_the_errors(tmp_path, caplog):
    """``hdnnp train --stage both`` on an input.nn with updater_type 1 (the Kalman filter by default), 2 epochs
    per stage on 6 structures of the H2O 4G training set: charge RMSE (stage 1), E and F RMSE (stage 2)
    drop; P's memory is logged; the result is a 4G potential."""
    import logging

    from hdnnp.cli import main

    src = tmp_path / "in"
    shutil.copytree(TRAIN, src)
    data = tmp_path / "input.data"
    write_input_data(data, read_input_data(STRUCTURES)[:6])
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="hdnnp"):
        assert main(["train", str(src / "input.nn"), "--stage", "both", "--epochs", "2", "--data", str(data),
                     "-o", str(run), "--seed", "2"]) == 0
    assert re.search(r"stage 1 \(charges\): Kalman filter: standard; 1399 fit parameters; P 14\.9 MiB", caplog.text)
    assert re.search(r"stage 2 .*Kalman filter: standard; 1427 fit parameters; P 15\.5 MiB", caplog.text)
    q = np.loadtxt(run / "stage-1" / "learning-curve.out.stage-1", comments="#")
    assert q[-1, 1] < 0.05 * q[0, 1] and q[-1, 1] < q[1, 1]
    ef = np.loadtxt(run / "learning-curve.out.stage-2", comments="#")
    assert ef[-1, 1] < 0.01 * ef[0, 1] and ef[-1, 3] < 0.5 * ef[0, 3]
    pot = Potential.from_n2p2(run)
    assert pot.charge_networks is not None and (run / "hardness.008.data").is_file()


@pytest.mark.parametrize("line, match", [("selection_mode 1", r"input\.nn:\d+: selection_mode"),
                                         ("task_batch_size_charge 4", r"input\.nn:\d+: task_batch_size_charge 4"),
                                         ("update_strategy 1", r"input\.nn:\d+: update_strategy 1"),
                                         ("kalman_type 2", r"input\.nn:\d+ kalman_type: kalman_type must be 0")])
def test_unsupported_kalman_settings_name_file_and_line(tmp_path, line, match):
    from hdnnp.errors import SettingsError
    from hdnnp.training.fourg_kalman import kalman_setup

    key = line.split()[0]
    text = re.sub(rf"^{key} .*$", line, (TRAIN / "input.nn").read_text(), flags=re.M)
    (tmp_path / "input.nn").write_text(text)
    with pytest.raises(SettingsError, match=match):
        kalman_setup(Settings.read(tmp_path / "input.nn"), 1)


def test_cli_refuses_unsupported_kalman_setting_in_one_line(tmp_path, capsys):
    """Before any structure is prepared: one line naming input.nn:line, no traceback."""
    from hdnnp.cli import main

    src = tmp_path / "in"
    shutil.copytree(TRAIN, src)
    (src / "input.nn").chmod(0o644)
    text = re.sub(r"^selection_mode .*$", "selection_mode 1", (TRAIN / "input.nn").read_text(), flags=re.M)
    (src / "input.nn").write_text(text)
    rc = main(["train", str(src / "input.nn"), "--stage", "1", "--data", str(STRUCTURES), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert re.search(r"input\.nn:\d+: selection_mode for charge: expected MODE", err)


def test_cli_hdnnp_optimizer_of_input_nn_is_checked_with_file_and_line(tmp_path, capsys):
    from hdnnp.cli import main

    src = tmp_path / "in"
    shutil.copytree(TRAIN, src)
    (src / "input.nn").chmod(0o644)
    (src / "input.nn").write_text((TRAIN / "input.nn").read_text() + "hdnnp_optimizer sgd\n")
    rc = main(["train", str(src / "input.nn"), "--stage", "1", "--data", str(STRUCTURES), "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert re.search(r"input\.nn:\d+: hdnnp_optimizer: the 4G stages train with lbfgs, adam or kalman, not sgd", err)
