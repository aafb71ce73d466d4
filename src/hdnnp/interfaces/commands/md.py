"""``hdnnp md``: molecular dynamics with an hdnnp/n2p2 potential (wraps ``hdnnp.dynamics.run_md``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hdnnp.dynamics.thermostats import ENSEMBLES
from hdnnp.errors import Interrupted, SettingsError
from hdnnp.interfaces.commands import add_fourg_solver_options
from hdnnp.io.validation import check_device, check_output_dir

log = logging.getLogger("hdnnp")

DESCRIPTION = """\
Velocity Verlet MD in ASE units (eV, Å, amu, fs). The potential's own units are converted
at the force call: --length-unit/--energy-unit, else the potential's hdnnp_length_unit/
hdnnp_energy_unit keywords, else Å/eV (plain n2p2 potentials; logged). STRUCTURE: an n2p2
input.data (in the potential's units) or any file ase.io.read reads (in Å).
Writes traj.data, trajectory.extxyz, thermo.log, thermo.png, restart.npz, md.json to -o."""


def set_threads(n: int | None) -> None:
    """torch and numba threads (None: leave the defaults)."""
    if n is None:
        return
    if n < 1:
        raise SettingsError(f"--threads must be >= 1, got {n}")
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("md", help="molecular dynamics (NVE, Langevin, Bussi, Nose-Hoover, NPT C-rescale or Berendsen)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("potential_dir", metavar="POTENTIAL_DIR", help="n2p2-format potential directory")
    p.add_argument("structure", metavar="STRUCTURE", nargs="?",
                   help="starting structure (not needed with --restart)")
    p.add_argument("--structure-index", type=int, default=0, help="which structure of the file (default 0)")
    p.add_argument("--steps", type=int, required=True, help="number of time steps")
    p.add_argument("--timestep-fs", type=float, required=True, help="time step in fs")
    p.add_argument("--ensemble", choices=ENSEMBLES, default="nve", help="default nve")
    p.add_argument("--temperature-K", type=float, default=None,
                   help="Maxwell-Boltzmann initial temperature (zero momentum, scaled to exactly T) "
                        "and thermostat target")
    p.add_argument("--no-rescale", action="store_true",
                   help="keep the drawn Maxwell-Boltzmann velocities unscaled (temperature scatters around T)")
    p.add_argument("--friction-per-fs", type=float, default=0.01,
                   help="Langevin friction, langevin and langevin-ase (ASE's Langevin scheme, as hdnnp sample) "
                        "(default 0.01 /fs)")
    p.add_argument("--tau-fs", type=float, default=100.0,
                   help="Bussi/Nose-Hoover/Berendsen relaxation time (default 100 fs)")
    p.add_argument("--pressure-GPa", type=float, default=0.0, help="npt-berendsen/npt-crescale target pressure (default 0)")
    p.add_argument("--barostat-tau-fs", type=float, default=1000.0, help="barostat relaxation time, npt-berendsen/npt-crescale (default 1000 fs)")
    p.add_argument("--compressibility-per-GPa", type=float, default=0.457,
                   help="barostat compressibility, npt-berendsen/npt-crescale (default 0.457/GPa, water)")
    p.add_argument("--seed", type=int, default=None, help="random seed (velocities, stochastic thermostats)")
    p.add_argument("--length-unit", default=None, help="the potential's length unit (angstrom, bohr, nm)")
    p.add_argument("--energy-unit", default=None, help="the potential's energy unit (ev, hartree, ...)")
    p.add_argument("--max-extrapolation-warnings", type=int, default=None, metavar="N",
                   help="stop when one step has more than N extrapolation warnings (LAMMPS maxew); default: never")
    p.add_argument("--restart", default=None, metavar="FILE", help="continue from a restart.npz")
    p.add_argument("--write-every", type=int, default=10, help="trajectory frame every K steps (default 10)")
    p.add_argument("--thermo-every", type=int, default=1, help="thermo.log line every K steps (default 1)")
    p.add_argument("--restart-every", type=int, default=0,
                   help="write restart.npz every K steps (default 0: at the end only)")
    p.add_argument("-o", "--outdir", default="md",
                   help="output directory (default ./md); one holding a run is refused unless --restart "
                        "continues it or --overwrite replaces it")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier run in -o (with --restart: start fresh files)")
    p.add_argument("--max-temperature-K", type=float, default=None,
                   help="stop when the temperature exceeds this (default: 100 x max(start, target, 300 K)): "
                        "a blown-up integration")
    p.add_argument("--device", default="cpu", help="torch device for the networks (cpu, cuda)")
    p.add_argument("--sf-backend", choices=("auto", "numba", "torch"), default="auto",
                   help="symmetry functions: numba (CPU kernels), torch (on --device) or auto "
                        "(default: torch on a CUDA device, else numba)")
    p.add_argument("--derivative-mode", choices=("auto", "store", "recompute"), default="auto",
                   help="force the Potential's derivative mode (default auto: the Potential's default)")
    p.add_argument("--threads", type=int, default=None, help="torch and numba threads")
    p.add_argument("--total-charge", type=float, default=0.0,
                   help="4G potentials: total charge of the system in e (default 0; periodic cells must be neutral)")
    add_fourg_solver_options(p)
    p.add_argument("--no-wrap", action="store_true", help="do not wrap positions into the cell")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plot", action="store_true", help="do not plot thermo.log")
    p.set_defaults(func=run)


def run(args) -> int:
    from hdnnp.dynamics.forcefield import HDNNPForceField
    from hdnnp.dynamics.run import MDSettings, check_elements, read_structure, run_md

    set_threads(args.threads)
    if args.structure is None and args.restart is None:
        raise SettingsError("give a STRUCTURE file or --restart FILE")
    settings = MDSettings(
        steps=args.steps, timestep_fs=args.timestep_fs, ensemble=args.ensemble, temperature_K=args.temperature_K,
        friction_per_fs=args.friction_per_fs, tau_fs=args.tau_fs, pressure_GPa=args.pressure_GPa,
        barostat_tau_fs=args.barostat_tau_fs, compressibility_per_GPa=args.compressibility_per_GPa,
        seed=args.seed, rescale_initial_velocities=not args.no_rescale, write_every=args.write_every,
        thermo_every=args.thermo_every, restart_every=args.restart_every,
        max_extrapolation_warnings=args.max_extrapolation_warnings, max_temperature_K=args.max_temperature_K,
        wrap=not args.no_wrap,
        progress=not args.no_progress, plot=not args.no_plot,
    )
    settings.validate()  # before anything is loaded or written
    check_device(args.device)
    outdir, found = _check_outdir(args)
    from hdnnp.model.potential import Potential

    potential = Potential.from_n2p2(args.potential_dir, device=args.device, sf_backend=args.sf_backend)
    if args.qeq_solver:
        potential.qeq_solver = args.qeq_solver
    if args.ewald_parameters:
        potential.ewald_scaled = args.ewald_parameters == "scaled"
    ff = HDNNPForceField(potential, length_unit=args.length_unit, energy_unit=args.energy_unit,
                         device=args.device, derivative_mode=args.derivative_mode)
    ff.total_charge = args.total_charge
    log.info("*** SETUP: POTENTIAL ***")
    if potential.is_fourg:
        log.info("4G-HDNNP       : charge equilibration + electrostatics, total charge %g e", args.total_charge)
    log.info("potential      : %s (elements %s, cutoff %.4f Å)", args.potential_dir,
             " ".join(ff.potential.elements), ff.cutoff_angstrom)
    log.info("units          : length %s, energy %s (%s)", ff.units.length_unit, ff.units.energy_unit,
             ff.units.source)
    log.info("device         : %s (symmetry functions: %s backend)", args.device, potential.resolve_sf_backend())
    atoms = None
    if args.restart is None:
        atoms = read_structure(args.structure, ff.units.length_factor, ff.units.energy_factor,
                               index=args.structure_index)
        check_elements(atoms.get_chemical_symbols(), ff.potential.elements, args.structure)
    else:
        from hdnnp.dynamics.restart import read_restart

        read_restart(args.restart)  # a damaged file is reported before --overwrite removes anything
    if found:  # --overwrite, now that every input has been read
        for n in found:
            (outdir / n).unlink()
        log.info("--overwrite: removed %s from %s", ", ".join(found), outdir)
    try:
        result = run_md(ff, atoms, settings, outdir, restart=args.restart,
                        provenance={"potential": str(args.potential_dir), "structure": args.structure,
                                    "units": {"length": ff.units.length_unit, "energy": ff.units.energy_unit,
                                              "source": ff.units.source},
                                    "device": args.device})
    except ValueError as exc:  # bad thermostat parameters and the like
        raise SettingsError(str(exc)) from None
    restart = outdir / "restart.npz"
    if result.interrupted:
        left = max(args.steps - result.timings.steps, 0)
        raise Interrupted(f"MD stopped at {result.stopped_reason}; {restart} written: continue with "
                          f"hdnnp md {args.potential_dir} --restart {restart} -o {outdir} --steps {left} "
                          "(and the same other options)")
    if result.stopped_reason:
        kept = f"; {restart} holds the last restart" if restart.exists() else ""
        raise SettingsError(f"MD stopped at {result.stopped_reason}; outputs up to then are in {outdir}{kept}")
    return 0


def _check_outdir(args) -> tuple[Path, list[str]]:
    """-o must be a directory; one holding a run's outputs is refused unless --restart continues
    it (from a restart file in that directory) or --overwrite replaces it.
    Returns the directory and the files --overwrite will remove."""
    from hdnnp.dynamics.run import FILES

    outdir = check_output_dir(args.outdir, create=False)  # run_md creates it once the inputs are read
    found = [n for n in FILES.values() if (outdir / n).exists()]
    if not found:
        return outdir, []
    if args.restart is not None and not args.overwrite:
        if Path(args.restart).resolve().parent != outdir.resolve():
            raise SettingsError(f"-o {outdir} holds a run ({', '.join(found)}) and --restart {args.restart} is not "
                                "one of its restart files: continue into a new -o directory, or use --overwrite")
        return outdir, []
    if args.overwrite:
        restart_here = args.restart is not None and Path(args.restart).resolve() == (outdir / "restart.npz").resolve()
        return outdir, [n for n in found if not (n == "restart.npz" and restart_here)]
    raise SettingsError(f"-o {outdir} holds an earlier run ({', '.join(found)}); continue it with --restart "
                        f"{outdir / 'restart.npz'}, replace it with --overwrite, or choose another -o")
