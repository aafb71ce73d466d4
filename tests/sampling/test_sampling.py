"""Reference-data sampling (hdnnp.sampling, ``hdnnp sample``): exact frames, resume, interrupts."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from hdnnp.cli import main
from hdnnp.errors import HDNNPError
from hdnnp.io.n2p2_data import read_input_data, write_input_data
from hdnnp.sampling import (
    make_calculator,
    parse_comment,
    read_structure,
    sample,
    split_frames,
)
from hdnnp.structure import Structure

FAST = {"timestep_fs": 1.0, "equilibration_steps": 4, "interval": 2, "progress": False}


@pytest.fixture
def cu():
    """8-atom fcc Cu cell, slightly off the lattice so forces are not zero."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.02, seed=3)
    return atoms


def _fields(s: Structure) -> dict[str, str]:
    f = parse_comment(s.comments[0])
    assert f is not None, f"frame without an hdnnp-sample comment: {s.comments}"
    return f


def _per_temperature(frames, kind="md"):
    out: dict[str, list[int]] = {}
    for s in frames:
        f = _fields(s)
        if f["kind"] == kind:
            out.setdefault(f["temperature_K"], []).append(int(f["step"]))
    return out


def test_frames_carry_exact_calculator_results(cu, tmp_path):
    out = tmp_path / "out.data"
    n = sample(cu, EMT(), [300, 600], out, frames=5, seed=4, copies=1, rattle_A=0.03, strain=0.01,
               label="emt", **FAST)
    frames = read_input_data(out)
    assert n == len(frames) == 10, f"expected 5 MD frames + 5 copies, wrote {n}, read {len(frames)}"
    worst_e = worst_f = 0.0
    for s in frames:
        assert s.cell is not None and s.forces is not None
        ref = s.to_ase()
        ref.calc = EMT()
        worst_e = max(worst_e, abs(ref.get_potential_energy() - s.energy))
        worst_f = max(worst_f, float(np.abs(ref.get_forces() - s.forces).max()))
    assert worst_e < 1e-10, f"energy differs from a fresh EMT call by {worst_e:.3e} eV (tol 1e-10)"
    assert worst_f < 1e-10, f"forces differ from a fresh EMT call by {worst_f:.3e} eV/A (tol 1e-10)"
    # frames are distinct configurations, and forces are not trivially zero
    assert len({round(s.energy, 8) for s in frames}) == len(frames)
    assert max(np.abs(s.forces).max() for s in frames) > 1e-3
    per_t = _per_temperature(frames)
    assert per_t == {"300": [4, 6, 8], "600": [4, 6]}, per_t
    assert all(_fields(s)["seed"] == "4" and _fields(s)["calculator"] == "emt" for s in frames)
    copies = [s for s in frames if _fields(s)["kind"] == "copy"]
    assert len(copies) == 5
    # a strained copy has a different cell than its MD frame
    assert not np.allclose(copies[0].cell, frames[0].cell)


def test_split_frames():
    assert split_frames(300, 3) == [100, 100, 100]
    assert split_frames(10, 3) == [4, 3, 3]
    assert sum(split_frames(7, 4)) == 7


def test_resume_appends_without_duplicates(cu, tmp_path):
    out = tmp_path / "out.data"
    assert sample(cu, EMT(), [300, 600], out, frames=4, seed=1, **FAST) == 4
    first = out.read_bytes()
    assert sample(cu, EMT(), [300, 600], out, frames=8, seed=1, **FAST) == 4
    assert out.read_bytes().startswith(first), "resuming rewrote frames that were already there"
    frames = read_input_data(out)
    assert len(frames) == 8
    per_t = _per_temperature(frames)
    assert per_t == {"300": [4, 6, 8, 10], "600": [4, 6, 8, 10]}, per_t
    # the resumed trajectory starts at the last frame, not at the starting structure
    assert len({s.energy for s in frames}) == 8
    # nothing left to do: nothing written
    assert sample(cu, EMT(), [300, 600], out, frames=8, seed=1, **FAST) == 0
    assert len(read_input_data(out)) == 8


def test_independent_trajectories_per_seed_and_their_resume(cu, tmp_path):
    out = tmp_path / "out.data"
    assert sample(cu, EMT(), [300, 600], out, frames=8, seed=5, trajectories=2, **FAST) == 8
    frames = read_input_data(out)
    runs = {}
    for s in frames:
        f = _fields(s)
        runs.setdefault((f["temperature_K"], f["seed"]), []).append(int(f["step"]))
    assert runs == {(t, sd): [4, 6] for t in ("300", "600") for sd in ("5", "6")}, runs
    # another seed is another trajectory: appended, not taken for frames already made
    assert sample(cu, EMT(), [300, 600], out, frames=4, seed=7, **FAST) == 4
    # the same call again resumes each trajectory (2 more frames each), never duplicating
    first = out.read_bytes()
    assert sample(cu, EMT(), [300, 600], out, frames=16, seed=5, trajectories=2, **FAST) == 8
    assert out.read_bytes().startswith(first)
    steps = {}
    for s in read_input_data(out):
        f = _fields(s)
        steps.setdefault((f["temperature_K"], f["seed"]), []).append(int(f["step"]))
    assert all(v == [4, 6, 8, 10] for k, v in steps.items() if k[1] in ("5", "6")), steps
    assert steps[("300", "7")] == [4, 6] and len(steps) == 6
    with pytest.raises(HDNNPError, match="trajectories"):
        sample(cu, EMT(), [300], out, frames=2, seed=1, trajectories=0, **FAST)


def test_interrupt_from_callback_keeps_frames_and_resumes(cu, tmp_path):
    out = tmp_path / "out.data"
    seen = []

    def stop_after_three(structure, fields):
        seen.append(fields["step"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(cu, EMT(), [300, 600], out, frames=6, seed=2, callback=stop_after_three, **FAST)
    frames = read_input_data(out)
    assert len(frames) == 3, f"an interrupted run should keep its 3 finished frames, file has {len(frames)}"
    assert sample(cu, EMT(), [300, 600], out, frames=6, seed=2, **FAST) == 3
    assert _per_temperature(read_input_data(out)) == {"300": [4, 6, 8], "600": [4, 6, 8]}


class _FailingEMT(EMT):
    """EMT that raises KeyboardInterrupt (as Ctrl-C would) on its n-th calculation."""

    def __init__(self, n_calls: int):
        super().__init__()
        self.left = n_calls

    def calculate(self, *args, **kwargs):
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def test_interrupt_inside_calculator_keeps_finished_frames(cu, tmp_path):
    out = tmp_path / "out.data"
    # equilibration 4 steps + frame + 2 steps + frame + ... ; stop mid-way through frame 3
    with pytest.raises(KeyboardInterrupt):
        sample(cu, _FailingEMT(10), [300], out, frames=5, seed=5, label="emt", **FAST)
    frames = read_input_data(out)
    assert 1 <= len(frames) < 5
    assert sample(cu, EMT(), [300], out, frames=5, seed=5, label="emt", **FAST) == 5 - len(frames)
    assert len(read_input_data(out)) == 5


def test_partly_written_frame_is_removed_on_resume(cu, tmp_path, caplog):
    out = tmp_path / "out.data"
    sample(cu, EMT(), [300], out, frames=2, seed=1, label="emt", **FAST)
    with open(out, "a") as fh:  # a kill in the middle of writing a frame
        fh.write("begin\ncomment hdnnp-sample calculator=emt temperature_K=300 step=99\natom 0.0 0.0")
    with caplog.at_level(logging.WARNING, logger="hdnnp.sampling"):
        sample(cu, EMT(), [300], out, frames=3, seed=1, label="emt", **FAST)
    assert "partly written last frame" in caplog.text
    frames = read_input_data(out)
    assert [int(_fields(s)["step"]) for s in frames] == [4, 6, 8]


def test_other_calculator_is_refused(cu, tmp_path):
    out = tmp_path / "out.data"
    sample(cu, EMT(), [300], out, frames=1, seed=1, label="emt", **FAST)
    with pytest.raises(HDNNPError, match="already holds frames from calculator"):
        sample(cu, EMT(), [300], out, frames=2, seed=1, label="other", **FAST)


def test_bad_input_gives_clear_errors(cu, tmp_path):
    out = tmp_path / "out.data"
    with pytest.raises(HDNNPError, match="unknown calculator 'nope'"):
        make_calculator("nope")
    with pytest.raises(HDNNPError, match="cannot import module"):
        make_calculator("no_such_module_xyz:Calc")
    with pytest.raises(HDNNPError, match="frames must be a positive integer"):
        sample(cu, EMT(), [300], out, frames=0, **FAST)
    with pytest.raises(HDNNPError, match="temperatures_K must be > 0"):
        sample(cu, EMT(), [-5], out, frames=1, **FAST)
    mixed = cu.copy()
    mixed.pbc = [True, True, False]
    with pytest.raises(HDNNPError, match="periodic in all three directions"):
        sample(mixed, EMT(), [300], out, frames=1, **FAST)
    with pytest.raises(HDNNPError, match="no such file"):
        read_structure(tmp_path / "missing.xyz")
    bad = tmp_path / "bad.xyz"
    bad.write_text("this is not a structure\n")
    with pytest.raises(HDNNPError, match="cannot read structure file"):
        read_structure(bad)
    assert not out.exists() or out.stat().st_size == 0


def test_read_structure_from_input_data_and_module_calculator(cu, tmp_path):
    src = tmp_path / "start.data"
    write_input_data(src, [Structure.from_ase(cu)])
    atoms = read_structure(src)
    assert np.allclose(atoms.positions, cu.positions) and atoms.pbc.all()
    calc = make_calculator("ase.calculators.emt:EMT")
    assert isinstance(calc, EMT)


def test_cli_sample(cu, tmp_path, capsys):
    start = tmp_path / "cu.xyz"
    cu.write(start)
    out = tmp_path / "out.data"
    args = ["sample", str(start), "-o", str(out), "--calculator", "emt", "--temperatures-K", "300", "500",
            "--frames", "4", "--timestep-fs", "1", "--equilibration-steps", "2", "--interval", "1",
            "--seed", "3", "--no-progress"]
    assert main(args) == 0
    frames = read_input_data(out)
    assert len(frames) == 4 and _fields(frames[0])["calculator"] == "emt"
    assert main(args[:4] + ["--calculator", "bogus", "--frames", "1"]) == 1
    assert "unknown calculator 'bogus'" in capsys.readouterr().err
    assert main(args[:4] + ["--calculator", "emt", "--frames", "0"]) == 1
    assert main(["sample", str(tmp_path / "missing.xyz"), "-o", str(out), "--calculator", "emt",
                 "--frames", "1"]) == 1


def test_tblite_gfn2_frames_match_fresh_calls(tmp_path):
    pytest.importorskip("tblite")
    from tblite.ase import TBLite

    water = molecule("H2O")
    water.center(vacuum=3.0)
    water.pbc = False
    out = tmp_path / "w.data"
    n = sample(water, "gfn2-xtb", [300], out, frames=2, seed=1, timestep_fs=0.5,
               equilibration_steps=2, interval=2, progress=False)
    frames = read_input_data(out)
    assert n == len(frames) == 2 and frames[0].cell is None
    assert _fields(frames[0])["calculator"] == "gfn2-xtb"
    for s in frames:
        ref = s.to_ase()
        ref.calc = TBLite(method="GFN2-xTB", verbosity=0, accuracy=0.1)
        de = abs(ref.get_potential_energy() - s.energy)
        df = float(np.abs(ref.get_forces() - s.forces).max())
        assert de < 1e-6 and df < 1e-4, f"GFN2-xTB frame differs from a fresh call: dE {de:.2e} eV, dF {df:.2e} eV/A"


@pytest.mark.slow
def test_shipped_alho_frames_reproduced_bit_for_bit(tmp_path):
    """``hdnnp sample`` remakes the first two 300 K seed-1 frames of examples/alho/input.data byte for byte
    (the command of examples/alho/README.md; 210 GFN2-xTB MD steps of the 56-atom cluster)."""
    import importlib.metadata
    import os
    import subprocess
    import sys
    from pathlib import Path

    import ase

    pytest.importorskip("tblite")
    if (ase.__version__, importlib.metadata.version("tblite")) != ("3.29.0", "0.8.0"):
        pytest.skip("the shipped frames were made with ASE 3.29.0 and tblite 0.8.0")
    from hdnnp.io.n2p2_data import format_structure, iter_input_data

    root = Path(__file__).resolve().parents[2]
    example = root / "examples" / "alho"
    out = tmp_path / "seed1.data"
    # a fresh process with one OpenMP thread, as the data were made (tblite's results depend on the
    # thread count, which is fixed when tblite is first loaded, possibly by another test)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "src")] + os.environ.get("PYTHONPATH", "").split(os.pathsep))}
    proc = subprocess.run([sys.executable, "-m", "hdnnp.cli", "sample", str(example / "start.xyz"), "-o", str(out),
                           "--calculator", "gfn2-xtb", "--temperatures-K", "300", "--timestep-fs", "0.5",
                           "--equilibration-steps", "200", "--interval", "10", "--frames", "2", "--seed", "1",
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shipped = [format_structure(s) for s in iter_input_data(example / "input.data", wrap=False)
               if {"temperature_K": "300", "seed": "1"}.items() <= (parse_comment(s.comments[0]) or {}).items()][:2]
    made = [format_structure(s) for s in iter_input_data(out, wrap=False)]
    assert len(made) == len(shipped) == 2
    for k, (a, b) in enumerate(zip(made, shipped)):
        assert a == b, f"frame {k + 1} (300 K, seed 1) differs from the shipped examples/alho/input.data"


def test_sigterm_stops_after_the_current_step_and_keeps_frames(cu, tmp_path, caplog):
    """SIGTERM (as from a batch system) ends the run after the current MD step, like Ctrl-C: the
    finished frames stay, the interrupt is re-raised, and the same call resumes."""
    import os
    import signal

    out = tmp_path / "out.data"
    sent = []

    def term_after_two(structure, fields):
        sent.append(fields["step"])
        if len(sent) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    handler = signal.getsignal(signal.SIGTERM)
    with caplog.at_level(logging.WARNING, logger="hdnnp.sampling"), pytest.raises(KeyboardInterrupt):
        sample(cu, EMT(), [300], out, frames=5, seed=2, label="emt", callback=term_after_two, **FAST)
    assert "interrupted by SIGTERM" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is handler  # the previous handler is back
    assert len(read_input_data(out)) == 2
    assert sample(cu, EMT(), [300], out, frames=5, seed=2, label="emt", **FAST) == 3
    assert [int(_fields(s)["step"]) for s in read_input_data(out)] == [4, 6, 8, 10, 12]
