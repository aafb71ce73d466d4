"""The model on a training batch: the one pipeline (``hdnnp.model.evaluation``) with the batch's
scaled symmetry functions as input and its cached dG/dr (``force_kernels``) as the
descriptor-derivative executor. Used by the loss, the error sums and the Kalman filter's
Jacobians (``Trainer._predict``). Normalised ("training") units throughout: energies x
conv_energy (mean and offsets removed), lengths x conv_length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hdnnp.model.evaluation import element_energies, evaluate
from hdnnp.training.force_kernels import ForcePlan, batch_forces


@dataclass
class CachedDerivatives:
    """Descriptor-derivative executor of a batch: dE/dX (X the scaled SFs) -> a = dE/dX * factor
    / conv_length (chain rule to the raw SFs in normalised lengths) -> :func:`batch_forces` with
    the cached dG/dr. Forces (n_rows, 3), differentiable w.r.t. the weights; no virial."""

    plan: ForcePlan
    backend: str
    torch_pairs: object
    factor: torch.Tensor
    inv_conv_length: float

    def forces(self, g: torch.Tensor):
        a = g * self.factor * self.inv_conv_length
        return batch_forces(a, self.plan, self.backend, self.torch_pairs), None


def predict_batch(pot, b, forces: bool, create_graph: bool = False, backend: str = "numba"):
    """(E per structure (n_structures,), F per row (n_rows, 3) or None) of a training batch
    (``dataset.Batch``; rows sorted by element), differentiable w.r.t. the weights of ``pot``
    (a ``Potential``) if create_graph. backend : "numba" or "torch" force kernels."""
    n_sf = pot.sf_set.n_sf
    blocks = {e: (slice(b.bounds[k], b.bounds[k + 1]), n_sf[e]) for k, e in enumerate(pot.elements)
              if b.bounds[k + 1] > b.bounds[k]}  # rows sorted by element: consecutive blocks

    def energy_of_rows(X):
        inputs = {e: (rows, X[rows, :n]) for e, (rows, n) in blocks.items()}
        return element_energies(pot.networks, inputs, X.shape[0], X)

    derivatives = None
    if forces:
        derivatives = CachedDerivatives(b.plan, backend, getattr(b, "torch_pairs", None), b.factor,
                                        1.0 / pot.normalization.conv_length)
    ev = evaluate(energy_of_rows, b.X, derivatives, create_graph=create_graph)
    E = torch.zeros(len(b.local), dtype=b.X.dtype, device=b.X.device).index_add(0, b.struct_of_row, ev.energies)
    return E, ev.forces
