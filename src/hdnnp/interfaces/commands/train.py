"""``hdnnp train``: train a potential (n2p2 ``nnp-train``), thin wrapper over ``hdnnp.training.workflow.train``."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("hdnnp")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a potential on energies and forces (writes an n2p2 potential directory)",
        description="Train an HDNNP from an n2p2 input.nn (+ input.data) or the prototype's control.in (+ .smf "
                    "files). The run directory gets input.nn, scaling.data, weights.XXX.data (best epoch), "
                    "learning-curve.out, loss.out, val_loss.out, plots, config.json and checkpoint.pt. "
                    "Data parallel: torchrun --nproc_per_node N -m hdnnp.cli train ...",
    )
    p.add_argument("config", nargs="?", help="n2p2 input.nn or prototype control.in (not needed with --resume)")
    p.add_argument("--data", help="n2p2 input.data (default: input.data next to input.nn, or control.in's "
                                  "atomic_data_path)")
    p.add_argument("-o", "--output", dest="run_dir", help="run directory (new or empty; default hdnnp-train-<time>)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default cpu)")
    p.add_argument("--epochs", type=int, help="number of epochs (with --resume: the new total)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    from hdnnp.training.config import add_cli_options

    add_cli_options(p)  # the keyword options (--optimizer, --learning-rate, ...) from training.config.KEYWORDS
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--stage", choices=("1", "2", "both"), default=None,
                   help="4G-HDNNP (nnp_generation 4), n2p2's two stages: 1 = chi networks and hardness on the "
                        "reference charges; 2 = short-range networks on energies and forces with chi and J fixed "
                        "(read from the directory of input.nn: weightse/hardness files); both = 1 into "
                        "RUN_DIR/stage-1, then 2 into RUN_DIR. --optimizer (or input.nn's hdnnp_optimizer) kalman "
                        "(n2p2's filter with the kalman_* keywords of input.nn; the default when input.nn has "
                        "updater_type 1), lbfgs (the default otherwise) or adam")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hdnnp.errors import HDNNPError
    from hdnnp.training.workflow import train

    if args.config is None and args.resume is None:
        raise HDNNPError("give a configuration (input.nn or control.in) or --resume RUN_DIR")
    from hdnnp.io.validation import check_device, check_finite_option

    check_device(args.device)
    check_finite_option("--learning-rate", args.learning_rate, positive=True)
    check_finite_option("--force-weight", args.force_weight, nonnegative=True)
    check_finite_option("--cache-memory-gb", args.cache_memory_gb, nonnegative=True)
    if args.stage is not None:
        return _run_fourg_stage(args)
    from hdnnp.training.config import cli_overrides

    overrides = cli_overrides(args)
    if args.resume is not None:
        given = [k for k, v in overrides.items() if v is not None]
        if given:
            raise HDNNPError(f"--resume continues a run with its own settings; only --epochs, --data and --device "
                             f"may be given (found {', '.join('--' + k.replace('_', '-') for k in given)})")
        if args.config is not None or args.run_dir is not None:
            raise HDNNPError("--resume RUN_DIR continues that run: give no CONFIG and no -o")
    train(config=args.config, data=args.data, run_dir=args.run_dir, device=args.device, epochs=args.epochs,
          resume=args.resume, overrides={k: v for k, v in overrides.items() if v is not None},
          progress=not args.no_progress)
    return 0


def _run_fourg_stage(args: argparse.Namespace) -> int:
    """``--stage 1|2|both``: 4G training (``hdnnp.training.fourg_stages``)."""
    from pathlib import Path

    from hdnnp.errors import HDNNPError
    from hdnnp.io.input_nn import Settings
    from hdnnp.training.fourg_stages import train_stage1, train_stage2

    if args.config is None or args.run_dir is None:
        raise HDNNPError("--stage needs an input.nn and -o RUN_DIR")
    data = args.data or str(Path(args.config).parent / "input.data")
    settings = Settings.read(args.config)
    epochs = args.epochs if args.epochs is not None else settings.get_int("epochs", 10)
    # --optimizer, else input.nn's hdnnp_optimizer, else n2p2's Kalman filter for an input.nn that asks for it
    # (updater_type 1; measured on H2O_RPBE-D3_4G: n2p2's accuracy or better in both stages, energies lower
    # and the run faster than with L-BFGS; README), else L-BFGS
    optimizer, why = args.optimizer, "--optimizer"
    if optimizer is None and "hdnnp_optimizer" in settings:
        optimizer, why = settings.get_str("hdnnp_optimizer").lower(), "input.nn hdnnp_optimizer"
    if optimizer is None:
        kalman = settings.get_int("updater_type") == 1
        optimizer, why = ("kalman", "input.nn updater_type 1") if kalman else ("lbfgs", "default")
    if optimizer not in ("lbfgs", "adam", "kalman"):
        where = f"{settings.path}:{settings.line('hdnnp_optimizer').lineno}: hdnnp_optimizer" \
            if why.startswith("input.nn") else "--stage"
        raise HDNNPError(f"{where}: the 4G stages train with lbfgs, adam or kalman, not {optimizer}")
    log.info("4G stages: optimizer %s (%s)", optimizer, why)
    kw = dict(epochs=epochs, optimizer=optimizer, learning_rate=args.learning_rate or 1e-3,
              seed=args.seed if args.seed is not None else 1)
    run = Path(args.run_dir)
    stage1_dir = Path(args.config).parent
    if args.stage in ("1", "both"):
        out = run / "stage-1" if args.stage == "both" else run
        r = train_stage1(args.config, data, out, **kw)
        log.info("stage 1 done in %.1f s: charge RMSE train %.4e test %.4e (e); potential in %s", r.wall_time_s,
                 r.curve[-1][1], r.curve[-1][2], out)
        stage1_dir = out
    if args.stage in ("2", "both"):
        r = train_stage2(stage1_dir, data, run, force_weight=args.force_weight, **kw)
        log.info("stage 2 done in %.1f s: RMSE E/atom train %.4e test %.4e, F train %.4e test %.4e; potential in %s",
                 r.wall_time_s, *r.curve[-1][1:], run)
    return 0
