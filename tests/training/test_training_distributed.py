"""Data-parallel training: 2 CPU ranks (gloo) reach the weights of 1 rank with the same global batch."""

from __future__ import annotations

import os
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import INPUT_NN, PROTO, _symfunctions

from hdnnp.io.weights_data import read_weights


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_rank(rank: int, world: int, port: int, case: str, run: str, epochs: int) -> None:
    """One torchrun-like rank of ``hdnnp train`` (target of a spawned process)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from hdnnp.training.workflow import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(Path(case) / "input.nn", run_dir=run, progress=False, console=False, epochs=epochs)


def run_two_ranks(case: Path, run: Path, epochs: int, timeout_s: int) -> None:
    """Train ``case`` on 2 spawned CPU ranks (gloo) into ``run``; fails the test if a rank fails or hangs."""
    ctx = torch.multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=train_rank, args=(r, 2, port, str(case), str(run), epochs)) for r in range(2)]
    env_threads = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=timeout_s)
    finally:
        if env_threads is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = env_threads
    for p in procs:
        if p.is_alive():
            p.kill()
            pytest.fail(f"a rank did not finish within {timeout_s} s")
        assert p.exitcode == 0, f"rank exited with {p.exitcode}"


def max_weight_difference(potential, dir_a: Path, dir_b: Path) -> float:
    """Largest |w_a - w_b| over the weights.XXX.data files of two run directories (Al and Cu)."""
    worst = 0.0
    for e, z in (("Al", 13), ("Cu", 29)):
        sizes = potential.networks[e].layer_sizes
        a = read_weights(dir_a / f"weights.{z:03d}.data", sizes)
        b = read_weights(dir_b / f"weights.{z:03d}.data", sizes)
        for (wa, ba), (wb, bb) in zip(a, b):
            worst = max(worst, np.abs(wa - wb).max(), np.abs(ba - bb).max())
    return worst


def test_two_ranks_match_one_rank(tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    (case / "input.nn").write_text(INPUT_NN.replace("hdnnp_batch_size 2", "hdnnp_batch_size 4") + _symfunctions())
    shutil.copy(PROTO / "input.data", case / "input.data")
    from hdnnp.training.workflow import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = train(case / "input.nn", run_dir=tmp_path / "one", progress=False, console=False, epochs=3)
    run_two_ranks(case, tmp_path / "two", epochs=3, timeout_s=240)
    worst = max_weight_difference(one.potential, tmp_path / "one", tmp_path / "two")
    assert worst < 1e-10, f"2 ranks vs 1 rank: max weight difference {worst:.2e} > 1e-10"
    lc1 = np.loadtxt(tmp_path / "one" / "learning-curve.out")
    lc2 = np.loadtxt(tmp_path / "two" / "learning-curve.out")
    assert np.allclose(lc1, lc2, rtol=1e-9, atol=0), "learning curves differ"
    assert lc1[-1, 0] == 3
