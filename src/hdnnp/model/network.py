"""Per-element feed-forward networks (atomic energy from scaled symmetry functions)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hdnnp.model.activations import activation


class ElementNetwork(nn.Module):
    """Feed-forward network: x_k = sum_j w_kj y_j + b_k (optionally / n_prev), y = f(x).

    layer_sizes : [n_sf, hidden..., 1]; activations : one letter per non-input layer.
    """

    def __init__(self, layer_sizes: list[int], activations: list[str], normalize_nodes: bool = False,
                 dtype=torch.float64):
        super().__init__()
        if len(activations) != len(layer_sizes) - 1:
            raise ValueError(f"{len(layer_sizes) - 1} layers need as many activations, got {activations}")
        self.layer_sizes = list(layer_sizes)
        self.activation_letters = list(activations)
        self.normalize_nodes = normalize_nodes
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=dtype) for a, b in zip(layer_sizes[:-1], layer_sizes[1:])
        )
        self._acts = [activation(a) for a in activations]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x : (n_atoms, n_sf) scaled SFs -> (n_atoms,) atomic energies (internal units)."""
        for layer, act in zip(self.layers, self._acts):
            x = layer(x)
            if self.normalize_nodes:
                x = x / layer.in_features
            x = act(x)
        return x[:, 0]

    def set_weights(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        with torch.no_grad():
            for lin, (W, b) in zip(self.layers, layers):
                lin.weight.copy_(torch.as_tensor(W, dtype=lin.weight.dtype))
                lin.bias.copy_(torch.as_tensor(b, dtype=lin.bias.dtype))

    def get_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(lin.weight.detach().cpu().double().numpy(), lin.bias.detach().cpu().double().numpy())
                for lin in self.layers]
