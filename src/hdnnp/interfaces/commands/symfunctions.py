"""``hdnnp symfunctions DATA -o input.nn``: choose symmetry-function parameters for a new system
from its reference data (``hdnnp.descriptors.auto_params``) and write a complete ``input.nn``
(optionally also the prototype's ``control.in`` + ``<El>-SymFunc.smf``)."""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

log = logging.getLogger("hdnnp")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "symfunctions", help="choose symmetry functions for a data set -> input.nn (and control.in/.smf)",
        description="Choose radial (type 2) and angular (type 9 wide or 3 narrow) symmetry functions from the "
                    "element pairs and nearest-neighbour distances in DATA (radial shells between a fraction of "
                    "the nearest-neighbour distance and the cutoff, Imbalzano et al. 2018 grids) and write a "
                    "complete n2p2 input.nn ready for 'hdnnp train'. Lengths are in DATA's unit.",
        epilog="example:\n  hdnnp symfunctions input.data -o input.nn --cutoff 6 --shifted 8 --angular-etas 2\n"
               "  hdnnp train input.nn -o potential",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", help="reference data: n2p2 input.data or any file ASE reads")
    p.add_argument("-o", "--output", default="input.nn", help="input.nn to write (default input.nn)")
    p.add_argument("--cutoff", type=float, required=True, help="cutoff radius r_c, in DATA's length unit")
    p.add_argument("--cutoff-type", type=int, default=2, help="n2p2 cutoff_type (default 2, tanh^3)")
    p.add_argument("--shifted", type=int, default=8, help="shifted radial functions per element pair (default 8)")
    p.add_argument("--centred", type=int, default=2, help="centred radial functions per element pair (default 2)")
    p.add_argument("--angular", choices=("wide", "narrow"), default="wide", help="type 9 (wide, default) or 3")
    p.add_argument("--zetas", type=float, nargs="+", default=[1.0, 4.0], help="angular zetas (default 1 4)")
    p.add_argument("--angular-etas", type=int, default=2, help="angular widths per triple (default 2)")
    p.add_argument("--hidden", type=int, nargs="+", default=[25, 25], help="hidden-layer sizes (default 25 25)")
    p.add_argument("--length-unit", default="angstrom", help="DATA's length unit, recorded in input.nn")
    p.add_argument("--energy-unit", default="ev", help="DATA's energy unit, recorded in input.nn")
    p.add_argument("--epochs", type=int, default=60, help="training epochs written to input.nn (default 60)")
    p.add_argument("--optimizer", default="lbfgs", help="hdnnp_optimizer written to input.nn (default lbfgs)")
    p.add_argument("--prototype-dir", default=None,
                   help="also write the prototype's control.in and <El>-SymFunc.smf into this directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hdnnp.descriptors.auto_params import choose_symmetry_functions, write_input_nn, write_prototype_inputs
    from hdnnp.errors import HDNNPError
    from hdnnp.io.structure_files import read_structures

    out = Path(args.output)
    targets = [out]
    if args.prototype_dir:
        proto = Path(args.prototype_dir)
        targets.append(proto / "control.in")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise HDNNPError(f"{', '.join(existing)} exists; use --overwrite to replace it or choose another -o")
    structures = read_structures(args.data)
    if not structures:
        raise HDNNPError(f"{args.data}: no structures")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sf = choose_symmetry_functions(structures, args.cutoff, n_shifted=args.shifted, n_centred=args.centred,
                                       zetas=tuple(args.zetas), n_angular_eta=args.angular_etas,
                                       angular=args.angular)
    for w in caught:
        log.warning("%s", w.message)
    empty = [e for e, n in sf.count().items() if n == 0]
    if empty:
        raise HDNNPError(f"{args.data}: no atom of element(s) {', '.join(empty)} has a neighbour within the cutoff "
                         f"{args.cutoff:g}, so no symmetry functions can be chosen for it; use more or denser "
                         "structures or a larger --cutoff")
    acts = " ".join(["t"] * len(args.hidden) + ["l"])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_input_nn(out, sf, cutoff_type=args.cutoff_type, hidden_nodes=tuple(args.hidden), activations=acts,
                   length_unit=args.length_unit, energy_unit=args.energy_unit,
                   title=f"HDNNP for {Path(args.data).name} (symmetry functions by hdnnp symfunctions)",
                   epochs=args.epochs, optimizer=args.optimizer)
    log.info("%d structures; cutoff %g; symmetry functions per element: %s", len(structures), args.cutoff,
             ", ".join(f"{e} {n}" for e, n in sf.count().items()))
    for pair, d in sorted(sf.stats.nn_distance.items()):
        log.info("  nearest-neighbour distance %s-%s: %.3f", pair[0], pair[1], d)
    log.info("wrote %s", out)
    if args.prototype_dir:
        proto.mkdir(parents=True, exist_ok=True)
        data_path = Path(args.data).resolve()
        written = write_prototype_inputs(proto, sf, atomic_data_path=str(data_path),
                                         cut_function_type=args.cutoff_type,
                                         neurons_per_layer=(*args.hidden, 1))
        log.info("wrote %s", ", ".join(str(p) for p in written))
    return 0
