"""``hdnnp demo [-o OUTDIR]``: the whole pipeline on the shipped Al/H/O example.

1. train a potential on ``examples/alho/input.data`` (GFN2-xTB frames) with ``examples/alho/input.nn``;
2. report validation RMSE and the error on the held-out frames (``holdout.data``);
3. run a short Langevin MD with the trained potential (from the first held-out frame), writing trajectory, thermo log and plots.
No network access is needed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path


log = logging.getLogger("hdnnp")

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "alho"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="train + evaluate + MD on the shipped Al/H/O example", description=__doc__)
    p.add_argument("-o", "--output", default="demo-run", help="output directory (new; default demo-run)")
    p.add_argument("--example", default=str(EXAMPLE), help="example directory (input.nn, input.data, holdout.data, start.xyz)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: input.nn's 'epochs')")
    p.add_argument("--md-steps", type=int, default=400, help="MD steps (0.5 fs each)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def holdout_errors(run_dir: Path, holdout: Path) -> dict:
    """RMSE and MAE of energy (meV/atom) and forces (meV/Å) on held-out frames (eV/Å data)."""
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.model.potential import Potential
    from hdnnp.training.metrics import reference_errors

    pot = Potential.from_n2p2(run_dir)
    frames = read_input_data(holdout)
    quiet = logging.getLogger("hdnnp").level
    logging.getLogger("hdnnp").setLevel(logging.ERROR)  # one summary line instead of per-frame warnings
    try:
        preds = [pot.compute(s, stress=False) for s in frames]
    finally:
        logging.getLogger("hdnnp").setLevel(quiet)
    m = reference_errors(frames, preds)
    return {"frames": len(frames), "extrapolation_warnings": sum(p.n_extrapolations for p in preds),
            "rmse_e_meV_atom": 1e3 * m["rmse_epa"], "rmse_f_meV_A": 1e3 * m["rmse_f"],
            "mae_e_meV_atom": 1e3 * m["mae_epa"], "mae_f_meV_A": 1e3 * m["mae_f"]}


def run(args) -> int:
    from hdnnp.cli import main as cli_main
    from hdnnp.errors import HDNNPError

    example = Path(args.example)
    for name in ("input.nn", "input.data", "holdout.data", "start.xyz"):
        if not (example / name).exists():
            raise HDNNPError(f"{example / name}: missing example file (is this a checkout of hdnnp with examples/?)")
    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        raise HDNNPError(f"{out} exists and is not empty; choose a new -o directory")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log.info("*** DEMO 1/3: TRAINING on %s ***", example / "input.data")
    argv = ["train", str(example / "input.nn"), "--data", str(example / "input.data"), "-o", str(out / "potential"),
            "--device", args.device]
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    rc = cli_main(argv)
    if rc:
        return rc
    t_train = time.perf_counter() - t0
    log.info("*** DEMO 2/3: HELD-OUT FRAMES %s ***", example / "holdout.data")
    err = holdout_errors(out / "potential", example / "holdout.data")
    log.info("held-out (%d frames, GFN2-xTB): energy RMSE %.2f meV/atom (MAE %.2f), force RMSE %.1f meV/Å (MAE %.1f); "
             "%d symmetry-function values outside the training range",
             err["frames"], err["rmse_e_meV_atom"], err["mae_e_meV_atom"], err["rmse_f_meV_A"], err["mae_f_meV_A"],
             err["extrapolation_warnings"])
    log.info("*** DEMO 3/3: MOLECULAR DYNAMICS (Langevin, 300 K, 0.5 fs, %d steps) ***", args.md_steps)
    rc = cli_main(["md", str(out / "potential"), str(example / "holdout.data"), "--steps", str(args.md_steps),
                   "--timestep-fs", "0.5", "--ensemble", "langevin", "--temperature-K", "300", "--seed", "1",
                   "-o", str(out / "md"), "--device", args.device])
    if rc:
        return rc
    import json

    (out / "holdout_errors.json").write_text(json.dumps(err, indent=2) + "\n")
    log.info("demo finished in %.0f s (training %.0f s); results in %s", time.perf_counter() - t0, t_train, out)
    return 0
