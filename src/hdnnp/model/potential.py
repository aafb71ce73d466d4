"""The potential: symmetry functions -> scaled inputs -> per-element networks -> E, F, stress.

Units are the potential's own (those of its input.nn / training data; n2p2 files carry
none). Normalisation (SPEC §2) applies only when all of ``mean_energy``, ``conv_energy``
and ``conv_length`` are present. Symmetry-function values are invariant under n2p2's
length normalisation (eta / c^2, r * c), so they are computed in physical units;
energies are converted as E = sum_i E_i / conv_energy + N mean_energy + offsets.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers
from torch import nn

from hdnnp.descriptors.sf_set import SymmetryFunctionSet
from hdnnp.io.input_nn import Settings
from hdnnp.io.potential_directory import SCALING_FILE, SETTINGS_FILE, PotentialDirectory
from hdnnp.io.scaling_data import ScalingStats, read_scaling_data
from hdnnp.model import evaluation
from hdnnp.model.evaluation import element_energies
from hdnnp.model.network import ElementNetwork
from hdnnp.model.topology import atom_energy_offsets, initial_hardness, topology
from hdnnp.model.scaling import ElementScaling, element_scaling, scaling_mode
from hdnnp.structure import Structure

log = logging.getLogger("hdnnp")

#: hdnnp-only input.nn keywords declaring the units of a potential (n2p2 files have none)
UNIT_KEYWORDS = ("hdnnp_length_unit", "hdnnp_energy_unit")

#: symmetry-function backends of ``Potential.compute``
SF_BACKENDS = ("auto", "numba", "torch")


def _check_sf_backend(name: str) -> str:
    if name not in SF_BACKENDS:
        raise ValueError(f"sf_backend must be one of {', '.join(SF_BACKENDS)}, not {name!r}")
    return name


@dataclass
class Prediction:
    """Result for one structure, in the potential's units.

    energy : total energy; forces : (n_atoms, 3); atomic_energies : (n_atoms,) network
    outputs in physical units without mean energy or offsets (n2p2 ``nnatoms.out``);
    stress : (3, 3) (1/V) dE/d(strain) for periodic structures, else None;
    (4G: charges, electrostatic_energy and ewald; atomic_energies are the short networks' outputs);
    virial : (3, 3) -sum_p r_p (x) dE/dr_p; n_extrapolations : SF values outside the
    scaling range.
    """

    energy: float
    forces: np.ndarray
    atomic_energies: np.ndarray
    stress: np.ndarray | None = None
    virial: np.ndarray | None = None
    n_extrapolations: int = 0
    extrapolations: list = field(default_factory=list)
    #: 4G potentials only: (n_atoms,) atomic charges, electrostatic energy (included in energy),
    #: Ewald parameters (eta, r_cut, k_cut) of a periodic structure
    charges: np.ndarray | None = None
    electrostatic_energy: float | None = None
    ewald: object | None = None


@dataclass
class Normalization:
    mean_energy: float
    conv_energy: float
    conv_length: float


class Potential(nn.Module):
    """A high-dimensional neural network potential (n2p2 short-range HDNNP).

    sf_backend : where the symmetry functions and their derivatives are computed:
    "numba" (CPU kernels, ``hdnnp.descriptors.kernels``), "torch" (``hdnnp.descriptors.torch_backend``,
    on ``device``, so that a CUDA device does energy and forces entirely on the GPU) or "auto"
    (default: torch when ``device`` is a CUDA device, else numba).
    """

    #: bound on the triplets the torch backend processes at once (its peak memory is about
    #: proportional); None: ``torch_backend.default_max_triplets`` (2^17 on the CPU, 2^21 on a GPU)
    torch_max_triplets_per_chunk: int | None = None
    #: the torch backend computes energy and forces in one autograd pass (fastest: ~1.8x on the
    #: CPU for H2O 1080 atoms) when its graph (``TorchSymmetryFunctions.graph_bytes``) fits in this
    #: many bytes, else values first and then gradients chunk by chunk (memory bounded by the
    #: chunk size). None: half of the free GPU memory on a CUDA device, 2 GiB on the CPU
    torch_graph_max_bytes: int | None = None
    #: neighbour list of the torch backend: "auto" (vesin-torch on the device when the potential
    #: is on a CUDA device and ``pip install vesin-torch`` is done, else vesin on the CPU),
    #: "device" (always vesin-torch, on ``device``) or "cpu" (vesin, then copied to the device)
    torch_neighbor_list: str = "auto"
    #: 4G, periodic: False (default) uses n2p2's Ewald parameters (ewald_prec), for parity with
    #: n2p2; True a precision 1e-6 times tighter (closer to the converged Ewald sum)
    ewald_converged: bool = False

    def __init__(self, settings: Settings, sf_set: SymmetryFunctionSet, networks: dict[str, ElementNetwork],
                 scaling_stats: list[ScalingStats] | None, device: str = "cpu",
                 dtype: torch.dtype = torch.float64, sf_backend: str = "auto", fourg=None,
                 source: PotentialDirectory | None = None, scaling_path: str | Path | None = None):
        """fourg : None (2G) or (charge networks per element, hardness per element in physical units)
        for a 4G potential (``hdnnp.model.fourg``).
        source : the potential directory this potential was read from (``save`` copies its input.nn
        byte for byte), or None; scaling_path : where ``scaling_stats`` came from (for error messages)."""
        super().__init__()
        self.source = source
        self._scaling_path = str(scaling_path) if scaling_path else SCALING_FILE
        self.sf_backend = _check_sf_backend(sf_backend)
        self._torch_sf_cache: dict = {}
        self._sf_fallback_warned = False
        self.settings = settings
        self.sf_set = sf_set
        self.elements = sf_set.elements
        self.networks = nn.ModuleDict({e: networks[e] for e in self.elements})
        self.device_name = device
        self.dtype = dtype
        mean = settings.get_float("mean_energy")
        ce = settings.get_float("conv_energy")
        cl = settings.get_float("conv_length")
        self.normalization = Normalization(mean, ce, cl) if None not in (mean, ce, cl) else None
        self.offsets = atom_energy_offsets(settings, self.elements)
        self.conv_charge = settings.get_float("conv_charge", 1.0)
        self.charge_networks = None
        self.electrostatics = None
        if fourg is not None:
            from hdnnp.model.electrostatics import electrostatics_from_settings

            charge_networks, hardness = fourg
            self.charge_networks = nn.ModuleDict({e: charge_networks[e] for e in self.elements})
            self.electrostatics = electrostatics_from_settings(settings, self.elements, hardness,
                                                               self.normalization, self.conv_charge, dtype)
        from hdnnp.model.qeq_cg import ewald_scaled_from_settings, solver_from_settings

        #: 4G: Qeq solver 'auto' | 'dense' | 'cg' (``hdnnp_qeq_solver``, hdnnp.model.qeq_cg)
        self.qeq_solver = solver_from_settings(settings) if fourg is not None else "auto"
        #: 4G, periodic: Ewald width scaled for large cells (``hdnnp_ewald_parameters scaled``) instead of n2p2's
        self.ewald_scaled = ewald_scaled_from_settings(settings) if fourg is not None else False
        self.length_unit = settings.get_str("hdnnp_length_unit")
        self.energy_unit = settings.get_str("hdnnp_energy_unit")
        self.scaling_stats = scaling_stats
        self.set_scaling(scaling_stats)
        self.to(device)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_n2p2(cls, directory: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float64,
                  settings_file: str = SETTINGS_FILE, sf_backend: str = "auto") -> "Potential":
        """Load ``input.nn``, ``scaling.data`` and ``weights.%03d.data`` from a directory.

        sf_backend : "auto" (torch on a CUDA device, else numba), "numba" or "torch" (see the class).
        """
        pdir = PotentialDirectory(directory, settings_file)
        pdir.check_exists()
        settings = pdir.read_settings()
        pot = cls.from_settings(settings, device=device, dtype=dtype, scaling_path=pdir.scaling_path,
                                sf_backend=sf_backend, source=pdir)
        for e in pot.elements:
            net = pot.networks[e]
            net.set_weights(pdir.read_weights(e, net.layer_sizes))
        if pot.is_fourg:
            pot.load_fourg_files(pdir)
        return pot

    @property
    def directory(self) -> Path | None:
        """The directory this potential was read from (None when built from settings only)."""
        return self.source.path if self.source is not None else None

    @classmethod
    def from_settings(cls, settings: Settings, device: str = "cpu", dtype: torch.dtype = torch.float64,
                      scaling_path: str | Path | None = None, scaling_stats: list[ScalingStats] | None = None,
                      seed: int | None = None, sf_backend: str = "auto",
                      source: PotentialDirectory | None = None) -> "Potential":
        """Architecture from ``input.nn``; weights random (torch init) until loaded or trained.

        source : the potential directory whose input.nn ``settings`` is (``save`` copies it)."""
        path = settings.path
        n_el = settings.get_int("number_of_elements")
        el_line = settings.require("elements")
        elements = list(el_line.values)
        for e in elements:
            if e not in atomic_numbers or e == "X":
                raise settings.error(el_line, f"unknown element symbol {e!r}")
        dup = sorted({e for e in elements if elements.count(e) > 1})
        if dup:
            raise settings.error(el_line, f"element {dup[0]} is listed more than once in 'elements'")
        if not elements:
            raise settings.error(el_line, "'elements' lists no element")
        if n_el is not None and n_el != len(elements):
            raise settings.error(settings.line("number_of_elements"),
                                 f"number_of_elements is {n_el} but 'elements' lists {len(elements)}")
        ct_line = settings.require("cutoff_type")
        try:
            ct = int(ct_line.values[0])
            alpha = float(ct_line.values[1]) if len(ct_line.values) > 1 else 0.0
        except (ValueError, IndexError):
            raise settings.error(ct_line, "expected 'cutoff_type <0-8> [alpha]'") from None
        if ct not in range(9) or not 0.0 <= alpha < 1.0:
            raise settings.error(ct_line, f"cutoff_type must be 0-8 with 0 <= alpha < 1, found {ct} {alpha}")
        sf_set = SymmetryFunctionSet.from_lines(elements, settings.all("symfunction_short"), ct, alpha, path)
        generation = settings.nnp_generation()
        nodes, acts = topology(settings, "short")
        normalize = settings.get_bool("normalize_nodes")
        if seed is not None:
            torch.manual_seed(seed)
        extra = 1 if generation == 4 else 0  # 4G: the charge is the short network's last input
        networks = {
            e: ElementNetwork([sf_set.n_sf[e] + extra, *nodes, 1], acts, normalize, dtype=dtype)
            for e in sf_set.elements
        }
        fourg = None
        if generation == 4:
            nodes_e, acts_e = topology(settings, "electrostatic")
            charge_networks = {e: ElementNetwork([sf_set.n_sf[e], *nodes_e, 1], acts_e, normalize, dtype=dtype)
                               for e in sf_set.elements}
            fourg = (charge_networks, initial_hardness(settings, sf_set.elements))
        if scaling_stats is None and scaling_path is not None:
            scaling_stats = read_scaling_data(scaling_path, [sf_set.n_sf[e] for e in sf_set.elements])
            scaling_path = str(scaling_path)
        pot = cls(settings, sf_set, networks, None, device=device, dtype=dtype, sf_backend=sf_backend, fourg=fourg,
                  source=source, scaling_path=scaling_path)
        pot.set_scaling(scaling_stats)
        return pot

    # ------------------------------------------------------------------ 4G
    @property
    def is_fourg(self) -> bool:
        """True for a 4G-HDNNP (``nnp_generation 4``): chi networks, Qeq and electrostatics."""
        return self.electrostatics is not None

    def load_fourg_files(self, directory: str | Path | PotentialDirectory) -> None:
        """Read ``weightse.ZZZ.data`` (chi networks) and ``hardness.ZZZ.data`` from a directory."""
        pdir = directory if isinstance(directory, PotentialDirectory) else PotentialDirectory(directory)
        ce = self.normalization.conv_energy if self.normalization else 1.0
        J = []
        for e in self.elements:
            net = self.charge_networks[e]
            net.set_weights(pdir.read_charge_weights(e, net.layer_sizes))
            J.append(pdir.read_hardness(e) * ce / self.conv_charge ** 2)
        with torch.no_grad():
            self.electrostatics.hardness.copy_(torch.as_tensor(J, dtype=self.dtype))

    def hardness_physical(self) -> list[float]:
        ce = self.normalization.conv_energy if self.normalization else 1.0
        return [float(v) * self.conv_charge ** 2 / ce for v in self.electrostatics.hardness.detach().cpu()]

    # ------------------------------------------------------------------ scaling
    @property
    def scaling_mode(self) -> str:
        s = self.settings
        return scaling_mode(s.get_bool("scale_symmetry_functions"), s.get_bool("center_symmetry_functions"),
                            s.get_bool("scale_symmetry_functions_sigma"))

    def set_scaling(self, stats: list[ScalingStats] | None) -> None:
        """Install symmetry-function statistics (None: identity until statistics exist)."""
        self.scaling_stats = stats
        smin = self.settings.get_float("scale_min_short", 0.0)
        smax = self.settings.get_float("scale_max_short", 1.0)
        self.scalings: dict[str, ElementScaling] = {}
        dev = getattr(self, "device_name", "cpu")
        for k, e in enumerate(self.elements):
            n = self.sf_set.n_sf[e]
            if stats is None:
                sc = ElementScaling(0.0, np.ones(n), np.zeros(n))
            else:
                sc = element_scaling(stats[k], self.scaling_mode, smin, smax, self._scaling_path, e)
            self.scalings[e] = sc
        # torch copies for the network input, (n_sf,) per element
        self._scale_t = {
            e: (torch.tensor(sc.s_min, dtype=self.dtype, device=dev),
                torch.as_tensor(sc.factor, dtype=self.dtype, device=dev),
                torch.as_tensor(sc.shift, dtype=self.dtype, device=dev))
            for e, sc in self.scalings.items()
        }

    @property
    def conv_energy(self) -> float:
        return self.normalization.conv_energy if self.normalization else 1.0

    def energy_shift(self, structure: Structure) -> float:
        """N * mean_energy + sum of atom_energy offsets (added to the network sum)."""
        mean = self.normalization.mean_energy if self.normalization else 0.0
        return sum(mean + self.offsets[e] for e in structure.elements)

    # ---------------------------------------------------------------- networks
    def scaled_inputs(self, G: torch.Tensor, species: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The networks' inputs: per element present, (atom indices (m,), scaled SFs (m, n_sf[e])).

        G : (n_atoms, max_sf) raw SFs on the potential's device; species : (n_atoms,) element index.
        """
        out = {}
        for k, e in enumerate(self.elements):
            idx = torch.nonzero(species == k).flatten()
            if len(idx) == 0:
                continue
            n = self.sf_set.n_sf[e]
            smin, factor, shift = self._scale_t[e]
            out[e] = (idx, smin + factor * (G[idx, :n] - shift))
        return out

    def atomic_energies_from_G(self, G: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Network outputs in physical energy units (no mean, no offsets).

        G : (n_atoms, max_sf) raw SFs on the potential's device; species : (n_atoms,) element index.
        """
        out = element_energies(self.networks, self.scaled_inputs(G, species), G.shape[0],
                               G.new_empty(0, dtype=self.dtype))
        return out / self.conv_energy

    # -------------------------------------------------------------- prediction
    def check_extrapolation(self, G: np.ndarray, species: np.ndarray, structure_index: int = 0,
                            max_messages: int = 10, rel_tol: float = 1e-12) -> list[tuple]:
        """SF values outside [Gmin, Gmax] of scaling.data, as n2p2 warns about them.

        rel_tol : tolerance relative to |Gmin| + |Gmax| (larger for G computed in float32).
        """
        if self.scaling_stats is None:
            return []
        found = []
        for k, e in enumerate(self.elements):
            st = self.scaling_stats[k]
            idx = np.flatnonzero(species == k)
            g = G[idx, : len(st.g_min)]
            # a tolerance of a few ulps of the range: n2p2 computes the same values in its
            # normalised units, so values at the very edge of the range differ by rounding only
            tol = rel_tol * (np.abs(st.g_max) + np.abs(st.g_min))
            bad = np.argwhere((g < st.g_min - tol) | (g > st.g_max + tol))
            for a, s in bad:
                found.append((structure_index, int(idx[a]), e, int(s), float(g[a, s]),
                              float(st.g_min[s]), float(st.g_max[s])))
        for f in found[:max_messages]:
            log.warning("### NNP EXTRAPOLATION WARNING ### STRUCTURE: %6d ATOM: %9d ELEMENT: %2s SYMFUNC: %4d "
                        "VALUE: %10.3E MIN: %10.3E MAX: %10.3E", f[0] + 1, f[1] + 1, f[2], f[3] + 1, f[4], f[5], f[6])
        if len(found) > max_messages:
            log.warning("... %d more extrapolation warnings in structure %d", len(found) - max_messages,
                        structure_index + 1)
        return found

    #: largest dG/dr block (bytes) that derivative_mode="store" keeps at a time; bigger structures
    #: are processed in chunks of atoms, so memory stays linear in the number of atoms
    STORE_CHUNK_BYTES = 64 * 2**20

    def _energy_function(self, species: np.ndarray, device=None):
        """G (n_atoms, max_sf) raw SFs -> atomic energies (n_atoms,) in physical units (no mean,
        no offsets): the energy function of ``evaluation.evaluate`` for these atoms."""
        sp_t = torch.as_tensor(species, device=self.device_name if device is None else device)
        return lambda G: self.atomic_energies_from_G(G, sp_t)

    def _energies_and_gradients(self, G: np.ndarray, species: np.ndarray, grad: bool):
        """Atomic energies (n,) and dE/dG (n, max_sf) (or None) from raw G, as float64 numpy
        (torch on one intra-op thread, see ``evaluation.evaluate``)."""
        with evaluation.torch_threads(1), torch.set_grad_enabled(grad):
            G_t = torch.as_tensor(G, device=self.device_name).to(self.dtype)
            e, g = evaluation.energies_and_gradient(self._energy_function(species), G_t, grad)
        dEdG = None if g is None else np.ascontiguousarray(evaluation.as_numpy(g), dtype=np.float64)
        return evaluation.as_numpy(e), dEdG

    def _store_chunks(self, nl, n_atoms: int) -> list[tuple[int, int]]:
        """Atom ranges whose D = dG/dr block fits in STORE_CHUNK_BYTES (at least one atom each)."""
        per_pair = self.sf_set.max_sf * 3 * 8
        max_pairs = max(1, self.STORE_CHUNK_BYTES // per_pair)
        chunks, a0 = [], 0
        while a0 < n_atoms:
            a1 = int(np.searchsorted(nl.start, nl.start[a0] + max_pairs, side="right")) - 1
            a1 = min(n_atoms, max(a1, a0 + 1))
            chunks.append((a0, a1))
            a0 = a1
        return chunks

    # ------------------------------------------------------- SF backend choice
    def resolve_sf_backend(self, sf_backend: str | None = None) -> str:
        """"numba" or "torch" for ``sf_backend`` (None: the potential's ``sf_backend``); "auto" is
        torch on a CUDA device, else numba."""
        name = _check_sf_backend(self.sf_backend if sf_backend is None else sf_backend)
        if name == "auto":
            return "torch" if torch.device(self.device_name).type == "cuda" else "numba"
        return name

    def torch_symmetry_functions(self):
        """The torch SF backend on this potential's device and dtype (built once), or None when the
        symmetry functions include a type it does not support (then warns once)."""
        from hdnnp.descriptors.torch_backend import (
            TorchSymmetryFunctions,
            UnsupportedSymmetryFunctionError,
            default_max_triplets,
        )

        dev = torch.device(self.device_name)
        chunk = self.torch_max_triplets_per_chunk
        if chunk is None:
            chunk = default_max_triplets(dev)
        key = (str(dev), self.dtype, chunk)
        if key not in self._torch_sf_cache:
            try:
                self._torch_sf_cache[key] = TorchSymmetryFunctions(self.sf_set, dev, self.dtype, chunk)
            except UnsupportedSymmetryFunctionError as exc:
                self._torch_sf_cache[key] = None
                if not self._sf_fallback_warned:
                    self._sf_fallback_warned = True
                    warnings.warn(f"{exc}; using the numba symmetry-function kernels on the CPU instead",
                                  RuntimeWarning, stacklevel=3)
        return self._torch_sf_cache[key]

    def compute(self, structure: Structure, forces: bool = True, stress: bool = True,
                structure_index: int = 0, derivative_mode: str = "recompute",
                sf_backend: str | None = None) -> Prediction:
        """Energy, forces (and stress for periodic cells) of one structure.

        sf_backend : "numba", "torch" or "auto" (None: the potential's ``sf_backend``; see the class).
        With numba, the symmetry-function kernels run on the CPU (numba threads, see
        ``numba.set_num_threads``) and only the networks on ``device``; with torch, everything after
        the neighbour list (vesin, CPU) runs on ``device``.

        derivative_mode (numba backend only) : "recompute" (default and fastest: a values-only kernel
        pass, the networks, then a second pass contracting dE/dG on the fly; memory O(pairs)) or
        "store" (one pass keeping dG/dr per pair and SF, contracted afterwards; processed in chunks
        of atoms of at most ``STORE_CHUNK_BYTES``, so memory stays linear). Both give the same result
        to rounding. The torch backend does one autograd pass when its graph fits in
        ``torch_graph_max_bytes``, else values first and then the gradients chunk by chunk
        (memory bounded by ``torch_max_triplets_per_chunk``). Energies and forces come from the
        one model pipeline, ``hdnnp.model.evaluation``.
        """
        if derivative_mode not in ("recompute", "store"):
            raise ValueError(f"derivative_mode must be 'recompute' or 'store', not {derivative_mode!r}")
        if len(structure) == 0:  # nothing to sum: zero energy, no forces
            virial = np.zeros((3, 3)) if forces else None
            empty = Prediction(energy=0.0, forces=np.zeros((0, 3)), atomic_energies=np.zeros(0), virial=virial)
            if forces and stress and structure.cell is not None:
                empty.stress = np.zeros((3, 3))
            return empty
        if self.is_fourg:
            from hdnnp.model.fourg import compute_fourg

            return compute_fourg(self, structure, forces, stress, structure_index, sf_backend,
                                 converged=self.ewald_converged)
        with torch.set_grad_enabled(forces):  # energies only: no graph
            if self.resolve_sf_backend(sf_backend) == "torch":
                tsf = self.torch_symmetry_functions()
                if tsf is not None:
                    return self._compute_torch(tsf, structure, forces, stress, structure_index)
            return self._compute_numba(structure, forces, stress, structure_index, derivative_mode)

    def _compute_numba(self, structure: Structure, forces: bool, stress: bool, structure_index: int,
                       derivative_mode: str) -> Prediction:
        """``compute`` with the numba kernels (CPU) and the networks on ``device``."""
        sfs = self.sf_set
        species = sfs.species_of(structure)
        nl = sfs.neighbors(structure)
        if forces and derivative_mode == "store":
            G, e_atoms, derivatives = self._store_pass(structure, nl, species)
            F, W = derivatives.forces()
        else:
            G = sfs._run(structure, nl, species, 0)[0]
            G_t = torch.as_tensor(G, device=self.device_name).to(self.dtype)
            derivatives = evaluation.KernelDerivatives(sfs, structure, nl, species) if forces else None
            ev = evaluation.evaluate(self._energy_function(species), G_t, derivatives, network_threads=1)
            e_atoms, F, W = evaluation.as_numpy(ev.energies), ev.forces, ev.virial
        return self._prediction(structure, species, G, e_atoms, F, W, stress, structure_index)

    def _store_pass(self, structure: Structure, nl, species: np.ndarray):
        """derivative_mode "store": values and dG/dr of chunks of atoms (``_store_chunks``), each
        contracted with its dE/dG at once. Returns raw G, atomic energies and the executor."""
        from hdnnp.descriptors import kernels as K

        sfs, n = self.sf_set, len(species)
        G = np.empty((n, sfs.max_sf))
        e_atoms = np.empty(n)
        pg = np.empty((nl.n_pairs, 3))
        for a0, a1 in self._store_chunks(nl, n):
            Gc, Dc, _ = sfs._run(structure, nl, species, 1, atom_begin=a0, atom_end=a1)
            G[a0:a1] = Gc
            e_atoms[a0:a1], dEdG = self._energies_and_gradients(Gc, species[a0:a1], True)
            pg[nl.start[a0]:nl.start[a1]] = K.contract_pair_gradients(nl.start, a0, a1, Dc, dEdG)
            del Dc
        return G, e_atoms, evaluation.StoredPairGradients(nl, n, pg)

    def _prediction(self, structure: Structure, species: np.ndarray, G: np.ndarray, e_atoms: np.ndarray,
                    F: np.ndarray | None, W: np.ndarray | None, stress: bool, structure_index: int,
                    rel_tol: float = 1e-12) -> Prediction:
        """The ``Prediction`` of one structure from raw G, atomic energies (physical units) and
        forces/virial (None: energy only); extrapolation checked against scaling.data."""
        extrap = self.check_extrapolation(G, species, structure_index, rel_tol=rel_tol)
        energy = float(e_atoms.sum()) + self.energy_shift(structure)
        result = Prediction(energy=energy, forces=np.zeros((len(species), 3)), atomic_energies=e_atoms,
                            n_extrapolations=len(extrap), extrapolations=extrap)
        if F is None:
            return result
        result.forces = F
        result.virial = W
        if stress:
            result.stress = evaluation.stress_from_virial(W, structure.cell)
        return result

    def _graph_budget(self, device: torch.device) -> int:
        if self.torch_graph_max_bytes is not None:
            return self.torch_graph_max_bytes
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            # blocks cached by torch's allocator count as free (mem_get_info sees them as used)
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
            return (free + cached) // 2
        return 2 * 2**30

    def _torch_neighbors(self, structure: Structure):
        """The neighbour list for the torch backend, built where ``torch_neighbor_list`` says."""
        from hdnnp.neighbors import neighbor_list_torch, vesin_torch_available

        where = self.torch_neighbor_list
        if where not in ("auto", "device", "cpu"):
            raise ValueError(f"torch_neighbor_list must be auto, device or cpu, not {where!r}")
        dev = torch.device(self.device_name)
        if where == "device" or (where == "auto" and dev.type == "cuda" and vesin_torch_available()):
            return neighbor_list_torch(structure.positions, structure.cell, self.sf_set.cutoff, dev)
        return self.sf_set.neighbors(structure)

    def _compute_torch(self, tsf, structure: Structure, forces: bool, stress: bool,
                       structure_index: int) -> Prediction:
        """``compute`` with the torch SF backend: everything after the neighbour list (see
        ``torch_neighbor_list``) on ``device``. With forces: one autograd pass from the pair
        vectors when the graph fits in ``torch_graph_max_bytes``, else values, networks and dE/dG
        first and the SF gradients chunk by chunk."""
        species = self.sf_set.species_of(structure)
        data = tsf.prepare(self._torch_neighbors(structure), species)
        energy_of_G = self._energy_function(species, data.vectors.device)
        if forces and tsf.graph_bytes(data) <= self._graph_budget(data.vectors.device):
            values = {}

            def energy_of_vectors(vec):
                values["G"] = tsf.values(data, vec)
                return energy_of_G(values["G"])

            ev = evaluation.evaluate(energy_of_vectors, data.vectors, evaluation.TorchPairDerivatives(data))
            G = values["G"]
        else:
            with torch.no_grad():
                G = tsf.values(data)
            derivatives = evaluation.TorchPairDerivatives(data, tsf) if forces else None
            ev = evaluation.evaluate(energy_of_G, G, derivatives)
        F = None if ev.forces is None else evaluation.as_numpy(ev.forces)
        W = None if ev.virial is None else evaluation.as_numpy(ev.virial)
        # G in float32 carries rounding errors of ~1e-7 of its range (values that are 0 in exact
        # arithmetic come out as -1e-7): no warnings for those
        return self._prediction(structure, species, evaluation.as_numpy(G), evaluation.as_numpy(ev.energies), F, W,
                                stress, structure_index, rel_tol=max(1e-12, 100 * torch.finfo(G.dtype).eps))

    def predict(self, structures: list[Structure], forces: bool = True, stress: bool = True) -> list[Prediction]:
        """``compute`` for each structure; logs a summary of extrapolation warnings."""
        results = [self.compute(s, forces=forces, stress=stress, structure_index=k) for k, s in enumerate(structures)]
        n_ex = sum(r.n_extrapolations for r in results)
        if n_ex:
            n_s = sum(1 for r in results if r.n_extrapolations)
            log.warning("extrapolation: %d symmetry-function values outside the scaling range in %d of %d structures",
                        n_ex, n_s, len(results))
        return results

    # -------------------------------------------------------------------- saving
    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write an n2p2 potential directory (input.nn, scaling.data, weights.XXX.data; 4G: also
        weightse.XXX.data, hardness.XXX.data). input.nn is copied byte for byte from the directory
        the potential was read from (``source``), else written from ``settings``.

        Refuses to overwrite existing files unless ``overwrite`` (nothing a user wrote is lost).
        """
        pdir = PotentialDirectory(directory)
        pdir.path.mkdir(parents=True, exist_ok=True)
        if not overwrite:
            existing = [str(t) for t in pdir.existing(self.elements, self.is_fourg)]
            if existing:
                raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (use a new directory)")
        pdir.write_settings(self.settings, source=self.source)
        if self.scaling_stats is not None:
            pdir.write_scaling(self.scaling_stats)
        for e in self.elements:
            pdir.write_weights(e, self.networks[e].get_weights())
        if self.is_fourg:
            for e, J in zip(self.elements, self.hardness_physical()):
                pdir.write_charge_weights(e, self.charge_networks[e].get_weights())
                pdir.write_hardness(e, J)
        return pdir.path
