"""A corpus of bad inputs and faults, each run through the real CLI (``hdnnp.cli.main``):
every one must end with exactly one ``hdnnp CMD: error: ...`` line naming the file and line
(or the option) and what was expected, a non-zero exit code, no traceback, and no NaN
result or damaged output file.

The starting point is the tiny synthetic H/O potential and water structures of
``tests/data/bad_inputs`` (see its README); each test corrupts a copy.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hdnnp.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
PROTOTYPE = Path(__file__).resolve().parents[1] / "data" / "prototype"
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ helpers
@pytest.fixture
def pot(tmp_path) -> Path:
    d = tmp_path / "pot"
    shutil.copytree(DATA / "potential", d)
    return d


@pytest.fixture
def data(tmp_path) -> Path:
    p = tmp_path / "input.data"
    shutil.copyfile(DATA / "input.data", p)
    return p


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def fails(capsys, argv, pattern: str, rc: int = 1) -> str:
    """Run the CLI; assert exit code ``rc``, exactly one error line matching ``pattern``, no traceback."""
    code, out, err = cli(capsys, *argv)
    assert "Traceback" not in err + out, err
    errors = [ln for ln in err.splitlines() if re.match(r"hdnnp \w+: (error|internal error)", ln)]
    assert len(errors) == 1, err
    assert re.search(pattern, errors[0]), errors[0]
    assert code == rc, (code, err)
    return errors[0]


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, count))


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [k for k, ln in enumerate(path.read_text().splitlines(), start=1) if needle in ln]
    return hits[nth - 1]


def set_field(path: Path, lineno: int, field: int, value: str) -> None:
    """Replace whitespace field ``field`` (0-based) of line ``lineno``."""
    lines = path.read_text().splitlines()
    words = lines[lineno - 1].split()
    words[field] = value
    lines[lineno - 1] = " ".join(words)
    path.write_text("\n".join(lines) + "\n")


def predict(pot, data, tmp_path, *extra):
    return ["predict", pot, data, "-o", tmp_path / "out", *extra]


# ------------------------------------------------------------------ input.data
@pytest.mark.parametrize("field,value", [(1, "nan"), (3, "inf"), (3, "-Infinity")])
def test_input_data_non_finite_position(capsys, pot, data, tmp_path, field, value):
    ln = line_of(data, "atom", 2)
    set_field(data, ln, field, value)
    fails(capsys, predict(pot, data, tmp_path), rf"input\.data:{ln}: expected a finite number for a coordinate, "
                                                 rf"found '{value}'")
    assert not (tmp_path / "out").exists()  # a failed command leaves no empty output directory


@pytest.mark.parametrize("key,nth,field", [("energy", 2, 1), ("atom", 8, 7), ("atom", 9, 9)])
def test_input_data_nan_reference_is_left_out_of_the_errors(capsys, caplog, pot, data, tmp_path, key, nth, field):
    """A NaN reference energy or force: that structure is left out of predict's RMSE with a
    warning naming it (never "RMSE nan"); the training-data checks refuse it (test_training)."""
    set_field(data, line_of(data, key, nth), field, "nan")
    import logging

    with caplog.at_level(logging.INFO, logger="hdnnp"):
        code, out, err = cli(capsys, *predict(pot, data, tmp_path))
    assert code == 0, err
    text = "\n".join(caplog.messages)
    assert re.search(r"structures 2 have non-finite reference energies or forces; left out of the errors", text)
    assert "RMSE nan" not in text and re.search(r"energy per atom: RMSE \d", text)


def test_input_data_nan_lattice(capsys, pot, data, tmp_path):
    ln = line_of(data, "lattice", 2)
    set_field(data, ln, 2, "nan")
    fails(capsys, predict(pot, data, tmp_path), rf"input\.data:{ln}: expected a finite number for a lattice")


def test_input_data_coinciding_atoms(capsys, pot, data, tmp_path):
    first, second = line_of(data, "atom", 1), line_of(data, "atom", 2)
    lines = data.read_text().splitlines()
    lines[second - 1] = " ".join(lines[first - 1].split()[:4] + lines[second - 1].split()[4:])
    data.write_text("\n".join(lines) + "\n")
    fails(capsys, predict(pot, data, tmp_path),
          rf"input\.data:{first}: structure begun on line 1: atom 1 is 0 from atom 2 \(line {second}\): atoms closer "
          r"than 0\.1 .* coincide")


def test_input_data_atoms_too_close(capsys, pot, data, tmp_path):
    ln = line_of(data, "atom", 3)
    lines = data.read_text().splitlines()
    w = lines[ln - 1].split()
    x = [float(v) for v in lines[line_of(data, "atom", 2) - 1].split()[1:4]]
    w[1:4] = [repr(x[0] + 0.05), repr(x[1]), repr(x[2])]
    lines[ln - 1] = " ".join(w)
    data.write_text("\n".join(lines) + "\n")
    fails(capsys, predict(pot, data, tmp_path), r"input\.data:\d+: .*atom 2 is 0\.05 from atom 3 .* coincide")


def test_input_data_periodic_image_coincides(capsys, pot, tmp_path):
    p = tmp_path / "box.data"
    p.write_text("begin\nlattice 6 0 0\nlattice 0 6 0\nlattice 0 0 6\n"
                 "atom 0.0 1 1 O 0 0 0 0 0\natom 6.0 1 1 O 0 0 0 0 0\natom 3 3 3 H 0 0 0 0 0\n"
                 "energy 0\ncharge 0\nend\n")
    fails(capsys, predict(pot, p, tmp_path), r"box\.data:5: .*atom 1 is 0 from atom 2 \(line 6\)")


@pytest.mark.parametrize("text", [
    "begin\natom 0 0 0 O 0 0 0 0 0\natom 1e10 0 0 H 0 0 0 0 0\nenergy 0\ncharge 0\nend\n",
    "begin\nlattice 1e9 0 0\nlattice 0 6 0\nlattice 0 0 6\natom 0 0 0 O 0 0 0 0 0\nenergy 0\ncharge 0\nend\n",
])
def test_input_data_absurd_extent(capsys, pot, tmp_path, text):
    """Coordinates or a cell 1e9 wide (a unit or typo slip): an error, not a SIGFPE in vesin or a hang."""
    p = tmp_path / "far.data"
    p.write_text(text)
    fails(capsys, predict(pot, p, tmp_path), r"far\.data: the structure spans 1e\+(09|10) length units, more than "
                                              r"1e\+04 cutoff")


def test_input_data_non_utf8(capsys, pot, data, tmp_path):
    raw = data.read_bytes().split(b"\n")
    raw[4] = raw[4].replace(b"O ", b"\xff ", 1) if b"O " in raw[4] else raw[4] + b" \xe9"
    data.write_bytes(b"\n".join(raw))
    fails(capsys, predict(pot, data, tmp_path), r"input\.data:5: non-UTF-8 byte 0x(ff|e9)")


def test_byte_order_mark_is_accepted(capsys, pot, data, tmp_path):
    """Files saved by Windows editors start with a UTF-8 byte-order mark: read as without it."""
    for p in (data, pot / "input.nn", pot / "scaling.data", pot / "weights.001.data"):
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    code, out, err = cli(capsys, *predict(pot, data, tmp_path))
    assert code == 0, err
    ref = tmp_path / "ref"
    shutil.copytree(DATA / "potential", ref)
    assert cli(capsys, "predict", ref, DATA / "input.data", "-o", tmp_path / "ref_out")[0] == 0
    assert (tmp_path / "out" / "energy.out").read_text() == (tmp_path / "ref_out" / "energy.out").read_text()


def test_input_data_empty(capsys, pot, tmp_path):
    p = tmp_path / "empty.data"
    p.write_text("")
    fails(capsys, predict(pot, p, tmp_path), r"empty\.data: empty file")


def test_input_data_is_a_directory(capsys, pot, tmp_path):
    fails(capsys, predict(pot, tmp_path, tmp_path), r": is a directory, expected a structure file")


def test_input_data_missing(capsys, pot, tmp_path):
    fails(capsys, predict(pot, tmp_path / "nope.data", tmp_path), r"nope\.data: structure file not found")


def test_input_data_zero_volume_cell(capsys, pot, data, tmp_path):
    ln = line_of(data, "lattice", 3)
    lines = data.read_text().splitlines()
    lines[ln - 1] = lines[ln - 2]  # third lattice vector = second
    data.write_text("\n".join(lines) + "\n")
    fails(capsys, predict(pot, data, tmp_path), r"input\.data:\d+: structure begun on line \d+ has a singular cell")


def test_input_data_unknown_element(capsys, pot, data, tmp_path):
    ln = line_of(data, "atom", 1)
    set_field(data, ln, 4, "Xx")
    fails(capsys, predict(pot, data, tmp_path), rf"input\.data:{ln}: unknown element symbol 'Xx'")


def test_input_data_element_not_in_potential(capsys, pot, data, tmp_path):
    set_field(data, line_of(data, "atom", 1), 4, "C")
    fails(capsys, predict(pot, data, tmp_path), r"element C .*not in the potential")


def test_input_data_missing_end(capsys, pot, data, tmp_path):
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:-1]) + "\n")
    fails(capsys, predict(pot, data, tmp_path), r"input\.data:\d+: file ends inside the structure begun on line "
                                                 r"\d+ \(missing 'end'")


def test_extxyz_nan_position(capsys, pot, tmp_path):
    p = tmp_path / "w.xyz"
    p.write_text("3\n\nO 0 0 0\nH nan 0.6 0\nH -0.76 0.59 0\n")
    fails(capsys, predict(pot, p, tmp_path), r"w\.xyz: atom 2 has a non-finite position")


def test_extxyz_coinciding_atoms(capsys, pot, tmp_path):
    p = tmp_path / "w.xyz"
    p.write_text("3\n\nO 0 0 0\nH 0.76 0.59 0\nH 0.76 0.59 0\n")
    fails(capsys, predict(pot, p, tmp_path), r"w\.xyz: atom 2 is 0 from atom 3: atoms closer than 0\.1 \(Å\)")


def test_extxyz_nan_reference_energy_is_left_out_of_the_errors(capsys, caplog, pot, tmp_path):
    """The same for a format ASE reads."""
    import logging

    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for k, e in enumerate([-1.0, float("nan"), -1.1]):
        a = Atoms("OH2", positions=[[0, 0, 0], [0.76 + 0.01 * k, 0.59, 0], [-0.76, 0.59, 0]])
        a.calc = SinglePointCalculator(a, energy=e, forces=np.zeros((3, 3)))
        frames.append(a)
    ase.io.write(tmp_path / "w.extxyz", frames)
    with caplog.at_level(logging.INFO, logger="hdnnp"):
        code, out, err = cli(capsys, *predict(pot, tmp_path / "w.extxyz", tmp_path))
    assert code == 0, err
    text = "\n".join(caplog.messages)
    assert "structures 2 have non-finite reference" in text and "RMSE nan" not in text


# ------------------------------------------------------------------ potential files
def test_input_nn_non_utf8(capsys, pot, data, tmp_path):
    p = pot / "input.nn"
    lines = p.read_bytes().split(b"\n")
    lines[4] += b"  # caf\xe9"
    p.write_bytes(b"\n".join(lines))
    fails(capsys, predict(pot, data, tmp_path), r"input\.nn:5: non-UTF-8 byte 0xe9")


@pytest.mark.parametrize("nodes,shown", [("-4 4", "-4 4"), ("0 4", "0 4"), ("4 0", "4 0")])
def test_input_nn_bad_node_count(capsys, pot, data, tmp_path, nodes, shown):
    edit(pot / "input.nn", "global_nodes_short 4 4", f"global_nodes_short {nodes}")
    ln = line_of(pot / "input.nn", "global_nodes_short")
    fails(capsys, predict(pot, data, tmp_path),
          rf"input\.nn:{ln}: global_nodes_short: every hidden layer needs at least 1 node, found {shown}")


def test_input_nn_duplicate_element(capsys, pot, data, tmp_path):
    edit(pot / "input.nn", "number_of_elements 2\nelements H O", "number_of_elements 3\nelements H O O")
    fails(capsys, predict(pot, data, tmp_path), r"input\.nn:3: element O is listed more than once")


@pytest.mark.parametrize("old,new,key", [
    ("scale_max_short 1.0", "scale_max_short nan", "scale_max_short"),
    ("hdnnp_energy_unit ev", "hdnnp_energy_unit ev\nmean_energy inf\nconv_energy 1\nconv_length 1", "mean_energy"),
])
def test_input_nn_non_finite_number(capsys, pot, data, tmp_path, old, new, key):
    edit(pot / "input.nn", old, new)
    ln = line_of(pot / "input.nn", key)
    fails(capsys, predict(pot, data, tmp_path), rf"input\.nn:{ln}: keyword '{key}': expected a finite number")


def test_input_nn_non_finite_atom_energy(capsys, pot, data, tmp_path):
    with open(pot / "input.nn", "a") as fh:
        fh.write("atom_energy H nan\n")
    ln = line_of(pot / "input.nn", "atom_energy")
    fails(capsys, predict(pot, data, tmp_path), rf"input\.nn:{ln}: atom_energy: expected a finite number")


def test_input_nn_non_finite_symfunction(capsys, pot, data, tmp_path):
    edit(pot / "input.nn", "symfunction_short H 2 O 2.0 0.0 5.0", "symfunction_short H 2 O nan 0.0 5.0")
    ln = line_of(pot / "input.nn", "symfunction_short H 2 O nan")
    fails(capsys, predict(pot, data, tmp_path), rf"input\.nn:{ln}: symfunction_short: .*finite number, found 'nan'")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_weights_non_finite(capsys, pot, data, tmp_path, value):
    w = pot / "weights.008.data"
    ln = line_of(w, " a ", 5)
    set_field(w, ln, 0, value)
    fails(capsys, predict(pot, data, tmp_path), rf"weights\.008\.data:{ln}: expected a finite weight in column 1, "
                                                 rf"found '{value}'")


def test_weights_overflowing(capsys, pot, data, tmp_path):
    """Finite weights whose result overflows: an error, no outputs."""
    w = pot / "weights.001.data"
    lines = w.read_text().splitlines()
    for k, ln in enumerate(lines):
        if ln.split()[1:2] in (["a"], ["b"]) and not ln.startswith("#"):
            words = ln.split()
            words[0] = "1e308"
            lines[k] = " ".join(words)
    w.write_text("\n".join(lines) + "\n")
    fails(capsys, predict(pot, data, tmp_path), r"structure 1: the potential in .* gives a non-finite energy")
    assert not (tmp_path / "out" / "energy.out").exists()


def test_weights_non_utf8(capsys, pot, data, tmp_path):
    w = pot / "weights.001.data"
    w.write_bytes(b"# \xff\xfe header\n" + w.read_bytes())
    fails(capsys, predict(pot, data, tmp_path), r"weights\.001\.data:1: non-UTF-8 byte 0xff")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_scaling_non_finite(capsys, pot, data, tmp_path, value):
    s = pot / "scaling.data"
    ln = [k for k, t in enumerate(s.read_text().splitlines(), start=1) if t.split()[:2] == ["2", "3"]][0]
    set_field(s, ln, 3, value)
    fails(capsys, predict(pot, data, tmp_path), rf"scaling\.data:{ln}: expected four finite numbers")


def test_scaling_missing(capsys, pot, data, tmp_path):
    (pot / "scaling.data").unlink()
    fails(capsys, predict(pot, data, tmp_path), r"scaling\.data: cannot open")


def test_weights_missing(capsys, pot, data, tmp_path):
    (pot / "weights.008.data").unlink()
    fails(capsys, predict(pot, data, tmp_path), r"weights\.008\.data: cannot open")


def test_potential_dir_missing(capsys, data, tmp_path):
    fails(capsys, predict(tmp_path / "nopot", data, tmp_path), r"nopot: potential directory not found")


def test_input_nn_is_a_directory(capsys, pot, data, tmp_path):
    (pot / "input.nn").unlink()
    (pot / "input.nn").mkdir()
    fails(capsys, predict(pot, data, tmp_path), r"input\.nn: is a directory")


# ------------------------------------------------------------------ control.in (prototype)
@pytest.fixture
def proto(tmp_path) -> Path:
    d = tmp_path / "proto"
    shutil.copytree(PROTOTYPE, d)
    return d


def train_argv(proto, tmp_path):
    return ["train", proto / "control.in", "-o", tmp_path / "run", "--no-progress"]


def test_control_in_non_utf8(capsys, proto, tmp_path):
    c = proto / "control.in"
    lines = c.read_bytes().split(b"\n")
    lines[6] += b" # \xe4"
    c.write_bytes(b"\n".join(lines))
    fails(capsys, train_argv(proto, tmp_path), r"control\.in:7: non-UTF-8 byte 0xe4")


def test_control_in_error_cites_the_users_line(capsys, proto, tmp_path):
    """An error found after conversion to n2p2 keywords names control.in and its line,
    not an internal converted file."""
    edit(proto / "control.in", "learning_rate           0.01", "learning_rate           -1")
    ln = line_of(proto / "control.in", "learning_rate")
    msg = fails(capsys, train_argv(proto, tmp_path), rf"control\.in:{ln}\b.*learning rate must be > 0")
    assert "converted" not in msg


def test_control_in_non_finite_number(capsys, proto, tmp_path):
    edit(proto / "control.in", "learning_rate           0.01", "learning_rate           nan")
    ln = line_of(proto / "control.in", "learning_rate")
    fails(capsys, train_argv(proto, tmp_path), rf"control\.in:{ln}: learning_rate: expected a finite number")


def test_smf_non_finite(capsys, proto, tmp_path):
    smf = proto / "Cu-SymFunc.smf"
    lines = smf.read_text().splitlines()
    k = next(i for i, t in enumerate(lines) if t.strip() and not t.startswith("#"))
    words = lines[k].split()
    words[1] = "inf"
    lines[k] = " ".join(words)
    smf.write_text("\n".join(lines) + "\n")
    fails(capsys, train_argv(proto, tmp_path), rf"Cu-SymFunc\.smf:{k + 1}: G\d row: \w+ must be a finite number")


# ------------------------------------------------------------------ command line
def test_predict_output_is_a_file(capsys, pot, data, tmp_path):
    f = tmp_path / "taken"
    f.write_text("keep me")
    fails(capsys, ["predict", pot, data, "-o", f], r"-o .*taken: is a file, expected a directory")
    assert f.read_text() == "keep me"


def test_predict_refuses_to_overwrite(capsys, pot, data, tmp_path):
    assert cli(capsys, *predict(pot, data, tmp_path))[0] == 0
    before = (tmp_path / "out" / "energy.out").read_text()
    fails(capsys, predict(pot, data, tmp_path), r"refusing to overwrite .*energy\.out.*--overwrite")
    assert (tmp_path / "out" / "energy.out").read_text() == before


def _no_cuda():
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(not _no_cuda(), reason="CUDA is available here: --device cuda is valid")
@pytest.mark.parametrize("command", ["predict", "md", "train"])
def test_device_cuda_without_cuda(capsys, pot, data, tmp_path, command):
    argv = {"predict": predict(pot, data, tmp_path),
            "md": ["md", pot, data, "--steps", 1, "--timestep-fs", 0.5, "-o", tmp_path / "md"],
            "train": ["train", pot / "input.nn", "--data", data, "-o", tmp_path / "run"]}[command]
    fails(capsys, argv + ["--device", "cuda"], r"--device cuda: CUDA is not available here .*use --device cpu")


@pytest.mark.parametrize("device,pattern", [("cuda:99", r"--device cuda:99: (CUDA is not available|only \d+ CUDA)"),
                                            ("gpu0", r"--device 'gpu0': not a torch device")])
def test_device_invalid(capsys, pot, data, tmp_path, device, pattern):
    fails(capsys, predict(pot, data, tmp_path, "--device", device), pattern)


def test_internal_error_keeps_traceback_with_hint(capsys, monkeypatch, pot, data, tmp_path):
    """A real bug is not dressed up as a user error: traceback, a hint, exit code 3."""
    import hdnnp.interfaces.commands.predict as predict_cmd

    def boom(args):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(predict_cmd, "run", boom)
    rc = main([str(a) for a in predict(pot, data, tmp_path)])
    err = capsys.readouterr().err
    assert rc == 3 and "Traceback" in err and "ZeroDivisionError: bug" in err and "a bug in hdnnp" in err


@pytest.mark.parametrize("exc,pattern", [
    (OSError(errno.ENOSPC, "No space left on device", "run/checkpoint.pt"),
     r"run/checkpoint\.pt: No space left on device; free some space and rerun"),
    (PermissionError(errno.EACCES, "Permission denied", "/root/x"), r"/root/x: Permission denied; check the permissions"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "somedir"), r"somedir: Is a directory"),
])
def test_os_errors_are_one_line(capsys, monkeypatch, pot, data, tmp_path, exc, pattern):
    """File-system errors from anywhere (a full disk during training, permissions) end with one
    line naming the file, not a traceback."""
    import hdnnp.interfaces.commands.predict as predict_cmd

    def raise_it(args):
        raise exc

    monkeypatch.setattr(predict_cmd, "run", raise_it)
    fails(capsys, predict(pot, data, tmp_path), pattern)


def test_warnings_printed_once(capsys, monkeypatch, pot, data, tmp_path):
    """Python warnings reach the user as one line each, each distinct message once."""
    import warnings

    import hdnnp.interfaces.commands.predict as predict_cmd

    def warn_twice(args):
        for _ in range(3):
            warnings.warn("something odd", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(predict_cmd, "run", warn_twice)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        rc, out, err = cli(capsys, *predict(pot, data, tmp_path))
    assert rc == 0
    assert err.count("something odd") == 1 and "warn_twice" not in err and "warnings.warn" not in err


@pytest.mark.parametrize("argv,pattern", [
    (["train", "{pot}/input.nn", "--data", "{data}", "-o", "{tmp}/run", "--learning-rate", "nan"],
     r"--learning-rate must be a finite number, got nan"),
    (["train", "{pot}/input.nn", "--data", "{data}", "-o", "{tmp}/run", "--force-weight", "inf"],
     r"--force-weight must be a finite number"),
    (["train", "{pot}/input.nn", "--data", "{pot}", "-o", "{tmp}/run"], r"pot: is a directory, expected a structure"),
    (["train", "{pot}/input.nn", "--data", "{tmp}/nope.data", "-o", "{tmp}/run"], r"nope\.data: cannot open"),
    (["train", "{pot}", "-o", "{tmp}/run"], r"pot: configuration file not found"),
    (["sample", "{data}", "-o", "{tmp}/s.data", "--calculator", "emt", "--frames", "2", "--timestep-fs", "inf"],
     r"--timestep-fs must be a finite number, found inf"),
    (["sample", "{data}", "-o", "{tmp}/s.data", "--calculator", "emt", "--frames", "2", "--timestep-fs", "1e4"],
     r"--timestep-fs 10000\.0 is far above any stable atomistic time step"),
    (["sample", "{data}", "-o", "{tmp}/s.data", "--calculator", "emt", "--frames", "2", "--rattle", "nan",
      "--copies", "1"], r"--rattle must be a finite number"),
    (["sample", "{data}", "-o", "{tmp}/s.data", "--calculator", "emt", "--frames", "2", "--temperatures-K", "nan"],
     r"temperatures_K must be > 0, found \[nan\]"),
    (["sample", "{tmp}/nope.xyz", "-o", "{tmp}/s.data", "--calculator", "emt", "--frames", "2"],
     r"nope\.xyz: structure file not found"),
    (["md", "{pot}", "--restart", "{pot}", "--steps", "2", "--timestep-fs", "0.5", "-o", "{tmp}/md"],
     r"pot: is a directory, expected a restart file"),
    (["md", "{data}", "{data}", "--steps", "2", "--timestep-fs", "0.5", "-o", "{tmp}/md"],
     r"input\.data: potential directory not found"),
    (["md", "{pot}", "{data}", "--steps", "2", "--timestep-fs", "0.5", "--structure-index", "99", "-o", "{tmp}/md"],
     r"input\.data: structure index 99 out of range \(5 structures\)"),
    (["md", "{pot}", "{data}", "--steps", "2", "--timestep-fs", "0.5", "--length-unit", "furlong", "-o", "{tmp}/md"],
     r"unknown length unit 'furlong'"),
    (["md", "{pot}", "--steps", "2", "--timestep-fs", "0.5", "-o", "{tmp}/md"],
     r"give a STRUCTURE file or --restart FILE"),
    (["scale", "{pot}/input.nn", "{data}", "-o", "{pot}/scaling.data"], r"scaling\.data exists; use --overwrite"),
])
def test_misc_command_line(capsys, pot, data, tmp_path, argv, pattern):
    argv = [a.format(pot=pot, data=data, tmp=tmp_path) for a in argv]
    fails(capsys, argv, pattern)


# ------------------------------------------------------------------ hdnnp md
def md_argv(pot, data, out, *extra, steps=6):
    return ["md", pot, *([] if data is None else [data]), "--steps", steps, "--timestep-fs", 0.5, "--temperature-K", 300, "--ensemble", "bussi",
            "--seed", 1, "--write-every", 2, "--no-progress", "--no-plot", "-o", out, *extra]


@pytest.mark.parametrize("option,value,pattern", [
    ("--temperature-K", "nan", r"--temperature-K must be a finite number, got nan"),
    ("--temperature-K", "-5", r"--temperature-K must be >= 0"),
    ("--timestep-fs", "inf", r"--timestep-fs must be a finite number"),
    ("--timestep-fs", "-1", r"--timestep-fs must be > 0"),
    ("--timestep-fs", "1e4", r"--timestep-fs 10000.0 is far above any stable atomistic time step"),
    ("--friction-per-fs", "nan", r"--friction-per-fs must be a finite number"),
    ("--tau-fs", "0", r"--tau-fs must be > 0"),
    ("--pressure-GPa", "inf", r"--pressure-GPa must be a finite number"),
    ("--max-temperature-K", "-1", r"--max-temperature-K must be > 0"),
])
def test_md_bad_number_options(capsys, pot, data, tmp_path, option, value, pattern):
    argv = md_argv(pot, data, tmp_path / "md")
    k = argv.index(option) if option in argv else None
    if k is None:
        argv += [option, value]
    else:
        argv[k + 1] = value
    fails(capsys, argv, pattern)
    assert not (tmp_path / "md").exists()


def test_md_output_is_a_file(capsys, pot, data, tmp_path):
    f = tmp_path / "md"
    f.write_text("keep me")
    fails(capsys, md_argv(pot, data, f), r"-o .*md: is a file, expected a directory")
    assert f.read_text() == "keep me"


def test_md_refuses_an_earlier_run(capsys, pot, data, tmp_path):
    out = tmp_path / "md"
    assert cli(capsys, *md_argv(pot, data, out))[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fails(capsys, md_argv(pot, data, out), r"-o .*md holds an earlier run .*--restart .*--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # --overwrite replaces it
    assert cli(capsys, *md_argv(pot, data, out, "--overwrite", steps=4))[0] == 0
    from hdnnp.dynamics.output import read_thermo_log

    assert read_thermo_log(out / "thermo.log")["step"].tolist() == [0, 1, 2, 3, 4]


def test_md_restart_with_overwrite_starts_fresh_files(capsys, pot, data, tmp_path):
    out = tmp_path / "md"
    assert cli(capsys, *md_argv(pot, data, out, steps=4))[0] == 0
    assert cli(capsys, *md_argv(pot, None, out, "--restart", out / "restart.npz", "--overwrite", steps=2))[0] == 0
    thermo, traj, xyz = _steps(out)
    assert thermo == [4, 5, 6] and traj == [4, 6] and xyz == traj


def _steps(out: Path):
    from hdnnp.dynamics.output import read_thermo_log, read_traj_data

    import ase.io

    return (read_thermo_log(out / "thermo.log")["step"].astype(int).tolist(),
            [s for s, _ in read_traj_data(out / "traj.data")],
            [a.info["step"] for a in ase.io.read(out / "trajectory.extxyz", ":")])


def test_md_restart_continues_from_the_restart_step(capsys, pot, data, tmp_path):
    """A run killed after its last restart file: continuing cuts what came after it, so step
    numbers never repeat or go backwards, and the result equals an uninterrupted run."""
    full, out = tmp_path / "full", tmp_path / "md"
    assert cli(capsys, *md_argv(pot, data, full, steps=10))[0] == 0
    assert cli(capsys, *md_argv(pot, data, out, steps=4))[0] == 0
    saved = (out / "restart.npz").read_bytes()  # the restart at step 4
    assert cli(capsys, *md_argv(pot, None, out, "--restart", out / "restart.npz", steps=3))[0] == 0
    (out / "restart.npz").write_bytes(saved)  # as if killed at step 7 with the last restart at 4
    rc = cli(capsys, *md_argv(pot, None, out, "--restart", out / "restart.npz", steps=6))[0]
    assert rc == 0
    thermo, traj, xyz = _steps(out)
    assert thermo == list(range(11)) and traj == [0, 2, 4, 6, 8, 10] and xyz == traj
    assert (out / "thermo.log").read_text() == (full / "thermo.log").read_text()
    assert (out / "traj.data").read_text() == (full / "traj.data").read_text()


def test_md_restart_into_another_runs_directory(capsys, pot, data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(capsys, *md_argv(pot, data, a, steps=2))[0] == 0
    lines = data.read_text().split("end\n")
    one = tmp_path / "one.data"  # a single water molecule: 3 atoms instead of 6
    block = lines[0].splitlines()
    one.write_text("\n".join(block[:4] + block[7:]) + "\nend\n")
    assert cli(capsys, *md_argv(pot, one, b, steps=2))[0] == 0
    before = (b / "traj.data").read_text()
    argv = md_argv(pot, None, b, "--restart", a / "restart.npz", steps=2)
    fails(capsys, argv, r"-o .*b holds a run .* and --restart .*a/restart\.npz is not one of its restart files")
    shutil.copyfile(a / "restart.npz", b / "restart-a.npz")  # another run's restart copied in
    argv = md_argv(pot, None, b, "--restart", b / "restart-a.npz", steps=2)
    fails(capsys, argv, r"traj\.data: holds frames of 3 atoms, the restart file 6")
    assert (b / "traj.data").read_text() == before


def _restart_variant(tmp_path, src: Path, change) -> Path:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    p = tmp_path / "bad_restart.npz"
    np.savez(p, **arrays)
    return p


@pytest.mark.parametrize("change,pattern", [
    (lambda a: a.pop("velocities"), r"array 'velocities' is missing"),
    (lambda a: a.update(positions=a["positions"][:-1]), r"array 'positions' has shape \(5, 3\), expected \(6, 3\)"),
    (lambda a: a.update(forces=a["forces"].ravel()), r"array 'forces' has shape \(18,\), expected \(6, 3\)"),
    (lambda a: a.update(positions=a["positions"] * np.nan), r"array 'positions' holds non-finite values"),
    (lambda a: a.update(masses=-a["masses"]), r"array 'masses' holds masses <= 0"),
    (lambda a: a.update(meta=np.array("{not json")), r"the 'meta' entry is not valid JSON"),
    (lambda a: a.update(meta=np.array(json.dumps({k: v for k, v in json.loads(str(a["meta"])).items()
                                                  if k != "rng_state"}))), r"meta entry 'rng_state' is missing"),
    (lambda a: a.update(numbers=np.full_like(a["numbers"], 6)), r"elements C are not in the potential"),
])
def test_md_damaged_restart(capsys, pot, data, tmp_path, change, pattern):
    run = tmp_path / "run"
    assert cli(capsys, *md_argv(pot, data, run, steps=2))[0] == 0
    bad = _restart_variant(tmp_path, run / "restart.npz", change)
    argv = md_argv(pot, None, tmp_path / "cont", "--restart", bad)
    fails(capsys, argv, rf"bad_restart\.npz: {pattern}" if "elements" not in pattern else pattern)


@pytest.mark.parametrize("content,pattern", [(b"not a zip", r"not a readable restart file"),
                                             (None, r"restart file not found")])
def test_md_unreadable_restart(capsys, pot, tmp_path, content, pattern):
    p = tmp_path / "restart.npz"
    if content is not None:
        p.write_bytes(content)
    argv = md_argv(pot, None, tmp_path / "cont", "--restart", p)
    fails(capsys, argv, pattern)


@pytest.mark.parametrize("extra,limit", [(["--max-temperature-K", "301", "--ensemble", "nve"], "301"),
                                         (["--timestep-fs", "50"], "3e\\+04")])
def test_md_temperature_blow_up_stops(capsys, pot, data, tmp_path, extra, limit):
    """A runaway temperature (too long a time step) stops the run with a clear message and a
    non-zero exit; thermo.log holds only finite values."""
    out = tmp_path / "md"
    argv = md_argv(pot, data, out, steps=50)
    if "--timestep-fs" in extra:
        argv[argv.index("--timestep-fs") + 1] = extra[1]
    else:
        argv += extra
    fails(capsys, argv, rf"MD stopped at step \d+: temperature .* K exceeds {limit} K: the integration is blowing up")
    assert "nan" not in (out / "thermo.log").read_text().lower()


def test_md_non_finite_forces_stop(tmp_path):
    """Non-finite forces during a run: stopped, nothing non-finite written, no restart file."""
    from ase import Atoms

    from hdnnp.dynamics.forcefield import ForceResult
    from hdnnp.dynamics.run import MDSettings, run_md

    class Exploding:
        calls = 0

        def compute(self, elements, positions, cell, stress=True):
            self.calls += 1
            f = np.zeros_like(positions) + (np.nan if self.calls > 3 else 0.0)
            return ForceResult(energy=0.0, forces=f)

    atoms = Atoms("Ar2", positions=[[0, 0, 0], [3.5, 0, 0]])
    r = run_md(Exploding(), atoms, MDSettings(steps=10, timestep_fs=1.0, progress=False, plot=False), tmp_path)
    assert r.stopped_reason and "non-finite" in r.stopped_reason
    assert not (tmp_path / "restart.npz").exists()
    assert "nan" not in (tmp_path / "thermo.log").read_text().lower()


def test_md_coinciding_atoms(capsys, pot, tmp_path):
    p = tmp_path / "w.xyz"
    p.write_text("3\n\nO 0 0 0\nH 0.76 0.59 0\nH 0.76 0.59 0\n")
    fails(capsys, ["md", pot, p, "--steps", 2, "--timestep-fs", 0.5, "-o", tmp_path / "md"],
          r"w\.xyz: atom 2 is 0 from atom 3")


def test_md_sigterm_writes_restart_and_continues(pot, data, tmp_path):
    """SIGTERM (as SIGINT) ends the run after the current step with one line, exit 130, and a
    restart file from which the run continues."""
    out = tmp_path / "md"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "hdnnp.cli", *map(str, md_argv(pot, data, out, steps=10**7))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    import time

    t0 = time.time()
    while time.time() - t0 < 60:
        if (out / "thermo.log").exists() and len((out / "thermo.log").read_text().splitlines()) > 20:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("hdnnp md: error:")]
    assert len(errors) == 1 and re.search(r"interrupted by SIGTERM; .*restart\.npz written: continue with", errors[0])
    from hdnnp.dynamics.restart import read_restart

    state, _, _ = read_restart(out / "restart.npz")
    thermo, traj, _ = _steps(out)
    assert thermo[-1] == state.step and traj[-1] == state.step


def test_md_sigint_in_process(capsys, monkeypatch, pot, data, tmp_path):
    """Ctrl-C during a force call: no SystemError, the step finishes, restart written, exit 130."""
    from hdnnp.dynamics.forcefield import HDNNPForceField

    orig = HDNNPForceField.compute
    calls = {"n": 0}

    def call(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return orig(self, *a, **k)

    monkeypatch.setattr(HDNNPForceField, "compute", call)
    out = tmp_path / "md"
    fails(capsys, md_argv(pot, data, out, steps=1000), r"step 3: interrupted by SIGINT; .*restart\.npz written: continue "
                                                     r"with hdnnp md .* --steps 997 ", rc=130)
    argv = md_argv(pot, None, out, "--restart", out / "restart.npz", steps=2)
    assert cli(capsys, *argv)[0] == 0
    thermo, traj, xyz = _steps(out)
    assert thermo == sorted(set(thermo)) and traj == sorted(set(traj)) and xyz == traj


# ------------------------------------------------------------------ full disk
class _FullDisk(io.StringIO):
    """A file whose writes fail as on a full disk."""

    def write(self, s):
        raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_predict_full_disk(capsys, monkeypatch, pot, data, tmp_path):
    import builtins

    import hdnnp.io.validation as validation

    def full_open(path, mode="r", *a, **k):
        if "w" in mode:
            Path(path).touch()  # the temporary file exists, as on a real disk
            return _FullDisk()
        return builtins.open(path, mode, *a, **k)

    monkeypatch.setattr(validation, "open", full_open, raising=False)
    fails(capsys, predict(pot, data, tmp_path), r"cannot write .*energy\.out: No space left on device; nothing was "
                                                 r"written there")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no partial file, no temporary left


def test_md_full_disk(capsys, monkeypatch, pot, data, tmp_path):
    """The trajectory cannot be written: one line, and the restart file is the last complete one."""
    from hdnnp.dynamics import output

    out = tmp_path / "md"
    orig = output.TrajDataWriter.write
    n = {"k": 0}

    def write(self, step, positions):
        n["k"] += 1
        if n["k"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return orig(self, step, positions)

    monkeypatch.setattr(output.TrajDataWriter, "write", write)
    fails(capsys, md_argv(pot, data, out, "--restart-every", 2, steps=10),
          r"cannot write in .*md: No space left on device at step 4; .*restart\.npz holds the last complete restart")
    from hdnnp.dynamics.restart import read_restart

    assert read_restart(out / "restart.npz")[0].step == 2
    assert not [p for p in out.iterdir() if "tmp" in p.name]


def test_md_restart_write_full_disk_keeps_previous(monkeypatch, tmp_path):
    """write_restart on a full disk: the previous restart file stays intact, no temporary left."""
    import builtins

    import hdnnp.io.validation as validation

    p = tmp_path / "restart.npz"
    p.write_bytes(b"previous")

    def full_open(path, mode="r", *a, **k):
        if "w" in mode:
            Path(path).touch()
            return _FullDisk()
        return builtins.open(path, mode, *a, **k)

    monkeypatch.setattr(validation, "open", full_open, raising=False)
    from hdnnp.errors import HDNNPError
    from hdnnp.io.validation import atomic_write_bytes

    with pytest.raises(HDNNPError, match=r"No space left on device"):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"previous" and sorted(x.name for x in tmp_path.iterdir()) == ["restart.npz"]


# ------------------------------------------------------------------ hdnnp sample
def _cu_start(tmp_path) -> Path:
    from ase.build import bulk

    import ase.io

    p = tmp_path / "cu.xyz"
    ase.io.write(p, bulk("Cu", "fcc", a=3.6, cubic=True))
    return p


def sample_argv(start, out, frames=4):
    return ["sample", start, "-o", out, "--calculator", "emt", "--frames", frames, "--equilibration-steps", 2,
            "--interval", 1, "--no-progress"]


def test_sample_keeps_users_unterminated_frame(capsys, tmp_path, data):
    out = tmp_path / "mine.data"
    text = data.read_text()
    out.write_text(text[: text.rindex("end")])  # the user's last frame lacks 'end'
    before = out.read_text()
    begin = line_of(out, "begin", 5)
    fails(capsys, sample_argv(_cu_start(tmp_path), out),
          rf"mine\.data:{begin}: the last structure has no 'end' \(truncated file\?\); it was not written by hdnnp "
          r"sample, so it is not removed")
    assert out.read_text() == before


def test_sample_cuts_its_own_partial_frame(capsys, tmp_path):
    start, out = _cu_start(tmp_path), tmp_path / "s.data"
    assert cli(capsys, *sample_argv(start, out, frames=2))[0] == 0
    text = out.read_text()
    out.write_text(text + text[: text.index("end") // 2])  # a kill during the write of frame 3
    assert cli(capsys, *sample_argv(start, out, frames=3))[0] == 0
    from hdnnp.io.n2p2_data import read_input_data

    assert len(read_input_data(out)) == 3


def test_sample_full_disk(capsys, monkeypatch, tmp_path):
    import builtins

    import hdnnp.sampling as sampling

    start, out = _cu_start(tmp_path), tmp_path / "s.data"
    real_open = builtins.open

    class HalfFull:
        """Lets two frames through, then fails midway through the third."""

        def __init__(self, fh):
            self.fh, self.n = fh, 0

        def write(self, s):
            self.n += 1
            if self.n == 3:
                self.fh.write(s[: len(s) // 2])
                self.fh.flush()
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(s)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    monkeypatch.setattr(sampling, "open", lambda *a, **k: HalfFull(real_open(*a, **k)), raising=False)
    fails(capsys, sample_argv(start, out, frames=4), r"cannot write .*s\.data: No space left on device; the 2 complete "
                                                      r"frames in it are kept")
    monkeypatch.undo()
    from hdnnp.io.n2p2_data import read_input_data

    assert len(read_input_data(out)) == 2
    assert cli(capsys, *sample_argv(start, out, frames=4))[0] == 0  # rerun resumes
    assert len(read_input_data(out)) == 4
