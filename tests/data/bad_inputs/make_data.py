"""Make the tiny H/O potential and structures that tests/interfaces/test_bad_inputs.py corrupts.

Run from the repository root: ``python tests/data/bad_inputs/make_data.py``. Everything is
synthetic (random weights, hand-made water geometries): it is only a well-formed starting
point for bad-input tests, not a physical potential.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

INPUT_NN = """\
# tiny H/O potential for the bad-input corpus (synthetic, random weights)
number_of_elements 2
elements H O
cutoff_type 2
scale_symmetry_functions
center_symmetry_functions
scale_min_short 0.0
scale_max_short 1.0
global_hidden_layers_short 2
global_nodes_short 4 4
global_activation_short t t l
hdnnp_length_unit angstrom
hdnnp_energy_unit ev
symfunction_short H 2 H 0.5 0.0 5.0
symfunction_short H 2 O 0.5 0.0 5.0
symfunction_short H 2 O 2.0 0.0 5.0
symfunction_short H 3 O O 0.1 1.0 1.0 5.0
symfunction_short O 2 H 0.5 0.0 5.0
symfunction_short O 2 H 2.0 0.0 5.0
symfunction_short O 2 O 0.5 0.0 5.0
symfunction_short O 3 H H 0.1 1.0 1.0 5.0
"""

WATER = np.array([[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]])


def structures():
    from hdnnp.structure import Structure

    rng = np.random.default_rng(7)
    out = []
    for k in range(3):  # a water dimer, slightly different each time, non-periodic
        pos = np.vstack([WATER, WATER + [0.2 * k, 0.1, 2.9]]) + rng.normal(0, 0.03, (6, 3))
        out.append(Structure(elements=["O", "H", "H"] * 2, positions=pos, cell=None, energy=-1.5 + 0.01 * k,
                             forces=rng.normal(0, 0.1, (6, 3))))
    for k in range(2):  # two waters in a periodic 6 Å box
        pos = np.vstack([WATER + 1.0, WATER + [3.5, 3.2, 3.0]]) + rng.normal(0, 0.03, (6, 3))
        out.append(Structure(elements=["O", "H", "H"] * 2, positions=pos, cell=6.0 * np.eye(3),
                             energy=-1.4 + 0.01 * k, forces=rng.normal(0, 0.1, (6, 3))))
    return out


def main() -> None:
    from hdnnp.io.input_nn import Settings
    from hdnnp.io.n2p2_data import write_input_data
    from hdnnp.io.scaling_data import write_scaling_data
    from hdnnp.model.potential import Potential
    from hdnnp.training.statistics import sf_statistics

    pot_dir = HERE / "potential"
    pot_dir.mkdir(exist_ok=True)
    (pot_dir / "input.nn").write_text(INPUT_NN, encoding="utf-8")
    data = structures()
    write_input_data(HERE / "input.data", data)
    settings = Settings.parse(INPUT_NN, str(pot_dir / "input.nn"))
    pot = Potential.from_settings(settings, seed=1)
    stats = sf_statistics(pot.sf_set, data, progress=False)
    write_scaling_data(pot_dir / "scaling.data", stats)
    pot.set_scaling(stats)
    for e in pot.elements:
        from ase.data import atomic_numbers

        from hdnnp.io.weights_data import write_weights

        write_weights(pot_dir / f"weights.{atomic_numbers[e]:03d}.data", pot.networks[e].get_weights())
    print("wrote", pot_dir, HERE / "input.data")


if __name__ == "__main__":
    main()
