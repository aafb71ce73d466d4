"""Write the potential settings of the example from its data: ``input.nn`` (n2p2) and the
prototype's ``control.in`` + ``<El>-SymFunc.smf``, with symmetry functions chosen by
``hdnnp.descriptors.auto_params`` (cutoff 6 Å, tanh^3 cutoff, wide angular functions).

    python make_inputs.py

``tests/test_example_alho.py`` checks that the shipped files are exactly what this writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from hdnnp.descriptors.auto_params import (
    choose_symmetry_functions,
    write_input_nn,
    write_prototype_inputs,
)
from hdnnp.io.n2p2_data import read_input_data

HERE = Path(__file__).resolve().parent
CUTOFF_A = 6.0


def make_inputs(data_path: Path = HERE / "input.data", out_dir: Path = HERE, verbose: bool = True):
    """Choose the symmetry functions from ``data_path`` and write input.nn, control.in and the
    .smf files into ``out_dir``; returns the chosen set."""
    data = read_input_data(data_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sf = choose_symmetry_functions(data, CUTOFF_A, n_shifted=8, n_centred=2, zetas=(1.0, 4.0),
                                       n_angular_eta=2, angular="wide")
    write_input_nn(Path(out_dir) / "input.nn", sf, cutoff_type=2,
                   title="HDNNP for an Al2(OH)6(H2O)4 cluster in 10 waters (example data set)",
                   reference_method="GFN2-xTB (tblite)", epochs=60, optimizer="lbfgs")
    write_prototype_inputs(out_dir, sf, atomic_data_path="input.data", cut_function_type=2,
                           neurons_per_layer=(25, 25, 1), activation_function="hyperbolic_tangent",
                           number_of_epochs=200, minibatch_size=32, validation_fraction=0.1,
                           model_path="model", iterations=1000, timestep=0.5)
    if verbose:
        for w in caught:
            print("note:", w.message)
        print("symmetry functions per element:", sf.count())
        for pair, d in sorted(sf.stats.nn_distance.items()):
            print(f"  nearest-neighbour distance {pair[0]}-{pair[1]}: {d:.3f} A")
    return sf


if __name__ == "__main__":
    make_inputs()
