"""Preparation of a training run: symmetry-function statistics and data-set normalisation.

* :func:`sf_statistics` / :func:`compute_scaling` -> ``scaling.data`` as n2p2's ``nnp-scaling``:
  per element and symmetry function the minimum, maximum, mean and sample standard deviation
  (n - 1) over all atoms of that element in all structures.
* :func:`energy_normalization` -> ``mean_energy``, ``conv_energy``, ``conv_length`` as n2p2's
  ``nnp-norm`` (``nnp-norm.cpp``): with e_s = (E_s - Σ_el N_el,s offset_el) / N_s,
  mean_energy = mean(e_s), σ_E = std(e_s) (n - 1), σ_F = std of all force components about
  their mean (3 N_atoms - 1), conv_energy = 1/σ_E, conv_length = σ_F/σ_E. The sums run in
  n2p2's order, so the numbers agree with n2p2's to the last digit.

Statistics are accumulated per structure and merged in structure order (Chan et al.'s
pairwise update), so that a data-parallel run, which merges per-structure partial
statistics gathered from all ranks, gets bit-identical numbers to a single-process run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hdnnp.errors import SettingsError
from hdnnp.io.input_nn import Settings
from hdnnp.io.scaling_data import ScalingStats
from hdnnp.structure import Structure


@dataclass
class PartialStats:
    """Running statistics of one element's symmetry functions: count, min, max, mean, M2 (n_sf,)."""

    count: int
    g_min: np.ndarray
    g_max: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, n_sf: int) -> "PartialStats":
        return cls(0, np.full(n_sf, np.inf), np.full(n_sf, -np.inf), np.zeros(n_sf), np.zeros(n_sf))

    @classmethod
    def of(cls, G: np.ndarray) -> "PartialStats":
        """Statistics of the rows of G (n_atoms, n_sf)."""
        n = G.shape[0]
        if n == 0:
            return cls.empty(G.shape[1])
        mean = G.mean(axis=0)
        return cls(n, G.min(axis=0), G.max(axis=0), mean, ((G - mean) ** 2).sum(axis=0))

    def merge(self, other: "PartialStats") -> "PartialStats":
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return PartialStats(n, np.minimum(self.g_min, other.g_min), np.maximum(self.g_max, other.g_max), mean, m2)

    def to_scaling(self) -> ScalingStats:
        sigma = np.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else np.zeros_like(self.m2)
        return ScalingStats(self.g_min.copy(), self.g_max.copy(), self.mean.copy(), sigma)


def structure_partials(G: np.ndarray, species: np.ndarray, n_sf: list[int]) -> list[PartialStats]:
    """Per-element statistics of one structure (G raw, (n_atoms, max_sf))."""
    return [PartialStats.of(G[species == k, :n]) for k, n in enumerate(n_sf)]


def merge_partials(per_structure: list[list[PartialStats]], n_sf: list[int]) -> list[ScalingStats]:
    """Merge per-structure statistics in the given (structure) order into scaling statistics."""
    total = [PartialStats.empty(n) for n in n_sf]
    for parts in per_structure:
        total = [t.merge(p) for t, p in zip(total, parts)]
    return [t.to_scaling() for t in total]


def check_statistics(stats: list[ScalingStats], elements: list[str]) -> None:
    """Refuse statistics that would make scaling fail (an element with no atoms)."""
    for e, st in zip(elements, stats):
        if not np.all(np.isfinite(st.g_min)):
            raise SettingsError(f"element {e} does not occur in the data: its symmetry functions have no "
                                "statistics; remove it from 'elements' or add structures containing it")


def sf_statistics(sf_set, structures: list[Structure], progress: bool = False) -> list[ScalingStats]:
    """``nnp-scaling``: min, max, mean, sigma (n - 1) of every symmetry function over all structures."""
    n_sf = [sf_set.n_sf[e] for e in sf_set.elements]
    parts = []
    it = structures
    if progress:
        from tqdm import tqdm

        it = tqdm(structures, desc="symmetry functions", unit="struct", leave=False)
    for s in it:
        d = sf_set.compute(s)
        parts.append(structure_partials(d.G, d.species, n_sf))
    stats = merge_partials(parts, n_sf)
    check_statistics(stats, sf_set.elements)
    return stats


@dataclass
class NormalizationStats:
    """nnp-norm's statistics and the resulting conversion factors (physical units of the data)."""

    n_structures: int
    n_atoms: int
    mean_energy: float
    sigma_energy: float
    mean_force: float
    sigma_force: float

    @property
    def conv_energy(self) -> float:
        return 1.0 / self.sigma_energy

    @property
    def conv_length(self) -> float:
        return self.sigma_force / self.sigma_energy


def offset_energy(structure: Structure, offsets: dict[str, float], elements: list[str]) -> float:
    """E - Σ_el N_el offset_el, subtracted element by element in atomic-number order (as n2p2)."""
    e = structure.energy
    for el in elements:
        n = structure.elements.count(el)
        if n:
            e -= n * offsets.get(el, 0.0)
    return e


def energy_normalization(structures: list[Structure], offsets: dict[str, float], elements: list[str],
                         use_forces: bool = True) -> NormalizationStats:
    """``nnp-norm``'s mean energy per atom and conversion factors (see the module docstring).

    elements : in atomic-number order (n2p2's element index order, which fixes the
    order in which offsets are subtracted).
    """
    n_s = len(structures)
    if n_s < 2:
        raise SettingsError(f"normalisation needs at least 2 structures, found {n_s}")
    epa = [offset_energy(s, offsets, elements) / s.n_atoms for s in structures]
    mean_e = 0.0
    for x in epa:
        mean_e += x
    mean_e /= n_s
    var_e = 0.0
    for x in epa:
        var_e += (x - mean_e) * (x - mean_e)
    sigma_e = math.sqrt(var_e / (n_s - 1))
    n_atoms = sum(s.n_atoms for s in structures)
    if use_forces:
        # n2p2 sums component by component, left to right; numpy's pairwise summation
        # rounds differently, so use a plain sequential loop to reproduce n2p2's digits
        F = np.concatenate([s.forces.ravel() for s in structures])
        mean_f = _sequential_sum(F) / (3 * n_atoms)
        var_f = _sequential_sum((F - mean_f) * (F - mean_f))
        sigma_f = math.sqrt(var_f / (3 * n_atoms - 1))
    else:
        mean_f, sigma_f = 0.0, sigma_e  # conv_length = 1 without forces
    if not sigma_e > 0.0:
        raise SettingsError("all structures have the same energy per atom: normalisation (conv_energy = 1/sigma) "
                            "is undefined; add structures with different energies or give mean_energy, "
                            "conv_energy and conv_length in input.nn")
    if not sigma_f > 0.0:
        raise SettingsError("all reference force components are equal: conv_length = sigma_F/sigma_E is undefined; "
                            "check the forces in the data or train without use_short_forces")
    return NormalizationStats(n_s, n_atoms, mean_e, sigma_e, mean_f, sigma_f)


def _sequential_sum(x: np.ndarray) -> float:
    """Left-to-right double sum (numpy's pairwise summation rounds differently from n2p2)."""
    return float(_seq_sum_kernel(np.ascontiguousarray(x, dtype=np.float64)))


def _make_seq_sum():
    import numba

    @numba.njit(cache=True)
    def kernel(x):
        s = 0.0
        for v in x:
            s += v
        return s

    return kernel


_seq_sum_kernel = _make_seq_sum()


def normalized_settings(settings: Settings, norm: NormalizationStats) -> Settings:
    """New settings: ``settings`` with mean_energy, conv_energy, conv_length of ``norm`` at the top
    (as nnp-norm writes them), earlier lines of these keywords dropped; ``settings`` is unchanged."""
    from hdnnp.io.input_nn import SettingsLine

    new = [SettingsLine(key, [f"{value:.16E}"], 0, f"{key} {value:24.16E} # hdnnp train (nnp-norm)")
           for key, value in (("mean_energy", norm.mean_energy), ("conv_energy", norm.conv_energy),
                              ("conv_length", norm.conv_length))]
    return settings.without("mean_energy", "conv_energy", "conv_length").with_lines_first(new)


def normalization_log(norm: NormalizationStats) -> str:
    """The lines nnp-norm prints for these statistics."""
    return (
        f"Total number of structures: {norm.n_structures}\n"
        f"Total number of atoms     : {norm.n_atoms}\n"
        f"Mean/sigma energy per atom: {norm.mean_energy:16.8E} +/- {norm.sigma_energy:16.8E}\n"
        f"Mean/sigma force          : {norm.mean_force:16.8E} +/- {norm.sigma_force:16.8E}\n"
        f"Conversion factor energy  : {norm.conv_energy:24.16E}\n"
        f"Conversion factor length  : {norm.conv_length:24.16E}\n"
    )

