"""``hdnnp scale`` (n2p2 ``nnp-scaling``) and ``hdnnp norm`` (n2p2 ``nnp-norm``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("hdnnp")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "scale", help="symmetry-function statistics -> scaling.data (as nnp-scaling)",
        description="Compute min, max, mean and sigma (n-1) of every symmetry function over all atoms of the data "
                    "set and write n2p2's scaling.data.",
    )
    p.add_argument("input_nn", help="n2p2 input.nn (elements, cutoff, symmetry functions)")
    p.add_argument("input_data", help="n2p2 input.data")
    p.add_argument("-o", "--output", default="scaling.data", help="output file (default scaling.data)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run_scale)

    q = subparsers.add_parser(
        "norm", help="data-set normalisation -> input.nn with mean_energy/conv_energy/conv_length (as nnp-norm)",
        description="Compute the mean energy per atom and the energy/length conversion factors that give energies "
                    "per atom and forces unit spread, and write input.nn with them added at the top.",
    )
    q.add_argument("input_nn", help="n2p2 input.nn (atom_energy offsets are subtracted first)")
    q.add_argument("input_data", help="n2p2 input.data")
    q.add_argument("-o", "--output", default="input.nn.normalized", help="output settings file")
    q.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    q.set_defaults(func=run_norm)


def _refuse(path: Path, overwrite: bool) -> None:
    from hdnnp.errors import HDNNPError

    if path.exists() and not overwrite:
        raise HDNNPError(f"{path} exists; use --overwrite to replace it or choose another -o")


def run_scale(args: argparse.Namespace) -> int:
    from hdnnp.io.input_nn import Settings
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.io.scaling_data import write_scaling_data
    from hdnnp.model.potential import Potential
    from hdnnp.training.statistics import sf_statistics

    out = Path(args.output)
    _refuse(out, args.overwrite)
    settings = Settings.read(args.input_nn)
    pot = Potential.from_settings(settings)
    structures = read_input_data(args.input_data)
    for k, s in enumerate(structures):
        for a, el in enumerate(s.elements):
            if el not in pot.sf_set.element_index:
                from hdnnp.errors import HDNNPError

                raise HDNNPError(f"{args.input_data}: structure {k + 1}, atom {a + 1}: element {el} is not in "
                                 f"{args.input_nn} (elements: {' '.join(pot.elements)})")
    stats = sf_statistics(pot.sf_set, structures, progress=True)
    write_scaling_data(out, stats)
    log.info("scaling.data for %d structures (%d atoms) written to %s", len(structures),
             sum(s.n_atoms for s in structures), out)
    return 0


def run_norm(args: argparse.Namespace) -> int:
    from ase.data import atomic_numbers

    from hdnnp.io.input_nn import Settings
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.model.topology import atom_energy_offsets
    from hdnnp.training.statistics import energy_normalization, normalization_log, normalized_settings

    out = Path(args.output)
    _refuse(out, args.overwrite)
    settings = Settings.read(args.input_nn)
    elements = sorted(settings.require("elements").values, key=lambda e: atomic_numbers.get(e, 0))
    offsets = atom_energy_offsets(settings)
    structures = read_input_data(args.input_data)
    for k, s in enumerate(structures):
        if s.energy is None:
            from hdnnp.errors import HDNNPError

            raise HDNNPError(f"{args.input_data}: structure {k + 1} has no energy")
        if not (np.isfinite(s.energy) and (s.forces is None or np.isfinite(s.forces).all())):
            from hdnnp.errors import HDNNPError

            raise HDNNPError(f"{args.input_data}: structure {k + 1} has a non-finite reference energy or force")
    norm = energy_normalization(structures, offsets, elements)
    log.info("%s", normalization_log(norm).rstrip())
    normalized_settings(settings, norm).write(out)
    log.info("normalised settings written to %s", out)
    return 0
