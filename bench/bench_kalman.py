"""Kalman-filter training (n2p2 ``updater_type 1``) against n2p2's own runs.

    python bench/bench_kalman.py h2o                       # H2O anchor: 20 epochs, curve and s/epoch vs n2p2
    python bench/bench_kalman.py alho --epochs 16                 # the README's table (dense P, one thread)
    python bench/bench_kalman.py alho --epochs 8 --blocks element --tbs-force 4 --jacobian-mode 2
    OMP_NUM_THREADS=2 python bench/bench_kalman.py alho --epochs 2 --threads 2 --json out.json

``h2o``: ``anchors/n2p2/train/H2O_RPBE-D3_np1_epochs20_MODIFIED/input.nn`` (+ ``train/input.data``),
unchanged (n2p2's split is reproduced: ``hdnnp_split n2p2``). Prints per epoch our train/test RMSE
next to n2p2's learning curve and the wall time per epoch / n2p2's 1-core figure.

``alho``: ``examples/alho/input.nn`` copied to a temporary directory with
``task_batch_size_energy 1`` / ``task_batch_size_force 1`` added (as n2p2 needs) and its
``hdnnp_optimizer`` line removed (n2p2 ignores it; it asks hdnnp for L-BFGS, and without it an
``updater_type 1`` input.nn trains with the Kalman filter, hdnnp's default as n2p2's).
After every epoch the weights are evaluated on ``examples/alho/holdout.data`` (time excluded) and
compared with n2p2's held-out curve; prints the time to reach n2p2's last held-out RMSE.

Also printed: P memory, updates/s, machine load (``os.getloadavg``). ``--device cuda`` on a GPU.
The n2p2 reference numbers are copied below (a clone has no ../shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ANCHORS = Path(os.environ.get("HDNNP_ANCHORS", ROOT.parent / "shared" / "anchors" / "n2p2"))

#: n2p2 v2.3.0, anchors/n2p2/train/H2O_RPBE-D3_np1_epochs20_MODIFIED/learning-curve.out:
#: (epoch, RMSEpa E train, RMSEpa E test [Ha/atom], RMSE F train, RMSE F test [Ha/Bohr])
N2P2_H2O_CURVE = [
    (0, 1.17658233E-03, 1.09663051E-03, 2.72051656E-02, 1.64585427E-02),
    (1, 9.73051110E-04, 9.86836068E-04, 2.42340155E-02, 1.16747598E-02),
    (2, 7.19538720E-04, 3.57908686E-04, 2.46334323E-02, 1.22544659E-02),
    (3, 1.70177955E-03, 2.44180452E-03, 2.54132854E-02, 9.73845301E-03),
    (4, 5.92303269E-04, 8.68967951E-04, 2.07050706E-02, 1.34758089E-02),
    (5, 5.52945454E-04, 5.06161817E-04, 2.08915810E-02, 1.33737567E-02),
    (6, 2.38237699E-04, 4.51922262E-04, 1.93489216E-02, 1.03013978E-02),
    (7, 1.21792814E-04, 6.33424309E-04, 1.78374258E-02, 1.07617024E-02),
    (8, 1.74905323E-04, 6.41552370E-04, 1.78813074E-02, 1.00927250E-02),
    (9, 1.68037539E-04, 7.03570530E-04, 1.59053307E-02, 7.41841675E-03),
    (10, 1.35074064E-04, 5.03570570E-04, 1.54895710E-02, 9.19272163E-03),
    (11, 7.92888106E-05, 3.51861298E-04, 1.33447090E-02, 7.18232775E-03),
    (12, 5.80318012E-05, 1.43296137E-04, 1.28875883E-02, 7.03500679E-03),
    (13, 3.68202421E-05, 1.00860071E-04, 1.20952300E-02, 6.18969872E-03),
    (14, 4.07760372E-05, 1.74147575E-04, 1.17074551E-02, 6.10688650E-03),
    (15, 5.29427974E-05, 1.59086734E-04, 1.13357848E-02, 6.22023857E-03),
    (16, 2.11580971E-05, 1.03735571E-04, 1.12971975E-02, 5.50171649E-03),
    (17, 7.44602281E-05, 1.22855450E-04, 1.13025160E-02, 5.68956509E-03),
    (18, 4.99341934E-05, 2.35040544E-04, 1.09837641E-02, 5.41312361E-03),
    (19, 1.32467403E-05, 1.64212736E-04, 1.09309199E-02, 5.31865448E-03),
    (20, 2.27207027E-05, 9.87229850E-05, 1.01645634E-02, 4.68212003E-03),
]
#: n2p2 1 core, same run's timing.out: mean wall time of one epoch (updates + errors), 20 epochs
N2P2_H2O_EPOCH_S = 1.83
#: n2p2 v2.3.0 on examples/alho (anchors/n2p2/train/alho_kalman/holdout-curve.txt): epoch, n2p2's
#: cumulative wall s (shared machine: upper bound), CPU s (None: not recorded), held-out E RMSE
#: (meV/atom), held-out F RMSE (meV/Å); n2p2 was stopped after epoch 8
N2P2_ALHO_HOLDOUT = [
    (0, 78.8, None, 50616.931, 1328.317), (1, 2190.6, None, 10.383, 881.201), (2, 2882.3, 1274, 5.207, 563.020),
    (3, 3547.4, 1932, 3.814, 365.081), (4, 4227.9, 2590, 2.638, 340.085), (5, 4900.6, 3259, 2.556, 252.234),
    (6, 5603.2, 3938, 2.720, 192.877), (7, 6275.4, 4604, 2.779, 295.354), (8, 6912.0, 5236, 2.604, 181.523),
]


def _prepare(case: str, work: Path) -> Path:
    if case == "h2o":
        src = ANCHORS / "train" / "H2O_RPBE-D3_np1_epochs20_MODIFIED" / "input.nn"
        shutil.copy(src, work / "input.nn")
        shutil.copy(ANCHORS / "train" / "input.data", work / "input.data")
    else:
        lines = (ROOT / "examples" / "alho" / "input.nn").read_text().splitlines()
        lines = [ln for ln in lines if not ln.split() or ln.split()[0] not in
                 ("hdnnp_optimizer", "task_batch_size_energy", "task_batch_size_force")]
        lines += ["task_batch_size_energy 1", "task_batch_size_force 1"]
        (work / "input.nn").write_text("\n".join(lines) + "\n")
        shutil.copy(ROOT / "examples" / "alho" / "input.data", work / "input.data")
    return work / "input.nn"


def _holdout_hook(structures, out: list):
    """extra_outputs callback: evaluate the held-out frames after every epoch (time not counted)."""
    def hook(trainer):
        orig = trainer._epoch_record

        def record(epoch, train, test, lr, seconds):
            rec = orig(epoch, train, test, lr, seconds)
            preds = trainer.pot.predict(structures, forces=True, stress=False)
            de = [(p.energy - s.energy) / s.n_atoms for p, s in zip(preds, structures)]
            df = np.concatenate([(p.forces - s.forces).ravel() for p, s in zip(preds, structures)])
            out.append({"epoch": epoch, "seconds": seconds, "E_meV": 1000 * float(np.sqrt(np.mean(np.square(de)))),
                        "F_meV": 1000 * float(np.sqrt(np.mean(df**2)))})
            return rec
        trainer._epoch_record = record
    return hook


def run(args) -> dict:
    import torch

    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.training.workflow import train

    torch.set_num_threads(args.threads)
    try:
        import numba
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover
        pass
    work = Path(tempfile.mkdtemp(prefix=f"bench-kalman-{args.case}-"))
    config = _prepare(args.case, work)
    overrides = {"kalman_blocks": args.blocks, "torch_threads": args.threads}
    if args.optimizer:
        overrides["optimizer"] = args.optimizer
        if args.optimizer == "lbfgs":
            overrides["learning_rate"] = 1.0
    if args.jacobian_mode is not None:
        overrides["jacobian_mode"] = args.jacobian_mode
    if args.tbs_force is not None:
        overrides["task_batch_size_force"] = args.tbs_force
    if args.warmup:
        overrides["kalman_warmup"] = args.warmup
    if args.tbs_energy is not None:
        overrides["task_batch_size_energy"] = args.tbs_energy
    holdout: list = []
    hook = None
    if args.case == "alho":
        hook = _holdout_hook(read_input_data(ROOT / "examples" / "alho" / "holdout.data"), holdout)
    load0 = os.getloadavg()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train(config, run_dir=work / "run", device=args.device, epochs=args.epochs, progress=False,
                    console=args.verbose, overrides=overrides, extra_outputs=hook)
    kal = _kalman_info(work / "run" / "train.log")
    out = {"case": args.case, "optimizer": args.optimizer or "input.nn", "threads": args.threads, "device": args.device, "blocks": args.blocks,
           "jacobian_mode": args.jacobian_mode, "tbs_force": args.tbs_force, "load_start": load0,
           "load_end": os.getloadavg(), "kalman": kal, "prepare_s": res.timings.get("prepare_s"),
           "epochs": [{"epoch": h["epoch"], "seconds": h["seconds"], "E_train": h["train"]["rmse_epa"],
                       "E_test": h["test"]["rmse_epa"], "F_train": h["train"]["rmse_f"],
                       "F_test": h["test"]["rmse_f"]} for h in res.history], "holdout": holdout}
    shutil.rmtree(work, ignore_errors=True)
    return out


def _kalman_info(log_path: Path) -> str:
    for line in log_path.read_text().splitlines():
        if line.startswith("Kalman filter:"):
            return line
    return ""


def report(out: dict) -> None:
    ep = out["epochs"]
    print(out["kalman"])
    print(f"threads {out['threads']}, device {out['device']}, load average at start {out['load_start'][0]:.2f}, "
          f"at end {out['load_end'][0]:.2f}; preparation {out['prepare_s']:.1f} s")
    secs = [e["seconds"] for e in ep[1:]]
    n_upd = _updates_per_epoch(out["kalman"])
    if out["case"] == "h2o":
        print("epoch   E train / n2p2     E test / n2p2     F train / n2p2     F test / n2p2   [Ha/atom, Ha/Bohr]  s")
        for e in ep:
            ref = N2P2_H2O_CURVE[e["epoch"]] if e["epoch"] < len(N2P2_H2O_CURVE) else (None,) * 5
            print(f"{e['epoch']:5d}  {e['E_train']:.2e}/{ref[1]:.2e}  {e['E_test']:.2e}/{ref[2]:.2e}  "
                  f"{e['F_train']:.2e}/{ref[3]:.2e}  {e['F_test']:.2e}/{ref[4]:.2e}  {e['seconds']:.2f}")
        if secs:
            print(f"wall time per epoch {np.mean(secs):.2f} s = {np.mean(secs) / N2P2_H2O_EPOCH_S:.2f} x n2p2's "
                  f"1-core {N2P2_H2O_EPOCH_S} s; {n_upd / np.mean(secs):.1f} updates/s")
        return
    print("epoch  cum_s   holdout E meV/atom (n2p2)   holdout F meV/A (n2p2, n2p2 cum wall s)")
    cum, reached = 0.0, None
    goal_e, goal_f = N2P2_ALHO_HOLDOUT[-1][3], N2P2_ALHO_HOLDOUT[-1][4]
    for e, h in zip(ep, out["holdout"]):
        cum += e["seconds"]
        ref = N2P2_ALHO_HOLDOUT[e["epoch"]] if e["epoch"] < len(N2P2_ALHO_HOLDOUT) else (None, None, None, None, None)
        r = f"({ref[3]:.2f})" if ref[3] is not None else ""
        rf = f"({ref[4]:.1f}, {ref[1]:.0f})" if ref[4] is not None else ""
        print(f"{e['epoch']:5d} {cum:7.0f}   {h['E_meV']:10.2f} {r:>12}   {h['F_meV']:10.1f} {rf}")
        if reached is None and h["E_meV"] <= goal_e and h["F_meV"] <= goal_f:
            reached = (e["epoch"], cum)
    n2p2_wall = N2P2_ALHO_HOLDOUT[-1][1]
    if reached:
        print(f"reached n2p2's epoch-8 held-out RMSE ({goal_e} meV/atom, {goal_f} meV/A) at epoch {reached[0]} after "
              f"{reached[1]:.0f} s = {reached[1] / n2p2_wall:.3f} x n2p2's {n2p2_wall:.0f} s wall "
              f"({reached[1] / N2P2_ALHO_HOLDOUT[-1][2]:.3f} x its {N2P2_ALHO_HOLDOUT[-1][2]} CPU s)")
    else:
        print(f"n2p2's epoch-8 held-out RMSE ({goal_e} meV/atom, {goal_f} meV/A) not reached in {cum:.0f} s")
    if secs:
        print(f"{np.mean(secs):.1f} s per epoch; {n_upd / np.mean(secs):.1f} updates/s")


def _updates_per_epoch(line: str) -> int:
    import re

    m = re.search(r"updates per epoch: (\d+) energy .*?\+ (\d+) force", line)
    return int(m.group(1)) + int(m.group(2)) if m else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=["h2o", "alho"])
    ap.add_argument("--epochs", type=int, default=None, help="default: input.nn's (h2o 20, alho 20)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--blocks", default="auto", choices=["auto", "none", "element", "layer"])
    ap.add_argument("--jacobian-mode", type=int, default=None)
    ap.add_argument("--tbs-force", type=int, default=None)
    ap.add_argument("--tbs-energy", type=int, default=None)
    ap.add_argument("--optimizer", help="override input.nn's optimizer (e.g. lbfgs: 20 full-batch iterations per epoch)")
    ap.add_argument("--warmup", type=int, default=0, help="hdnnp_kalman_warmup: L-BFGS epochs before the filter")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    out = run(args)
    report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
