"""``hdnnp predict POTENTIAL_DIR INPUT_DATA [-o OUTDIR]``: energies and forces like n2p2's nnp-predict."""

from __future__ import annotations

import logging
import time

from hdnnp.interfaces.commands import add_fourg_solver_options

log = logging.getLogger("hdnnp")


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="energies, forces and per-atom energies of structures (like nnp-predict)",
                       description=__doc__)
    p.add_argument("potential", help="directory with input.nn, scaling.data, weights.XXX.data")
    p.add_argument("data", help="structures: n2p2 input.data (or any file ASE reads, positions in the potential's length unit)")
    p.add_argument("-o", "--output", default=".", help="output directory (default: current directory)")
    p.add_argument("--device", default="cpu", help="torch device for the networks (cpu, cuda)")
    p.add_argument("--sf-backend", choices=("auto", "numba", "torch"), default="auto",
                   help="symmetry functions: numba (CPU kernels), torch (on --device) or auto "
                        "(default: torch on a CUDA device, else numba)")
    p.add_argument("--float32", action="store_true",
                   help="evaluate the networks (and, with the torch backend, the symmetry functions) in float32")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--ewald-converged", action="store_true",
                   help="4G periodic structures: Ewald precision 1e6 times tighter than ewald_prec (closer to the "
                        "converged sum) instead of n2p2's parameters")
    add_fourg_solver_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from hdnnp.io.n2p2_output import write_predict_outputs
    from hdnnp.io.structure_files import read_structures
    from hdnnp.model.potential import Potential
    from hdnnp.training.metrics import reference_errors

    from hdnnp.io.validation import atomic_open, check_device, check_output_dir

    check_device(args.device)
    outdir = check_output_dir(args.output, create=False)  # made once there is something to write
    targets = [outdir / n for n in ("energy.out", "nnforces.out", "nnatoms.out", "output.data", "predictions.extxyz")]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        from hdnnp.errors import HDNNPError

        raise HDNNPError(f"refusing to overwrite {', '.join(existing)}; use --overwrite or another -o directory")
    dtype = torch.float32 if args.float32 else torch.float64
    log.info("*** SETUP: POTENTIAL ***  %s", args.potential)
    pot = Potential.from_n2p2(args.potential, device=args.device, dtype=dtype, sf_backend=args.sf_backend)
    pot.ewald_converged = args.ewald_converged
    if args.qeq_solver:
        pot.qeq_solver = args.qeq_solver
    if args.ewald_parameters:
        pot.ewald_scaled = args.ewald_parameters == "scaled"
    if pot.is_fourg:
        log.info("4G: Qeq solver %s, Ewald parameters %s", pot.qeq_solver, "scaled" if pot.ewald_scaled else "n2p2")
    log.info("elements %s, symmetry functions %s, cutoff %.6g", " ".join(pot.elements),
             pot.sf_set.n_sf, pot.sf_set.cutoff)
    log.info("device %s, %s, symmetry functions: %s backend", args.device, str(dtype).replace("torch.", ""),
             pot.resolve_sf_backend())
    structures = read_structures(args.data)
    log.info("*** PREDICTION ***  %d structures, %d atoms", len(structures), sum(len(s) for s in structures))
    t0 = time.perf_counter()
    from hdnnp.neighbors import GeometryError

    try:
        preds = pot.predict(structures)
    except GeometryError as exc:  # coinciding atoms, absurd extent: name the file
        raise GeometryError(f"{args.data}: {exc}") from None
    dt = time.perf_counter() - t0
    _check_finite_predictions(preds, args)
    offsets = [sum(pot.offsets[e] for e in s.elements) for s in structures]
    check_output_dir(outdir)
    write_predict_outputs(outdir, structures, preds, offsets)
    from hdnnp.io.n2p2_data import format_structure

    with atomic_open(targets[3]) as fh:
        for s, p in zip(structures, preds):
            fh.write(format_structure(s, energy=p.energy, forces=p.forces, charges=p.charges))
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for s, p in zip(structures, preds):
        atoms = s.to_ase()
        extra = {"stress": p.stress} if p.stress is not None else {}
        if p.charges is not None:  # 4G: the NN charges
            extra["charges"] = p.charges
        atoms.calc = SinglePointCalculator(atoms, energy=p.energy, forces=p.forces, **extra)
        atoms.arrays["atomic_energies"] = p.atomic_energies
        frames.append(atoms)
    with atomic_open(targets[4]) as fh:
        ase.io.write(fh, frames, format="extxyz")
    n_atoms = sum(len(s) for s in structures)
    for c, (s, p) in enumerate(zip(structures, preds), start=1):
        log.info("structure %4d: %6d atoms  E = %.10f  (%.10f per atom)", c, len(s), p.energy, p.energy / len(s))
        if p.charges is not None:
            _log_fourg(p)
    log.info("%d structures in %.3f s (%.3f ms/atom); energies and forces in the potential's units",
             len(structures), dt, 1e3 * dt / max(n_atoms, 1))
    m = reference_errors(*_finite_references(structures, preds, args.data))
    if m is not None:
        log.info("*** ERRORS against the reference energies/forces in %s (%d structures) ***", args.data,
                 m["n_struct"])
        log.info("energy per atom: RMSE %.6g  MAE %.6g (potential units)", m["rmse_epa"], m["mae_epa"])
        if m["n_comp"]:
            log.info("force component: RMSE %.6g  MAE %.6g (potential units)", m["rmse_f"], m["mae_f"])
        if pot.length_unit and pot.energy_unit:  # declared in input.nn (hdnnp_*_unit)
            from hdnnp.units import energy_factor, length_factor

            ef, lf = energy_factor(pot.energy_unit), length_factor(pot.length_unit)
            log.info("in meV: energy RMSE %.3f meV/atom%s", 1e3 * ef * m["rmse_epa"],
                     f", force RMSE {1e3 * ef / lf * m['rmse_f']:.2f} meV/Å" if m["n_comp"] else "")
    if pot.is_fourg:
        _log_charge_errors(structures, preds)
    log.info("wrote %s", ", ".join(str(t) for t in targets))
    return 0


def _log_fourg(p) -> None:
    """A 4G structure's electrostatics, as nnp-predict's log prints it."""
    if p.ewald is not None:
        log.info("    Ewald parameters: real space cutoff %16.8E  reciprocal space cutoff %16.8E  "
                 "screening parameter eta %16.8E", p.ewald.r_cut, p.ewald.k_cut, p.ewald.eta)
    log.info("    NNP electrostatic energy: %16.8E   NNP total charge: %16.8E",
             p.electrostatic_energy, float(p.charges.sum()))


def _log_charge_errors(structures, preds) -> None:
    """Charge RMSE/MAE against the charges in the input file (structures whose charges are not all 0)."""
    import numpy as np

    diffs = [p.charges - s.charges for s, p in zip(structures, preds) if np.any(s.charges)]
    if not diffs:
        log.info("no reference charges in the input (all 0): no charge errors")
        return
    d = np.concatenate(diffs)
    log.info("atomic charge: RMSE %.6g  MAE %.6g (e; %d structures with reference charges)",
             float(np.sqrt(np.mean(d * d))), float(np.mean(np.abs(d))), len(diffs))


def _finite_references(structures, preds, data) -> tuple[list, list]:
    """Structures whose reference energy and forces are finite (others are left out of the
    errors with a warning, so that one NaN does not make every RMSE NaN)."""
    import numpy as np

    keep = [k for k, s in enumerate(structures)
            if (s.energy is None or np.isfinite(s.energy)) and (s.forces is None or np.isfinite(s.forces).all())]
    if len(keep) < len(structures):
        bad = [k + 1 for k in range(len(structures)) if k not in set(keep)]
        log.warning("%s: structures %s have non-finite reference energies or forces; left out of the errors",
                    data, ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else ""))
    return [structures[k] for k in keep], [preds[k] for k in keep]


def _check_finite_predictions(preds, args) -> None:
    """A non-finite energy or force (weights or scaling that overflow) is an error, not a result."""
    import numpy as np

    from hdnnp.errors import HDNNPError

    for k, p in enumerate(preds, start=1):
        charges_ok = p.charges is None or np.isfinite(p.charges).all()
        if not (np.isfinite(p.energy) and np.isfinite(p.forces).all() and charges_ok):
            raise HDNNPError(f"{args.data}: structure {k}: the potential in {args.potential} gives a non-finite "
                             "energy, forces or charges (overflowing weights or scaling.data?); nothing was written")
