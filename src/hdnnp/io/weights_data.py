"""n2p2 ``weights.XXX.data`` (XXX = atomic number): network connections, one per line (SPEC §3).

Only column 1 is read. Order: for each layer l = 1..L-1: for each neuron j of layer
l-1, for each neuron k of layer l: w[l][k][j]; then the biases of layer l.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hdnnp.errors import ReadError
from hdnnp.io.validation import check_line_utf8

_HEADER = """################################################################################
# Neural network connection values (weights and biases).
################################################################################
# Col  Name       Description
################################################################################
# 1    connection Neural network connection value.
# 2    t          Connection type (a = weight, b = bias).
# 3    index      Index enumerating weights.
# 4    l_s        Starting point layer (end point layer for biases).
# 5    n_s        Starting point neuron in starting layer (end point neuron for biases).
# 6    l_e        End point layer.
# 7    n_e        End point neuron in end layer.
################################################################################
#                      1 2         3     4     5     6     7
#             connection t     index   l_s   n_s   l_e   n_e
############################################################
"""


def n_connections(layer_sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))


def _column1(path: Path, opening: str, number: str, finite: str) -> Iterator[tuple[int, float]]:
    """(line number, column-1 value) of each non-comment line of an n2p2 connection file, checked:
    UTF-8, a number (``number``: what the error calls it), finite (``finite``); ``opening``: what the
    file should hold, for the error when it cannot be opened."""
    try:
        fh = open(path, encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ReadError(path, None, f"cannot open: {exc.strerror} ({opening})") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            check_line_utf8(path, lineno, raw)
            words = raw.split("#")[0].split()
            if not words:
                continue
            try:
                value = float(words[0])
            except ValueError:
                raise ReadError(path, lineno, f"expected {number}, found {words[0]!r}") from None
            if not math.isfinite(value):
                raise ReadError(path, lineno, f"expected {finite}, found {words[0]!r}")
            yield lineno, value


def read_weights(path: str | Path, layer_sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read weights; returns per layer (W (n_out, n_in), b (n_out,))."""
    path = Path(path)
    expected = n_connections(layer_sizes)
    values: list[float] = []
    for lineno, value in _column1(path, f"expected {expected} weights for layers {layer_sizes}",
                                  "a number in column 1", "a finite weight in column 1"):
        values.append(value)
        if len(values) > expected:
            raise ReadError(path, lineno, f"too many values: the network {layer_sizes} has {expected} weights and biases")
    if len(values) < expected:
        raise ReadError(path, None, f"found {len(values)} values; the network {layer_sizes} needs {expected} weights and biases")
    v = np.array(values)
    out, pos = [], 0
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        W = v[pos : pos + n_in * n_out].reshape(n_in, n_out).T.copy()  # previous-layer neuron is the slow index
        pos += n_in * n_out
        b = v[pos : pos + n_out].copy()
        pos += n_out
        out.append((W, b))
    return out


def write_weights(path: str | Path, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write in n2p2's layout with its informational columns (1-based layers/neurons)."""
    rows = []
    idx = 0
    for l, (W, b) in enumerate(layers, start=1):
        n_out, n_in = W.shape
        for j in range(n_in):
            for k in range(n_out):
                idx += 1
                rows.append(f"{W[k, j]:24.16E} a {idx:9d} {l - 1:5d} {j + 1:5d} {l:5d} {k + 1:5d}")
        for k in range(n_out):
            idx += 1
            rows.append(f"{b[k]:24.16E} b {idx:9d} {l:5d} {k + 1:5d}")
    Path(path).write_text(_HEADER + "\n".join(rows) + "\n", encoding="utf-8")


def read_hardness(path: str | Path) -> float:
    """n2p2 ``hardness.ZZZ.data``: exactly one number (column 1), the element hardness J (E/q^2)."""
    path = Path(path)
    values: list[float] = []
    for lineno, value in _column1(path, "expected one number, the atomic hardness",
                                  "a number (the atomic hardness)", "a finite number (the atomic hardness)"):
        if values:
            raise ReadError(path, lineno, "expected exactly one number (the atomic hardness), found a second line")
        values.append(value)
    if not values:
        raise ReadError(path, None, "empty: expected one number, the atomic hardness")
    return values[0]


def write_hardness(path: str | Path, hardness: float) -> None:
    Path(path).write_text(f"{hardness:24.16E}\n", encoding="utf-8")
