"""The prototype's molecular-dynamics entry point: ``molecular_dynamics("control.in")``.

``control.in`` (SPEC §4): ``key value`` lines with ``#`` comments, plus
``atom_type_N Symbol Z mass file.smf`` lines. MD reads:

  model_path        potential directory (n2p2 format: input.nn, scaling.data, weights.XXX.data)
  atomic_data_path  n2p2 input.data; its first structure is the starting configuration
  iterations        number of velocity Verlet steps
  timestep          time step in fs
  atom_type_N ...   masses (amu) per element (elements not listed: standard masses)

Optional keys accepted here (the prototype had none; defaults reproduce its plain
velocity Verlet from rest): ``temperature`` (K, Maxwell-Boltzmann start, default 0 =
at rest), ``random_seed``, ``length_unit``/``energy_unit`` (of input.data, and of the
potential when it declares none; default Å/eV), ``write_every`` (default 1: every iteration, as the prototype).
Relative paths are taken relative to the directory of control.in (read by
``hdnnp.io.prototype.read_control``). Outputs (``traj.data`` and the rest, see
``hdnnp.dynamics.run``) go to that directory unless ``output_dir`` is given.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hdnnp.errors import ReadError
from hdnnp.io.potential_directory import PotentialDirectory

log = logging.getLogger("hdnnp")


def molecular_dynamics(control_file: str | Path = "control.in", output_dir: str | Path | None = None,
                       progress: bool = True):
    """Run the prototype's MD (velocity Verlet, NVE) described by ``control_file``.

    Returns the ``MDResult`` of ``hdnnp.dynamics.run.run_md``; ``traj.data`` is written
    into ``output_dir`` (default: the directory of control.in).
    """
    from hdnnp.dynamics.forcefield import HDNNPForceField
    from hdnnp.dynamics.run import MDSettings, check_elements, run_md
    from hdnnp.io.structure_files import read_atoms as read_structure
    from hdnnp.io.prototype import masses as control_masses
    from hdnnp.io.prototype import read_control
    from hdnnp.units import energy_factor, length_factor

    path = Path(control_file)
    cf = read_control(path)
    for key in ("model_path", "atomic_data_path", "iterations", "timestep"):
        if not cf.has(key):
            raise ReadError(path, None, f"required key {key!r} is missing (MD needs model_path, "
                                        "atomic_data_path, iterations, timestep)")
    iterations = cf.get_int("iterations")
    timestep = cf.get_float("timestep")
    temperature = cf.get_float("temperature", 0.0)
    seed = cf.get_int("random_seed")
    write_every = cf.get_int("write_every", 1)
    lu = cf.get_str("length_unit")
    eu = cf.get_str("energy_unit")
    try:
        lf = length_factor(lu) if lu else 1.0
        ef = energy_factor(eu) if eu else 1.0
    except ValueError as exc:
        raise cf.error("length_unit" if "length" in str(exc) else "energy_unit", str(exc)) from None

    model = cf.resolve("model_path")
    if not PotentialDirectory(model).settings_path.is_file():
        raise cf.error("model_path", f"model_path {model} has no input.nn (expected an n2p2-format "
                                     "potential directory, as hdnnp training writes)")
    from hdnnp.model.potential import Potential

    potential = Potential.from_n2p2(model)
    # a potential that declares its units keeps them; else those of control.in (the data's)
    ff = HDNNPForceField(potential, length_unit=None if potential.length_unit else lu,
                         energy_unit=None if potential.energy_unit else eu)
    data = cf.resolve("atomic_data_path")
    atoms = read_structure(data, length_factor=lf, energy_factor=ef)
    check_elements(atoms.get_chemical_symbols(), potential.elements, str(data))
    by_element = control_masses(cf)
    atoms.set_masses([by_element.get(el, m) for el, m in zip(atoms.get_chemical_symbols(), atoms.get_masses())])
    settings = MDSettings(steps=iterations, timestep_fs=timestep, ensemble="nve",
                          temperature_K=temperature or None, seed=seed, write_every=write_every, progress=progress)
    outdir = Path(output_dir) if output_dir is not None else cf.directory
    log.info("control.in     : %s", path)
    return run_md(ff, atoms, settings, outdir,
                  provenance={"control_in": str(path), "potential": str(model),
                              "units": {"length": ff.units.length_unit, "energy": ff.units.energy_unit}})
