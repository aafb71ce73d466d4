"""The shipped Al/H/O example: its files are consistent and ``hdnnp demo`` runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hdnnp.io.input_nn import Settings
from hdnnp.io.n2p2_data import read_input_data

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "alho"


@pytest.mark.filterwarnings("ignore:no symmetry functions")  # Al-Al-Al: no such triple in the data
def test_example_files_are_consistent():
    data = read_input_data(EXAMPLE / "input.data")
    holdout = read_input_data(EXAMPLE / "holdout.data")
    assert len(data) == 450 and len(holdout) == 50
    seeds = {c.split("seed=")[1].split()[0] for c in (s.comment for s in data)}
    assert seeds == {"1", "3", "4"}
    assert all("seed=2" in s.comment for s in holdout)  # held-out: another trajectory
    settings = Settings.read(EXAMPLE / "input.nn")
    assert settings.line("elements").values == ["H", "O", "Al"]
    assert settings.line("hdnnp_length_unit").values == ["angstrom"]
    # input.nn's symmetry functions are the ones 'hdnnp symfunctions' chooses from input.data
    from hdnnp.descriptors.auto_params import choose_symmetry_functions

    sf = choose_symmetry_functions(data, 6.0, n_shifted=8, n_centred=2, zetas=(1.0, 4.0), n_angular_eta=2)
    assert [ln.values for ln in settings.all("symfunction_short")] == [ln.split()[1:] for ln in sf.lines]


@pytest.mark.filterwarnings("ignore:no symmetry functions")
def test_shipped_settings_are_what_make_inputs_writes(tmp_path):
    """input.nn, control.in and the .smf files are exactly make_inputs.py's output, and
    input.nn has only keywords n2p2 knows (plus hdnnp_*), task batch sizes included."""
    import importlib.util

    from test_auto_params import assert_n2p2_accepts

    spec = importlib.util.spec_from_file_location("alho_make_inputs", EXAMPLE / "make_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_inputs(EXAMPLE / "input.data", tmp_path, verbose=False)
    for name in ("input.nn", "control.in", "H-SymFunc.smf", "O-SymFunc.smf", "Al-SymFunc.smf"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / name).read_bytes(), f"{name}: rerun make_inputs.py"
    assert_n2p2_accepts(EXAMPLE / "input.nn")


@pytest.mark.filterwarnings("ignore")
def test_demo_runs_end_to_end(tmp_path):
    """Two epochs and a few MD steps: every stage runs and writes its outputs (accuracy is the benchmark's)."""
    from hdnnp.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--epochs", "2", "--md-steps", "5"]) == 0
    err = json.loads((out / "holdout_errors.json").read_text())
    assert err["frames"] == 50 and err["rmse_e_meV_atom"] > 0 and err["rmse_f_meV_A"] > 0
    for f in ("potential/input.nn", "potential/scaling.data", "potential/weights.013.data",
              "potential/learning-curves.png", "md/thermo.log", "md/traj.data"):
        assert (out / f).is_file(), f
    assert main(["demo", "-o", str(out)]) == 1  # never writes into a used directory
