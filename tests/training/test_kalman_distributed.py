"""Kalman multistream: 2 CPU ranks (gloo), each adding its own candidate's column to every update,
give the same weights as 1 rank running two streams (``hdnnp_kalman_streams 2``)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from test_kalman import KALMAN_NN
from test_training import PROTO, _symfunctions
from test_training_distributed import max_weight_difference, run_two_ranks

# random selection: threshold selection compares with the training RMSE, whose sum over ranks may
# differ from one rank's in the last digit
NN = KALMAN_NN.replace("selection_mode 2", "selection_mode 0") + "jacobian_mode 1\n"


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
    run_two_ranks(case, tmp_path / "two", epochs=2, timeout_s=300)
    assert "2 stream(s) on 2 rank(s)" in (tmp_path / "two" / "train.log").read_text()
    worst = max_weight_difference(one.potential, tmp_path / "one", tmp_path / "two")
    assert worst < 1e-10, f"2 ranks vs 1 rank with 2 streams: max weight difference {worst:.2e}"
    lc1 = np.loadtxt(tmp_path / "one" / "learning-curve.out")
    lc2 = np.loadtxt(tmp_path / "two" / "learning-curve.out")
    assert np.allclose(lc1, lc2, rtol=1e-9, atol=0)
