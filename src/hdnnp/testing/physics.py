"""Physics checks: central finite differences and random symmetry operations (float64)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from hdnnp.structure import Structure


def random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
    """Uniform random rotation matrix (3, 3) (QR of a Gaussian matrix); optionally a reflection."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return q


def central_difference_forces(energy: Callable[[Structure], float], structure: Structure,
                              atoms: Iterable[int], h: float) -> np.ndarray:
    """-dE/dr by central differences for the given atoms: (len(atoms), 3)."""
    atoms = list(atoms)
    out = np.zeros((len(atoms), 3))
    for k, a in enumerate(atoms):
        for c in range(3):
            sp = structure.copy()
            sp.positions[a, c] += h
            sm = structure.copy()
            sm.positions[a, c] -= h
            out[k, c] = -(energy(sp) - energy(sm)) / (2.0 * h)
    return out


def central_difference_stress(energy: Callable[[Structure], float], structure: Structure, h: float) -> np.ndarray:
    """(1/V) dE/d(strain) by central differences of homogeneous deformations x -> (1 + eps) x
    of positions and cell (periodic structures): (3, 3), energy units per volume unit."""
    vol = abs(np.linalg.det(structure.cell))
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1.0, -1.0):
                d = np.eye(3)
                d[a, b] += sign * h
                x = structure.copy()
                x.positions = structure.positions @ d.T
                x.cell = structure.cell @ d.T
                e.append(energy(x))
            out[a, b] = (e[0] - e[1]) / (2.0 * h) / vol
    return out


def fd_convergence(analytic: np.ndarray, fd: Callable[[float], np.ndarray], h: float) -> tuple[float, float]:
    """Max errors of finite differences at h and h/2 against ``analytic``.

    For a correct derivative the error falls ~h^2 (ratio ~4) until round-off dominates.
    """
    e1 = float(np.max(np.abs(fd(h) - analytic)))
    e2 = float(np.max(np.abs(fd(h / 2) - analytic)))
    return e1, e2
