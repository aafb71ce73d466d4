"""Kalman-filter training (n2p2 ``updater_type 1``): one update against a hand-computed EKF step,
the schedules, blocks, the update plan, selection modes, exact resume, the P-memory refusal;
plus n2p2's split and weight initialisation, and the robustness fixes of training (warnings
once, atomic checkpoints, ``hdnnp norm`` errors).

Data: tests/data/prototype/input.data (12 EMT Cu/Al structures), as tests/training/test_training.py.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_training import INPUT_NN, PROTO, _symfunctions, _train

from hdnnp.errors import HDNNPError, SettingsError
from hdnnp.model.network import ElementNetwork
from hdnnp.training.kalman import KalmanFilter, KalmanParameters, add_flat, flat_jacobian, weight_blocks

KALMAN_NN = "".join(ln + "\n" for ln in INPUT_NN.splitlines()
                    if not ln.startswith(("hdnnp_weight_init", "hdnnp_bias_init"))) + """\
hdnnp_optimizer kalman
updater_type 1
kalman_type 0
kalman_epsilon 0.01
kalman_q0 0.01
kalman_qtau 2.302
kalman_qmin 1e-6
kalman_eta 0.01
kalman_etatau 2.302
kalman_etamax 1.0
short_energy_fraction 1.0
short_force_fraction 0.1
task_batch_size_energy 1
task_batch_size_force 1
selection_mode 2
short_energy_error_threshold 0.0
short_force_error_threshold 1.0
rmse_threshold_trials 3
weights_min -1.0
weights_max 1.0
"""


@pytest.fixture
def kcase(tmp_path) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    (d / "input.nn").write_text(KALMAN_NN + _symfunctions())
    shutil.copy(PROTO / "input.data", d / "input.data")
    return d


# ------------------------------------------------------------------ the filter itself
def _tiny_pot():
    torch.manual_seed(3)
    net = ElementNetwork([2, 2, 1], ["t", "l"]).double()
    return SimpleNamespace(elements=["X"], networks={"X": net}), net


def test_one_update_equals_hand_computed_ekf_step():
    """w' = w + K ξ with K = P H / (Hᵀ P H + 1/η'), P' = P - K Hᵀ P + q I, for y = v·tanh(W x + b) + c."""
    pot, net = _tiny_pot()
    x = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    params, blocks, _ = weight_blocks(pot, "none")
    W, b, v, c = (t.detach().numpy().copy() for t in params)
    y = net(x).sum()
    H = flat_jacobian(y, params, retain_graph=False)
    # the Jacobian by hand
    h = np.tanh(W @ x.numpy()[0] + b)
    dh = v[0] * (1 - h**2)
    H_hand = np.concatenate([np.outer(dh, x.numpy()[0]).ravel(), dh, h, [1.0]])
    np.testing.assert_allclose(H.numpy(), H_hand, rtol=1e-14, atol=1e-15)
    # one filter step by hand
    kp = KalmanParameters(epsilon=0.05, q0=0.02, qtau=2.302, qmin=1e-6, eta=0.01, etatau=2.302, etamax=1.0)
    kf = KalmanFilter(blocks, kp, updates_per_epoch=10)
    target = 0.8
    xi = target - float(y.detach())
    dw = kf.update(torch.tensor([xi], dtype=torch.float64), H[:, None])
    add_flat(params, dw)
    n = len(H_hand)
    P = np.eye(n) / 0.05
    eta = 0.01 * math.exp(2.302 / 10)  # eta grows before it is used (n2p2 order)
    a = H_hand @ P @ H_hand + 1.0 / eta
    K = P @ H_hand / a
    w_new = np.concatenate([W.ravel(), b, v.ravel(), c]) + K * xi
    P_new = P - np.outer(K, H_hand @ P) + 0.02 * np.eye(n)
    w_got = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    np.testing.assert_allclose(w_got, w_new, rtol=1e-13)
    np.testing.assert_allclose(kf.P[0].numpy(), P_new, rtol=1e-12, atol=1e-12)
    assert kf.eta == pytest.approx(eta, rel=1e-15)
    assert kf.q == pytest.approx(0.02 * math.exp(-2.302 / 10), rel=1e-15)
    assert kf.n_updates == 1


@pytest.mark.parametrize("independent", [False, True])
def test_fading_memory_and_blocks_match_formula(independent):
    """Type 1, two observations, two blocks: a block-diagonal P with a shared A (one filter), or
    independent filters with their own A and error (n2p2 update_strategy 1)."""
    g = torch.Generator().manual_seed(5)
    n_w, m = 7, 2
    H = torch.randn(n_w, m, generator=g, dtype=torch.float64)
    xi = torch.randn(m, generator=g, dtype=torch.float64)
    blocks = [torch.arange(0, 4), torch.arange(4, 7)]
    kp = KalmanParameters(type=1, epsilon=0.1, q0=1e-3, qtau=1.0, qmin=1e-6, lambda_=0.98, nu=0.995)
    kf = KalmanFilter(blocks, kp, updates_per_epoch=5)
    errs = [xi * 0.25, xi * 0.75]
    dw = kf.update(errs if independent else xi, H)
    A_shared = H.numpy().T @ H.numpy() / 0.1 + 0.98 * np.eye(m)
    for k, (blk, P_got) in enumerate(zip(blocks, kf.P)):
        Hb = H[blk].numpy()
        P = np.eye(len(blk)) / 0.1
        X = P @ Hb
        A = Hb.T @ X + 0.98 * np.eye(m) if independent else A_shared
        K = X @ np.linalg.inv(A)
        P_new = (P - K @ X.T) / 0.98 + 1e-3 * np.eye(len(blk))
        e = errs[k].numpy() if independent else xi.numpy()
        np.testing.assert_allclose(dw[blk].numpy(), K @ e, rtol=1e-12)
        np.testing.assert_allclose(P_got.numpy(), P_new, rtol=1e-12)
    assert kf.lam == pytest.approx(0.995 * 0.98 + 1 - 0.995)
    assert kf.eta == 0.01  # fading memory: no eta schedule


def test_eta_schedule_stops_at_etamax_and_q_at_qmin():
    kp = KalmanParameters(epsilon=1.0, q0=1e-5, qtau=100.0, qmin=1e-6, eta=0.5, etatau=10.0, etamax=1.0)
    kf = KalmanFilter([torch.arange(2)], kp, updates_per_epoch=1)
    for _ in range(3):
        kf.update(torch.zeros(1, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64))
    assert kf.eta == pytest.approx(0.5 * math.exp(10.0))  # grew once, then eta >= etamax stops it (as n2p2)
    assert kf.q == pytest.approx(1e-5 * math.exp(-100.0))  # decays once below qmin, then stays


def test_weight_blocks_partition_the_weights():
    pot, net = _tiny_pot()
    n = sum(p.numel() for p in net.parameters())
    for mode, count in (("none", 1), ("element", 1), ("layer", 2)):
        params, blocks, names = weight_blocks(pot, mode)
        assert len(blocks) == count and len(names) == count
        assert sorted(torch.cat(blocks).tolist()) == list(range(n))
    with pytest.raises(SettingsError, match="hdnnp_kalman_blocks"):
        weight_blocks(pot, "rows")


# ------------------------------------------------------------------ training
def test_updater_type_1_default_is_kalman_and_lbfgs_is_one_keyword(kcase):
    """updater_type 1 alone trains with n2p2's Kalman filter (README); hdnnp_optimizer lbfgs gives L-BFGS."""
    from hdnnp.io.input_nn import Settings
    from hdnnp.training.config import config_from_settings

    text = (kcase / "input.nn").read_text().replace("hdnnp_optimizer kalman\n", "")
    cfg = config_from_settings(Settings.parse(text, "input.nn"), warn=False)
    assert cfg.optimizer == "kalman" and cfg.split == "n2p2"
    cfg = config_from_settings(Settings.parse(text + "hdnnp_optimizer lbfgs\n", "input.nn"), warn=False)
    assert cfg.optimizer == "lbfgs" and cfg.lbfgs_iterations == 20
    (kcase / "input.nn").write_text(text)
    r = _train(kcase, epochs=1)
    log_text = (r.run_dir / "train.log").read_text()
    assert "updater_type 1: n2p2's Kalman filter" in log_text and "Kalman filter: standard" in log_text


def test_kalman_filter_learns(kcase):
    r = _train(kcase, epochs=6)
    text = (r.run_dir / "train.log").read_text()
    assert "Kalman filter: standard, update_strategy 0" in text and "P 0.3 MiB" in text
    assert "updates per epoch: 10 energy (1 candidate(s) each) + 24 force (1 each)" in text
    loss = [h["loss_train"] for h in r.history]
    assert min(loss[1:]) < 0.5 * loss[0], loss
    assert re.search(r"^hdnnp_optimizer +kalman", (r.run_dir / "input.nn").read_text(), re.M)


@pytest.mark.parametrize("extra", [
    "update_strategy 1\n",
    "hdnnp_kalman_blocks layer\nselection_mode 1\n",
    "kalman_type 1\nkalman_lambda_short 0.96000\nkalman_nue_short 0.99950\nselection_mode 0\n",
    "jacobian_mode 2\ntask_batch_size_force 3\nforce_energy_ratio 2.0\n",
])
def test_kalman_variants_train(kcase, extra):
    (kcase / "input.nn").write_text((kcase / "input.nn").read_text() + extra)
    r = _train(kcase, epochs=3)
    assert all(np.isfinite(h["loss_train"]) for h in r.history)
    assert min(h["loss_train"] for h in r.history[1:]) < r.history[0]["loss_train"]


def test_update_plan_counts(kcase):
    """int(patterns x fraction / task batch); force_energy_ratio overrides the force fraction."""
    (kcase / "input.nn").write_text((kcase / "input.nn").read_text() + "task_batch_size_force 2\n"
                                    "force_energy_ratio 3.0\n")
    r = _train(kcase, epochs=1)
    text = (r.run_dir / "train.log").read_text()
    assert "updates per epoch: 10 energy (1 candidate(s) each) + 15 force (2 each)" in text  # 10 x 3 / 2


@pytest.mark.parametrize("warmup, stop", [(0, 2), (2, 1)])
def test_kalman_resume_restores_P_and_schedules_bit_for_bit(kcase, warmup, stop):
    from hdnnp.training.workflow import train

    if warmup:  # hdnnp_kalman_warmup: L-BFGS epochs first (their state is restored too)
        (kcase / "input.nn").write_text((kcase / "input.nn").read_text() + f"hdnnp_kalman_warmup {warmup}\n"
                                        "hdnnp_lbfgs_iterations 4\n")
    full = _train(kcase, "full", epochs=5)
    _train(kcase, "part", epochs=5, stop_after=stop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = train(resume=kcase.parent / "part", progress=False, console=False)
    sa, sb = full.potential.state_dict(), resumed.potential.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    a = torch.load(kcase.parent / "full" / "checkpoint.pt", weights_only=True)["optimizer"]["kalman"]
    b = torch.load(kcase.parent / "part" / "checkpoint.pt", weights_only=True)["optimizer"]["kalman"]
    assert all(torch.equal(x, y) for x, y in zip(a["P"], b["P"]))
    assert (a["eta"], a["q"], a["n_updates"]) == (b["eta"], b["q"], b["n_updates"])
    assert (kcase.parent / "full" / "learning-curve.out").read_text() == \
        (kcase.parent / "part" / "learning-curve.out").read_text()


def test_refuses_when_P_does_not_fit(kcase, monkeypatch):
    import hdnnp.training.kalman_training as kt

    monkeypatch.setattr(kt, "available_memory_bytes", lambda: 100_000)
    with pytest.raises(SettingsError, match=r"Kalman filter: P needs .* GiB .* use hdnnp_kalman_blocks element or "
                                            r"layer"):
        _train(kcase, epochs=1)


def test_updater_type_0_honours_gradient_keywords():
    from hdnnp.io.input_nn import Settings
    from hdnnp.training.config import config_from_settings

    text = INPUT_NN.replace("hdnnp_learning_rate 0.02\n", "") + _symfunctions()
    s = Settings.parse(text + "updater_type 0\ngradient_type 1\ngradient_adam_eta 0.003\ngradient_adam_beta1 0.8\n"
                              "gradient_adam_beta2 0.99\ngradient_adam_epsilon 1e-7\n", "input.nn")
    cfg = config_from_settings(s)
    assert (cfg.optimizer, cfg.learning_rate, cfg.betas, cfg.epsilon) == ("adam", 0.003, (0.8, 0.99), 1e-7)
    s = Settings.parse(text + "updater_type 0\ngradient_type 0\ngradient_eta 1e-4\n", "input.nn")
    cfg = config_from_settings(s)
    assert (cfg.optimizer, cfg.learning_rate) == ("sgd", 1e-4)


# ------------------------------------------------------------------ n2p2 compatibility
def test_n2p2_split_reproduces_nnp_train_counts():
    """nnp-train (1 process) puts structure 3 of the 20 H2O structures (seed 1234567) and 40 of the
    450 examples/alho structures (seed 12345) into its test set (n2p2 logs in
    anchors/n2p2/train/H2O_RPBE-D3_np1 and alho_kalman/README.md)."""
    from hdnnp.training.dataset import split_data

    st = [SimpleNamespace(set_tag=None) for _ in range(450)]
    assert split_data(st[:20], 0.1, 1234567, method="n2p2").test == [2]
    sp = split_data(st, 0.1, 12345, method="n2p2")
    assert (len(sp.train), len(sp.test)) == (410, 40)


def test_n2p2_weight_initialisation(kcase):
    from hdnnp.training.config import config_from_settings
    from hdnnp.io.input_nn import Settings

    cfg = config_from_settings(Settings.read(kcase / "input.nn"), warn=False)
    assert cfg.weight_init == "n2p2_glorot" and cfg.split == "n2p2"
    r = _train(kcase, epochs=0)
    net = r.potential.networks["Cu"]
    first, out = net.layers[0], net.layers[-1]
    lim = math.sqrt(6.0 / (first.in_features + first.out_features))
    assert float(first.weight.abs().max()) <= lim and float(first.bias.abs().max()) == 0.0
    assert float(out.weight.abs().max()) > lim  # linear output layer: plain uniform in [-1, 1)
    (kcase / "input.nn").write_text((kcase / "input.nn").read_text() + "nguyen_widrow_weights_short\n")
    cfg = config_from_settings(Settings.read(kcase / "input.nn"), warn=False)
    assert cfg.weight_init == "n2p2_nguyen_widrow"
    r = _train(kcase, "nw", epochs=0)
    w = r.potential.networks["Cu"].layers[0].weight
    beta = 0.7 * w.shape[0] ** (1.0 / w.shape[1])
    np.testing.assert_allclose(w.norm(dim=1).detach().numpy(), 2 * beta, rtol=1e-12)


# ------------------------------------------------------------------ robustness
def test_each_unsupported_keyword_is_one_line(kcase):
    """``hdnnp train`` prints each ignored keyword once, in one line (no UserWarning with a source line)."""
    (kcase / "input.nn").write_text((kcase / "input.nn").read_text() + "write_trainlog\nwrite_neuronstats 1\n"
                                    "foo_bar 3\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    p = subprocess.run([sys.executable, "-m", "hdnnp.cli", "train", str(kcase / "input.nn"), "-o",
                        str(kcase.parent / "run"), "--epochs", "1", "--no-progress"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    text = p.stdout + p.stderr
    for key in ("'write_trainlog'", "'write_neuronstats'", "'foo_bar'"):
        lines = [ln for ln in text.splitlines() if key in ln]
        assert len(lines) == 1, lines
    assert "UserWarning" not in text


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    from hdnnp.training import checkpoint as ck

    path = tmp_path / "checkpoint.pt"
    ck.save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def broken_save(obj, fh):
        fh.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        ck.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    state = ck.load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def test_norm_with_non_numeric_atom_energy_is_one_line(kcase, capsys):
    from hdnnp.cli import main

    text = (kcase / "input.nn").read_text().replace("atom_energy Al 0.05", "atom_energy Al abc")
    (kcase / "input.nn").write_text(text)
    rc = main(["norm", str(kcase / "input.nn"), str(kcase / "input.data"), "-o", str(kcase / "out.nn")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert "input.nn:4" in err[0] and "atom_energy: expected a number, found 'abc'" in err[0]
    with pytest.raises(HDNNPError, match="input.nn:4"):
        _train(kcase, epochs=1)


@pytest.mark.parametrize("errors, expected, pos", [([0.5, 0.9, 0.2], 1, 3), ([0.2, 0.5, 0.9], 2, 3),
                                                   ([0.5, 3.0, 0.2], 1, 2), ([4.0, 0.1, 0.1], 0, 1)])
def test_threshold_selection_takes_best_tried_when_none_exceeds(errors, expected, pos):
    """selection_mode 2: the first candidate whose |error| exceeds threshold x RMSE, else the BEST of the
    rmse_threshold_trials tried (n2p2's documented rule, and the one whose learning curve matches nnp-train's
    on the H2O anchor; see KalmanTraining._next)."""
    from hdnnp.training.kalman_training import KalmanTraining

    cands = np.arange(len(errors))[:, None].repeat(3, axis=1)
    stub = SimpleNamespace(order={"force": [cands]}, mode={"force": 2}, pos={"force": [0]}, rmse={"force": 1.0},
                           tr=SimpleNamespace(cfg=SimpleNamespace(rmse_threshold_trials_force=3,
                                                                  rmse_threshold_force=1.0)))
    stub._evaluate = lambda prop, cand: (errors[int(cand[0])], int(cand[0]), None)
    err, y, _ = KalmanTraining._next(stub, "force", 0)
    assert y == expected and err == errors[expected]
    assert stub.pos["force"][0] == pos


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("kind", ["shared", "independent", "fading"])
def test_triangle_blas_update_equals_full_matrix_update(m, kind):
    """The CPU float64 path keeps one triangle of P and uses BLAS dsymv/dsyr/dsyrk: the same filter as
    the full-matrix path (torch), update after update (weights' changes and P)."""
    rng = np.random.default_rng(3)
    n = 40
    blocks = [torch.arange(0, 25), torch.arange(25, 40)]
    kp = KalmanParameters(type=1 if kind == "fading" else 0, epsilon=0.02, q0=0.01, qtau=2.302, qmin=1e-6,
                          eta=0.01, etatau=2.302, etamax=1.0)
    tri = KalmanFilter(blocks, kp, updates_per_epoch=7)
    full = KalmanFilter(blocks, kp, updates_per_epoch=7)
    full.triangle = False
    assert tri.triangle
    for _ in range(30):
        H = torch.from_numpy(rng.normal(size=(n, m)))
        xi = torch.from_numpy(rng.normal(size=m))
        if kind == "independent":
            xi = [xi * 0.3, xi * 0.7]
        dw_t, dw_f = tri.update(xi, H), full.update(xi, H)
        np.testing.assert_allclose(dw_t.numpy(), dw_f.numpy(), rtol=1e-10, atol=1e-13)
    for Pt, Pf in zip(tri.P, full.P):
        np.testing.assert_allclose(Pt.numpy(), Pf.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(Pt.numpy(), Pt.numpy().T)
    # a checkpoint of the triangle filter resumes in a full-matrix one (e.g. moved to a GPU) and back
    again = KalmanFilter(blocks, kp, updates_per_epoch=7)
    again.triangle = False
    again.load_state_dict(tri.state_dict())
    for Pa, Pt in zip(again.P, tri.P):
        np.testing.assert_array_equal(Pa.numpy(), Pt.numpy())
    back = KalmanFilter(blocks, kp, updates_per_epoch=7)
    back.load_state_dict(again.state_dict())
    for Pb, Pt in zip(back.P, tri.P):
        np.testing.assert_array_equal(Pb.numpy(), Pt.numpy())
