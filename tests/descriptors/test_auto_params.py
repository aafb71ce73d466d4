"""Automatic symmetry-function parameters (hdnnp.descriptors.auto_params)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase.build import bulk, molecule

from hdnnp.descriptors.auto_params import (
    choose_symmetry_functions,
    control_in_text,
    neighbour_statistics,
    smf_text,
    write_input_nn,
    write_prototype_inputs,
)
from hdnnp.descriptors.sf_set import SymmetryFunctionSet
from hdnnp.descriptors.symmetry_functions import parse_symfunction
from hdnnp.errors import HDNNPError
from hdnnp.io.input_nn import Settings
from hdnnp.structure import Structure

RC = 6.0


def _water_cluster(n_frames: int = 3, seed: int = 0) -> list[Structure]:
    """A few rattled water trimers with two Al atoms nearby (non-periodic)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_frames):
        atoms = molecule("H2O")
        for shift in ([2.9, 0.0, 0.0], [0.0, 2.9, 0.3]):
            w = molecule("H2O")
            w.translate(shift)
            atoms += w
        atoms.append("Al")
        atoms.positions[-1] = [1.2, 1.4, 1.9]
        atoms.append("Al")
        atoms.positions[-1] = [-1.6, -1.5, -1.4]
        atoms.positions += rng.normal(0.0, 0.03, size=atoms.positions.shape)
        out.append(Structure.from_ase(atoms))
    return out


def test_nearest_neighbour_distance_of_fcc_al():
    a = 4.05
    s = Structure.from_ase(bulk("Al", "fcc", a=a, cubic=True))
    stats = neighbour_statistics([s], RC)
    d_nn = a / np.sqrt(2.0)
    assert stats.nn_distance[("Al", "Al")] == pytest.approx(d_nn, abs=1e-10)
    sf = choose_symmetry_functions([s], RC, n_shifted=4, n_centred=2, zetas=(1, 4))
    r_low = 0.8 * d_nn
    assert sf.r_low[("Al", "Al")] == pytest.approx(r_low, abs=1e-10)
    radial = [parse_symfunction(line.split()[1:]) for line in sf.lines if line.split()[2] == "2"]
    shifted = sorted(f.r_shift for f in radial if f.r_shift > 0)
    dr = (RC - r_low) / 4
    assert np.allclose(shifted, r_low + dr * np.arange(4), atol=1e-5), shifted
    assert all(f.eta == pytest.approx(1 / (2 * dr * dr), rel=1e-5) for f in radial if f.r_shift > 0)
    centred = sorted(f.eta for f in radial if f.r_shift == 0)
    # the broadest centred function is a smooth coordination number: eta = 1/(2 r_c^2)
    assert centred[0] == pytest.approx(1 / (2 * RC * RC), rel=1e-5) and len(centred) == 2
    # 1 pair x (4 + 2) radial + 1 triple x 2 lambdas x 2 zetas angular
    assert sf.count() == {"Al": 10}


def test_nearest_neighbour_distance_is_median_over_atoms():
    s = [Structure(elements=["Cu", "Cu"], positions=[[0, 0, 0], [d, 0, 0]]) for d in (2.0, 2.5, 5.0)]
    stats = neighbour_statistics(s, RC)
    assert stats.nn_distance[("Cu", "Cu")] == pytest.approx(2.5)
    assert stats.min_distance[("Cu", "Cu")] == pytest.approx(2.0)


@pytest.mark.filterwarnings("ignore:no symmetry functions")
def test_nearest_neighbour_distance_takes_the_bonded_side():
    # one Al bonded to one O (1.8 A); three more O far from the Al (4 A) and from each other.
    # Seen from the O atoms the nearest Al is mostly 4 A away; seen from the Al it is 1.8 A.
    s = Structure(elements=["Al", "O", "O", "O", "O"],
                  positions=[[0, 0, 0], [1.8, 0, 0], [-4, 0, 0], [0, 4, 0], [0, 0, -4]])
    stats = neighbour_statistics([s], RC)
    assert stats.nn_distance[("O", "Al")] == pytest.approx(1.8)
    sf = choose_symmetry_functions([s], RC)
    assert sf.r_low[("O", "Al")] == sf.r_low[("Al", "O")] == pytest.approx(0.8 * 1.8)
    # O-O: every O's nearest O is 1.8 .. 5.8 A away; median over the four O atoms
    d = np.linalg.norm(s.positions[1:, None] - s.positions[None, 1:], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert stats.nn_distance[("O", "O")] == pytest.approx(np.median(d.min(axis=1)))


def test_every_element_pair_and_triple_is_covered():
    data = _water_cluster()
    with pytest.warns(UserWarning, match="Al-Al-Al"):
        sf = choose_symmetry_functions(data, RC)
    els = sf.elements
    assert els == ["H", "O", "Al"], "elements must be in atomic-number order"
    parsed = [parse_symfunction(line.split()[1:]) for line in sf.lines]
    for f in parsed:
        f.validate()
        assert f.r_cut == RC
    radial_pairs = {(f.central, f.neighbors[0]) for f in parsed if f.code == 2}
    assert radial_pairs == set(itertools.product(els, els))
    angular = {(f.central, *f.neighbors) for f in parsed if f.code == 9}
    assert angular == sf.stats.triples
    # every (central, unordered pair) occurs here except Al with two Al neighbours
    expected = {(c, a, b) for c in els for i, a in enumerate(els) for b in els[i:]} - {("Al", "Al", "Al")}
    assert angular == expected
    assert not sf.missing_pairs and sf.missing_triples == [("Al", "Al", "Al")]
    # lambda +-1 and both zetas for every triple
    for t in angular:
        combos = {(f.lambda_, f.zeta) for f in parsed if f.code == 9 and (f.central, *f.neighbors) == t}
        assert combos == {(-1.0, 1.0), (1.0, 1.0), (-1.0, 4.0), (1.0, 4.0)}
    # each function is non-zero somewhere in the data (pairs/triples really occur)
    sfs = SymmetryFunctionSet(els, {e: [parse_symfunction(l.split()[1:]).with_cutoff(2, 0.0)
                                        for l in sf.for_element(e)] for e in els})
    nonzero = {e: np.zeros(n, dtype=bool) for e, n in sfs.n_sf.items()}
    for s in data:
        d = sfs.compute(s)
        for k, e in enumerate(sfs.elements):
            rows = d.G[d.species == k, : sfs.n_sf[e]]
            nonzero[e] |= (np.abs(rows) > 0).any(axis=0)
    for e, nz in nonzero.items():
        assert nz.all(), f"{e}: symmetry functions {np.where(~nz)[0].tolist()} are zero for all data"


def test_pairs_absent_within_cutoff_are_left_out_with_a_warning():
    s = Structure(elements=["O", "H", "H", "Cu"],
                  positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [20, 0, 0]])
    with pytest.warns(UserWarning, match="absent within the cutoff"):
        sf = choose_symmetry_functions([s], RC, angular="narrow")
    assert ("Cu", "O") in sf.missing_pairs and ("O", "Cu") in sf.missing_pairs
    assert sf.count()["Cu"] == 0
    assert all(line.split()[2] in ("2", "3") for line in sf.lines)
    assert ("O", "H", "H") in sf.stats.triples and ("O", "O", "O") not in sf.stats.triples


def test_periodic_images_count_as_neighbours():
    # one atom in a 2.5 A cubic cell: its only neighbours are its own images
    s = Structure(elements=["Cu"], positions=[[0, 0, 0]], cell=np.eye(3) * 2.5)
    stats = neighbour_statistics([s], RC)
    assert stats.nn_distance[("Cu", "Cu")] == pytest.approx(2.5)
    assert ("Cu", "Cu", "Cu") in stats.triples


@pytest.mark.filterwarnings("ignore:no symmetry functions")
def test_written_input_nn_is_complete_and_readable(tmp_path):
    data = _water_cluster()
    sf = choose_symmetry_functions(data, RC, n_shifted=3, n_centred=2, zetas=(1, 4))
    path = tmp_path / "input.nn"
    write_input_nn(path, sf, cutoff_type=2, reference_method="test")
    text = path.read_text()
    assert "# Length unit: Angstrom" in text and "# Energy unit: eV" in text
    settings = Settings.read(path)
    assert settings.line("elements").values == ["H", "O", "Al"]
    assert settings.get_int("number_of_elements") == 3
    assert settings.line("cutoff_type").values == ["2"]
    for key in ("scale_symmetry_functions", "center_symmetry_functions", "use_short_forces"):
        assert key in settings, key
    assert settings.get_float("scale_min_short") == 0.0 and settings.get_float("scale_max_short") == 1.0
    assert settings.line("global_nodes_short").values == ["25", "25"]
    assert settings.line("global_activation_short").values == ["t", "t", "l"]
    sfs = SymmetryFunctionSet.from_lines(["H", "O", "Al"], settings.all("symfunction_short"), 2, 0.0, str(path))
    assert sfs.n_sf == sf.count()
    assert sum(sfs.n_sf.values()) == len(sf.lines)


@pytest.mark.filterwarnings("ignore:no symmetry functions")
def test_prototype_files(tmp_path):
    data = _water_cluster()
    sf = choose_symmetry_functions(data, RC, n_shifted=3, n_centred=1, zetas=(1,))
    files = write_prototype_inputs(tmp_path, sf, atomic_data_path="input.data")
    assert [p.name for p in files] == ["control.in", "H-SymFunc.smf", "O-SymFunc.smf", "Al-SymFunc.smf"]
    control = dict(line.split(None, 1) for line in (tmp_path / "control.in").read_text().splitlines()
                   if line and not line.startswith("#"))
    for key in ("cut_function_type", "angular_sf", "atomic_data_path", "length_unit", "number_of_atom_types",
                "neurons_per_layer", "activation_function", "weight_initialization", "bias_initialization",
                "random_seed", "optimization_method", "learning_rate", "epsilon", "decay_value", "clipvalue",
                "loss_function", "number_of_epochs", "minibatch_size", "validation_fraction", "model_path",
                "iterations", "timestep", "atom_type_1", "atom_type_2", "atom_type_3"):
        assert key in control, key
    assert control["atom_type_3"].split()[:2] == ["Al", "13"]
    assert control["angular_sf"] == "wide"
    smf = smf_text(sf, "O").splitlines()
    g3 = smf.index("# Type G3")
    assert smf[0] == "# Type G2"
    assert all(len(r.split()) == 4 for r in smf[1:g3]) and all(len(r.split()) == 6 for r in smf[g3 + 1:])
    assert len(smf) - 2 == sf.count()["O"]
    assert "neurons_per_layer [25, 25, 1]" in control_in_text(sf)


def test_bad_arguments():
    data = _water_cluster(1)
    with pytest.raises(HDNNPError, match="no structures"):
        choose_symmetry_functions([], RC)
    with pytest.raises(HDNNPError, match="cutoff must be > 0"):
        choose_symmetry_functions(data, 0.0)
    with pytest.raises(HDNNPError, match="angular must be"):
        choose_symmetry_functions(data, RC, angular="medium")
    with pytest.raises(HDNNPError, match="zetas"):
        choose_symmetry_functions(data, RC, zetas=(0.5,))


@pytest.mark.filterwarnings("ignore:no symmetry functions")
def test_cli_symfunctions_writes_trainable_settings(tmp_path, capsys):
    from hdnnp.cli import main
    from hdnnp.io.n2p2_data import write_input_data

    data = _water_cluster()
    write_input_data(tmp_path / "input.data", data)
    out = tmp_path / "input.nn"
    argv = ["symfunctions", str(tmp_path / "input.data"), "-o", str(out), "--cutoff", "6", "--shifted", "3",
            "--angular-etas", "1", "--hidden", "10", "10", "--epochs", "7", "--prototype-dir", str(tmp_path / "p")]
    assert main(argv) == 0
    settings = Settings.read(out)
    assert settings.line("hdnnp_length_unit").values == ["angstrom"]
    assert settings.line("hdnnp_optimizer").values == ["lbfgs"] and settings.get_int("epochs") == 7
    assert settings.line("global_nodes_short").values == ["10", "10"]
    expected = choose_symmetry_functions(data, RC, n_shifted=3, n_centred=2, zetas=(1.0, 4.0), n_angular_eta=1)
    assert [ln.values for ln in settings.all("symfunction_short")] == [ln.split()[1:] for ln in expected.lines]
    assert (tmp_path / "p" / "control.in").is_file() and (tmp_path / "p" / "Al-SymFunc.smf").is_file()
    before = out.read_text()
    assert main(argv) == 1 and "exists" in capsys.readouterr().err  # never overwrites silently
    assert out.read_text() == before
    lone = tmp_path / "lone.data"
    write_input_data(lone, [Structure(elements=["H"], positions=np.zeros((1, 3)))])
    assert main(["symfunctions", str(lone), "-o", str(tmp_path / "lone.nn"), "--cutoff", "6"]) == 1
    assert "no atom of element(s) H has a neighbour" in capsys.readouterr().err
    assert not (tmp_path / "lone.nn").exists()


def assert_n2p2_accepts(path) -> None:
    """Every keyword of ``path`` is one n2p2 v2.3.0 knows, or an hdnnp_* keyword (removed on
    export), and nnp-train's required task batch sizes are there."""
    from hdnnp.io.n2p2_keywords import keyword_of, n2p2_knows

    keys = [k for k in map(keyword_of, open(path, encoding="utf-8")) if k]
    unknown = sorted({k for k in keys if not n2p2_knows(k) and not k.startswith("hdnnp_")})
    assert not unknown, f"{path}: keywords n2p2 does not know: {unknown}"
    for k in ("task_batch_size_energy", "task_batch_size_force", "updater_type", "epochs"):
        assert k in keys, f"{path}: {k} missing (nnp-train needs it)"


@pytest.mark.filterwarnings("ignore:no symmetry functions")
def test_cli_symfunctions_input_nn_has_only_n2p2_keywords(tmp_path):
    """n2p2 itself (nnp-train, LAMMPS pair_style hdnnp) reads the file without 'Unknown keyword'
    warnings; the only other keywords are hdnnp_*, which 'hdnnp export lammps' strips."""
    from hdnnp.cli import main
    from hdnnp.interfaces.lammps import strip_for_n2p2
    from hdnnp.io.n2p2_data import write_input_data

    write_input_data(tmp_path / "input.data", _water_cluster())
    out = tmp_path / "input.nn"
    assert main(["symfunctions", str(tmp_path / "input.data"), "-o", str(out), "--cutoff", "6"]) == 0
    assert_n2p2_accepts(out)
    text = out.read_text()
    assert "write_traincurve" not in text
    stripped, removed = strip_for_n2p2(text)
    assert sorted(r.split()[0] for r in removed) == ["hdnnp_energy_unit", "hdnnp_length_unit", "hdnnp_optimizer"]
    assert "hdnnp_" not in "".join(ln.split("#")[0] for ln in stripped.splitlines())


def test_strip_for_n2p2_removes_unknown_and_hdnnp_keywords():
    from hdnnp.interfaces.lammps import strip_for_n2p2

    text = ("epochs 3 # hdnnp_x in a comment\r\nwrite_traincurve\r\n  hdnnp_length_unit bohr\n"
            "short_force_fraction 0.1 ! n2p2 alias, comment\n# write_traincurve commented\nsymfunction H 2 H 1 0 6")
    new, removed = strip_for_n2p2(text)
    assert new == ("epochs 3 # hdnnp_x in a comment\r\nshort_force_fraction 0.1 ! n2p2 alias, comment\n"
                   "# write_traincurve commented\nsymfunction H 2 H 1 0 6")
    assert removed == ["write_traincurve", "  hdnnp_length_unit bohr"]
