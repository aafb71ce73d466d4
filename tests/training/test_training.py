"""Training: preparation against n2p2 (nnp-norm, nnp-scaling), forces from the cache, the
trainer (loss decreases, resume is bit-for-bit, run directory round trip), the prototype entry
point and the one-line errors for bad input.

The training data is tests/data/prototype/input.data (12 EMT Cu/Al structures, eV/Å; see
make_data.py there); n2p2 references come from tests/data/n2p2.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hdnnp.errors import HDNNPError, ReadError
from hdnnp.io.input_nn import Settings
from hdnnp.io.n2p2_data import read_input_data, write_input_data
from hdnnp.io.scaling_data import read_scaling_data
from hdnnp.model.potential import Potential

PROTO = Path(__file__).resolve().parents[1] / "data" / "prototype"

INPUT_NN = """\
number_of_elements 2
elements Cu Al
atom_energy Cu -0.1
atom_energy Al 0.05
cutoff_type 2
scale_symmetry_functions
center_symmetry_functions
global_hidden_layers_short 2
global_nodes_short 6 6
global_activation_short t t l
use_short_forces
random_seed 11
epochs 4
test_fraction 0.25
force_weight 2.0
hdnnp_batch_size 2
hdnnp_learning_rate 0.02
hdnnp_weight_init glorot_uniform
hdnnp_bias_init zeros
"""


def _symfunctions() -> str:
    out = []
    for c in ("Cu", "Al"):
        for n in ("Cu", "Al"):
            for eta in (0.05, 0.5):
                out.append(f"symfunction_short {c} 2 {n} {eta} 0.0 4.5")
        for a, b in (("Cu", "Cu"), ("Cu", "Al"), ("Al", "Al")):
            out.append(f"symfunction_short {c} 9 {a} {b} 0.01 1.0 1.0 4.5")
    return "\n".join(out) + "\n"


@pytest.fixture
def case(tmp_path) -> Path:
    """A directory with an n2p2 input.nn and the tiny Cu/Al input.data."""
    d = tmp_path / "case"
    d.mkdir()
    (d / "input.nn").write_text(INPUT_NN + _symfunctions())
    shutil.copy(PROTO / "input.data", d / "input.data")
    return d


def _train(case: Path, run: str = "run", **kw):
    from hdnnp.training.workflow import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(case / "input.nn", run_dir=case.parent / run, progress=False, console=False, **kw)


# ------------------------------------------------------------------ preparation vs n2p2
def test_normalization_matches_nnp_norm(anchors):
    """mean_energy, conv_energy, conv_length equal nnp-norm's to the last digit (H2O anchors)."""
    from hdnnp.training.statistics import energy_normalization

    ref = Settings.read(anchors / "norm" / "H2O_RPBE-D3" / "input.nn.normalized")
    data = read_input_data(anchors / "dataset" / "H2O_RPBE-D3" / "input.data")
    offsets = {line.values[0]: float(line.values[1]) for line in ref.all("atom_energy")}
    norm = energy_normalization(data, offsets, ["H", "O"])
    got = {"mean_energy": norm.mean_energy, "conv_energy": norm.conv_energy, "conv_length": norm.conv_length}
    for key, value in got.items():
        want = ref.get_float(key)
        assert value == want, f"{key}: {value!r} vs nnp-norm {want!r} (rel {abs(value / want - 1):.2e}, tol 0)"
    # the log's statistics, as printed (%16.8E)
    log = (anchors / "norm" / "H2O_RPBE-D3" / "nnp-norm.log.0000").read_text()
    assert f"{norm.mean_energy:16.8E} +/- {norm.sigma_energy:16.8E}" in log
    assert f"{norm.sigma_force:16.8E}" in log


def test_scaling_matches_nnp_scaling(anchors):
    """scaling.data (min, max, mean, sigma n-1) equals nnp-scaling's (H2O anchors) to 1e-10.

    (The Cu2S anchors were made from a different input.data than dataset/Cu2S_PBE, see the
    energies in their function.data, so only H2O can be compared.)
    """
    from hdnnp.training.statistics import sf_statistics

    d = anchors / "scaling" / "H2O_RPBE-D3"
    pot = Potential.from_settings(Settings.read(d / "input.nn"))
    data = read_input_data(anchors / "dataset" / "H2O_RPBE-D3" / "input.data")
    stats = sf_statistics(pot.sf_set, data)
    ref = read_scaling_data(d / "scaling.data", [pot.sf_set.n_sf[e] for e in pot.elements])
    for e, s, r in zip(pot.elements, stats, ref):
        for name in ("g_min", "g_max", "g_mean", "g_sigma"):
            a, b = getattr(s, name), getattr(r, name)
            err = np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))
            assert err < 1e-10, f"{e} {name}: max relative error {err:.2e} > 1e-10"


def test_scale_and_norm_commands(anchors, tmp_path):
    from hdnnp.cli import main

    d = anchors / "scaling" / "H2O_RPBE-D3"
    data = anchors / "dataset" / "H2O_RPBE-D3" / "input.data"
    out = tmp_path / "scaling.data"
    assert main(["scale", str(d / "input.nn"), str(data), "-o", str(out)]) == 0
    pot = Potential.from_settings(Settings.read(d / "input.nn"))
    n_sf = [pot.sf_set.n_sf[e] for e in pot.elements]
    got, ref = read_scaling_data(out, n_sf), read_scaling_data(d / "scaling.data", n_sf)
    assert np.allclose(got[1].g_sigma, ref[1].g_sigma, rtol=1e-10, atol=0)
    assert main(["scale", str(d / "input.nn"), str(data), "-o", str(out)]) == 1  # refuses to overwrite
    nn_out = tmp_path / "input.nn.normalized"
    assert main(["norm", str(anchors / "norm" / "H2O_RPBE-D3" / "input.nn.normalized"), str(data),
                 "-o", str(nn_out)]) == 0
    s = Settings.read(nn_out)
    assert s.get_float("conv_length") == 2.2798325235535355e01
    assert len(s.all("conv_length")) == 1


# ------------------------------------------------------------------ forces from the cache
def _h2o_cache(anchors, budget=None, d_dtype=np.float64):
    from hdnnp.training.dataset import DescriptorCache

    pot = Potential.from_n2p2(anchors / "potentials" / "H2O_RPBE-D3")
    data = read_input_data(anchors / "dataset" / "H2O_RPBE-D3" / "input.data")[:3]
    cache = DescriptorCache(pot.sf_set, data, [0, 1, 2], True, memory_budget=budget, d_dtype=d_dtype)
    cache.set_scaling(pot.scalings)
    ce, cl = pot.normalization.conv_energy, pot.normalization.conv_length
    cache.set_targets(np.array([(s.energy - pot.energy_shift(s)) * ce for s in data]),
                      np.concatenate([s.forces for s in data]) * ce / cl)
    return pot, data, cache


def _batch_EF(pot, cache, local, backend="numba", create_graph=False):
    from hdnnp.training.batch_model import predict_batch

    b = cache.batch(local, True)
    E, F = predict_batch(pot, b, True, create_graph, backend)
    return b, E, F


def test_cached_forces_match_potential(anchors):
    """Energies and forces of a training batch equal Potential.compute (the n2p2-exact path)."""
    pot, data, cache = _h2o_cache(anchors)
    ce, cl = pot.normalization.conv_energy, pot.normalization.conv_length
    b, E, F = _batch_EF(pot, cache, [2, 0])
    for j, k in enumerate([2, 0]):
        p = pot.compute(data[k], stress=False)
        e = E[j].item() / ce + pot.energy_shift(data[k])
        assert abs(e - p.energy) <= 1e-12 * abs(p.energy), f"energy {e} vs {p.energy}"
        rows = np.flatnonzero(b.struct_of_row.numpy() == j)
        f = np.zeros((len(data[k]), 3))
        f[b.rows_atoms[rows] - cache.atom_start[k]] = F.detach().numpy()[rows] * cl / ce
        err = np.abs(f - p.forces).max()
        assert err < 1e-12, f"structure {k}: max force error {err:.2e} > 1e-12"


def test_numba_and_torch_force_paths_agree(anchors):
    """Forces and the weight gradient of a force loss: numba kernels == pure torch (index_add)."""
    pot, data, cache = _h2o_cache(anchors)
    grads = {}
    for backend in ("numba", "torch"):
        pot.zero_grad()
        b, E, F = _batch_EF(pot, cache, [0, 1, 2], backend, create_graph=True)
        (((F - b.F_target) ** 2).sum() + ((E - b.E_target) ** 2).sum()).backward()
        grads[backend] = (F.detach(), torch.cat([p.grad.flatten() for p in pot.parameters()]))
    dF = (grads["numba"][0] - grads["torch"][0]).abs().max().item()
    dg = (grads["numba"][1] - grads["torch"][1]).abs().max().item() / grads["torch"][1].abs().max().item()
    assert dF < 1e-12 and dg < 1e-12, f"force diff {dF:.2e}, relative gradient diff {dg:.2e} (tol 1e-12)"


def test_recomputed_derivatives_equal_cached(anchors):
    """With no memory for D (or room for one structure) the batch is recomputed: same forces."""
    pot, _, full = _h2o_cache(anchors)
    _, _, F_ref = _batch_EF(pot, full, [0, 1, 2])
    per_struct = int(full.n_pairs[0]) * (full.max_cols * 3 * 8 + 4 + 2)
    for budget in (0, per_struct + 10):
        _, _, part = _h2o_cache(anchors, budget=budget)
        assert part.n_cached_D == (0 if budget == 0 else 1)
        _, _, F = _batch_EF(pot, part, [0, 1, 2])
        assert torch.equal(F, F_ref), f"budget {budget}: max diff {(F - F_ref).abs().max().item():.2e}"
    _, _, f32 = _h2o_cache(anchors, d_dtype=np.float32)
    _, _, F = _batch_EF(pot, f32, [0, 1, 2])
    rel = ((F - F_ref).abs().max() / F_ref.abs().max()).item()
    assert rel < 1e-6, f"float32 D: relative force error {rel:.2e} > 1e-6"


# ------------------------------------------------------------------ trainer
def test_loss_decreases_and_outputs(case):
    r = _train(case, epochs=12)
    losses = [h["loss_train"] for h in r.history]
    assert losses[-1] < 0.5 * losses[0], f"training loss {losses[0]:.4g} -> {losses[-1]:.4g}: not halved"
    run = r.run_dir
    for name in ("input.nn", "scaling.data", "weights.013.data", "weights.029.data", "learning-curve.out",
                 "loss.out", "val_loss.out", "loss.png", "learning-curves.png", "parity.png", "config.json",
                 "checkpoint.pt", "train.log"):
        assert (run / name).is_file(), f"{name} missing from the run directory"
    lc = np.loadtxt(run / "learning-curve.out")
    assert lc.shape == (13, 25), f"learning-curve.out has shape {lc.shape}, expected 13 epochs x 25 columns"
    assert np.allclose(lc[:, 1], [h["train"]["rmse_epa"] for h in r.history], rtol=1e-7)
    # iu = pu x conv_energy, as in n2p2
    ce = Settings.read(run / "input.nn").get_float("conv_energy")
    assert np.allclose(lc[:, 13], lc[:, 1] * ce, rtol=1e-7)
    assert (run / "train.log").read_text().count("*** SETUP:") >= 3


def test_run_directory_loads_with_identical_energies(case):
    """weights.XXX.data + scaling.data + input.nn of the run give the in-memory model's E and F."""
    r = _train(case, epochs=3)
    loaded = Potential.from_n2p2(r.run_dir)
    for s in read_input_data(case / "input.data")[:4]:
        a, b = r.potential.compute(s), loaded.compute(s)
        assert abs(a.energy - b.energy) <= 1e-13 * max(1.0, abs(a.energy)), f"{a.energy} vs {b.energy}"
        assert np.abs(a.forces - b.forces).max() < 1e-13


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs", "kalman"])
def test_resume_is_bit_for_bit(case, optimizer):
    """Interrupt after 3 of 7 epochs, resume: final weights and learning curve equal an uninterrupted run."""
    from hdnnp.training.workflow import train

    opts = {"optimizer": optimizer, "lbfgs_iterations": 4}
    full = _train(case, "full", epochs=7, overrides=opts)
    part = _train(case, "part", epochs=7, stop_after=3, overrides=opts)
    assert part.history[-1]["epoch"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = train(resume=case.parent / "part", progress=False, console=False)
    sa, sb = full.potential.state_dict(), resumed.potential.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k}: max diff {(sa[k] - sb[k]).abs().max().item():.3e} (expected 0)"
    la = (case.parent / "full" / "learning-curve.out").read_text()
    lb = (case.parent / "part" / "learning-curve.out").read_text()
    assert la == lb
    for w in ("weights.013.data", "weights.029.data"):
        assert (case.parent / "full" / w).read_text() == (case.parent / "part" / w).read_text()


def test_checkpoint_loads_without_code(case):
    r = _train(case, epochs=2)
    state = torch.load(r.run_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["optimizer"]["state"], "optimizer state missing"
    assert isinstance(state["generator"], torch.Tensor)


def test_lbfgs_and_exponential_schedule(case):
    r = _train(case, "lbfgs", epochs=3, overrides={"optimizer": "lbfgs", "lbfgs_iterations": 10})
    assert r.history[-1]["loss_train"] < 0.5 * r.history[0]["loss_train"]
    r = _train(case, "sgd", epochs=2, overrides={"optimizer": "sgd", "lr_schedule": "exponential",
                                                 "lr_decay": 0.5, "learning_rate": 1e-3})
    assert [h["lr"] for h in r.history[1:]] == pytest.approx([1e-3, 5e-4])  # lr used in each epoch


def test_energy_only_training(case):
    text = (case / "input.nn").read_text().replace("use_short_forces\n", "")
    (case / "input.nn").write_text(text)
    r = _train(case, epochs=2)
    assert np.loadtxt(r.run_dir / "learning-curve.out").shape[1] == 17  # energies only, as n2p2


def test_refuses_nonempty_run_dir(case):
    run = case.parent / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(HDNNPError, match="already exists and is not empty; choose a new one with -o, or continue"):
        _train(case)
    assert (run / "notes.txt").read_text() == "mine"


def test_unsupported_keywords_warn_once(case):
    from hdnnp.training.config import config_from_settings

    text = (case / "input.nn").read_text() + "write_neuronstats 1\nwrite_neuronstats 2\nupdater_type 1\nfoo_bar 3\n" \
        "kalman_q0 0.02\n"
    s = Settings.parse(text, "input.nn")
    with pytest.warns(UserWarning) as rec:
        cfg = config_from_settings(s)
    msgs = [str(w.message) for w in rec]
    assert sum("'write_neuronstats' is not supported by hdnnp train and is ignored (no neuron statistics)" in m
               for m in msgs) == 1
    assert any("unknown keyword 'foo_bar' ignored" in m for m in msgs)
    assert not any("kalman_q0" in m or "updater_type" in m for m in msgs)
    assert cfg.optimizer == "kalman" and cfg.kalman_q0 == 0.02 and cfg.force_weight == 2.0 and cfg.use_forces


# ------------------------------------------------------------------ bad input
def _bad_data(case, edit):
    data = read_input_data(case / "input.data")
    edit(data)
    write_input_data(case / "input.data", data)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d[3].elements.__setitem__(2, "Ni"),
     "structure 4, atom 3: element Ni is not in the potential's elements (Al Cu)"),
    (lambda d: setattr(d[1], "energy", float("nan")), "structure 2: reference energy is nan"),
    (lambda d: d[5].forces.__setitem__((1, 2), float("nan")), "structure 6, atom 2: reference force is"),
    (lambda d: [f.forces.fill(0.0) for f in d], "all reference force components are 0 (forces missing?)"),
])
def test_bad_data_is_reported_before_training(case, edit, message):
    _bad_data(case, edit)
    with pytest.raises(HDNNPError, match=re.escape(message)):
        _train(case)
    assert not (case.parent / "run").exists(), "a failed run must not leave a run directory"


def test_missing_energy_is_reported(case):
    text = (case / "input.data").read_text().splitlines()
    i = next(k for k, line in enumerate(text) if line.startswith("energy"))
    (case / "input.data").write_text("\n".join(text[:i] + text[i + 1:]) + "\n")
    with pytest.raises(HDNNPError, match=r"structure 1: no reference energy \('energy' line\)"):
        _train(case)


def test_empty_validation_and_training_sets(case):
    with pytest.raises(HDNNPError, match="the validation set is empty"):
        _train(case, overrides={"test_fraction": 0.0})
    _bad_data(case, lambda d: [setattr(s, "set_tag", "test") for s in d])
    with pytest.raises(HDNNPError, match="the training set is empty"):
        _train(case)


def test_cli_train_error_is_one_line(case, capsys):
    from hdnnp.cli import main

    _bad_data(case, lambda d: setattr(d[0], "energy", float("inf")))
    rc = main(["train", str(case / "input.nn"), "-o", str(case.parent / "r"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("hdnnp train: error: ") and "structure 1: reference energy is inf" in err[-1]


# ------------------------------------------------------------------ prototype
def test_prototype_control_in_trains_end_to_end(tmp_path):
    import hdnnp

    d = tmp_path / "proto"
    shutil.copytree(PROTO, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = hdnnp.training(d / "control.in", save=True, progress=False, epochs=10)
    out = d / "outputs"
    for name in ("function.data", "loss.out", "val_loss.out", "loss.png", "weights.013.data", "weights.029.data"):
        assert (out / name).is_file(), f"{name} missing"
    assert r.history[-1]["loss_train"] < r.history[0]["loss_train"]
    s = Settings.read(out / "input.nn")
    assert s.get_str("cutoff_type") == "1" and s.line("global_activation_short").values == ["T", "T", "l"]
    assert {line.values[1] for line in s.all("symfunction_short")} == {"2", "9"}
    # function.data: the raw SFs of the first atom agree with a fresh computation
    pot = Potential.from_n2p2(out)
    first = read_input_data(d / "input.data")[0]
    G = pot.sf_set.compute(first).G
    lines = (out / "function.data").read_text().splitlines()
    assert int(lines[0]) == len(first)
    vals = np.array(lines[1].split()[1:], dtype=float)
    assert np.allclose(vals, G[0, : len(vals)], atol=2e-10)
    with pytest.raises(HDNNPError, match="is not empty; pass overwrite=True"):
        hdnnp.training(d / "control.in", progress=False)


def test_prototype_reader_errors(tmp_path):
    from hdnnp.io.prototype import control_to_settings, read_control

    d = tmp_path / "p"
    shutil.copytree(PROTO, d)
    (d / "Al-SymFunc.smf").write_text("# Type G2\nAl 0.1 0.0\n")
    with pytest.raises(ReadError, match=r"Al-SymFunc.smf:2: G2 row: expected 'neighbour eta R_s R_c', found 3"):
        control_to_settings(read_control(d / "control.in"))
    (d / "Al-SymFunc.smf").write_text("# Type G3\nAl Ni 0.1 1.0 1.0 4.0\n")
    with pytest.raises(ReadError, match="G3 row uses element 'Ni', which has no atom_type line"):
        control_to_settings(read_control(d / "control.in"))
    text = (d / "control.in").read_text()
    (d / "control.in").write_text(text.replace("cut_function_type       1", "cut_function_type       3"))
    with pytest.raises(ReadError, match=r"control.in:2: cut_function_type must be 1 \(cosine\) or 2"):
        control_to_settings(read_control(d / "control.in"))
    (d / "control.in").write_text(text.replace("atom_type_2 Al 13", "atom_type_2 Al 12"))
    with pytest.raises(ReadError, match="atom_type_2: atomic number 12 does not match Al"):
        read_control(d / "control.in")


def test_callable_package_name():
    """``hdnnp.training`` stays callable after the subpackage has been imported."""
    import hdnnp
    import hdnnp.training.trainer  # noqa: F401 - binds the subpackage to hdnnp.training

    assert callable(hdnnp.training)


@pytest.mark.slow
def test_resume_after_sigkill(case):
    """A real interruption: SIGKILL the CLI after its second checkpoint, resume, compare with an
    uninterrupted run (slow: two subprocesses)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    opts = ["--epochs", "40", "--batch-size", "1", "--no-progress"]
    full = _train(case, "full", epochs=40, overrides={"batch_size": 1})
    run = case.parent / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "hdnnp.cli", "train", str(case / "input.nn"), "-o", str(run),
                             *opts], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while time.time() - t0 < 120:
            ck = run / "checkpoint.pt"
            if ck.exists() and torch.load(ck, weights_only=True)["epoch"] >= 2:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    epoch = torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]
    assert 2 <= epoch < 40, f"killed at epoch {epoch}: too late to test resuming"
    from hdnnp.cli import main

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    for w in ("weights.013.data", "weights.029.data"):
        assert (run / w).read_text() == (full.run_dir / w).read_text(), f"{w} differs after kill + resume"
    assert (run / "learning-curve.out").read_text() == (full.run_dir / "learning-curve.out").read_text()


def test_torch_force_backend_trains_like_numba(case):
    """The pure-torch force path (used on GPUs) follows the numba path's trajectory."""
    a = _train(case, "numba", epochs=2)
    b = _train(case, "torch", epochs=2, force_backend="torch")
    for k, v in a.potential.state_dict().items():
        diff = (v - b.potential.state_dict()[k]).abs().max().item()
        assert diff < 1e-10, f"{k}: numba vs torch backend differ by {diff:.2e}"


def test_trainer_leaves_the_users_settings_unchanged(case):
    """Normalisation and training keywords go into new Settings objects, never into the parsed ones."""
    from hdnnp.training.config import config_from_settings
    from hdnnp.training.distributed import Distributed
    from hdnnp.training.trainer import Trainer

    settings = Settings.read(case / "input.nn")
    before = settings.to_text()
    assert "conv_energy" not in settings
    cfg = config_from_settings(settings, overrides=None)
    dist = Distributed("cpu")
    try:
        tr = Trainer(settings, cfg, read_input_data(case / "input.data"), case / "input.data", case.parent / "r",
                     dist, progress=False)
        tr.prepare()
    finally:
        dist.close()
    assert settings.to_text() == before
    assert tr.settings is not settings and "conv_energy" in tr.settings and "hdnnp_optimizer" in tr.settings
    assert tr.pot.settings is tr.settings


def test_settings_edits_return_new_objects():
    s = Settings.parse("a 1\nb 2\na 3\n")
    t = s.with_keyword("a", 5).without("b")
    assert s.to_text() == "a 1\nb 2\na 3\n"
    assert [(line.key, line.values) for line in t.lines] == [("a", ["5"])]
    assert s.with_keyword("c").lines[-1].key == "c"


def test_keyword_table_drives_reading_writing_cli_and_docs():
    """training.config.KEYWORDS: what config_to_keywords writes, config_from_settings reads back."""
    import argparse
    import dataclasses

    from hdnnp.training.config import (
        KEYWORDS, TrainingConfig, add_cli_options, cli_overrides, config_from_settings, config_to_keywords,
        keyword_docs,
    )

    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    assert all(kw.attr in fields for kw in KEYWORDS)
    cfg = TrainingConfig(epochs=7, test_fraction=0.3, seed=5, force_weight=2.5, optimizer="kalman", split="n2p2",
                         learning_rate=0.25, batch_size=3, lr_schedule="exponential", lr_decay=0.9, clip_value=0.5,
                         cache_memory_gb=1.5, cache_dtype="float32", kalman_blocks="layer", kalman_streams=2,
                         kalman_warmup=1, weight_init="he_normal", torch_threads=2)
    lines = config_to_keywords(cfg)
    assert [k for k, _ in lines] == [kw.key for kw in KEYWORDS]  # all rows apply to this config
    text = "".join(f"{k} {' '.join(v)}\n" for k, v in lines) + "use_short_forces\n"
    back = config_from_settings(Settings.parse(text, "input.nn"), warn=False)
    for kw in KEYWORDS:
        assert getattr(back, kw.attr) == getattr(cfg, kw.attr), kw.key
    assert "hdnnp_kalman_blocks" not in dict(config_to_keywords(TrainingConfig()))  # only with the filter
    parser = argparse.ArgumentParser()
    add_cli_options(parser)
    args = parser.parse_args(["--learning-rate", "0.5", "--optimizer", "sgd"])
    assert {k: v for k, v in cli_overrides(args).items() if v is not None} == {"learning_rate": 0.5,
                                                                               "optimizer": "sgd"}
    docs = keyword_docs()
    assert all(f"`{kw.key}`" in docs for kw in KEYWORDS)
