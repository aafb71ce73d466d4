"""Physics checks: central finite differences, random symmetry operations, and the contracts every
potential must meet (forces and stress as energy derivatives, invariances, supercell additivity,
empty and isolated structures, one result from every path), with tolerances per precision."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

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


# ---------------------------------------------------------------------------------------------
# Contracts: checks every potential (any model generation, backend, dtype) must pass.
#
# ``compute`` below is any callable ``Structure -> result`` whose result has ``energy`` (float),
# ``forces`` ((n_atoms, 3)) and, for periodic structures, ``stress`` ((3, 3), (1/V) dE/d(strain));
# ``Potential.compute`` is one. Units are those of the potential's files. Each check raises
# AssertionError with the measured figures on failure.
# ---------------------------------------------------------------------------------------------

Compute = Callable[[Structure], object]


@dataclass(frozen=True)
class Tolerances:
    """Tolerances of the contracts for one floating-point precision.

    energy_rel : |E1 - E2| <= energy_rel * (|E| + n_atoms) for two ways of computing the same energy.
    force_rel : |F1 - F2| <= force_rel * max|F| component-wise (stress: * max|stress|).
    fd_rel : finite-difference error at the smaller step <= fd_rel * max|F|
        (float64: the error must also fall ~h^2 between the two steps).
    fd_steps : the two central-difference steps (length units of the potential).
    """

    energy_rel: float
    force_rel: float
    fd_rel: float
    fd_steps: tuple[float, float] = (2e-3, 1e-3)
    #: True where rounding dominates central differences (float32): the analytic forces are then
    #: checked against the differences of the float64 energy (``reference``), no h^2 test
    low_precision: bool = False


#: float64: rounding of a sum of a few dozen atomic energies, forces to ~1e-9 relative
FLOAT64 = Tolerances(energy_rel=1e-12, force_rel=1e-9, fd_rel=1e-5)
#: float32 (networks or symmetry functions in single precision): eps32 = 1.2e-7 per operation,
#: accumulated over ~100 neighbours and a few layers
FLOAT32 = Tolerances(energy_rel=2e-6, force_rel=2e-4, fd_rel=5e-4, low_precision=True)


def _close(a, b, rel: float, scale: float, what: str) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} and {b.shape}"
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= rel * scale, f"{what}: max deviation {err:.3e} > {rel:.1e} * {scale:.3e}"


def _energy_scale(r, n: int) -> float:
    return abs(float(r.energy)) + n


def _force_scale(r) -> float:
    """max |F| (relative tolerances: independent of the potential's units)."""
    f = np.asarray(r.forces)
    return max(float(np.abs(f).max()) if f.size else 0.0, 1e-12)


def _stress_scale(stress) -> float:
    return max(float(np.abs(stress).max()), 1e-12)


#: per-atom scalars a result may carry (Prediction: atomic_energies, 4G charges; ForceResult: energies)
PER_ATOM = ("atomic_energies", "energies", "charges")


def _close_per_atom(r, r0, order: np.ndarray | None, tol: Tolerances, what: str) -> None:
    """Per-atom scalars of ``r`` equal those of ``r0`` (reordered by ``order``, tiled to r's length)."""
    for name in PER_ATOM:
        a, b = getattr(r, name, None), getattr(r0, name, None)
        if a is None or b is None or len(b) == 0:
            continue
        b = np.asarray(b, dtype=np.float64)
        b = b[order] if order is not None else np.tile(b, len(a) // len(b))
        _close(a, b, tol.force_rel, max(float(np.abs(b).max()), 1e-12), f"{name} {what}")


def moved(structure: Structure, positions: np.ndarray | None = None, cell: np.ndarray | None = None,
          order: np.ndarray | None = None) -> Structure:
    """Copy of ``structure`` with new positions and/or cell, atoms optionally reordered by ``order``."""
    s = structure.copy()
    if positions is not None:
        s.positions = np.array(positions, dtype=np.float64)
    if cell is not None:
        s.cell = np.array(cell, dtype=np.float64)
    if order is not None:
        s.elements = [s.elements[k] for k in order]
        s.positions = s.positions[order]
        s.charges = s.charges[order]
        s.atomic_energies = s.atomic_energies[order]
        s.forces = None if s.forces is None else s.forces[order]
    return s


def cut_down(structure: Structure, fraction: float) -> Structure:
    """A small periodic structure from a large one: the atoms with all fractional coordinates
    below ``fraction``, in the cell scaled by ``fraction`` (same density; bonds across the new
    faces are broken, which the contracts do not mind)."""
    frac = np.linalg.solve(structure.cell.T, structure.positions.T).T % 1.0
    keep = np.flatnonzero(np.all(frac < fraction, axis=1))
    s = moved(structure, order=keep)
    s.cell = structure.cell * fraction
    s.energy = None
    s.forces = None
    return s


def cluster(structure: Structure, n_atoms: int, center: int = 0) -> Structure:
    """A molecular (non-periodic) structure: the ``n_atoms`` atoms nearest to atom ``center``
    (minimum image), unwrapped around it."""
    d = structure.positions - structure.positions[center]
    if structure.cell is not None:
        frac = np.linalg.solve(structure.cell.T, d.T).T
        d = (frac - np.round(frac)) @ structure.cell
    keep = np.argsort(np.linalg.norm(d, axis=1), kind="stable")[:n_atoms]
    s = moved(structure, order=keep)
    s.positions = structure.positions[center] + d[keep]
    s.cell = None
    s.energy = None
    s.forces = None
    return s


def _direction(rng: np.random.Generator, n: int, atoms: Sequence[int] | None) -> np.ndarray:
    v = np.zeros((n, 3))
    idx = np.arange(n) if atoms is None else np.asarray(atoms)
    v[idx] = rng.normal(size=(len(idx), 3))
    return v / np.linalg.norm(v)


def _fd_errors(analytic: float, energy: Callable[[float], float], steps: tuple[float, float]) -> list[float]:
    return [abs((energy(h) - energy(-h)) / (2.0 * h) - analytic) for h in steps]


def _check_fd(errors: list[float], scale: float, tol: Tolerances, energy0: float, what: str) -> None:
    e1, e2 = errors
    assert e2 <= tol.fd_rel * scale, f"{what}: finite-difference error {e2:.3e} > {tol.fd_rel:.1e} * {scale:.3e}"
    if not tol.low_precision:
        roundoff = 1e3 * np.finfo(np.float64).eps * (abs(energy0) + 1.0) / min(tol.fd_steps)
        assert e2 <= roundoff or e1 / e2 > 2.5, (
            f"{what}: error {e1:.3e} at h={tol.fd_steps[0]}, {e2:.3e} at h={tol.fd_steps[1]}: not ~h^2")


def check_forces_fd(compute: Compute, structure: Structure, tol: Tolerances, atoms: Sequence[int] | None = None,
                    seed: int = 0, reference: Compute | None = None) -> None:
    """forces = -dE/dr: the derivative of E along a random displacement of ``atoms`` (default all)
    by central differences at the two steps of ``tol``, error falling ~h^2 (float64). With
    ``reference`` (a float64 model), the differences are taken of its energy (float32 checks)."""
    r = compute(structure)
    v = _direction(np.random.default_rng(seed), len(structure), atoms)
    analytic = -float(np.sum(np.asarray(r.forces, dtype=np.float64) * v))
    ref = reference or compute

    def energy(h: float) -> float:
        return float(ref(moved(structure, positions=structure.positions + h * v)).energy)

    _check_fd(_fd_errors(analytic, energy, tol.fd_steps), _force_scale(r), tol, float(r.energy),
              "forces vs -dE/dr")


def check_stress_fd(compute: Compute, structure: Structure, tol: Tolerances, seed: int = 0,
                    reference: Compute | None = None) -> None:
    """stress = (1/V) dE/d(strain) (periodic): E along a random homogeneous deformation
    x -> (1 + a D) x of positions and cell, dE/da = V sum(stress * D)."""
    r = compute(structure)
    assert r.stress is not None, "no stress for a periodic structure"
    D = np.random.default_rng(seed).normal(size=(3, 3))
    D /= np.linalg.norm(D)
    vol = abs(np.linalg.det(structure.cell))
    analytic = vol * float(np.sum(np.asarray(r.stress, dtype=np.float64) * D))
    ref = reference or compute

    def energy(a: float) -> float:
        d = np.eye(3) + a * D
        return float(ref(moved(structure, positions=structure.positions @ d.T, cell=structure.cell @ d.T)).energy)

    # strain steps giving displacements ~ fd_steps over the cell
    length = vol ** (1.0 / 3.0)
    steps = (tol.fd_steps[0] / length, tol.fd_steps[1] / length)
    scale = vol * _stress_scale(r.stress)
    _check_fd(_fd_errors(analytic, energy, steps), scale, replace(tol, fd_steps=steps), float(r.energy),
              "stress vs dE/dstrain")


def check_invariances(compute: Compute, structure: Structure, tol: Tolerances, seed: int = 0) -> None:
    """Rotation (positions and cell), translation and permutation of the atoms leave the
    energy and per-atom scalars (atomic energies, charges) unchanged, and transform forces (and
    stress) accordingly."""
    rng = np.random.default_rng(seed)
    r0 = compute(structure)
    n = len(structure)
    es, fs = _energy_scale(r0, n), _force_scale(r0)
    R = random_rotation(rng)
    cell = None if structure.cell is None else structure.cell @ R.T
    r = compute(moved(structure, positions=structure.positions @ R.T, cell=cell))
    _close(r.energy, r0.energy, tol.energy_rel, es, "energy after rotation")
    _close(r.forces, np.asarray(r0.forces) @ R.T, tol.force_rel, fs, "forces after rotation")
    _close_per_atom(r, r0, np.arange(n), tol, "after rotation")
    if structure.cell is not None:
        _close(r.stress, R @ np.asarray(r0.stress) @ R.T, tol.force_rel, _stress_scale(r0.stress),
               "stress after rotation")
    r = compute(moved(structure, positions=structure.positions + rng.normal(scale=3.0, size=3)))
    _close(r.energy, r0.energy, tol.energy_rel, es, "energy after translation")
    _close(r.forces, r0.forces, tol.force_rel, fs, "forces after translation")
    order = rng.permutation(n)
    r = compute(moved(structure, order=order))
    _close(r.energy, r0.energy, tol.energy_rel, es, "energy after permutation")
    _close(r.forces, np.asarray(r0.forces)[order], tol.force_rel, fs, "forces after permutation")
    _close_per_atom(r, r0, order, tol, "after permutation")


def check_supercell(compute: Compute, structure: Structure, tol: Tolerances,
                    reps: tuple[int, int, int] = (2, 1, 1)) -> None:
    """A supercell has prod(reps) times the energy, the forces and per-atom scalars of the atoms
    it repeats and the same stress (periodic structures)."""
    r0 = compute(structure)
    m = int(np.prod(reps))
    r = compute(structure.repeat(reps))
    _close(r.energy, m * r0.energy, tol.energy_rel, m * _energy_scale(r0, len(structure)), "supercell energy")
    _close(r.forces, np.tile(np.asarray(r0.forces), (m, 1)), tol.force_rel, _force_scale(r0), "supercell forces")
    _close_per_atom(r, r0, None, tol, "of the supercell")
    _close(r.stress, r0.stress, tol.force_rel, _stress_scale(r0.stress), "supercell stress")


def check_empty(compute: Compute, cell: np.ndarray | None = None) -> None:
    """A structure without atoms has zero energy, a (0, 3) force array and, in a cell, zero stress."""
    r = compute(Structure([], np.zeros((0, 3)), cell=cell))
    assert float(r.energy) == 0.0, f"empty structure: energy {r.energy}"
    assert np.asarray(r.forces).shape == (0, 3), f"empty structure: forces of shape {np.shape(r.forces)}"
    stress = getattr(r, "stress", None)
    if cell is None:
        assert stress is None, "empty molecular structure: a stress"
    else:
        assert stress is not None and not np.any(stress), f"empty periodic structure: stress {stress}"


def check_lone_atoms(compute: Compute, elements: Sequence[str], cutoff: float, tol: Tolerances,
                     periodic: bool = False) -> list:
    """One atom alone (periodic: in a cube wider than ``cutoff``) has a finite energy and zero
    force; returns the results, one per element of ``elements``."""
    spacing = 1.5 * cutoff + 1.0
    out = []
    for e in elements:
        r = compute(Structure([e], np.zeros((1, 3)), cell=np.diag([spacing] * 3) if periodic else None))
        assert np.isfinite(float(r.energy)), f"lone {e} atom: energy {r.energy}"
        _close(r.forces, np.zeros((1, 3)), tol.force_rel, 1.0, f"forces on a lone {e} atom")
        out.append(r)
    return out


def check_isolated_atoms(compute: Compute, elements: Sequence[str], cutoff: float, tol: Tolerances,
                         periodic: bool = False) -> None:
    """Atoms further apart than ``cutoff`` (and their periodic images, in a cell wider than the
    spacing) do not interact: zero forces, energy = sum of the energies of each atom alone."""
    spacing = 1.5 * cutoff + 1.0
    n = len(elements)
    pos = np.array([[k * spacing, 0.3 * k, 0.0] for k in range(n)])
    cell = np.diag([n * spacing, spacing, spacing]) if periodic else None
    single = check_lone_atoms(compute, elements, cutoff, tol, periodic)
    r = compute(Structure(list(elements), pos, cell=cell))
    e_sum = sum(float(x.energy) for x in single)
    _close(r.energy, e_sum, tol.energy_rel, abs(e_sum) + n, "energy of isolated atoms vs sum of lone atoms")
    _close(r.forces, np.zeros((n, 3)), tol.force_rel, 1.0, "forces on isolated atoms")


def check_same_results(results: dict[str, object], tol: Tolerances) -> None:
    """Several paths (prediction, ASE calculator, MD force field, ...) give the same energy,
    forces and stress for one structure: ``results`` maps a path's name to its result."""
    names = list(results)
    r0 = results[names[0]]
    n = len(np.asarray(r0.forces))
    for name in names[1:]:
        r = results[name]
        _close(r.energy, r0.energy, tol.energy_rel, _energy_scale(r0, n), f"energy of {name} vs {names[0]}")
        _close(r.forces, r0.forces, tol.force_rel, _force_scale(r0), f"forces of {name} vs {names[0]}")
        s0, s = getattr(r0, "stress", None), getattr(r, "stress", None)
        if s0 is not None and s is not None:
            _close(s, s0, tol.force_rel, _stress_scale(s0), f"stress of {name} vs {names[0]}")


def check_energy_is_sum(energy: float, per_atom: np.ndarray, shift: float, tol: Tolerances) -> None:
    """energy = sum of per-atom energies + ``shift`` (the parts no atom owns: mean energy and
    offsets, or 0 where ``per_atom`` includes them)."""
    total = float(np.sum(per_atom)) + shift
    _close(energy, total, tol.energy_rel, abs(energy) + len(per_atom), "energy vs sum of per-atom energies")
