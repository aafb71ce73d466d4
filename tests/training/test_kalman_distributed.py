"""Kalman multistream: 2 CPU ranks (gloo), each adding its own candidate's column to every update,
give the same weights as 1 rank running two streams (``hdnnp_kalman_streams 2``)."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_kalman import KALMAN_NN
from test_training import PROTO, _symfunctions
from test_training_distributed import _free_port

from hdnnp.io.weights_data import read_weights

# random selection: threshold selection compares with the training RMSE, whose sum over ranks may
# differ from one rank's in the last digit
NN = KALMAN_NN.replace("selection_mode 2", "selection_mode 0") + "jacobian_mode 1\n"


def _worker(rank: int, world: int, port: int, case: str, run: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from hdnnp.training.workflow import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(Path(case) / "input.nn", run_dir=run, progress=False, console=False, epochs=2)


@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_two_streams(tmp_path):
    case = tmp_path / "case"
    case.mkdir()
    (case / "input.nn").write_text(NN + _symfunctions())
    shutil.copy(PROTO / "input.data", case / "input.data")
    from hdnnp.training.workflow import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = train(case / "input.nn", run_dir=tmp_path / "one", progress=False, console=False, epochs=2,
                    overrides={"kalman_streams": 2})
    assert "2 stream(s) on 1 rank(s)" in (tmp_path / "one" / "train.log").read_text()
    ctx = torch.multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(case), str(tmp_path / "two"))) for r in range(2)]
    env_threads = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=300)
    finally:
        if env_threads is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = env_threads
    for p in procs:
        if p.is_alive():
            p.kill()
            pytest.fail("a rank did not finish within 300 s")
        assert p.exitcode == 0, f"rank exited with {p.exitcode}"
    assert "2 stream(s) on 2 rank(s)" in (tmp_path / "two" / "train.log").read_text()
    worst = 0.0
    for e, z in (("Al", 13), ("Cu", 29)):
        sizes = one.potential.networks[e].layer_sizes
        a = read_weights(tmp_path / "one" / f"weights.{z:03d}.data", sizes)
        b = read_weights(tmp_path / "two" / f"weights.{z:03d}.data", sizes)
        for (wa, ba), (wb, bb) in zip(a, b):
            worst = max(worst, np.abs(wa - wb).max(), np.abs(ba - bb).max())
    assert worst < 1e-10, f"2 ranks vs 1 rank with 2 streams: max weight difference {worst:.2e}"
    lc1 = np.loadtxt(tmp_path / "one" / "learning-curve.out")
    lc2 = np.loadtxt(tmp_path / "two" / "learning-curve.out")
    assert np.allclose(lc1, lc2, rtol=1e-9, atol=0)
