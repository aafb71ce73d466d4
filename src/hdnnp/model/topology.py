"""Model keywords of input.nn read in one place: network topology (``global_*_short``,
``global_*_electrostatic``), ``atom_energy`` offsets and the 4G ``initial_hardness``."""

from __future__ import annotations

import math

from hdnnp.io.input_nn import Settings
from hdnnp.model.activations import ACTIVATIONS


def topology(settings: Settings, suffix: str) -> tuple[list[int], list[str]]:
    """Hidden-layer sizes and activation letters from ``global_*_<suffix>`` (short / electrostatic)."""
    for key in (f"element_hidden_layers_{suffix}", f"element_nodes_{suffix}", f"element_activation_{suffix}"):
        if key in settings:
            raise settings.error(settings.line(key), f"{key}: per-element network topologies are not supported; "
                                                     f"use the global_*_{suffix} keywords")
    n_hidden = settings.get_int(f"global_hidden_layers_{suffix}")
    nodes_line = settings.require(f"global_nodes_{suffix}")
    act_line = settings.require(f"global_activation_{suffix}")
    try:
        nodes = [int(v) for v in nodes_line.values]
    except ValueError:
        raise settings.error(nodes_line, f"global_nodes_{suffix}: expected integers") from None
    if any(n < 1 for n in nodes):
        raise settings.error(nodes_line, f"global_nodes_{suffix}: every hidden layer needs at least 1 node, "
                                         f"found {' '.join(nodes_line.values)}")
    if n_hidden is None or len(nodes) != n_hidden:
        raise settings.error(nodes_line, f"global_nodes_{suffix} lists {len(nodes)} layers; "
                                         f"global_hidden_layers_{suffix} is {n_hidden}")
    acts = list(act_line.values)
    if len(acts) != n_hidden + 1:
        raise settings.error(act_line, f"global_activation_{suffix} needs {n_hidden + 1} letters "
                                       f"(hidden layers + output), found {len(acts)}")
    for a in acts:
        if a not in ACTIVATIONS:
            raise settings.error(act_line, f"unknown activation {a!r}; expected one of {' '.join(ACTIVATIONS)}")
    return nodes, acts


def initial_hardness(settings: Settings, elements: list[str]) -> list[float]:
    """``initial_hardness El J`` per element (physical units); 10 where absent (replaced by
    hardness.ZZZ.data when a potential is loaded)."""
    hardness = {e: 10.0 for e in elements}
    for line in settings.all("initial_hardness"):
        if len(line.values) < 2 or line.values[0] not in hardness:
            raise settings.error(line, "expected 'initial_hardness <element of this potential> <J>'")
        try:
            hardness[line.values[0]] = float(line.values[1])
        except ValueError:
            raise settings.error(line, f"initial_hardness: expected a number, found {line.values[1]!r}") from None
    return [hardness[e] for e in elements]


def atom_energy_offsets(settings: Settings, elements: list[str] | None = None) -> dict[str, float]:
    """``atom_energy <element> <energy>`` lines as {element: energy} (the file's energy unit).

    With ``elements`` (a potential's), every element gets an entry (0 where no line names it) and a
    line naming another element is an error. Bad or non-finite values: file:line errors."""
    offsets = {e: 0.0 for e in elements} if elements is not None else {}
    for line in settings.all("atom_energy"):
        if len(line.values) < 2 or (elements is not None and line.values[0] not in offsets):
            what = "<element of this potential>" if elements is not None else "<element>"
            raise settings.error(line, f"expected 'atom_energy {what} <energy>'")
        try:
            value = float(line.values[1])
        except ValueError:
            raise settings.error(line, f"atom_energy: expected a number, found {line.values[1]!r}") from None
        if not math.isfinite(value):
            raise settings.error(line, f"atom_energy: expected a finite number, found {line.values[1]!r}")
        offsets[line.values[0]] = value
    return offsets
