"""The one model pipeline (hdnnp.model.evaluation): its stages, and that every path runs through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hdnnp.io.n2p2_data import read_input_data
from hdnnp.model import evaluation
from hdnnp.model.evaluation import Evaluation, element_energies, energies_and_gradient, evaluate
from hdnnp.model.potential import Potential


def test_element_energies_places_each_network_output_at_its_atoms():
    nets = {"H": lambda x: x.sum(1) + 100.0, "O": lambda x: -x.sum(1)}
    x = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    inputs = {"H": (torch.tensor([0, 2]), x[[0, 2]]), "O": (torch.tensor([1]), x[[1]])}
    out = element_energies(nets, inputs, 4, x)
    assert out.tolist() == [101.0, -5.0, 109.0, 0.0]  # atom 3 in no element: 0


class _Recorder:
    def __init__(self):
        self.g = None

    def forces(self, g):
        self.g = g
        return -g, None


def test_evaluate_hands_the_input_gradient_to_the_executor():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    rec = _Recorder()
    ev = evaluate(lambda v: (v**2).sum(1), x, rec)
    assert isinstance(ev, Evaluation)
    assert torch.equal(ev.energies.detach(), torch.tensor([5.0, 10.0], dtype=torch.float64))
    assert torch.equal(rec.g, 2 * x) and torch.equal(ev.forces, -2 * x)
    # an input that does not reach the energy: zero gradient, not an error
    w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)  # a weight; x unused (no pairs)
    ev = evaluate(lambda v: w * torch.ones(2, dtype=v.dtype), x, rec)
    assert torch.equal(ev.forces, torch.zeros_like(x))


def test_energies_only_keep_the_callers_grad_mode():
    """The Kalman filter differentiates energies w.r.t. the weights without forces."""
    w = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    x = torch.ones(3, 1, dtype=torch.float64)
    e, g = energies_and_gradient(lambda v: w * v[:, 0], x, gradient=False)
    assert g is None and e.requires_grad
    with torch.no_grad():
        e, _ = energies_and_gradient(lambda v: w * v[:, 0], x, gradient=False)
    assert not e.requires_grad


@pytest.fixture(scope="module")
def h2o(anchors):
    pot = Potential.from_n2p2(anchors / "potentials" / "H2O_RPBE-D3")
    s = read_input_data(anchors / "dataset" / "H2O_RPBE-D3" / "input.data")[0]
    return pot, s


@pytest.mark.parametrize("backend,mode", [("numba", "recompute"), ("numba", "store"), ("torch", "recompute")])
def test_every_prediction_path_runs_the_pipeline(h2o, monkeypatch, backend, mode):
    """Potential.compute's forces come out of evaluation (evaluate or the store executor)."""
    pot, s = h2o
    calls = []
    real_evaluate, real_stored = evaluation.evaluate, evaluation.StoredPairGradients.forces
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: calls.append("evaluate") or real_evaluate(*a, **k))
    monkeypatch.setattr(evaluation.StoredPairGradients, "forces",
                        lambda self, *a: calls.append("stored") or real_stored(self, *a))
    r = pot.compute(s, sf_backend=backend, derivative_mode=mode)
    assert calls == (["stored"] if mode == "store" else ["evaluate"])
    ref = pot.compute(s)
    assert np.abs(r.forces - ref.forces).max() < 1e-10 and abs(r.energy - ref.energy) < 1e-9


def test_training_batches_run_the_pipeline(anchors, monkeypatch):
    from hdnnp.training import batch_model
    from hdnnp.training.dataset import DescriptorCache

    pot = Potential.from_n2p2(anchors / "potentials" / "H2O_RPBE-D3")
    data = read_input_data(anchors / "dataset" / "H2O_RPBE-D3" / "input.data")[:2]
    cache = DescriptorCache(pot.sf_set, data, [0, 1], True)
    cache.set_scaling(pot.scalings)
    cache.set_targets(np.zeros(2), np.zeros((sum(len(s) for s in data), 3)))
    calls = []
    real = batch_model.evaluate
    monkeypatch.setattr(batch_model, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    E, F = batch_model.predict_batch(pot, cache.batch([0, 1], True), forces=True)
    assert len(calls) == 1 and E.shape == (2,) and F.shape == (sum(len(s) for s in data), 3)


def test_element_energies_of_consecutive_blocks_are_concatenated():
    nets = {"H": lambda x: x.sum(1), "O": lambda x: -x.sum(1)}
    x = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    out = element_energies(nets, {"H": (slice(0, 2), x[0:2]), "O": (slice(2, 3), x[2:3])}, 3, x)
    assert out.tolist() == [1.0, 5.0, -9.0]
    assert element_energies(nets, {}, 0, x).shape == (0,)
