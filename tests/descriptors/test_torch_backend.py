"""The pure-torch symmetry-function backend (``hdnnp.descriptors.torch_backend``) against the
numba kernels and n2p2:

* G and dE/dr per pair for every SF type (2, 3, 9, 12, 13, 20-25) x every cutoff type, in a
  cluster, a small periodic cell and a dense cluster (chunked triplet lists), float64 to ~1e-13;
* chunked (tiny ``max_triplets_per_chunk``) == one chunk == one autograd graph;
* ``Potential.compute(sf_backend="torch")``: energy, forces, stress == numba path (toy potential
  with every type; the n2p2 anchors H2O, Cu2S, Anisole and their n2p2 reference outputs);
  float32 close to float64; forces == -dE/dx and stress == strain derivative (finite differences);
* unsupported types: a clear error, and ``Potential`` falls back to numba with one warning;
* on CUDA when available (skipped otherwise).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from test_kernels_consistency import CELL, SF_LINES, _sf_set, _structure

from hdnnp.descriptors import kernels as K
from hdnnp.descriptors import torch_backend as TB
from hdnnp.descriptors.torch_backend import TorchSymmetryFunctions, UnsupportedSymmetryFunctionError
from hdnnp.io.input_nn import Settings
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.model.potential import Potential
from hdnnp.neighbors import neighbor_list_torch, vesin_torch_available
from hdnnp.testing import central_difference_forces, central_difference_stress

CUTOFFS = [(0, 0.0), (1, 0.2), (2, 0.0), (3, 0.0), (4, 0.1), (5, 0.1), (6, 0.3), (7, 0.2), (8, 0.0)]


def _case(system: str, cutoff_type: int, alpha: float, seed: int):
    rng = np.random.default_rng(seed)
    if system == "dense":
        sfs = _sf_set(cutoff_type, alpha, [t.replace(" 4.0", " 7.0") for t in SF_LINES])
        return sfs, _structure(rng, 40, box=5.0), rng
    sfs = _sf_set(cutoff_type, alpha)
    s = _structure(rng, 8, CELL) if system == "periodic" else _structure(rng, 14)
    return sfs, s, rng


def _random_dEdG(rng, sfs, species, shape):
    dEdG = rng.normal(size=shape)
    for k, e in enumerate(sfs.elements):
        dEdG[species == k, sfs.n_sf[e]:] = 0.0
    return dEdG


def _numba_reference(sfs, s, nl, rng):
    species = sfs.species_of(s)
    G, D, _ = sfs._run(s, nl, species, 1)
    dEdG = _random_dEdG(rng, sfs, species, G.shape)
    return species, G, dEdG, np.einsum("ps,psc->pc", dEdG[nl.i], D)


@pytest.mark.parametrize("cutoff_type,alpha", CUTOFFS)
@pytest.mark.parametrize("system", ["cluster", "periodic"])
def test_every_type_matches_numba(system, cutoff_type, alpha):
    sfs, s, rng = _case(system, cutoff_type, alpha, 7 * cutoff_type + len(system))
    nl = sfs.neighbors(s)
    species, G0, dEdG, pg0 = _numba_reference(sfs, s, nl, rng)
    tsf = TorchSymmetryFunctions(sfs)
    data = tsf.prepare(nl, species)
    G = tsf.values(data).numpy()
    assert G.shape == G0.shape
    assert (np.abs(G0).max(axis=0) > 0).mean() > 0.9, "most symmetry functions are zero: degenerate test"
    np.testing.assert_allclose(G, G0, rtol=0, atol=1e-13 * np.abs(G0).max())
    # per column as well (small SFs next to large ones)
    col = np.abs(G0).max(axis=0)
    assert (np.abs(G - G0) <= 1e-12 * col + 1e-300).all()
    pg = tsf.pair_gradients(data, torch.tensor(dEdG)).numpy()
    np.testing.assert_allclose(pg, pg0, rtol=0, atol=1e-12 * np.abs(pg0).max())
    # forces and virial from the pair gradients: same convention as the numba helper
    F, W = TB.forces_and_virial(data, torch.tensor(pg0))
    F0, W0 = K.forces_from_pair_gradients(len(s), nl.i, nl.j, nl.vectors, pg0)
    np.testing.assert_allclose(F.numpy(), F0, rtol=0, atol=1e-13 * np.abs(F0).max())
    np.testing.assert_allclose(W.numpy(), W0, rtol=0, atol=1e-13 * np.abs(W0).max())


@pytest.mark.parametrize("cutoff_type,alpha", [(2, 0.0), (6, 0.3)])
def test_chunked_equals_unchunked(cutoff_type, alpha):
    """Dense cluster (~30k triplets): chunks of ~400 triplets, one chunk, one graph."""
    sfs, s, rng = _case("dense", cutoff_type, alpha, 3)
    nl = sfs.neighbors(s)
    species, G0, dEdG, pg0 = _numba_reference(sfs, s, nl, rng)
    results = []
    for m in (397, 10**9):
        tsf = TorchSymmetryFunctions(sfs, max_triplets_per_chunk=m)
        data = tsf.prepare(nl, species)
        assert (data.n_chunks > 60) == (m == 397), data.n_chunks
        G = tsf.values(data)
        pg = tsf.pair_gradients(data, torch.tensor(dEdG))
        vec = data.vectors.clone().requires_grad_(True)  # one graph over all chunks
        (pg_graph,) = torch.autograd.grad((tsf.values(data, vec) * torch.tensor(dEdG)).sum(), vec)
        results.append((G.numpy(), pg.numpy(), pg_graph.numpy()))
    for G, pg, pg_graph in results:
        np.testing.assert_allclose(G, G0, rtol=0, atol=1e-13 * np.abs(G0).max())
        for p in (pg, pg_graph):
            np.testing.assert_allclose(p, pg0, rtol=0, atol=1e-12 * np.abs(pg0).max())
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=0, atol=1e-14 * np.abs(G0).max())


def test_float32_close_to_float64():
    sfs, s, rng = _case("periodic", 6, 0.0, 11)
    nl = sfs.neighbors(s)
    species, G0, dEdG, pg0 = _numba_reference(sfs, s, nl, rng)
    tsf = TorchSymmetryFunctions(sfs, dtype=torch.float32)
    data = tsf.prepare(nl, species)
    G = tsf.values(data)
    assert G.dtype == torch.float32
    col = np.abs(G0).max(axis=0)
    assert (np.abs(G.double().numpy() - G0) <= 1e-5 * col).all()
    pg = tsf.pair_gradients(data, torch.tensor(dEdG)).double().numpy()
    np.testing.assert_allclose(pg, pg0, rtol=0, atol=1e-5 * np.abs(pg0).max())


def test_gradient_with_respect_to_positions():
    """G as a function of positions (pair_vectors): autograd == pair gradients scattered to atoms."""
    sfs, s, rng = _case("periodic", 1, 0.0, 5)
    nl = sfs.neighbors(s)
    species, _, dEdG, pg0 = _numba_reference(sfs, s, nl, rng)
    tsf = TorchSymmetryFunctions(sfs)
    data = tsf.prepare(nl, species)
    pos = torch.tensor(s.positions, requires_grad=True)
    cell = torch.tensor(s.cell)
    G = tsf.values(data, tsf.pair_vectors(pos, cell, data))
    (g,) = torch.autograd.grad((G * torch.tensor(dEdG)).sum(), pos)
    F0, _ = K.forces_from_pair_gradients(len(s), nl.i, nl.j, nl.vectors, pg0)
    np.testing.assert_allclose(-g.numpy(), F0, rtol=0, atol=1e-12 * np.abs(F0).max())


# ------------------------------------------------------------------------------- potential
INPUT_NN = """
number_of_elements 2
elements O H
cutoff_type {ct} {alpha}
global_hidden_layers_short 2
global_nodes_short 8 6
global_activation_short t p l
""" + "\n".join("symfunction_short " + ln for ln in SF_LINES)


def _toy(cutoff_type=6, alpha=0.1, **kw) -> Potential:
    return Potential.from_settings(Settings.parse(INPUT_NN.format(ct=cutoff_type, alpha=alpha)), seed=3, **kw)


def _assert_same(r, r0, e_rel=1e-12, f_rel=1e-10):
    assert abs(r.energy - r0.energy) <= e_rel * abs(r0.energy)
    np.testing.assert_allclose(r.atomic_energies, r0.atomic_energies, rtol=0,
                               atol=f_rel * np.abs(r0.atomic_energies).max())
    np.testing.assert_allclose(r.forces, r0.forces, rtol=0, atol=f_rel * np.abs(r0.forces).max())
    if r0.stress is None:
        assert r.stress is None
    else:
        np.testing.assert_allclose(r.stress, r0.stress, rtol=0, atol=f_rel * np.abs(r0.stress).max())
        np.testing.assert_allclose(r.virial, r0.virial, rtol=0, atol=f_rel * np.abs(r0.virial).max())


@pytest.mark.parametrize("cutoff_type,alpha", [(1, 0.0), (2, 0.0), (6, 0.1), (8, 0.2)])
def test_toy_potential_energy_forces_stress(cutoff_type, alpha):
    pot = _toy(cutoff_type, alpha)
    rng = np.random.default_rng(cutoff_type)
    for s in (_structure(rng, 9, CELL), _structure(rng, 12)):
        r0 = pot.compute(s, sf_backend="numba")
        assert abs(r0.energy) > 0 and np.abs(r0.forces).max() > 0
        _assert_same(pot.compute(s, sf_backend="torch"), r0)


def test_toy_potential_chunked_and_finite_differences():
    pot = _toy()
    rng = np.random.default_rng(21)
    s = _structure(rng, 9, CELL)
    r_one = pot.compute(s, sf_backend="torch")  # one chunk, one autograd graph
    pot.torch_max_triplets_per_chunk = 50
    r_graph = pot.compute(s, sf_backend="torch")  # many chunks, one autograd graph
    pot.torch_graph_max_bytes = 0
    r_chunked = pot.compute(s, sf_backend="torch")  # values, then gradients chunk by chunk
    assert pot.torch_symmetry_functions().prepare(pot.sf_set.neighbors(s), pot.sf_set.species_of(s)).n_chunks > 10
    _assert_same(r_graph, r_one, e_rel=1e-14, f_rel=1e-12)
    _assert_same(r_chunked, r_one, e_rel=1e-14, f_rel=1e-12)
    fd = central_difference_forces(lambda x: pot.compute(x, forces=False, sf_backend="torch").energy,
                                   s, [0, 4], 1e-5)
    assert np.abs(fd - r_chunked.forces[[0, 4]]).max() < 1e-7 * np.abs(r_chunked.forces).max()
    # stress = (1/V) dE/d(strain)
    fd_s = central_difference_stress(lambda x: pot.compute(x, forces=False, sf_backend="torch").energy, s, 1e-5)
    assert np.abs(fd_s - r_chunked.stress).max() < 1e-7 * np.abs(r_chunked.stress).max()


def test_toy_potential_float32():
    p64 = _toy()
    p32 = _toy(dtype=torch.float32)
    p32.load_state_dict(p64.state_dict())
    s = _structure(np.random.default_rng(2), 9, CELL)
    r0 = p64.compute(s, sf_backend="numba")
    r = p32.compute(s, sf_backend="torch")
    assert abs(r.energy - r0.energy) < 1e-5 * abs(r0.energy)
    assert np.abs(r.forces - r0.forces).max() < 1e-4 * np.abs(r0.forces).max()
    assert np.abs(r.stress - r0.stress).max() < 1e-4 * np.abs(r0.stress).max()


def test_edge_cases():
    pot = _toy()
    from hdnnp.structure import Structure

    one = Structure(["O"], np.zeros((1, 3)))  # no pairs at all
    r = pot.compute(one, sf_backend="torch")
    _assert_same(r, pot.compute(one, sf_backend="numba"))
    assert np.all(r.forces == 0)
    two = Structure(["O", "H"], np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))  # pairs, no triplets
    _assert_same(pot.compute(two, sf_backend="torch"), pot.compute(two, sf_backend="numba"))


def test_backend_choice_and_fallback(monkeypatch):
    pot = _toy()
    assert pot.sf_backend == "auto" and pot.resolve_sf_backend() == "numba"  # CPU device
    assert pot.resolve_sf_backend("torch") == "torch"
    with pytest.raises(ValueError, match="sf_backend"):
        pot.resolve_sf_backend("cupy")
    with pytest.raises(ValueError, match="sf_backend"):
        _toy(sf_backend="gpu")
    assert _toy(sf_backend="torch").resolve_sf_backend() == "torch"
    # a type the backend does not support: clear error naming it ...
    monkeypatch.setattr(TB, "SUPPORTED_TYPES", TB.SUPPORTED_TYPES - {21})
    with pytest.raises(UnsupportedSymmetryFunctionError, match="type 21"):
        TorchSymmetryFunctions(pot.sf_set)
    # ... and Potential falls back to the numba kernels, warning once
    s = _structure(np.random.default_rng(1), 9, CELL)
    pot = _toy(sf_backend="torch")
    with pytest.warns(RuntimeWarning, match="type 21"):
        r = pot.compute(s)
    _assert_same(r, pot.compute(s, sf_backend="numba"), e_rel=0, f_rel=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pot.compute(s)


# ------------------------------------------------------------------------------- anchors
@pytest.fixture(scope="module")
def anchor_cases(anchors):
    out = {}
    for ex in ("H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"):
        d = anchors / "potentials" / ex
        out[ex] = (d, read_input_data(d / "input.data")[0])
    return out


@pytest.mark.parametrize("example", ["H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"])
def test_anchor_potentials(anchors, anchor_cases, example):
    """torch backend == numba backend == n2p2 nnp-predict (energy 1e-10 rel., forces 1e-8 abs.)."""
    d, s = anchor_cases[example]
    pot = Potential.from_n2p2(d, sf_backend="torch")
    r = pot.compute(s)
    r0 = pot.compute(s, sf_backend="numba")
    _assert_same(r, r0, e_rel=1e-13, f_rel=1e-11)
    e_ref = np.loadtxt(anchors / "predict" / example / "energy.out")[3]
    f_ref = np.loadtxt(anchors / "predict" / example / "nnforces.out")[:, 5:8]
    assert abs(r.energy - e_ref) < 1e-10 * abs(e_ref)
    assert np.abs(r.forces - f_ref).max() < 1e-8
    assert r.n_extrapolations == 0
    # float32 (networks and symmetry functions): ~1e-5 relative (Cu2S forces: ~1e-4, see the README)
    p32 = Potential.from_n2p2(d, dtype=torch.float32, sf_backend="torch")
    r32 = p32.compute(s)
    assert abs(r32.energy - r0.energy) < 1e-6 * abs(r0.energy)
    assert np.abs(r32.forces - r0.forces).max() < 2e-4 * np.abs(r0.forces).max()
    assert r32.n_extrapolations == 0


@pytest.mark.skipif(not vesin_torch_available(), reason="needs pip install vesin-torch")
@pytest.mark.parametrize("example", ["H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"])
def test_device_neighbour_list(anchors, anchor_cases, example):
    """vesin-torch's list (what a CUDA device uses; built here on the CPU device) gives the same
    pairs as vesin's, grouped by atom, and the same energy, forces and stress."""
    d, s = anchor_cases[example]
    pot = Potential.from_n2p2(d, sf_backend="torch")
    ref_nl = pot.sf_set.neighbors(s)
    nl = neighbor_list_torch(s.positions, s.cell, pot.sf_set.cutoff, "cpu")
    assert torch.equal(nl.start, torch.as_tensor(ref_nl.start))
    key = lambda i, j, S: sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))  # noqa: E731
    assert key(nl.i, nl.j, nl.shifts) == key(ref_nl.i, ref_nl.j, ref_nl.shifts)
    r_cpu = pot.compute(s)
    pot.torch_neighbor_list = "device"
    _assert_same(pot.compute(s), r_cpu, e_rel=1e-13, f_rel=1e-11)
    for system in ("cluster", "dense"):  # non-periodic; a small cell with several image shells
        sfs, st, _ = _case(system, 2, 0.0, 3)
        a, b = sfs.neighbors(st), neighbor_list_torch(st.positions, st.cell, sfs.cutoff, "cpu")
        assert key(b.i, b.j, b.shifts) == key(a.i, a.j, a.shifts) and len(a.i) > 0
    with pytest.raises(ValueError, match="coincide"):
        neighbor_list_torch(np.zeros((2, 3)), None, 3.0, "cpu")


def test_predict_cli_torch_backend(anchors, tmp_path):
    from hdnnp.cli import main

    pot_dir = anchors / "potentials" / "Cu2S_PBE"
    out = tmp_path / "out"
    assert main(["predict", str(pot_dir), str(pot_dir / "input.data"), "-o", str(out), "--sf-backend", "torch"]) == 0
    e = np.loadtxt(out / "energy.out")
    e_ref = np.loadtxt(anchors / "predict" / "Cu2S_PBE" / "energy.out")
    assert abs(e[3] - e_ref[3]) < 1e-10 * abs(e_ref[3])
    f = np.loadtxt(out / "nnforces.out")
    f_ref = np.loadtxt(anchors / "predict" / "Cu2S_PBE" / "nnforces.out")
    assert np.abs(f - f_ref).max() < 1e-8


def test_md_cli_torch_backend(anchors, tmp_path):
    """``hdnnp md --sf-backend torch``: same trajectory as the numba backend (3 NVE steps)."""
    import json

    from hdnnp.cli import main

    d = anchors / "potentials" / "Cu2S_PBE"
    thermo = []
    for backend in ("numba", "torch"):
        out = tmp_path / backend
        assert main(["md", str(d), str(d / "input.data"), "--steps", "3", "--timestep-fs", "1",
                     "--temperature-K", "300", "--seed", "3", "-o", str(out), "--no-progress", "--no-plot",
                     "--sf-backend", backend]) == 0
        assert (out / "md.json").is_file() and json.loads((out / "md.json").read_text())
        thermo.append(np.loadtxt(out / "thermo.log"))
    np.testing.assert_allclose(thermo[1], thermo[0], rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda(anchors, anchor_cases):
    """On the GPU: auto selects the torch backend; float64 equals the CPU numba path."""
    for ex in ("H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"):
        d, s = anchor_cases[ex]
        r0 = Potential.from_n2p2(d).compute(s)
        pot = Potential.from_n2p2(d, device="cuda")
        assert pot.resolve_sf_backend() == "torch"
        _assert_same(pot.compute(s), r0, e_rel=1e-12, f_rel=1e-10)
        pot.torch_max_triplets_per_chunk = 50_000
        pot.torch_graph_max_bytes = 0
        _assert_same(pot.compute(s), r0, e_rel=1e-12, f_rel=1e-10)
        r32 = Potential.from_n2p2(d, device="cuda", dtype=torch.float32).compute(s)
        assert abs(r32.energy - r0.energy) < 1e-6 * abs(r0.energy)
        assert np.abs(r32.forces - r0.forces).max() < 2e-4 * np.abs(r0.forces).max()
    sfs, s, rng = _case("periodic", 6, 0.3, 1)
    nl = sfs.neighbors(s)
    species, G0, dEdG, pg0 = _numba_reference(sfs, s, nl, rng)
    tsf = TorchSymmetryFunctions(sfs, device="cuda")
    data = tsf.prepare(nl, species)
    np.testing.assert_allclose(tsf.values(data).cpu().numpy(), G0, rtol=0, atol=1e-13 * np.abs(G0).max())
    pg = tsf.pair_gradients(data, torch.tensor(dEdG)).cpu().numpy()
    np.testing.assert_allclose(pg, pg0, rtol=0, atol=1e-12 * np.abs(pg0).max())
