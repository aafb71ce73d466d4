"""``hdnnp sample``: reference data from Langevin MD with an ASE calculator (wraps ``hdnnp.sampling.sample``)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run Langevin MD from STRUCTURE at each temperature (one or more independent trajectories
each) with an ASE calculator and append frames (energy eV, forces eV/A, positions A,
lattice when periodic) to an n2p2 input.data. Each frame carries a comment with
calculator, temperature, step and seed. Rerunning the same command resumes: frames already
in OUT are counted per trajectory (temperature and seed) and only the missing ones are
made; another --seed adds new trajectories to the same file. Ctrl-C keeps every finished
frame. Independent trajectories make a more varied data set than denser frames of one.
"""

EPILOG = """\
example:
  hdnnp sample start.xyz -o input.data --calculator gfn2-xtb \\
      --temperatures-K 300 600 900 --timestep-fs 0.5 --equilibration-steps 200 \\
      --interval 10 --frames 450 --seed 1 --trajectories 3
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="reference data: Langevin MD with an ASE calculator -> input.data",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("structure", help="starting structure: any file ASE reads, or an n2p2 input.data (A)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.data", help="input.data to write or resume")
    p.add_argument("--calculator", required=True, metavar="NAME",
                   help="emt, gfn2-xtb, gfn1-xtb (needs 'pip install tblite'), or package.module:factory")
    p.add_argument("--temperatures-K", type=float, nargs="+", default=[300.0], metavar="T",
                   help="thermostat temperatures in K (default: 300)")
    p.add_argument("--frames", type=int, required=True,
                   help="MD frames in total, split over temperatures x trajectories")
    p.add_argument("--timestep-fs", type=float, default=0.5, help="MD time step in fs (default: 0.5)")
    p.add_argument("--equilibration-steps", type=int, default=200,
                   help="steps before the first frame of each temperature (default: 200)")
    p.add_argument("--interval", type=int, default=5, help="steps between frames (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--trajectories", type=int, default=1,
                   help="independent trajectories per temperature, seeds SEED, SEED+1, ... (default: 1)")
    p.add_argument("--friction-per-fs", type=float, default=0.02,
                   help="Langevin friction in 1/fs (default: 0.02)")
    p.add_argument("--rattle", dest="rattle_A", type=float, default=0.0, metavar="A",
                   help="std of the Gaussian displacements (A) of the perturbed copies")
    p.add_argument("--strain", type=float, default=0.0, metavar="E",
                   help="largest strain component of the perturbed copies (e.g. 0.02)")
    p.add_argument("--copies", type=int, default=0, metavar="C",
                   help="perturbed copies written after every MD frame (default: 0)")
    p.add_argument("--charge", type=int, default=None, help="total charge (gfn1-xtb/gfn2-xtb)")
    p.add_argument("--multiplicity", type=int, default=None, help="spin multiplicity (gfn1-xtb/gfn2-xtb)")
    p.add_argument("--xtb-accuracy", type=float, default=None, metavar="ACC",
                   help="tblite SCF accuracy (gfn1-xtb/gfn2-xtb; default 0.1, tblite's own default is 1.0)")
    p.add_argument("--index", type=int, default=0, help="which structure of STRUCTURE to start from (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdnnp.errors import HDNNPError
    from hdnnp.sampling import XTB_ACCURACY, make_calculator, read_structure, sample

    if args.frames <= 0:
        raise HDNNPError(f"--frames must be > 0, found {args.frames}")
    atoms = read_structure(args.structure, index=args.index)
    if args.xtb_accuracy is not None and args.calculator.lower() not in ("gfn1-xtb", "gfn2-xtb"):
        raise HDNNPError("--xtb-accuracy applies to gfn1-xtb/gfn2-xtb only")
    accuracy = XTB_ACCURACY if args.xtb_accuracy is None else args.xtb_accuracy
    calc = make_calculator(args.calculator, charge=args.charge, multiplicity=args.multiplicity,
                           accuracy=accuracy)
    sample(
        atoms, calc, args.temperatures_K, args.output,
        frames=args.frames, timestep_fs=args.timestep_fs,
        equilibration_steps=args.equilibration_steps, interval=args.interval, seed=args.seed,
        trajectories=args.trajectories,
        friction_per_fs=args.friction_per_fs, rattle_A=args.rattle_A, strain=args.strain,
        copies=args.copies, label=args.calculator.lower() if ":" not in args.calculator else args.calculator,
        progress=not args.no_progress,
    )
    return 0
