"""Makes the reference frames of tests/sampling/test_sampling_engine.py with ``hdnnp.sampling.sample``.

Run from the repository root with the code to take as reference on PYTHONPATH:
    PYTHONPATH=src python tests/data/sampling/make_data.py
The shipped files were made with the code of commit e942e20 (``sample`` on ASE's own
``Langevin`` + ``FixCom``), ASE 3.29.0, numpy 2.4.6.
"""

from pathlib import Path

import ase.io
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron

from hdnnp.sampling import sample

HERE = Path(__file__).resolve().parent

#: the runs: (output, start file, temperatures, sample() keyword arguments, frames per call)
RUNS = [
    ("emt_cual_copies.data", "cual.xyz", [300, 900],
     dict(timestep_fs=2.0, equilibration_steps=30, interval=10, seed=3, copies=1, rattle_A=0.03, strain=0.01),
     [6]),
    ("emt_cluster_resumed.data", "cluster.xyz", [400, 800],
     dict(timestep_fs=1.5, equilibration_steps=25, interval=8, seed=2), [4, 6]),
]


def make_starts() -> None:
    cual = bulk("Cu", "fcc", a=3.70, cubic=True).repeat((2, 1, 1))
    cual.symbols[[1, 4, 6]] = "Al"
    cual.rattle(0.03, seed=11)
    ase.io.write(HERE / "cual.xyz", cual)
    cluster = Icosahedron("Cu", 2)
    cluster.symbols[[0, 3]] = "Al"
    cluster.rattle(0.02, seed=5)
    cluster.pbc = False
    ase.io.write(HERE / "cluster.xyz", cluster)


def run(out_dir: Path) -> None:
    """Writes every run into ``out_dir`` (the test calls this with the code under test)."""
    for name, start, temps, kwargs, frames in RUNS:
        atoms = ase.io.read(HERE / start)
        for n in frames:  # more than one call: the later ones resume the trajectories
            sample(atoms, EMT(), temps, out_dir / name, frames=n, label="emt", progress=False, **kwargs)


if __name__ == "__main__":
    make_starts()
    run(HERE)
