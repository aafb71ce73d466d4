"""The original prototype's input files: ``control.in`` and one ``<El>-SymFunc.smf`` per element (SPEC §4).

``control.in``: ``key value`` lines (``#`` starts a comment), lists written as
``[15, 15, 1]``, and one ``atom_type_N Symbol Z mass file.smf`` line per element.
``.smf``: a ``# Type G2`` block of rows ``neighbour eta R_s R_c`` and a ``# Type G3`` block of
rows ``neighbour_j neighbour_k eta lambda zeta R_c [R_s]`` (η in length⁻², R in length units of
the data, Å for the prototype).

:func:`control_to_settings` turns both into an n2p2 :class:`~hdnnp.io.input_nn.Settings` (the
prototype's choices mapped onto n2p2 keywords plus ``hdnnp_*`` training keywords), so that
everything downstream, and the run directory's ``input.nn``, is plain n2p2.

Mapping (prototype -> n2p2):

* ``cut_function_type`` 1 (½(cos(πr/r_c)+1)) -> ``cutoff_type 1``; 2 (tanh³(1-r/r_c)) -> ``cutoff_type 2``.
* G2 -> type 2; G3 -> type 9 with ``angular_sf wide`` (no r_jk terms) or type 3 with ``narrow``.
* ``activation_function`` for every hidden layer, identity output: ``sigmoid`` -> ``s``,
  ``hyperbolic_tangent`` -> ``t`` (plain tanh; the prototype used 1.7159 tanh(2x/3)),
  ``hyperbolic_tangent_with_linear_twist`` -> ``T`` (tanh(x) + 0.1 x, see
  ``hdnnp.model.activations.TWIST_A``), ``identity`` -> ``l``.
* Symmetry-function scaling as the prototype did it, (G - Gmean)/(Gmax - Gmin):
  ``scale_symmetry_functions`` + ``center_symmetry_functions`` with S_min 0, S_max 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ase.data import atomic_numbers

from hdnnp.errors import ReadError
from hdnnp.io.input_nn import Settings
from hdnnp.io.validation import read_text

#: prototype activation name -> n2p2 letter
ACTIVATION_LETTERS = {
    "sigmoid": "s",
    "hyperbolic_tangent": "t",
    "hyperbolic_tangent_with_linear_twist": "T",
    "identity": "l",
}
#: prototype ``cut_function_type`` -> n2p2 ``cutoff_type``
CUTOFF_TYPES = {1: 1, 2: 2}
#: prototype optimizer names (Keras spelling) -> hdnnp optimizer keyword
OPTIMIZERS = {"adagrad": "adagrad", "adam": "adam", "sgd": "sgd", "rmsprop": "rmsprop", "lbfgs": "lbfgs"}
#: keys the prototype's control.in may contain (training and MD); others get a warning
KNOWN_KEYS = {
    "cut_function_type", "angular_sf", "atomic_data_path", "length_unit", "energy_unit",
    "number_of_atom_types", "neurons_per_layer", "activation_function", "weight_initialization",
    "bias_initialization", "random_seed", "optimization_method", "learning_rate", "epsilon",
    "decay_value", "clipvalue", "loss_function", "number_of_epochs", "minibatch_size",
    "validation_fraction", "model_path", "iterations", "timestep",
    # hdnnp extensions (not in the prototype)
    "use_forces", "force_weight", "output_path", "temperature", "write_every",
}


@dataclass
class ControlValue:
    """One ``key value...`` line of control.in."""

    key: str
    values: list[str]
    lineno: int


@dataclass
class AtomType:
    """``atom_type_N Symbol Z mass file.smf``."""

    symbol: str
    z: int
    mass: float
    smf: Path
    lineno: int


@dataclass
class SymFuncRow:
    """One row of an ``.smf`` file: kind 'G2' or 'G3', neighbours and parameters as written."""

    kind: str
    neighbors: tuple[str, ...]
    eta: float
    r_shift: float
    r_cut: float
    lambda_: float = 0.0
    zeta: float = 1.0
    lineno: int = 0


@dataclass
class ControlFile:
    """A parsed ``control.in``; paths are resolved relative to its directory."""

    path: Path
    values: dict[str, ControlValue] = field(default_factory=dict)
    atom_types: list[AtomType] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def error(self, key: str | None, message: str) -> ReadError:
        line = self.values[key].lineno if key in self.values else None
        return ReadError(self.path, line, message)

    def has(self, key: str) -> bool:
        return key in self.values

    def get_str(self, key: str, default: str | None = None) -> str | None:
        v = self.values.get(key)
        if v is None:
            return default
        if not v.values:
            raise ReadError(self.path, v.lineno, f"{key} needs a value")
        return v.values[0]

    def get_float(self, key: str, default: float | None = None) -> float | None:
        s = self.get_str(key)
        if s is None:
            return default
        try:
            v = float(s)
        except ValueError:
            raise self.error(key, f"{key}: expected a number, found {s!r}") from None
        if not math.isfinite(v):
            raise self.error(key, f"{key}: expected a finite number, found {s!r}")
        return v

    def get_int(self, key: str, default: int | None = None) -> int | None:
        s = self.get_str(key)
        if s is None:
            return default
        try:
            return int(s)
        except ValueError:
            raise self.error(key, f"{key}: expected an integer, found {s!r}") from None

    def get_bool(self, key: str, default: bool) -> bool:
        s = self.get_str(key)
        if s is None:
            return default
        low = s.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise self.error(key, f"{key}: expected true or false, found {s!r}")

    def get_int_list(self, key: str) -> list[int] | None:
        v = self.values.get(key)
        if v is None:
            return None
        text = " ".join(v.values).replace("[", " ").replace("]", " ").replace(",", " ")
        try:
            return [int(t) for t in text.split()]
        except ValueError:
            raise ReadError(self.path, v.lineno, f"{key}: expected a list of integers like [15, 15, 1], "
                                                 f"found {' '.join(v.values)!r}") from None

    def resolve(self, key: str) -> Path | None:
        """A path-valued key, relative to control.in's directory."""
        s = self.get_str(key)
        if s is None or s.lower() == "none":
            return None
        p = Path(s)
        return p if p.is_absolute() else self.directory / p


def read_control(path: str | Path) -> ControlFile:
    """Read ``control.in``: ``key value`` lines and ``atom_type_N`` lines (file:line errors)."""
    path = Path(path)
    text = read_text(path, "control.in")
    cf = ControlFile(path=path)
    types: dict[int, AtomType] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        key = words[0]
        if key.startswith("atom_type_"):
            try:
                n = int(key[len("atom_type_"):])
            except ValueError:
                raise ReadError(path, lineno, f"expected 'atom_type_<N> Symbol Z mass file.smf', found {key!r}") from None
            if len(words) != 5:
                raise ReadError(path, lineno, f"expected '{key} Symbol Z mass file.smf' (4 values), "
                                              f"found {len(words) - 1}")
            sym = words[1]
            if sym not in atomic_numbers or sym == "X":
                raise ReadError(path, lineno, f"{key}: unknown element symbol {sym!r}")
            try:
                z = int(words[2])
                mass = float(words[3])
            except ValueError:
                raise ReadError(path, lineno, f"{key}: expected an integer Z and a number mass, "
                                              f"found {words[2]!r} {words[3]!r}") from None
            if z != atomic_numbers[sym]:
                raise ReadError(path, lineno, f"{key}: atomic number {z} does not match {sym} "
                                              f"(Z = {atomic_numbers[sym]})")
            if n in types:
                raise ReadError(path, lineno, f"{key} given twice (first on line {types[n].lineno})")
            smf = Path(words[4])
            types[n] = AtomType(sym, z, mass, smf if smf.is_absolute() else path.parent / smf, lineno)
            continue
        if len(words) < 2:
            raise ReadError(path, lineno, f"{key}: missing value (expected 'key value')")
        if key in cf.values:
            raise ReadError(path, lineno, f"{key} given twice (first on line {cf.values[key].lineno})")
        cf.values[key] = ControlValue(key, words[1:], lineno)
    n_types = cf.get_int("number_of_atom_types")
    if not types:
        raise ReadError(path, None, "no 'atom_type_N Symbol Z mass file.smf' lines")
    if n_types is not None and sorted(types) != list(range(1, n_types + 1)):
        raise cf.error("number_of_atom_types", f"number_of_atom_types is {n_types} but atom_type lines "
                                               f"are numbered {sorted(types)}")
    cf.atom_types = [types[k] for k in sorted(types)]
    syms = [t.symbol for t in cf.atom_types]
    dup = {s for s in syms if syms.count(s) > 1}
    if dup:
        raise ReadError(path, None, f"element {sorted(dup)[0]} has more than one atom_type line")
    return cf


def read_smf(path: str | Path, elements: list[str]) -> list[SymFuncRow]:
    """Read one ``.smf`` file; neighbour symbols must be among ``elements``."""
    path = Path(path)
    text = read_text(path, "symmetry-function file (.smf)")
    rows: list[SymFuncRow] = []
    block = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            low = stripped.lower().replace(" ", "")
            if "typeg2" in low:
                block = "G2"
            elif "typeg3" in low:
                block = "G3"
            continue
        words = stripped.split()
        if not words:
            continue
        kind = block or ("G2" if len(words) == 4 else "G3")
        n_el = 1 if kind == "G2" else 2
        names = ("eta", "R_s", "R_c") if kind == "G2" else ("eta", "lambda", "zeta", "R_c", "R_s")
        n_min = n_el + (3 if kind == "G2" else 4)
        n_max = n_el + len(names)
        if not n_min <= len(words) <= n_max:
            syntax = "neighbour eta R_s R_c" if kind == "G2" else "neighbour_j neighbour_k eta lambda zeta R_c [R_s]"
            raise ReadError(path, lineno, f"{kind} row: expected '{syntax}', found {len(words)} fields")
        neigh = tuple(words[:n_el])
        for el in neigh:
            if el not in elements:
                raise ReadError(path, lineno, f"{kind} row uses element {el!r}, which has no atom_type line "
                                              f"in control.in (elements: {' '.join(elements)})")
        vals = {}
        for name, tok in zip(names, words[n_el:]):
            try:
                vals[name] = float(tok)
            except ValueError:
                raise ReadError(path, lineno, f"{kind} row: {name} must be a number, found {tok!r}") from None
            if not math.isfinite(vals[name]):
                raise ReadError(path, lineno, f"{kind} row: {name} must be a finite number, found {tok!r}")
        if vals["R_c"] <= 0.0 or vals["eta"] < 0.0:
            raise ReadError(path, lineno, f"{kind} row: need R_c > 0 and eta >= 0, found R_c = {vals['R_c']}, "
                                          f"eta = {vals['eta']}")
        if kind == "G2":
            rows.append(SymFuncRow("G2", neigh, vals["eta"], vals["R_s"], vals["R_c"], lineno=lineno))
        else:
            if vals["lambda"] not in (-1.0, 1.0):
                raise ReadError(path, lineno, f"G3 row: lambda must be +1 or -1, found {vals['lambda']}")
            if vals["zeta"] < 1.0:
                raise ReadError(path, lineno, f"G3 row: zeta must be >= 1, found {vals['zeta']}")
            rows.append(SymFuncRow("G3", neigh, vals["eta"], vals.get("R_s", 0.0), vals["R_c"],
                                   vals["lambda"], vals["zeta"], lineno=lineno))
    if not rows:
        raise ReadError(path, None, "no symmetry functions found (expected '# Type G2' / '# Type G3' rows)")
    return rows


def _g(x: float) -> str:
    return repr(float(x))


def control_to_settings(cf: ControlFile) -> tuple[Settings, list[str]]:
    """The n2p2 settings equivalent to a prototype ``control.in`` (+ its ``.smf`` files).

    Returns the settings and a list of warnings (unknown keys, ignored options).
    """
    warnings_: list[str] = []
    for key, v in cf.values.items():
        if key not in KNOWN_KEYS:
            warnings_.append(f"{cf.path}:{v.lineno}: unknown key {key!r} ignored")
    elements = [t.symbol for t in cf.atom_types]
    lines: list[str] = [
        f"# n2p2 settings converted by hdnnp from the prototype's {cf.path.name}",
        f"number_of_elements {len(elements)}",
        "elements " + " ".join(elements),
    ]
    ct = cf.get_int("cut_function_type", 1)
    if ct not in CUTOFF_TYPES:
        raise cf.error("cut_function_type", f"cut_function_type must be 1 (cosine) or 2 (tanh^3), found {ct}")
    lines.append(f"cutoff_type {CUTOFF_TYPES[ct]}")
    lines += ["scale_symmetry_functions", "center_symmetry_functions", "scale_min_short 0.0", "scale_max_short 1.0"]
    neurons = cf.get_int_list("neurons_per_layer")
    if neurons is None:
        raise ReadError(cf.path, None, "required key 'neurons_per_layer' is missing (e.g. [15, 15, 1])")
    if len(neurons) < 2 or neurons[-1] != 1 or min(neurons) < 1:
        raise cf.error("neurons_per_layer", f"neurons_per_layer must list the hidden layers and end with the "
                                            f"single output neuron, e.g. [15, 15, 1]; found {neurons}")
    act = cf.get_str("activation_function", "hyperbolic_tangent")
    if act not in ACTIVATION_LETTERS:
        raise cf.error("activation_function", f"activation_function {act!r} is not supported; expected one of "
                                              f"{', '.join(ACTIVATION_LETTERS)}")
    hidden = neurons[:-1]
    lines += [
        f"global_hidden_layers_short {len(hidden)}",
        "global_nodes_short " + " ".join(str(n) for n in hidden),
        "global_activation_short " + " ".join([ACTIVATION_LETTERS[act]] * len(hidden) + ["l"]),
    ]
    angular = cf.get_str("angular_sf", "wide").lower()
    if angular not in ("wide", "narrow"):
        raise cf.error("angular_sf", f"angular_sf must be 'wide' or 'narrow', found {angular!r}")
    g3_type = 9 if angular == "wide" else 3
    for t in cf.atom_types:
        lines.append(f"# symmetry functions of {t.symbol} from {t.smf}")
        for r in read_smf(t.smf, elements):
            if r.kind == "G2":
                lines.append(f"symfunction_short {t.symbol} 2 {r.neighbors[0]} {_g(r.eta)} {_g(r.r_shift)} {_g(r.r_cut)}")
            else:
                lines.append(f"symfunction_short {t.symbol} {g3_type} {r.neighbors[0]} {r.neighbors[1]} {_g(r.eta)} "
                             f"{_g(r.lambda_)} {_g(r.zeta)} {_g(r.r_cut)} {_g(r.r_shift)}")
    # units (hdnnp keywords; n2p2 ignores them)
    lu = cf.get_str("length_unit", "Ang")
    lines.append(f"hdnnp_length_unit {'angstrom' if lu.lower() in ('ang', 'angstrom', 'a') else lu}")
    lines.append(f"hdnnp_energy_unit {cf.get_str('energy_unit', 'eV')}")
    # training
    if cf.has("number_of_epochs"):
        lines.append(f"epochs {cf.get_int('number_of_epochs')}")
    if cf.has("validation_fraction"):
        vf = cf.get_float("validation_fraction")
        if not 0.0 < vf < 1.0:
            raise cf.error("validation_fraction", f"validation_fraction must be between 0 and 1, found {vf}")
        lines.append(f"test_fraction {_g(vf)}")
    if cf.has("random_seed"):
        lines.append(f"random_seed {cf.get_int('random_seed')}")
    if cf.get_bool("use_forces", True):
        lines.append("use_short_forces")
    if cf.has("force_weight"):
        lines.append(f"force_weight {_g(cf.get_float('force_weight'))}")
    if cf.has("minibatch_size"):
        bs = cf.get_int("minibatch_size")
        if bs < 1:
            raise cf.error("minibatch_size", f"minibatch_size must be >= 1, found {bs}")
        lines.append(f"hdnnp_batch_size {bs}")
    opt = cf.get_str("optimization_method")
    if opt is not None:
        if opt.lower() not in OPTIMIZERS:
            raise cf.error("optimization_method", f"optimization_method {opt!r} is not supported; expected one of "
                                                  "Adagrad, Adam, SGD, RMSprop, LBFGS")
        lines.append(f"hdnnp_optimizer {OPTIMIZERS[opt.lower()]}")
    for key, kw in (("learning_rate", "hdnnp_learning_rate"), ("epsilon", "hdnnp_epsilon"),
                    ("decay_value", "hdnnp_lr_decay"), ("clipvalue", "hdnnp_clip_value")):
        if cf.has(key):
            lines.append(f"{kw} {_g(cf.get_float(key))}")
    if cf.has("decay_value") and cf.get_float("decay_value") > 0.0:
        lines.append("hdnnp_lr_schedule inverse_time")
    for key, kw in (("weight_initialization", "hdnnp_weight_init"), ("bias_initialization", "hdnnp_bias_init")):
        if cf.has(key):
            lines.append(f"{kw} {cf.get_str(key)}")
    loss = cf.get_str("loss_function", "mse")
    if loss.lower() not in ("mse", "mean_squared_error"):
        raise cf.error("loss_function", f"loss_function {loss!r} is not supported; only mse")
    settings = Settings.parse("\n".join(lines) + "\n", path=str(cf.path))
    _cite_control_lines(settings, cf)
    return settings, warnings_


#: n2p2 keyword of the converted settings -> the control.in key it comes from
_ORIGIN_KEYS = {
    "cutoff_type": "cut_function_type", "global_hidden_layers_short": "neurons_per_layer",
    "global_nodes_short": "neurons_per_layer", "global_activation_short": "activation_function",
    "hdnnp_length_unit": "length_unit", "hdnnp_energy_unit": "energy_unit", "epochs": "number_of_epochs",
    "test_fraction": "validation_fraction", "random_seed": "random_seed", "use_short_forces": "use_forces",
    "force_weight": "force_weight", "hdnnp_batch_size": "minibatch_size", "hdnnp_optimizer": "optimization_method",
    "hdnnp_learning_rate": "learning_rate", "hdnnp_epsilon": "epsilon", "hdnnp_lr_decay": "decay_value",
    "hdnnp_lr_schedule": "decay_value", "hdnnp_clip_value": "clipvalue",
    "hdnnp_weight_init": "weight_initialization", "hdnnp_bias_init": "bias_initialization",
}


def _cite_control_lines(settings: Settings, cf: ControlFile) -> None:
    """Give each converted line the line number of the control.in line it comes from, so that
    later errors name the user's file and line (0: a line hdnnp added itself; symmetry
    functions: the element's atom_type line, which names its .smf file)."""
    type_line = {t.symbol: t.lineno for t in cf.atom_types}
    for line in settings.lines:
        if line.key in ("number_of_elements", "elements"):
            line.lineno = cf.atom_types[0].lineno
        elif line.key == "symfunction_short":
            line.lineno = type_line.get(line.values[0], 0) if line.values else 0
        else:
            key = _ORIGIN_KEYS.get(line.key)
            line.lineno = cf.values[key].lineno if key in cf.values else 0


def masses(cf: ControlFile) -> dict[str, float]:
    """Atomic masses from the atom_type lines, by symbol."""
    return {t.symbol: t.mass for t in cf.atom_types}
