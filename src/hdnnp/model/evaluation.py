"""One model pipeline: scaled inputs -> element networks -> energies -> forces, virial, stress.

Every path that turns symmetry functions into energies and forces runs through this module:
``Potential.compute`` (prediction, MD, the ASE calculator; numba kernels or the torch backend)
and the trainer (``Trainer._predict``: the loss, the error sums, the Kalman filter's Jacobians).
The stages:

1. :func:`element_energies` applies the per-element networks to scaled inputs; per-atom outputs
   in n2p2's normalised ("internal") energy units. The only place the networks are applied
   (4G's charge/short networks: ``model/fourg.py``).
2. :func:`evaluate` runs an energy function ``x -> (n,) per-atom energies`` (``x``: raw or scaled
   symmetry functions, or pair vectors) and, when forces are asked for, takes d(sum E)/dx by
   autograd (``create_graph`` for a loss on forces) and hands it to a *descriptor-derivative
   executor*, which turns it into forces and the virial.
3. The executors, one per representation of dG/dr: :class:`KernelDerivatives` (numba kernels,
   dG/dr recomputed and contracted on the fly), :class:`TorchPairDerivatives` (the torch backend:
   x are the pair vectors, or dE/dG contracted chunk by chunk) and, for training,
   ``hdnnp.training.force_kernels.CachedDerivatives`` (cached dG/dr of a batch).
   Forces and virial come from per-pair gradients (:func:`pair_forces`, numba; on torch tensors
   ``torch_backend.forces_and_virial``); :func:`stress_from_virial` gives the stress.

Units are those of the energy function: ``Potential`` passes one in the potential's physical
units, the trainer one in normalised units (its executor applies the chain factor dG_scaled/dG
/ conv_length). Forces are -dE/dr (energy/length, (n_atoms, 3)); the virial W = -sum_p r_p (x)
dE/dr_p (energy, (3, 3)); stress = -W / V (energy/length^3, ASE's sign convention).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch


class DescriptorDerivatives(Protocol):
    """Turns dE/dx (the gradient of the summed energies w.r.t. the energy function's input)
    into (forces (n_atoms, 3), virial (3, 3) or None)."""

    def forces(self, dEdx: torch.Tensor): ...


@dataclass
class Evaluation:
    """Per-atom energies (n,) (torch, graph kept when the caller's grad mode builds one),
    forces (n, 3) and virial (3, 3) or None (the executor's types: numpy or torch)."""

    energies: torch.Tensor
    forces: object = None
    virial: object = None


def element_energies(networks, inputs: dict, n_atoms: int, like: torch.Tensor) -> torch.Tensor:
    """Per-atom network outputs (n_atoms,) in internal energy units.

    networks : {element: network}; inputs : {element: (atoms, scaled inputs (m, n_in))} with atoms
    an index tensor (m,) int64, or a ``slice`` when the elements' atoms are consecutive blocks
    that together cover 0..n_atoms in order (training batches; then the outputs are concatenated,
    no scatter); atoms not listed get 0. ``like`` gives dtype and device of the result.
    """
    outs = [(idx, networks[e](x)) for e, (idx, x) in inputs.items()]
    bounds = [(idx.start, idx.stop) for idx, _ in outs if isinstance(idx, slice)]
    if len(bounds) == len(outs) and [b[0] for b in bounds] == [0, *[b[1] for b in bounds[:-1]]] \
            and (bounds[-1][1] if bounds else 0) == n_atoms:
        return torch.cat([y for _, y in outs]) if outs else like.new_zeros(n_atoms)
    out = torch.zeros(n_atoms, dtype=like.dtype, device=like.device)
    for idx, y in outs:
        out = out.index_put((idx,), y)
    return out


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run torch on ``n`` intra-op threads inside the block (None: unchanged)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def energies_and_gradient(energy_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, gradient: bool,
                          create_graph: bool = False):
    """(energy_fn(x) (n,), d(sum)/dx or None). With ``gradient`` the graph is built whatever the
    caller's grad mode; without, the caller's grad mode decides (the Kalman filter differentiates
    energies w.r.t. the weights). An input that does not reach the energy gets a zero gradient."""
    with torch.enable_grad() if gradient else contextlib.nullcontext():
        x = x.detach().requires_grad_(gradient)
        e = energy_fn(x)
        if not gradient:
            return e, None
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph, allow_unused=True)
    return e, (torch.zeros_like(x) if g is None else g)


def evaluate(energy_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             derivatives: DescriptorDerivatives | None = None, create_graph: bool = False,
             network_threads: int | None = None) -> Evaluation:
    """The pipeline: energies = energy_fn(x); with ``derivatives``, forces and virial from dE/dx.

    network_threads : torch threads while the networks and their gradient run (the numba path
    uses 1: two OpenMP pools, numba's and torch's, spinning on the same cores cost far more than
    the small networks' work); the executor runs with the caller's setting.
    """
    with torch_threads(network_threads):
        e, g = energies_and_gradient(energy_fn, x, derivatives is not None, create_graph)
    if derivatives is None:
        return Evaluation(e)
    F, W = derivatives.forces(g)
    return Evaluation(e, F, W)


# ------------------------------------------------------------------ forces, stress
def stress_from_virial(virial: np.ndarray, cell) -> np.ndarray | None:
    """-W / |det cell| (3, 3) for a periodic structure, None without a cell."""
    if cell is None:
        return None
    return -virial / abs(np.linalg.det(cell))


def as_numpy(t) -> np.ndarray:
    """A float64 numpy copy of a tensor (any device) or array."""
    if isinstance(t, np.ndarray):
        return t
    return t.detach().to("cpu", torch.float64).numpy()


def pair_forces(nl, n_atoms: int, pair_grad: np.ndarray):
    """Forces (n_atoms, 3) and virial (3, 3) (numpy, numba kernel) from g_p = dE/dr_p of the
    neighbour list's pairs p = (i, j), r_p = r_j - r_i."""
    from hdnnp.descriptors.kernels import forces_from_pair_gradients

    return forces_from_pair_gradients(n_atoms, nl.i, nl.j, nl.vectors, pair_grad)


# ------------------------------------------------------------------ executors
@dataclass
class KernelDerivatives:
    """numba kernels: dE/dG (n_atoms, max_sf) -> a second kernel pass recomputing dG/dr and
    contracting it on the fly (mode 2) -> per-pair gradients -> forces and virial (numpy)."""

    sf_set: object
    structure: object
    nl: object
    species: np.ndarray

    def pair_gradients(self, dEdG) -> np.ndarray:
        dEdG = np.ascontiguousarray(as_numpy(dEdG), dtype=np.float64)
        return self.sf_set._run(self.structure, self.nl, self.species, 2, dEdG)[2]

    def forces(self, dEdG):
        return pair_forces(self.nl, len(self.species), self.pair_gradients(dEdG))


@dataclass
class StoredPairGradients:
    """numba, ``derivative_mode="store"``: per-pair gradients already contracted chunk by chunk
    (``Potential._store_pass``); x is unused."""

    nl: object
    n_atoms: int
    pair_grad: np.ndarray

    def forces(self, _unused=None):
        return pair_forces(self.nl, self.n_atoms, self.pair_grad)


@dataclass
class TorchPairDerivatives:
    """torch backend on ``data`` (``torch_backend.PairData``): x are the pair vectors (one
    autograd pass, dE/dx is already per pair) or, with ``tsf``, dE/dG whose SF gradients are
    contracted chunk by chunk (``TorchSymmetryFunctions.pair_gradients``). Torch results."""

    data: object
    tsf: object = None

    def forces(self, g):
        from hdnnp.descriptors.torch_backend import forces_and_virial

        pg = self.tsf.pair_gradients(self.data, g) if self.tsf is not None else g
        return forces_and_virial(self.data, pg.detach())
