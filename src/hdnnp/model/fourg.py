"""The 4G stage of ``Potential`` (n2p2 ``nnp_type 4``): chi networks -> Qeq -> electrostatics ->
short-range networks with the charge as their last input.

``Potential.compute`` runs the same symmetry functions and the same scaling as for 2G; with a 4G
potential it hands the raw SFs to ``fourg_energy`` instead of ``atomic_energies_from_G``. Forces:
the SFs' share goes through dE/dG and the SF kernels (as for 2G), the explicit position
dependence of the Qeq matrix and of the electrostatic energy through autograd; the charges are
the solution of a differentiable linear solve, so both are exact gradients of the energy.
Prediction solves the Qeq system densely (n2p2's path) or matrix-free by CG (``qeq_cg``;
``Potential.qeq_solver`` / ``hdnnp_qeq_solver``), both with adjoint forces.

Units: the computation runs in n2p2's normalised units when the potential has normalisation
(positions x conv_length, charges x conv_charge, energies x conv_energy) and converts back:
E = (sum_i E_i + E_elec) / conv_energy + N mean_energy + offsets, Q = Q_n / conv_charge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hdnnp.model.electrostatics import EwaldParameters
from hdnnp.model.evaluation import element_energies


@dataclass
class FourGTerms:
    """energy : total energy without mean/offsets (physical E, torch scalar); atomic : (n,) short
    network outputs (physical E); charges : (n,) physical charges; elec : electrostatic energy
    (physical E); ewald : Ewald parameters in physical lengths (periodic) or None."""

    energy: torch.Tensor
    atomic: torch.Tensor
    charges: torch.Tensor
    elec: torch.Tensor
    ewald: EwaldParameters | None


def units(pot) -> tuple[float, float, float]:
    """(conv_energy, conv_length, conv_charge) of the potential (1 without normalisation)."""
    if pot.normalization is None:
        return 1.0, 1.0, 1.0
    return pot.normalization.conv_energy, pot.normalization.conv_length, pot.conv_charge


def ewald_parameters(pot, structure, converged: bool = False) -> EwaldParameters | None:
    """Ewald parameters of a periodic structure in the computation's units (None for a molecule)."""
    if structure.cell is None:
        return None
    _, cl, _ = units(pot)
    return pot.electrostatics.ewald_parameters(np.asarray(structure.cell) * cl, len(structure), converged,
                                               getattr(pot, "ewald_scaled", False))


def image_pairs(pot, positions_n: torch.Tensor, cell_n: torch.Tensor | None, ewald: EwaldParameters | None,
                solver: str = "dense"):
    """``ImagePairs`` within max(r_c, r_out) for wrapped positions and cell in the computation's units;
    for the CG solver ``VesinPairs`` (a cell list) when the cutoff sphere is smaller than half the cell
    (with n2p2's Ewald parameters it is larger than the cell: the blocked all-pairs generation is faster)."""
    if cell_n is None:
        return None
    from hdnnp.model.ewald_pairs import ImagePairs, VesinPairs

    cutoff = max(ewald.r_cut, pot.electrostatics.pair_cutoff)
    sparse = 4.0 / 3.0 * np.pi * cutoff ** 3 < 0.5 * abs(float(torch.linalg.det(cell_n.detach())))
    cls = VesinPairs if solver == "cg" and sparse else ImagePairs
    return cls(positions_n, cell_n, cutoff)


def _chi_and_inputs(pot, G: torch.Tensor, species: torch.Tensor):
    """chi (n,) in the computation's units and the scaled SFs per element {e: (idx, x)}."""
    ce, _, cc = units(pot)
    x_scaled = pot.scaled_inputs(G, species)
    # the pipeline's network stage (model/evaluation.py) on the chi networks; n2p2 treats their output as
    # physical and normalises it (x conv_energy / conv_charge)
    chi = element_energies(pot.charge_networks, x_scaled, G.shape[0], G.new_zeros((), dtype=pot.dtype)) * (ce / cc)
    return chi, x_scaled


def _short_atomic(pot, x_scaled, Q: torch.Tensor) -> torch.Tensor:
    """Short networks with the charge as last (unscaled) input: (n,) energies, computation units."""
    inputs = {e: (idx, torch.cat([x, Q[idx, None]], dim=1)) for e, (idx, x) in x_scaled.items()}
    return element_energies(pot.networks, inputs, Q.shape[0], Q)


def _physical_ewald(ewald, cl):
    return None if ewald is None else EwaldParameters(ewald.eta / cl, ewald.r_cut / cl, ewald.k_cut * cl)


def fourg_energy(pot, G: torch.Tensor, species: torch.Tensor, positions: torch.Tensor,
                 cell: torch.Tensor | None, total_charge: float, ewald: EwaldParameters | None) -> FourGTerms:
    """Energy of one structure from raw SFs G (n, max_sf), positions (n, 3) (wrapped into the cell)
    and cell (3, 3) (physical units).

    Differentiable in G, positions and cell and in the networks' weights and the hardness (for training).
    """
    ce, cl, cc = units(pot)
    chi, x_scaled = _chi_and_inputs(pot, G, species)
    cell_n = None if cell is None else cell * cl
    pairs = image_pairs(pot, positions * cl, cell_n, ewald)
    res = pot.electrostatics(chi, species, positions * cl, cell_n, total_charge * cc, pairs, ewald)
    atomic = _short_atomic(pot, x_scaled, res.charges)
    energy = (atomic.sum() + res.energy) / ce
    return FourGTerms(energy=energy, atomic=atomic / ce, charges=res.charges / cc, elec=res.energy / ce,
                      ewald=_physical_ewald(ewald, cl))


def fourg_energy_surrogate(pot, G, species, positions, cell, total_charge, ewald, gradient: bool = True,
                           solver: str = "dense"):
    """Prediction path: ``FourGTerms`` with values only, and a scalar whose gradient in G,
    positions and cell is the gradient of the energy (adjoint method, ``Electrostatics.energy_and_surrogate``;
    None unless ``gradient``). Periodic pairs are generated in chunks (memory O(block x N)).
    solver : 'dense' (LU of the N x N matrix, n2p2's path) or 'cg' (matrix-free, ``hdnnp.model.qeq_cg``)."""
    ce, cl, cc = units(pot)
    t0 = _tick()
    chi, x_scaled = _chi_and_inputs(pot, G, species)
    t0 = _tick("chi_net", t0)
    cell_n = None if cell is None else cell * cl
    atomic_box = {}

    def short_energy(Q):
        atomic_box["a"] = _short_atomic(pot, x_scaled, Q)
        return atomic_box["a"].sum()

    pairs = image_pairs(pot, positions * cl, cell_n, ewald, solver)
    if solver == "cg":
        from hdnnp.model.qeq_cg import energy_and_surrogate_cg

        Q, e_elec, e_short, L = energy_and_surrogate_cg(
            pot.electrostatics, chi, species, positions * cl, cell_n, total_charge * cc, pairs, ewald, short_energy,
            gradient)
    else:
        Q, e_elec, e_short, L = pot.electrostatics.energy_and_surrogate(
            chi, species, positions * cl, cell_n, total_charge * cc, pairs, ewald, short_energy, gradient)
    _tick("qeq_and_electrostatics", t0)
    terms = FourGTerms(energy=(e_short.detach() + e_elec) / ce, atomic=atomic_box["a"].detach() / ce,
                       charges=Q / cc, elec=e_elec / ce, ewald=_physical_ewald(ewald, cl))
    return terms, None if L is None else L / ce


#: set to a dict to collect wall times (s) of the prediction's phases (bench/bench_4g.py)
PROFILE: dict | None = None


def _tick(name: str | None = None, t0: float | None = None) -> float:
    """perf_counter now; with a name, add the time since t0 to ``PROFILE[name]`` (when profiling)."""
    import time

    t = time.perf_counter()
    if PROFILE is not None and name is not None:
        PROFILE[name] = PROFILE.get(name, 0.0) + t - t0
    return t


#: torch threads of the 4G stage on the CPU (as the 2G networks: next to numba's thread pool, two
#: torch pools spinning on the same cores made a 384-atom water box 2-8x slower on a 2-core machine);
#: None: torch's setting
CPU_TORCH_THREADS: int | None = 1


def compute_fourg(pot, structure, forces: bool, stress: bool, structure_index: int, sf_backend: str | None,
                  converged: bool = False):
    """``Potential.compute`` for a 4G potential (see the module doc); returns a ``Prediction``."""
    if torch.device(pot.device_name).type != "cpu" or CPU_TORCH_THREADS is None:
        return _compute_fourg(pot, structure, forces, stress, structure_index, sf_backend, converged)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(CPU_TORCH_THREADS)
    try:
        return _compute_fourg(pot, structure, forces, stress, structure_index, sf_backend, converged)
    finally:
        torch.set_num_threads(n_threads)


def _compute_fourg(pot, structure, forces, stress, structure_index, sf_backend, converged):
    from hdnnp.descriptors import kernels as K
    from hdnnp.model.potential import Prediction

    dev = torch.device(pot.device_name)
    n = len(structure)
    species = pot.sf_set.species_of(structure)
    sp_t = torch.as_tensor(species, device=dev)
    ewald = ewald_parameters(pot, structure, converged)
    periodic = structure.cell is not None
    from hdnnp.model.qeq_cg import resolve_solver

    solver = resolve_solver(getattr(pot, "qeq_solver", "auto"), n,
                            structure.cell is not None and getattr(pot, "ewald_scaled", False))
    total_charge = 0.0 if structure.charge is None else float(structure.charge)
    if periodic and abs(total_charge) > 1e-10:
        raise ValueError(f"structure {structure_index + 1}: a periodic structure must be neutral "
                         f"(total charge {total_charge}); Ewald sums of charged cells are not defined here")
    use_torch = pot.resolve_sf_backend(sf_backend) == "torch" and pot.torch_symmetry_functions() is not None
    with torch.enable_grad() if forces else torch.no_grad():
        pos0 = torch.as_tensor(structure.positions, dtype=pot.dtype, device=dev).requires_grad_(forces)
        strain = torch.zeros((3, 3), dtype=pot.dtype, device=dev, requires_grad=forces)
        deform = torch.eye(3, dtype=pot.dtype, device=dev) + strain
        cell = None
        if periodic:  # positions wrapped into the cell for the image pairs (integer shifts: same energy)
            cell0 = torch.as_tensor(structure.cell, dtype=pot.dtype, device=dev)
            wrap = torch.floor(pos0.detach() @ torch.linalg.inv(cell0)) @ cell0
            pos = (pos0 - wrap) @ deform
            cell = cell0 @ deform
        else:
            pos = pos0 @ deform
        t0 = _tick()
        if use_torch:
            tsf = pot.torch_symmetry_functions()
            nl = pot._torch_neighbors(structure)
            data = tsf.prepare(nl, species)
            vec = data.vectors.detach().to(pot.dtype).requires_grad_(forces)
            G = tsf.values(data, vec)
        else:
            nl = pot.sf_set.neighbors(structure)
            G_np = pot.sf_set._run(structure, nl, species, 0)[0]
            G = torch.as_tensor(G_np, dtype=pot.dtype, device=dev).requires_grad_(forces)
        t0 = _tick("sf", t0)
        terms, L = fourg_energy_surrogate(pot, G, sp_t, pos, cell, total_charge, ewald, gradient=forces,
                                          solver=solver)
        t0 = _tick()
        if forces:
            inputs = [vec if use_torch else G, pos0, strain]
            grads = torch.autograd.grad(L, inputs, allow_unused=True)
        t0 = _tick("backward", t0)
    G_cpu = G.detach().to("cpu", torch.float64).numpy()
    extrap = pot.check_extrapolation(G_cpu, species, structure_index)
    result = Prediction(energy=float(terms.energy.detach()) + pot.energy_shift(structure), forces=np.zeros((n, 3)),
                        atomic_energies=terms.atomic.detach().to("cpu", torch.float64).numpy(),
                        n_extrapolations=len(extrap), extrapolations=extrap,
                        charges=terms.charges.detach().to("cpu", torch.float64).numpy(),
                        electrostatic_energy=float(terms.elec.detach()), ewald=terms.ewald)
    if not forces:
        return result
    g_sf = grads[0] if grads[0] is not None else torch.zeros_like(inputs[0])
    if use_torch:
        from hdnnp.descriptors.torch_backend import forces_and_virial

        F, W = forces_and_virial(data, g_sf.detach())
        F = F.to("cpu", torch.float64).numpy()
        W = W.to("cpu", torch.float64).numpy()
    else:
        dEdG = np.ascontiguousarray(g_sf.detach().cpu().numpy(), dtype=np.float64)
        pg = pot.sf_set._run(structure, nl, species, 2, dEdG)[2]
        F, W = K.forces_from_pair_gradients(n, nl.i, nl.j, nl.vectors, pg)
    _tick("sf_forces", t0)
    g_pos = grads[1]
    if g_pos is not None:
        F = F - g_pos.detach().to("cpu", torch.float64).numpy()
    if grads[2] is not None:
        W = W - grads[2].detach().to("cpu", torch.float64).numpy()
    result.forces = F
    result.virial = W
    if stress and periodic:
        result.stress = -W / abs(np.linalg.det(structure.cell))
    return result
