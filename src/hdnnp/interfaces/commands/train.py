"""``hdnnp train``: train a potential (n2p2 ``nnp-train``), thin wrapper over ``hdnnp.training.trainer.train``."""

from __future__ import annotations

import argparse


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
    p.add_argument("--optimizer", choices=["adam", "sgd", "adagrad", "rmsprop", "lbfgs", "kalman"],
                   help="override the optimizer (hdnnp_optimizer; kalman: n2p2's Kalman filter, kalman_* keywords)")
    p.add_argument("--learning-rate", type=float, help="override the learning rate")
    p.add_argument("--batch-size", type=int, help="structures per optimizer step")
    p.add_argument("--force-weight", type=float, help="weight of the force term of the loss")
    p.add_argument("--seed", type=int, help="random seed (split, initial weights, batch order)")
    p.add_argument("--cache-memory-gb", type=float, help="memory for cached symmetry-function derivatives "
                                                          "(default: half the available memory)")
    p.add_argument("--cache-dtype", choices=["float64", "float32"], help="storage type of cached derivatives")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hdnnp.errors import HDNNPError
    from hdnnp.training.trainer import train

    if args.config is None and args.resume is None:
        raise HDNNPError("give a configuration (input.nn or control.in) or --resume RUN_DIR")
    overrides = {
        "optimizer": args.optimizer, "learning_rate": args.learning_rate, "batch_size": args.batch_size,
        "force_weight": args.force_weight, "seed": args.seed, "cache_memory_gb": args.cache_memory_gb,
        "cache_dtype": args.cache_dtype,
    }
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
