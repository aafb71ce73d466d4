"""Initial weights: n2p2's ``weights_min/max`` + Glorot-Bengio / Nguyen-Widrow, or torch's defaults."""

from __future__ import annotations


import torch

from hdnnp.errors import SettingsError
from hdnnp.model.potential import Potential
from hdnnp.training.config import TrainingConfig


def initialize_weights(pot: Potential, cfg: TrainingConfig, seed: int) -> None:
    """Initial weights and biases (``torch``: nn.Linear's default, drawn in from_settings)."""
    if cfg.weight_init == "torch" and cfg.bias_init == "torch":
        return
    gen = torch.Generator().manual_seed(seed)
    if cfg.weight_init.startswith("n2p2_"):
        _n2p2_init(pot, cfg, gen)
        return

    def fill(t: torch.Tensor, how: str, fan_in: int, fan_out: int) -> None:
        if how == "torch":
            return
        shape, dt = t.shape, t.dtype
        if how == "uniform":
            v = torch.rand(shape, generator=gen, dtype=dt) * (cfg.weights_max - cfg.weights_min) + cfg.weights_min
        elif how == "random_uniform":  # Keras default range
            v = (torch.rand(shape, generator=gen, dtype=dt) * 2 - 1) * 0.05
        elif how == "random_normal":
            v = torch.randn(shape, generator=gen, dtype=dt) * 0.05
        elif how.endswith("_uniform"):
            lim = {"glorot": (6.0 / (fan_in + fan_out)) ** 0.5, "he": (6.0 / fan_in) ** 0.5,
                   "lecun": (3.0 / fan_in) ** 0.5}[how.split("_")[0]]
            v = (torch.rand(shape, generator=gen, dtype=dt) * 2 - 1) * lim
        elif how.endswith("_normal"):
            std = {"glorot": (2.0 / (fan_in + fan_out)) ** 0.5, "he": (2.0 / fan_in) ** 0.5}[how.split("_")[0]]
            v = torch.randn(shape, generator=gen, dtype=dt) * std
        elif how == "zeros":
            v = torch.zeros(shape, dtype=dt)
        elif how == "ones":
            v = torch.ones(shape, dtype=dt)
        else:  # pragma: no cover - validated in TrainingConfig
            raise SettingsError(f"unknown initialisation {how!r}")
        with torch.no_grad():
            t.copy_(v)

    for e in pot.elements:
        for lin in pot.networks[e].layers:
            fill(lin.weight, cfg.weight_init, lin.in_features, lin.out_features)
            fill(lin.bias, cfg.bias_init, lin.in_features, lin.out_features)


def _n2p2_init(pot: Potential, cfg: TrainingConfig, gen: torch.Generator) -> None:
    """n2p2's initial weights: uniform in [weights_min, weights_max) (weights and biases), then
    Nguyen-Widrow (hidden layers: each neuron's weights rescaled to norm 0.7 n^(1/n_prev), biases
    x 0.7 n^(1/n_prev), both x2 for tanh; the output neuron's first weight x0.5, as n2p2 does), or
    Glorot-Bengio (weights of tanh layers x sqrt(6/(n_prev+n)); all biases 0)."""
    lo, hi = cfg.weights_min, cfg.weights_max
    with torch.no_grad():
        for e in pot.elements:
            net = pot.networks[e]
            layers = list(net.layers)
            for k, lin in enumerate(layers):
                for t in (lin.weight, lin.bias):
                    t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * (hi - lo) + lo)
                tanh = net.activation_letters[k] == "t"
                n, n_prev = lin.out_features, lin.in_features
                if cfg.weight_init == "n2p2_nguyen_widrow":
                    if k < len(layers) - 1:
                        beta = 0.7 * n ** (1.0 / n_prev)
                        lin.weight.mul_(beta / lin.weight.norm(dim=1, keepdim=True))
                        lin.bias.mul_(beta)
                        if tanh:
                            lin.weight.mul_(2.0)
                            lin.bias.mul_(2.0)
                    else:
                        lin.weight[0, 0] *= 0.5
                else:
                    if tanh:
                        lin.weight.mul_((6.0 / (n_prev + n)) ** 0.5)
                    lin.bias.zero_()
