"""``hdnnp train`` as a workflow (library entry point :func:`train`): inputs, run directory, the
Trainer, resume from a checkpoint, the n2p2 potential it leaves (:func:`load_run`)."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch
from ase.data import atomic_numbers

from hdnnp.errors import HDNNPError, SettingsError
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.io.potential_directory import PotentialDirectory
from hdnnp.model.potential import Potential
from hdnnp.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, package_versions
from hdnnp.training.config import TrainingConfig, config_from_settings
from hdnnp.training.dataset import Split, check_data, split_data
from hdnnp.training.distributed import Distributed
from hdnnp.training.initialization import initialize_weights
from hdnnp.training.inputs import read_inputs
from hdnnp.training.statistics import NormalizationStats
from hdnnp.training.trainer import Trainer, TrainResult, log_section, log_section_end

log = logging.getLogger("hdnnp.train")


# ---------------------------------------------------------------------------- workflow
def _check_run_dir(run_dir: Path) -> str | None:
    if run_dir.exists() and not run_dir.is_dir():
        return f"{run_dir} exists and is not a directory"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        return (f"run directory {run_dir} already exists and is not empty; choose a new one with -o, or continue "
                f"that run with --resume {run_dir}")
    return None


def _default_run_dir() -> Path:
    return Path(f"hdnnp-train-{time.strftime('%Y%m%d-%H%M%S')}")


class _LogToFile:
    """Attach a train.log file handler (and a console handler if logging is unconfigured)."""

    def __init__(self, path: Path | None, console: bool):
        self.handlers = []
        if path is not None:
            fh = logging.FileHandler(path, encoding="utf-8")
            fh.setFormatter(logging.Formatter("%(message)s"))
            self.handlers.append(fh)
        if console and not logging.getLogger().handlers:
            sh = logging.StreamHandler(sys.stdout)
            sh.setFormatter(logging.Formatter("%(message)s"))
            self.handlers.append(sh)

    def __enter__(self):
        for h in self.handlers:
            log.addHandler(h)
        self.old_level = log.level
        log.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        for h in self.handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(self.old_level)


def train(config: str | Path | None = None, data: str | Path | None = None, run_dir: str | Path | None = None,
          device: str = "cpu", epochs: int | None = None, resume: str | Path | None = None,
          overrides: dict | None = None, progress: bool = True, stop_after: int | None = None,
          console: bool = True, force_backend: str | None = None, extra_outputs=None,
          allow_existing: bool = False) -> TrainResult:
    """Train a potential and write an n2p2-compatible run directory.

    Parameters
    ----------
    config : n2p2 ``input.nn`` or the prototype's ``control.in`` (not needed with ``resume``).
    data : n2p2 ``input.data`` (default: ``input.data`` next to input.nn, or control.in's
        ``atomic_data_path``).
    run_dir : output directory; must be new or empty (default ``hdnnp-train-<date>-<time>``).
    device : "cpu" or "cuda[:n]".
    epochs : number of epochs (overrides the configuration; with ``resume``: the new total).
    resume : a run directory with a checkpoint to continue from (bit-for-bit the same as an
        uninterrupted run).
    overrides : TrainingConfig fields to override (e.g. ``{"learning_rate": 1e-3}``).
    stop_after : stop after this epoch as if interrupted (tests of ``resume``).
    extra_outputs : callable(trainer) run on rank 0 after the run directory exists
        (the prototype writes its ``function.data`` this way).
    allow_existing : accept a non-empty run_dir (the caller has removed what it replaces).
    """
    t0 = time.perf_counter()
    overrides = dict(overrides or {})
    if device and device != "cpu":
        overrides["device"] = device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HDNNPError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__})")
    dist = Distributed(overrides.get("device", "cpu"))
    if dist.world > 1 and device.startswith("cuda"):
        torch.cuda.set_device(dist.local_rank)
        overrides["device"] = f"cuda:{dist.local_rank}"
    try:
        if resume is not None:
            result = _resume(Path(resume), data, device, epochs, overrides, dist, progress, stop_after, console,
                             force_backend)
            result.wall_time_s = time.perf_counter() - t0
            return result
        result = _fresh_run(config, data, run_dir, epochs, overrides, dist, progress, stop_after, console,
                            force_backend, extra_outputs, allow_existing)
        result.wall_time_s = time.perf_counter() - t0
        result.timings["total_s"] = result.wall_time_s
        return result
    finally:
        dist.close()


def _resume(run_dir: Path, data, device: str, epochs: int | None, overrides: dict, dist: Distributed,
            progress: bool, stop_after: int | None, console: bool, force_backend: str | None) -> TrainResult:
    """Continue the run in ``run_dir`` from its checkpoint (same split, scaling, normalisation)."""
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if state["world_size"] != dist.world:
        warnings.warn(f"{run_dir}: checkpoint written by {state['world_size']} process(es), resumed with "
                      f"{dist.world}: the result will differ from an uninterrupted run in the last digits",
                      stacklevel=3)
    settings = PotentialDirectory(run_dir).read_settings()
    cfg = TrainingConfig.from_dict(state["config"])
    if epochs is not None:
        cfg.epochs = epochs
    cfg.device = overrides.get("device", device)  # a run may continue on another device
    data_path = Path(data) if data is not None else Path(state["data_path"])
    structures = read_input_data(data_path)
    split = Split(list(state["split"]["train"]), list(state["split"]["test"]))
    with _LogToFile(run_dir / "train.log" if dist.main else None, console and dist.main):
        log.info("\n*** RESUMING %s after epoch %d ***", run_dir, state["epoch"])
        trainer = Trainer(settings, cfg, structures, data_path, run_dir, dist, progress, force_backend)
        sf_set = Potential.from_settings(settings).sf_set
        stats = PotentialDirectory(run_dir).read_scaling([sf_set.n_sf[e] for e in sf_set.elements])
        trainer.prepare(split=split, scaling_stats=stats)
        trainer.init_training(state)
        return trainer.run(stop_after=stop_after)


def _configuration(config, data, epochs: int | None, overrides: dict):
    """(inputs, validated TrainingConfig, warnings) from input.nn/control.in and the overrides."""
    if config is None:
        raise HDNNPError("no configuration given (an input.nn or control.in), and no --resume")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inputs = read_inputs(config, data)
        if inputs.settings.nnp_generation() == 4:  # 4G training: not implemented yet
            raise HDNNPError(f"{inputs.settings.path}: a 4G-HDNNP (nnp_generation 4) is trained in n2p2's "
                             "two stages: 'hdnnp train input.nn --stage 1|2|both -o RUN_DIR'")
        cfg = config_from_settings(inputs.settings, overrides=None)
    if epochs is not None:
        overrides["epochs"] = epochs
    for k, v in overrides.items():
        if v is not None:
            if not hasattr(cfg, k):
                raise SettingsError(f"unknown training option {k!r}")
            setattr(cfg, k, v)
            cfg.sources[k] = "command line / argument"
    lr_src = cfg.sources.get("learning_rate", "")
    if cfg.optimizer == "lbfgs" and "hdnnp_learning_rate" not in lr_src and "command line" not in lr_src:
        cfg.learning_rate = 1.0  # L-BFGS' step is scaled by its line search; n2p2's Adam eta does not apply
    cfg.validate()
    return inputs, cfg, [str(w.message) for w in caught] + inputs.warnings


def _fresh_run(config, data, run_dir, epochs: int | None, overrides: dict, dist: Distributed, progress: bool,
               stop_after: int | None, console: bool, force_backend: str | None, extra_outputs,
               allow_existing: bool) -> TrainResult:
    """A new run: configuration, data checks and split, the run directory, the Trainer."""
    inputs, cfg, warn_msgs = _configuration(config, data, epochs, overrides)
    run_dir = Path(run_dir) if run_dir is not None else _default_run_dir()
    dist.check(_check_run_dir(run_dir) if dist.main and not allow_existing else None)
    structures = read_input_data(inputs.data_path)
    settings = inputs.settings
    # bad data is reported before anything is written
    elements = sorted(settings.require("elements").values, key=lambda e: atomic_numbers.get(e, 0))
    check_data(structures, elements, cfg.use_forces, str(inputs.data_path))
    split = split_data(structures, cfg.test_fraction, cfg.seed, str(inputs.data_path), cfg.split)
    created = not run_dir.exists()
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    with _LogToFile(run_dir / "train.log" if dist.main else None, console and dist.main):
        log_section("SETUP: SETTINGS")
        log.info("Configuration: %s%s", inputs.config_path, " (prototype control.in, converted to n2p2 "
                 "settings)" if inputs.prototype else "")
        for msg in warn_msgs:  # one line each (train.log and the console), not also a UserWarning
            log.info("WARNING: %s", msg)
        if cfg.sources.get("optimizer", "").endswith("updater_type 1") and cfg.optimizer == "kalman":
            log.info("updater_type 1: n2p2's Kalman filter (add 'hdnnp_optimizer lbfgs' for full-batch L-BFGS, "
                     "often faster on small data sets: README, Training)")
        log_section_end()
        trainer = Trainer(settings, cfg, structures, inputs.data_path, run_dir, dist, progress, force_backend)
        try:
            trainer.prepare(split=split)
        except BaseException:
            # nothing trained yet: leave no half-made run directory behind
            if dist.main and created:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        if cfg.use_old_weights:
            for e in trainer.elements:
                net = trainer.pot.networks[e]
                net.set_weights(PotentialDirectory(inputs.config_path.parent).read_weights(e, net.layer_sizes))
        else:
            initialize_weights(trainer.pot, cfg, cfg.seed)
        if dist.main:
            _write_run_directory(trainer, inputs, warn_msgs, extra_outputs)
        trainer.init_training(None)
        return trainer.run(stop_after=stop_after)


def _write_run_directory(trainer: Trainer, inputs, warn_msgs: list[str], extra_outputs) -> None:
    """input.nn (the user's lines + normalisation + resolved training keywords, ``Trainer.settings``),
    scaling.data and config.json of a new run; then ``extra_outputs``."""
    run_dir, cfg = trainer.run_dir, trainer.cfg
    PotentialDirectory(run_dir).write_settings(trainer.settings)
    PotentialDirectory(run_dir).write_scaling(trainer.scaling_stats)
    meta = {
        "config": cfg.to_dict(), "config_file": str(inputs.config_path),
        "data_file": str(inputs.data_path), "prototype": inputs.prototype,
        "normalization": {"mean_energy": trainer.pot.normalization.mean_energy,
                          "conv_energy": trainer.ce, "conv_length": trainer.cl,
                          "computed": trainer.norm_stats is not None},
        "split": {"train": len(trainer.split.train), "test": len(trainer.split.test)},
        "processes": trainer.dist.world, "torch_threads": cfg.torch_threads or torch.get_num_threads(),
        "command": sys.argv, "versions": dict(package_versions()), "warnings": warn_msgs,
    }
    (run_dir / "config.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    if extra_outputs is not None:
        extra_outputs(trainer)


def load_run(run_dir: str | Path) -> Potential:
    """The trained potential of a run directory (``Potential.from_n2p2``)."""
    return Potential.from_n2p2(run_dir)


__all__ = ["train", "Trainer", "TrainResult", "read_inputs", "NormalizationStats", "load_run"]
