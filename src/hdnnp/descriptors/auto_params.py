"""Automatic choice of symmetry-function parameters from reference structures.

The grids follow the recipe of Imbalzano et al., J. Chem. Phys. 148, 241730 (2018), as
implemented in n2p2's ``sfparamgen`` tool:

- radial "shifted" G2: centres r_s on an even grid from r_low to r_c (excluded) with
  spacing dr and eta = 1 / (2 dr^2), so that neighbouring Gaussians overlap;
- radial "centred" G2: r_s = 0 and eta = 1 / (2 r_k^2) for r_k on an even grid in
  (r_low, r_c]: the last one is a smooth coordination number;
- angular G3 (narrow) or G9 (wide): lambda = +1 and -1, zeta from a short list, and
  centred etas eta = 1 / (2 r_k^2).

r_low is set per element pair from the data: 0.8 x the pair's nearest-neighbour
distance, the median over atoms of one element of the distance to their nearest atom
of the other (its bond length when they are bonded; see ``neighbour_statistics``). Radial functions are made
for every (central, neighbour) element pair that occurs within r_c in the data, angular
ones for every (central, neighbour 1, neighbour 2) triple that occurs; a pair or triple
that never occurs would give a function that is zero everywhere (and n2p2 could not
scale it), so it is left out with a warning.

Lengths are in the unit of the structures (Å for data written by ``hdnnp sample``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from hdnnp.errors import HDNNPError
from hdnnp.neighbors import neighbor_list
from hdnnp.structure import Structure

#: fraction of the nearest-neighbour distance where the radial grids start
NN_FRACTION = 0.8


def _pair(a: str, b: str) -> tuple[str, str]:
    """Unordered element pair in atomic-number order."""
    return (a, b) if atomic_numbers[a] <= atomic_numbers[b] else (b, a)


def _by_z(elements: Iterable[str]) -> list[str]:
    return sorted(set(elements), key=lambda e: atomic_numbers[e])


@dataclass
class NeighbourStatistics:
    """What the data show within the cutoff.

    nn_distance : unordered pair (a, b) -> nearest-neighbour distance: the median over all
        atoms of element a of the distance to the nearest b (within the cutoff), or the same
        with a and b swapped, whichever is smaller.
    min_distance : unordered pair -> smallest distance seen anywhere.
    pairs : (central, neighbour) element pairs seen within r_c.
    triples : (central, e1, e2) with e1 <= e2 (atomic number) seen within r_c.
    """

    elements: list[str]
    cutoff: float
    nn_distance: dict[tuple[str, str], float]
    min_distance: dict[tuple[str, str], float]
    pairs: set[tuple[str, str]]
    triples: set[tuple[str, str, str]]


def neighbour_statistics(structures: Sequence[Structure], cutoff: float) -> NeighbourStatistics:
    """Nearest-neighbour distances per element pair and the pairs/triples present within ``cutoff``."""
    if not structures:
        raise HDNNPError("no structures given; need reference structures to choose parameters")
    if not cutoff > 0.0:
        raise HDNNPError(f"cutoff must be > 0, found {cutoff}")
    elements = _by_z(e for s in structures for e in s.elements)
    index = {e: k for k, e in enumerate(elements)}
    n_el = len(elements)
    nearest: dict[tuple[str, str], list[np.ndarray]] = {}  # (central, neighbour) -> per-atom minima
    smallest: dict[tuple[str, str], float] = {}
    pairs: set[tuple[str, str]] = set()
    triples: set[tuple[str, str, str]] = set()
    for s in structures:
        nl = neighbor_list(s.positions, s.cell, cutoff)
        if nl.n_pairs == 0:
            continue
        species = np.array([index[e] for e in s.elements], dtype=np.int64)
        sj = species[nl.j]
        # distance from every atom to its nearest neighbour of each element: (n_atoms, n_el)
        dmin = np.full((len(s.elements), n_el), np.inf)
        np.minimum.at(dmin, (nl.i, sj), nl.distances)
        for ci in range(n_el):
            rows = dmin[species == ci]
            for b in range(n_el):
                col = rows[:, b]
                vals = col[np.isfinite(col)]
                if vals.size:
                    nearest.setdefault((elements[ci], elements[b]), []).append(vals)
                    key = _pair(elements[ci], elements[b])
                    smallest[key] = min(smallest.get(key, np.inf), float(vals.min()))
        # element counts of the neighbours of every atom: (n_atoms, n_el)
        counts = np.zeros((len(s.elements), n_el), dtype=np.int64)
        np.add.at(counts, (nl.i, sj), 1)
        for ci in range(n_el):
            rows = counts[species == ci]
            if rows.size == 0:
                continue
            present = rows > 0
            for a in range(n_el):
                if present[:, a].any():
                    pairs.add((elements[ci], elements[a]))
                for b in range(a, n_el):
                    ok = (rows[:, a] >= 2) if a == b else (present[:, a] & present[:, b])
                    if ok.any():
                        triples.add((elements[ci], elements[a], elements[b]))
    # an element pair's nearest-neighbour distance: the median over atoms of the distance to
    # the nearest atom of the other element, taken from the side where it is smaller (for O
    # and Al in water that is the Al side: every Al has an O at bonding distance, most O
    # have no Al nearby)
    medians = {k: float(np.median(np.concatenate(v))) for k, v in nearest.items()}
    nn: dict[tuple[str, str], float] = {}
    for (a, b), d in medians.items():
        key = _pair(a, b)
        nn[key] = min(nn.get(key, np.inf), d)
    return NeighbourStatistics(elements, float(cutoff), nn, smallest, pairs, triples)


@dataclass
class AutoSymmetryFunctions:
    """The chosen symmetry functions.

    lines : ``symfunction_short`` lines, grouped by central element (atomic-number order).
    r_low : (central, neighbour) -> start of the radial grids.
    missing_pairs / missing_triples : combinations not seen in the data (no functions made).
    """

    elements: list[str]
    cutoff: float
    angular_type: int
    lines: list[str]
    stats: NeighbourStatistics
    r_low: dict[tuple[str, str], float] = field(default_factory=dict)
    missing_pairs: list[tuple[str, str]] = field(default_factory=list)
    missing_triples: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self) -> dict[str, int]:
        """Number of symmetry functions per element."""
        out = {e: 0 for e in self.elements}
        for line in self.lines:
            out[line.split()[1]] += 1
        return out

    def for_element(self, element: str) -> list[str]:
        return [line for line in self.lines if line.split()[1] == element]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def choose_symmetry_functions(
    structures: Sequence[Structure],
    cutoff: float,
    *,
    n_shifted: int = 4,
    n_centred: int = 2,
    zetas: Sequence[float] = (1.0, 4.0),
    n_angular_eta: int = 1,
    angular: str = "wide",
    nn_fraction: float = NN_FRACTION,
) -> AutoSymmetryFunctions:
    """Choose G2 and G3/G9 parameters for ``structures`` (see the module docstring).

    Parameters
    ----------
    structures : reference structures (their length unit is used throughout).
    cutoff : r_c for every function.
    n_shifted, n_centred : radial functions per (central, neighbour) pair.
    zetas : angular zeta values; each is used with lambda = +1 and -1.
    n_angular_eta : centred etas per angular triple.
    angular : ``wide`` (type 9) or ``narrow`` (type 3).
    nn_fraction : r_low = nn_fraction x nearest-neighbour distance.

    Per element this gives n_neigh_el x (n_shifted + n_centred) radial and
    n_triples x 2 x len(zetas) x n_angular_eta angular functions.
    """
    if angular not in ("wide", "narrow"):
        raise HDNNPError(f"angular must be 'wide' (type 9) or 'narrow' (type 3), found {angular!r}")
    if n_shifted < 0 or n_centred < 0 or n_angular_eta < 0 or n_shifted + n_centred == 0:
        raise HDNNPError("n_shifted, n_centred, n_angular_eta must be >= 0, with n_shifted + n_centred > 0")
    if any(z < 1.0 for z in zetas):
        raise HDNNPError(f"zetas must be >= 1, found {list(zetas)}")
    if not 0.0 < nn_fraction <= 1.0:
        raise HDNNPError(f"nn_fraction must be in (0, 1], found {nn_fraction}")
    stats = neighbour_statistics(structures, cutoff)
    rc = float(cutoff)
    ang_type = 9 if angular == "wide" else 3
    lines: list[str] = []
    r_low: dict[tuple[str, str], float] = {}
    missing_pairs, missing_triples = [], []
    for c in stats.elements:
        for n in stats.elements:
            if (c, n) not in stats.pairs:
                missing_pairs.append((c, n))
                continue
            rl = min(nn_fraction * stats.nn_distance[_pair(c, n)], 0.9 * rc)
            r_low[(c, n)] = rl
            if n_shifted:
                dr = (rc - rl) / n_shifted
                eta = 1.0 / (2.0 * dr * dr)
                for k in range(n_shifted):
                    lines.append(f"symfunction_short {c} 2 {n} {_fmt(eta)} {_fmt(rl + k * dr)} {_fmt(rc)}")
            for r in np.linspace(rl, rc, n_centred + 1)[1:]:
                lines.append(f"symfunction_short {c} 2 {n} {_fmt(1.0 / (2.0 * r * r))} 0 {_fmt(rc)}")
        for i, a in enumerate(stats.elements):
            for b in stats.elements[i:]:
                if (c, a, b) not in stats.triples:
                    missing_triples.append((c, a, b))
                    continue
                rl = min(r_low[(c, a)], r_low[(c, b)])
                for r in np.linspace(rl, rc, n_angular_eta + 1)[1:]:
                    eta = _fmt(1.0 / (2.0 * r * r))
                    for zeta in zetas:
                        for lam in (-1, 1):
                            lines.append(f"symfunction_short {c} {ang_type} {a} {b} {eta} {lam} {_fmt(zeta)} {_fmt(rc)}")
    if missing_pairs or missing_triples:
        warnings.warn(
            "no symmetry functions for combinations absent within the cutoff in the data: "
            + ", ".join("-".join(p) for p in missing_pairs + missing_triples),
            stacklevel=2,
        )
    lines = list(dict.fromkeys(lines))  # drop duplicates, keep order
    return AutoSymmetryFunctions(stats.elements, rc, ang_type, lines, stats, r_low, missing_pairs, missing_triples)


def symmetry_function_lines(structures: Sequence[Structure], cutoff: float, **kwargs) -> list[str]:
    """Just the ``symfunction_short`` lines of ``choose_symmetry_functions``."""
    return choose_symmetry_functions(structures, cutoff, **kwargs).lines


def input_nn_text(
    sf: AutoSymmetryFunctions,
    *,
    cutoff_type: int = 2,
    hidden_nodes: Sequence[int] = (25, 25),
    activations: str = "t t l",
    length_unit: str = "Angstrom",
    energy_unit: str = "eV",
    title: str = "HDNNP",
    reference_method: str | None = None,
    random_seed: int = 12345,
    epochs: int = 20,
    test_fraction: float = 0.1,
    optimizer: str | None = None,
) -> str:
    """A complete n2p2 ``input.nn`` (general settings, training settings, symmetry functions).

    The data's units are recorded as ``hdnnp_length_unit``/``hdnnp_energy_unit``, and
    ``optimizer`` adds ``hdnnp_optimizer``; ``hdnnp export lammps`` strips these hdnnp-only
    keywords for n2p2.
    """
    acts = activations.split()
    if len(acts) != len(hidden_nodes) + 1:
        raise HDNNPError(
            f"activations {activations!r} must give one letter per hidden layer plus the output layer "
            f"({len(hidden_nodes) + 1} in all)"
        )
    rule = _RULE
    els = sf.elements
    kv = _kv
    head = _header(sf, title, length_unit, energy_unit, reference_method)
    body = [
        "",
        rule, "# GENERAL NNP SETTINGS", rule,
        kv("number_of_elements", str(len(els)), "Number of elements."),
        kv("elements", " ".join(els), "Specification of elements."),
        kv("hdnnp_length_unit", length_unit.lower(), "hdnnp: unit of lengths in input.data (n2p2 ignores it)"),
        kv("hdnnp_energy_unit", energy_unit.lower(), "hdnnp: unit of energies in input.data (n2p2 ignores it)"),
        *[f"#{kv('atom_energy', f'{e} 0.0', f'Free atom reference energy ({e}).')}" for e in els],
        kv("cutoff_type", str(cutoff_type), "Cutoff type."),
        kv("scale_symmetry_functions", "", "Scale all symmetry functions with min/max values."),
        kv("scale_min_short", "0.0", "Minimum value for scaling."),
        kv("scale_max_short", "1.0", "Maximum value for scaling."),
        kv("center_symmetry_functions", "", "Center all symmetry functions, i.e. subtract mean value."),
        kv("global_hidden_layers_short", str(len(hidden_nodes)), "Number of hidden layers."),
        kv("global_nodes_short", " ".join(map(str, hidden_nodes)), "Number of nodes in each hidden layer."),
        kv("global_activation_short", activations, "Activation function for each hidden layer and output layer."),
        "",
        *_training_settings(optimizer, epochs, random_seed, test_fraction),
        "",
        *_symmetry_function_section(sf),
    ]
    return "\n".join(head + body) + "\n"


_RULE = "#" * 79


def _kv(key: str, value: str = "", comment: str = "") -> str:
    """An input.nn line: keyword, value and comment in n2p2's example columns."""
    s = f"{key:<31s} {value:<14s}"
    return (s + f" # {comment}" if comment else s).rstrip()


def _header(sf: AutoSymmetryFunctions, title: str, length_unit: str, energy_unit: str,
            reference_method: str | None) -> list[str]:
    """input.nn's comment header: title, units, how the symmetry functions were chosen."""
    head = [_RULE, f"# {title}", _RULE, f"# Length unit: {length_unit}", f"# Energy unit: {energy_unit}"]
    if reference_method:
        head.append(f"# Reference method: {reference_method}")
    head.append("# Symmetry functions chosen by hdnnp.descriptors.auto_params (Imbalzano et al. 2018 grids);")
    head.append("# nearest-neighbour distances in the data (median over atoms; smallest seen):")
    for p, d in sorted(sf.stats.nn_distance.items(), key=lambda kv: (atomic_numbers[kv[0][0]], atomic_numbers[kv[0][1]])):
        head.append(f"#   {p[0]}-{p[1]}: {d:.3f} (min {sf.stats.min_distance[p]:.3f})")
    head.append(_RULE)
    return head


def _training_settings(optimizer: str | None, epochs: int, random_seed: int, test_fraction: float) -> list[str]:
    """The training section (n2p2's Kalman-filter settings of its examples)."""
    kv = _kv
    return [
        _RULE, "# ADDITIONAL SETTINGS FOR TRAINING", _RULE,
        *([kv("hdnnp_optimizer", optimizer, "hdnnp: optimizer (n2p2 ignores it; n2p2 itself uses updater_type)")]
          if optimizer else []),
        kv("epochs", str(epochs), "Number of training epochs."),
        kv("random_seed", str(random_seed), "Seed for the random number generator."),
        kv("test_fraction", f"{test_fraction:g}", "Fraction of structures kept for testing."),
        kv("use_short_forces", "", "Use forces for training."),
        kv("force_weight", "10.0", "Weight of force updates relative to energy updates."),
        kv("short_energy_fraction", "1.000", "Fraction of energy updates per epoch."),
        kv("short_force_fraction", "0.02315", "Fraction of force updates per epoch."),
        kv("short_energy_error_threshold", "0.00", "RMSE threshold for energy update candidates."),
        kv("short_force_error_threshold", "1.00", "RMSE threshold for force update candidates."),
        kv("rmse_threshold_trials", "3", "Maximum number of RMSE threshold trials."),
        kv("weights_min", "-1.0", "Minimum value for initial random weights."),
        kv("weights_max", "1.0", "Maximum value for initial random weights."),
        kv("nguyen_widrow_weights_short", "", "Initialize neural network weights according to Nguyen-Widrow scheme."),
        kv("write_weights_epoch", "1", "Write weights every this many epochs."),
        kv("selection_mode", "2", "Update candidate selection mode (0 = random, 1 = sort, 2 = threshold)."),
        kv("task_batch_size_energy", "1", "Number of energy update candidates prepared per task for each update."),
        kv("task_batch_size_force", "1", "Number of force update candidates prepared per task for each update."),
        kv("updater_type", "1", "Weight update method (0 = Gradient Descent, 1 = Kalman filter)."),
        kv("parallel_mode", "0", "Training parallelization used (0 = serial)."),
        kv("jacobian_mode", "1", "Jacobian computation mode (1 = per-task summation)."),
        kv("update_strategy", "0", "Update strategy (0 = combined, 1 = per-element)."),
        kv("kalman_type", "0", "Kalman filter type (0 = standard)."),
        kv("kalman_epsilon", "1.0E-2", "General Kalman filter parameter epsilon."),
        kv("kalman_q0", "0.01", "General Kalman filter parameter q0."),
        kv("kalman_qtau", "2.302", "General Kalman filter parameter qtau."),
        kv("kalman_qmin", "1.0E-6", "General Kalman filter parameter qmin."),
        kv("kalman_eta", "0.01", "Standard Kalman filter parameter eta."),
        kv("kalman_etatau", "2.302", "Standard Kalman filter parameter etatau."),
        kv("kalman_etamax", "1.0", "Standard Kalman filter parameter etamax."),
    ]


def _symmetry_function_section(sf: AutoSymmetryFunctions) -> list[str]:
    """The symmetry-function lines per element, with comments on their form and grids."""
    els = sf.elements
    body = [
        _RULE, "# SYMMETRY FUNCTIONS", _RULE,
        "# Radial (type 2): symfunction_short <element-central> 2 <element-neighbor> <eta> <rshift> <rcutoff>",
        (f"# Angular (type {sf.angular_type}): symfunction_short <element-central> {sf.angular_type} "
         "<element-neighbor1> <element-neighbor2> <eta> <lambda> <zeta> <rcutoff>"),
        f"# r_c = {sf.cutoff:g}; functions per element: "
        + ", ".join(f"{e} {n}" for e, n in sf.count().items()),
    ]
    for e in els:
        body.append("")
        body.append(f"# element {e}: radial grids start at " + ", ".join(
            f"{n} {sf.r_low[(e, n)]:.3f}" for n in els if (e, n) in sf.r_low))
        body.extend(sf.for_element(e))
    return body


def write_input_nn(path: str | Path, sf: AutoSymmetryFunctions, **kwargs) -> None:
    """Write ``input_nn_text(sf, **kwargs)`` to ``path``."""
    Path(path).write_text(input_nn_text(sf, **kwargs), encoding="utf-8")


# ------------------------------------------------------------- the prototype's format
def smf_text(sf: AutoSymmetryFunctions, element: str) -> str:
    """The prototype's ``<El>-SymFunc.smf`` (SPEC §4) for one central element.

    ``# Type G2`` rows ``neighbour eta R_s R_c``, then ``# Type G3`` rows
    ``neighbour_j neighbour_k eta lambda zeta R_c`` (whether these are narrow or wide
    angular functions is set by ``angular_sf`` in ``control.in``).
    """
    g2, g3 = [], []
    for line in sf.for_element(element):
        w = line.split()
        if w[2] == "2":
            g2.append(f"{w[3]:<3s} {w[4]:>12s} {w[5]:>10s} {w[6]:>6s}")
        else:
            g3.append(f"{w[3]:<3s} {w[4]:<3s} {w[5]:>12s} {w[6]:>3s} {w[7]:>4s} {w[8]:>6s}")
    return "\n".join(["# Type G2", *g2, "# Type G3", *g3]) + "\n"


def control_in_text(
    sf: AutoSymmetryFunctions,
    *,
    atomic_data_path: str = "input.data",
    cut_function_type: int = 2,
    neurons_per_layer: Sequence[int] = (25, 25, 1),
    activation_function: str = "hyperbolic_tangent",
    random_seed: int = 12345,
    number_of_epochs: int = 200,
    minibatch_size: int = 32,
    validation_fraction: float = 0.1,
    learning_rate: float = 0.001,
    model_path: str = "model",
    iterations: int = 1000,
    timestep: float = 0.5,
) -> str:
    """The prototype's ``control.in`` (SPEC §4) with one ``atom_type_N`` line per element."""
    if cut_function_type not in (1, 2):
        raise HDNNPError(f"cut_function_type must be 1 (cos) or 2 (tanh^3), found {cut_function_type}")
    lines = [
        "# Training and MD settings in the prototype's control.in format (SPEC section 4).",
        "# Length unit: Angstrom; energy unit: eV.",
        f"cut_function_type {cut_function_type}",
        f"angular_sf {'wide' if sf.angular_type == 9 else 'narrow'}",
        f"atomic_data_path {atomic_data_path}",
        "length_unit Ang",
        f"number_of_atom_types {len(sf.elements)}",
        f"neurons_per_layer [{', '.join(map(str, neurons_per_layer))}]",
        f"activation_function {activation_function}",
        "weight_initialization random_uniform",
        "bias_initialization zeros",
        f"random_seed {random_seed}",
        "optimization_method Adam",
        f"learning_rate {learning_rate:g}",
        "epsilon 1e-07",
        "decay_value 0.0",
        "clipvalue 1.0",
        "loss_function mse",
        f"number_of_epochs {number_of_epochs}",
        f"minibatch_size {minibatch_size}",
        f"validation_fraction {validation_fraction:g}",
        "# MD",
        f"model_path {model_path}",
        f"iterations {iterations}",
        f"timestep {timestep:g}",
        "# atom_type_N symbol Z mass symmetry-function file",
    ]
    for k, e in enumerate(sf.elements, start=1):
        z = atomic_numbers[e]
        lines.append(f"atom_type_{k} {e} {z} {atomic_masses[z]:.4f} {e}-SymFunc.smf")
    return "\n".join(lines) + "\n"


def write_prototype_inputs(directory: str | Path, sf: AutoSymmetryFunctions, **kwargs) -> list[Path]:
    """Write ``control.in`` and one ``<El>-SymFunc.smf`` per element into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "control.in"]
    written[0].write_text(control_in_text(sf, **kwargs), encoding="utf-8")
    for e in sf.elements:
        p = directory / f"{e}-SymFunc.smf"
        p.write_text(smf_text(sf, e), encoding="utf-8")
        written.append(p)
    return written
