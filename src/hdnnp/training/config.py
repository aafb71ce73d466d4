"""The resolved training configuration: n2p2 training keywords, ``hdnnp_*`` keywords, overrides.

Precedence: command-line / keyword-argument overrides > ``hdnnp_*`` keywords in input.nn >
n2p2 training keywords > defaults. Every n2p2 training keyword that hdnnp does not
implement gets exactly one warning naming file:line and what happens instead.

n2p2 keywords used
------------------
``epochs``, ``test_fraction``, ``random_seed``, ``use_short_forces``, ``force_weight``,
``updater_type`` 0 (gradient descent; ``gradient_type`` 0 -> SGD with ``gradient_eta``,
1 -> Adam with ``gradient_adam_eta/beta1/beta2/epsilon``), ``updater_type`` 1 (n2p2's Kalman filter,
unless ``hdnnp_optimizer`` asks for another optimizer; its ``kalman_*``, ``update_strategy``, ``jacobian_mode``,
``*_fraction``, ``force_energy_ratio``,
``selection_mode*``, ``rmse_threshold*`` / ``short_*_error_threshold``, ``task_batch_size_*`` are read;
see hdnnp.training.kalman_training), ``normalize_data_set``, ``weights_min``/``weights_max`` (uniform
initial weights, then n2p2's Glorot-Bengio or, with ``nguyen_widrow_weights_short``, Nguyen-Widrow
scheme), ``use_old_weights_short`` (start from ``weights.XXX.data`` next to input.nn). An input.nn with
``updater_type`` gets n2p2's own train/test split (``hdnnp_split``).

``hdnnp_*`` keywords (hdnnp extensions; n2p2 warns about and ignores them)
-----------------------------------------------------------------------------
One table, :data:`KEYWORDS`, drives how these (and the n2p2 keywords written back) are read
(:func:`config_from_settings`), written into the run directory's input.nn
(:func:`config_to_keywords`), offered as ``hdnnp train`` options (:func:`add_cli_options`,
:func:`cli_overrides`) and documented (:func:`keyword_docs`, which the README's list follows).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

from hdnnp.errors import SettingsError
from hdnnp.io.input_nn import Settings

#: n2p2 keywords that define the potential (used by prediction; never warned about)
MODEL_KEYWORDS = {
    "number_of_elements", "elements", "atom_energy", "cutoff_type", "symfunction_short",
    "scale_symmetry_functions", "scale_min_short", "scale_max_short", "center_symmetry_functions",
    "scale_symmetry_functions_sigma", "global_hidden_layers_short", "global_nodes_short",
    "global_activation_short", "normalize_nodes", "mean_energy", "conv_length", "conv_energy",
    "nnp_type", "nn_type", "conv_charge",
}
#: n2p2 training keywords that hdnnp reads
USED_TRAINING_KEYWORDS = {
    "epochs", "test_fraction", "random_seed", "use_short_forces", "force_weight", "updater_type",
    "gradient_type", "gradient_eta", "gradient_adam_eta", "gradient_adam_beta1", "gradient_adam_beta2",
    "gradient_adam_epsilon", "weights_min", "weights_max", "use_old_weights_short",
    # Kalman filter (updater_type 1) and its update plan
    "kalman_type", "kalman_epsilon", "kalman_eta", "kalman_etatau", "kalman_etamax", "kalman_q0", "kalman_qtau",
    "kalman_qmin", "kalman_lambda_short", "kalman_nue_short", "update_strategy", "jacobian_mode",
    "energy_fraction", "short_energy_fraction", "force_fraction", "short_force_fraction", "force_energy_ratio",
    "selection_mode", "selection_mode_energy", "selection_mode_force", "rmse_threshold", "rmse_threshold_energy",
    "rmse_threshold_force", "short_energy_error_threshold", "short_force_error_threshold", "rmse_threshold_trials",
    "rmse_threshold_trials_energy", "rmse_threshold_trials_force", "task_batch_size_energy", "task_batch_size_force",
    "parallel_mode", "write_traincurve", "normalize_data_set", "nguyen_widrow_weights_short",
}
#: n2p2 training keywords without an hdnnp equivalent: each gets one warning (reason given)
UNSUPPORTED_TRAINING_KEYWORDS = {
    "rmse_threshold_charge": "charges are not trained",
    "rmse_threshold_trials_charge": "charges are not trained",
    "charge_fraction": "charges are not trained",
    "precondition_weights": "no weight preconditioning",
    "main_error_metric": "all metrics are written to learning-curve.out",
    "write_trainpoints": "parity plots are written at the end instead",
    "write_trainforces": "parity plots are written at the end instead",
    "write_weights_epoch": "the best weights and a checkpoint per epoch are written instead",
    "write_neuronstats": "no neuron statistics",
    "write_trainlog": "no per-update training log",
    "repeated_energy_update": "no repeated updates",
    "selection_mode_charge": "charges are not trained",
    "memorize_symfunc_results": "symmetry functions are always cached (within hdnnp_cache_memory_gb)",
}

#: what an input.nn with updater_type 1 (n2p2's Kalman filter) trains with unless hdnnp_optimizer says otherwise
KALMAN_INPUT_DEFAULT = "kalman"
OPTIMIZERS = ("adam", "sgd", "adagrad", "rmsprop", "lbfgs", "kalman")
SCHEDULES = ("none", "plateau", "exponential", "inverse_time")
INITS = ("torch", "uniform", "random_uniform", "random_normal", "glorot_uniform", "glorot_normal",
         "he_uniform", "he_normal", "lecun_uniform", "zeros", "ones", "n2p2_glorot", "n2p2_nguyen_widrow")


@dataclass(frozen=True)
class Keyword:
    """One training keyword of input.nn and everything derived from it.

    key : the input.nn keyword; attr : the ``TrainingConfig`` field; kind : "int", "float" or
    "word" (a string, lower-cased when read); doc : what it means (docs and CLI help);
    choices : allowed words; flag : the ``hdnnp train`` option (its dest is ``attr``), or None;
    write : when ``config_to_keywords`` writes it: "always", "kalman" (with the Kalman filter only),
    "set" (when not None).
    """

    key: str
    attr: str
    kind: str
    doc: str
    choices: tuple | None = None
    flag: str | None = None
    write: str = "always"

    def read(self, settings: Settings):
        if self.kind == "int":
            return settings.get_int(self.key)
        if self.kind == "float":
            return settings.get_float(self.key)
        return settings.get_str(self.key).lower()

    def text(self, value) -> str:
        return repr(value) if self.kind == "float" else str(value)


#: the training keywords written back into a run directory (in this order) and the hdnnp_* keywords;
#: the other n2p2 keywords (updater_type, kalman_*, ...) are read by :func:`config_from_settings`
KEYWORDS: tuple[Keyword, ...] = (
    Keyword("epochs", "epochs", "int", "number of epochs"),
    Keyword("test_fraction", "test_fraction", "float", "fraction of the structures held out for validation"),
    Keyword("random_seed", "seed", "int", "random seed (split, initial weights, batch order)", flag="--seed"),
    Keyword("force_weight", "force_weight", "float", "weight of the force term of the loss", flag="--force-weight"),
    Keyword("hdnnp_optimizer", "optimizer", "word", "optimizer (kalman: n2p2's Kalman filter, kalman_* keywords)",
            OPTIMIZERS, "--optimizer"),
    Keyword("hdnnp_split", "split", "word", "train/validation split: hdnnp's or n2p2's (nnp-train's)",
            ("hdnnp", "n2p2")),
    Keyword("hdnnp_learning_rate", "learning_rate", "float", "learning rate", flag="--learning-rate"),
    Keyword("hdnnp_epsilon", "epsilon", "float", "Adam's epsilon"),
    Keyword("hdnnp_batch_size", "batch_size", "int", "structures per optimizer step", flag="--batch-size"),
    Keyword("hdnnp_lr_schedule", "lr_schedule", "word", "learning-rate schedule", SCHEDULES),
    Keyword("hdnnp_lr_decay", "lr_decay", "float",
            "exponential: factor per epoch; inverse_time: k in lr/(1 + k step)"),
    Keyword("hdnnp_plateau_factor", "plateau_factor", "float", "plateau schedule: factor on the learning rate"),
    Keyword("hdnnp_plateau_patience", "plateau_patience", "int", "plateau schedule: epochs without improvement"),
    Keyword("hdnnp_min_lr", "min_lr", "float", "lowest learning rate of a schedule"),
    Keyword("hdnnp_early_stopping", "early_stopping", "int", "patience in epochs (0 = off)"),
    Keyword("hdnnp_weight_init", "weight_init", "word", "weight initialisation (Keras names of the prototype)", INITS),
    Keyword("hdnnp_bias_init", "bias_init", "word", "bias initialisation (Keras names of the prototype)", INITS),
    Keyword("hdnnp_lbfgs_iterations", "lbfgs_iterations", "int", "L-BFGS iterations per epoch"),
    Keyword("hdnnp_lbfgs_history", "lbfgs_history", "int", "L-BFGS history size"),
    Keyword("hdnnp_cache_dtype", "cache_dtype", "word", "storage type of cached derivatives", ("float64", "float32"),
            "--cache-dtype"),
    Keyword("hdnnp_checkpoint_interval", "checkpoint_interval", "int", "epochs between checkpoints"),
    Keyword("hdnnp_torch_threads", "torch_threads", "int",
            "threads of torch's CPU ops (default 1: the per-atom networks are small; 0 = torch's default; the numba "
            "kernels use all cores of the process either way)"),
    Keyword("hdnnp_kalman_blocks", "kalman_blocks", "word", "Kalman filter: P block-diagonal per element or layer",
            ("auto", "none", "element", "layer"), write="kalman"),
    Keyword("hdnnp_kalman_streams", "kalman_streams", "int", "Kalman filter: streams per process", write="kalman"),
    Keyword("hdnnp_kalman_warmup", "kalman_warmup", "int", "L-BFGS epochs before the Kalman filter", write="kalman"),
    Keyword("hdnnp_clip_value", "clip_value", "float", "clip gradients to [-v, v] (<= 0: off)", write="set"),
    Keyword("hdnnp_cache_memory_gb", "cache_memory_gb", "float",
            "memory for cached symmetry-function derivatives (default: half the available memory)",
            flag="--cache-memory-gb", write="set"),
)
_N2P2_ROWS = 4  # KEYWORDS[:4] are n2p2's own keywords, read with the other n2p2 keywords


def keyword_docs() -> str:
    """The keyword list (markdown), from :data:`KEYWORDS`."""
    out = []
    for kw in KEYWORDS:
        extra = f" ({'|'.join(kw.choices)})" if kw.choices else ""
        flag = f"; `hdnnp train {kw.flag}`" if kw.flag else ""
        out.append(f"- `{kw.key}` {kw.kind}{extra}: {kw.doc}{flag}")
    return "\n".join(out)


def add_cli_options(parser) -> None:
    """The ``hdnnp train`` options of the keywords that have one (dest: the config field)."""
    for kw in KEYWORDS:
        if kw.flag is None:
            continue
        if kw.choices:
            parser.add_argument(kw.flag, dest=kw.attr, choices=list(kw.choices), help=f"{kw.doc} ({kw.key})")
        else:
            parser.add_argument(kw.flag, dest=kw.attr, type=int if kw.kind == "int" else float,
                                help=f"{kw.doc} ({kw.key})")


def cli_overrides(args) -> dict:
    """{config field: value} of the keyword options given on the command line (None: not given)."""
    return {kw.attr: getattr(args, kw.attr) for kw in KEYWORDS if kw.flag is not None}


@dataclass
class TrainingConfig:
    """Everything that controls a training run (units: the data's, losses in normalised units)."""

    epochs: int = 100
    test_fraction: float = 0.1
    seed: int = 1
    use_forces: bool = True
    force_weight: float = 1.0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    epsilon: float = 1e-8
    batch_size: int = 32
    lr_schedule: str = "plateau"
    lr_decay: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 10
    min_lr: float = 1e-7
    early_stopping: int = 50
    clip_value: float | None = None
    weight_init: str = "torch"
    bias_init: str = "torch"
    weights_min: float = -1.0
    weights_max: float = 1.0
    lbfgs_iterations: int = 20
    lbfgs_history: int = 50
    cache_memory_gb: float | None = None
    cache_dtype: str = "float64"
    checkpoint_interval: int = 1
    torch_threads: int = 1
    use_old_weights: bool = False
    device: str = "cpu"
    dtype: str = "float64"
    # Kalman filter (optimizer "kalman", n2p2 updater_type 1); see hdnnp.training.kalman
    split: str = "hdnnp"
    normalize: bool = False
    kalman_type: int = 0
    kalman_epsilon: float = 0.01
    kalman_q0: float = 0.01
    kalman_qtau: float = 2.302
    kalman_qmin: float = 1e-6
    kalman_eta: float = 0.01
    kalman_etatau: float | None = 2.302
    kalman_etamax: float = 1.0
    kalman_lambda: float = 0.99
    kalman_nu: float = 0.99887
    update_strategy: int = 0
    kalman_blocks: str = "auto"
    kalman_streams: int = 1
    kalman_warmup: int = 0
    jacobian_mode: int = 1
    energy_fraction: float = 1.0
    force_fraction: float = 0.02
    force_energy_ratio: float | None = None
    selection_mode_energy: list = field(default_factory=lambda: [0])
    selection_mode_force: list = field(default_factory=lambda: [0])
    rmse_threshold_energy: float = 0.0
    rmse_threshold_force: float = 0.0
    rmse_threshold_trials_energy: int = 1
    rmse_threshold_trials_force: int = 1
    task_batch_size_energy: int = 1
    task_batch_size_force: int = 1
    sources: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingConfig":
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        def bad(name, msg):
            src = self.sources.get(name, name)
            raise SettingsError(f"{src}: {msg}")

        if self.epochs < 0:
            bad("epochs", f"epochs must be >= 0, found {self.epochs}")
        if not 0.0 <= self.test_fraction < 1.0:
            bad("test_fraction", f"test_fraction must be in [0, 1), found {self.test_fraction}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"optimizer {self.optimizer!r} unknown; expected one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in SCHEDULES:
            bad("lr_schedule", f"lr schedule {self.lr_schedule!r} unknown; expected one of {', '.join(SCHEDULES)}")
        if self.learning_rate <= 0.0:
            bad("learning_rate", f"learning rate must be > 0, found {self.learning_rate}")
        if self.batch_size < 1:
            bad("batch_size", f"batch size must be >= 1, found {self.batch_size}")
        if self.force_weight < 0.0:
            bad("force_weight", f"force_weight must be >= 0, found {self.force_weight}")
        if self.cache_dtype not in ("float64", "float32"):
            bad("cache_dtype", f"cache dtype must be float64 or float32, found {self.cache_dtype!r}")
        if self.dtype not in ("float64", "float32"):
            bad("dtype", f"dtype must be float64 or float32, found {self.dtype!r}")
        for name in ("weight_init", "bias_init"):
            if getattr(self, name) not in INITS:
                bad(name, f"{name} {getattr(self, name)!r} unknown; expected one of {', '.join(INITS)}")
        if self.split not in ("hdnnp", "n2p2"):
            bad("split", f"hdnnp_split must be hdnnp or n2p2, found {self.split!r}")
        if self.optimizer == "kalman":
            self._validate_kalman(bad)
        if self.weights_min >= self.weights_max:
            bad("weights_min", f"weights_min ({self.weights_min}) must be below weights_max ({self.weights_max})")


def _validate_kalman(self, bad) -> None:
    if self.kalman_type not in (0, 1):
        bad("kalman_type", f"kalman_type must be 0 (standard) or 1 (fading memory), found {self.kalman_type}")
    if self.update_strategy not in (0, 1):
        bad("update_strategy", f"update_strategy must be 0 (combined) or 1 (per element), found {self.update_strategy}")
    if self.kalman_blocks not in ("auto", "none", "element", "layer"):
        bad("kalman_blocks", f"hdnnp_kalman_blocks must be auto, none, element or layer, found {self.kalman_blocks!r}")
    if self.kalman_streams < 1:
        bad("kalman_streams", f"hdnnp_kalman_streams must be >= 1, found {self.kalman_streams}")
    if self.jacobian_mode not in (0, 1, 2):
        bad("jacobian_mode", f"jacobian_mode must be 0, 1 or 2, found {self.jacobian_mode}")
    for name in ("kalman_epsilon", "kalman_eta"):
        if getattr(self, name) <= 0.0:
            bad(name, f"{name} must be > 0, found {getattr(self, name)}")
    for name in ("task_batch_size_energy", "task_batch_size_force"):
        if getattr(self, name) < 0:
            bad(name, f"{name} must be >= 0 (0 = the whole training set), found {getattr(self, name)}")
    for name in ("energy_fraction", "force_fraction"):
        if getattr(self, name) < 0.0:
            bad(name, f"{name} must be >= 0, found {getattr(self, name)}")
    for name in ("selection_mode_energy", "selection_mode_force"):
        modes = getattr(self, name)[0::2] if len(getattr(self, name)) % 2 == 1 else None
        if modes is None or any(m not in (0, 1, 2) for m in modes):
            bad(name, f"selection_mode: expected MODE [EPOCH MODE ...] with modes 0 (random), 1 (sort), "
                      f"2 (threshold), found {getattr(self, name)}")


TrainingConfig._validate_kalman = _validate_kalman


def _where(settings: Settings, key: str) -> str:
    line = settings.line(key)
    return f"{settings.path}:{line.lineno}" if line is not None and line.lineno else f"{settings.path} ({key})"


def config_from_settings(settings: Settings, overrides: dict | None = None, warn: bool = True) -> TrainingConfig:
    """Resolve the training configuration from input.nn keywords and explicit overrides.

    Warnings (``warnings.warn``, category ``UserWarning``) are issued once per unsupported
    or unknown keyword.
    """
    cfg = TrainingConfig()
    src = cfg.sources

    def take(attr, key, conv):
        if key in settings:
            line = settings.line(key)
            try:
                value = conv(key)
            except Exception as exc:  # noqa: BLE001 - re-raised with location
                raise settings.error(line, f"{key}: {exc}") from None
            setattr(cfg, attr, value)
            src[attr] = f"{_where(settings, key)} {key}"

    gf = settings.get_float
    for kw in KEYWORDS[:_N2P2_ROWS]:
        take(kw.attr, kw.key, lambda k, kw=kw: kw.read(settings))
    cfg.use_forces = settings.get_bool("use_short_forces")
    src["use_forces"] = f"{_where(settings, 'use_short_forces')} use_short_forces" if "use_short_forces" in settings \
        else "use_short_forces absent"
    take("weights_min", "weights_min", gf)
    take("weights_max", "weights_max", gf)
    if "weights_min" in settings or "weights_max" in settings:
        # n2p2: uniform in [weights_min, weights_max), then Nguyen-Widrow if asked, else Glorot-Bengio on the tanh
        # layers with zero biases (Training::randomizeNeuralNetworkWeights)
        cfg.weight_init = cfg.bias_init = ("n2p2_nguyen_widrow" if "nguyen_widrow_weights_short" in settings
                                           else "n2p2_glorot")
    cfg.use_old_weights = settings.get_bool("use_old_weights_short")

    updater = settings.get_int("updater_type")
    if updater is not None:  # an input.nn written for nnp-train: the same train/test split as n2p2
        cfg.split = "n2p2"
    if updater is not None:
        if updater == 0:
            gtype = settings.get_int("gradient_type", 0)
            if gtype == 0:
                cfg.optimizer = "sgd"
                take("learning_rate", "gradient_eta", gf)
            elif gtype == 1:
                cfg.optimizer = "adam"
                take("learning_rate", "gradient_adam_eta", gf)
                b1 = settings.get_float("gradient_adam_beta1", 0.9)
                b2 = settings.get_float("gradient_adam_beta2", 0.999)
                cfg.betas = (b1, b2)
                take("epsilon", "gradient_adam_epsilon", gf)
            else:
                raise settings.error(settings.line("gradient_type"), f"gradient_type must be 0 (fixed step) or 1 "
                                                                     f"(Adam), found {gtype}")
            src["optimizer"] = f"{_where(settings, 'updater_type')} updater_type 0"
        elif updater == 1:
            # n2p2's Kalman filter (README, bench/bench_kalman.py: the same learning curve per epoch as nnp-train on
            # examples/alho and H2O); hdnnp_optimizer lbfgs trains with full-batch L-BFGS instead
            cfg.optimizer = KALMAN_INPUT_DEFAULT
            src["optimizer"] = f"{_where(settings, 'updater_type')} updater_type 1"
        else:
            raise settings.error(settings.line("updater_type"), f"updater_type must be 0 (gradient descent) or 1 "
                                                                f"(Kalman filter), found {updater}")

    _take_kalman(settings, cfg, take)
    cfg.normalize = "normalize_data_set" in settings

    # hdnnp extensions (after the n2p2 keywords: they take precedence)
    for kw in KEYWORDS[_N2P2_ROWS:]:
        take(kw.attr, kw.key, lambda k, kw=kw: kw.read(settings))
    if cfg.clip_value is not None and cfg.clip_value <= 0.0:
        cfg.clip_value = None

    if warn:
        _warn_unused(settings)

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if not hasattr(cfg, key):
            raise SettingsError(f"unknown training option {key!r}")
        setattr(cfg, key, value)
        src[key] = "command line / argument"
    cfg.validate()
    return cfg


def _warn_unused(settings: Settings) -> None:
    """One warning per n2p2 training keyword hdnnp does not implement, or unknown keyword."""
    seen = set()
    for line in settings.lines:
        k = line.key
        if k in seen or k in MODEL_KEYWORDS or k in USED_TRAINING_KEYWORDS or k.startswith("hdnnp_"):
            continue
        seen.add(k)
        where = f"{settings.path}:{line.lineno}" if line.lineno else str(settings.path)
        if k in UNSUPPORTED_TRAINING_KEYWORDS:
            warnings.warn(f"{where}: training keyword '{k}' is not supported by hdnnp train and is ignored "
                          f"({UNSUPPORTED_TRAINING_KEYWORDS[k]})", stacklevel=3)
        else:
            warnings.warn(f"{where}: unknown keyword '{k}' ignored", stacklevel=3)


def _take_kalman(settings: Settings, cfg: TrainingConfig, take) -> None:
    """The kalman_* keywords and n2p2's update plan (fractions, selection, task batches)."""
    gi, gf = settings.get_int, settings.get_float
    take("kalman_type", "kalman_type", gi)
    for attr, key in (("kalman_epsilon", "kalman_epsilon"), ("kalman_q0", "kalman_q0"), ("kalman_qtau", "kalman_qtau"),
                      ("kalman_qmin", "kalman_qmin"), ("kalman_eta", "kalman_eta"), ("kalman_etamax", "kalman_etamax"),
                      ("kalman_lambda", "kalman_lambda_short"), ("kalman_nu", "kalman_nue_short")):
        take(attr, key, gf)
    # n2p2: eta grows only if both kalman_etatau and kalman_etamax are given
    if "kalman_etatau" in settings and "kalman_etamax" in settings:
        take("kalman_etatau", "kalman_etatau", gf)
    elif "kalman_eta" in settings:
        cfg.kalman_etatau = None
    take("update_strategy", "update_strategy", gi)
    take("jacobian_mode", "jacobian_mode", gi)
    for attr, keys in (("energy_fraction", ("short_energy_fraction", "energy_fraction")),
                       ("force_fraction", ("short_force_fraction", "force_fraction")),
                       ("rmse_threshold_energy", ("rmse_threshold", "short_energy_error_threshold",
                                                  "rmse_threshold_energy")),
                       ("rmse_threshold_force", ("rmse_threshold", "short_force_error_threshold",
                                                 "rmse_threshold_force"))):
        for key in keys:  # later (more specific) keywords win
            take(attr, key, gf)
    take("force_energy_ratio", "force_energy_ratio", gf)
    for prop in ("energy", "force"):
        take(f"rmse_threshold_trials_{prop}", "rmse_threshold_trials", gi)
        take(f"rmse_threshold_trials_{prop}", f"rmse_threshold_trials_{prop}", gi)
        take(f"task_batch_size_{prop}", f"task_batch_size_{prop}", gi)
        for key in ("selection_mode", f"selection_mode_{prop}"):
            take(f"selection_mode_{prop}", key, lambda k: [int(v) for v in settings.line(k).values])


def config_to_keywords(cfg: TrainingConfig) -> list[tuple[str, list[str]]]:
    """The input.nn lines that reproduce ``cfg`` (written into the run directory's input.nn), from
    :data:`KEYWORDS`."""
    out = []
    for kw in KEYWORDS:
        value = getattr(cfg, kw.attr)
        if (kw.write == "kalman" and cfg.optimizer != "kalman") or (kw.write == "set" and value is None):
            continue
        out.append((kw.key, [kw.text(value)]))
    return out
