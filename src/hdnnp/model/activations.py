"""n2p2 activation functions by letter (SPEC §2; n2p2 ``NeuralNetwork.cpp``).

l identity · t tanh · s logistic · p softplus ln(1+e^x) · r ReLU · g exp(-x^2/2) ·
c cos · S 1 - logistic · e exp(-x) · h x^2; plus ``T`` = tanh(x) + a x, the prototype's
"hyperbolic tangent with linear twist" (a = 0.1, see ``TWIST_A``), which n2p2 does not know.
Logistic and softplus use n2p2's limits: beyond |x| > 35 their limit values.
"""

from __future__ import annotations

import torch

EXP_LIMIT = 35.0
#: slope a of the prototype's "tanh with linear twist" f(x) = tanh(x) + a x
TWIST_A = 0.1


def _logistic(x):
    y = 1.0 / (1.0 + torch.exp(-x))
    y = torch.where(x > EXP_LIMIT, torch.ones_like(x), y)
    return torch.where(x < -EXP_LIMIT, torch.zeros_like(x), y)


def _softplus(x):
    # n2p2 evaluates log(1 + exp(x)) (not log1p) and switches to the limits beyond |x| > 35
    xc = x.clamp(-EXP_LIMIT, EXP_LIMIT)
    y = torch.log(1.0 + torch.exp(xc))
    y = torch.where(x > EXP_LIMIT, x, y)
    return torch.where(x < -EXP_LIMIT, torch.zeros_like(x), y)


ACTIVATIONS = {
    "l": lambda x: x,
    "t": torch.tanh,
    "s": _logistic,
    "p": _softplus,
    "r": torch.relu,
    "g": lambda x: torch.exp(-0.5 * x * x),
    "c": torch.cos,
    "S": lambda x: 1.0 - _logistic(x),
    "e": lambda x: torch.exp(-x),
    "h": lambda x: x * x,
    "T": lambda x: torch.tanh(x) + TWIST_A * x,
}

NAMES = {
    "l": "identity", "t": "tanh", "s": "logistic", "p": "softplus", "r": "relu", "g": "gaussian",
    "c": "cos", "S": "reverse logistic", "e": "exp(-x)", "h": "harmonic", "T": "tanh + 0.1 x",
}


def activation(letter: str):
    try:
        return ACTIVATIONS[letter]
    except KeyError:
        raise ValueError(f"unknown activation {letter!r}; expected one of {' '.join(ACTIVATIONS)}") from None
