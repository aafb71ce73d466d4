"""The symmetry-function plan: which SFs of each element share neighbour elements, radial groups
(cutoff and radial factor) and angular kinds. Built once per ``SymmetryFunctionSet``
(``sf_set.plan``); both executors consume it: the numba tables (``SymmetryFunctionSet``
-> ``tables.KernelTables``) and the torch backend (``torch_backend.TorchSymmetryFunctions``).

Angular SFs all have the form c * A(cos theta) * R(r_ij) R(r_ik) J(r_jk) (see ``kernels``): SFs
with the same ``GroupKey`` share R (and J: narrowness is part of the key), SFs with the same
``KindKey`` share A, and the weight c (Z_a Z_b of weighted types, else 1) is constant per block
of neighbour elements (a <= b). The plan fixes this partition; each executor only chooses the
order in which it stores groups and kinds (numba: groups sorted by cutoff, so consecutive groups
share cutoff values; torch: narrow groups first, because their r_jk factors are the first
columns), which is layout, not grouping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from hdnnp.descriptors.symmetry_functions import SymmetryFunction, angle_radians


class GroupKey(NamedTuple):
    """Radial factor of an SF: exp(-eta (r - r_shift)^2) f_c(r) (Gaussian; cutoff type and alpha)
    or the compact window C_r on (r_low, r_cut) (core, asymmetric), and whether the angular SF
    also multiplies by it at r_jk (narrow). Fields of the other variant are 0."""

    compact: bool
    r_cut: float
    cutoff_type: int
    cutoff_alpha: float
    eta: float
    r_shift: float
    r_low: float
    core: int
    asymmetric: bool
    narrow: bool


class KindKey(NamedTuple):
    """Angular factor of an SF: 2^(1-zeta) (1 + lambda cos)^zeta (Gaussian) or the compact window
    C_a on (left, right) (radians, core). Fields of the other variant are 0."""

    compact: bool
    lambda_: float
    zeta: float
    left: float
    right: float
    core: int


def group_key(sf: SymmetryFunction) -> GroupKey:
    """The radial group of an SF (radial SFs too: their whole radial factor)."""
    if sf.compact:
        return GroupKey(True, sf.r_cut, 0, 0.0, 0.0, 0.0, sf.r_low, sf.core, bool(sf.asymmetric), bool(sf.narrow))
    return GroupKey(False, sf.r_cut, sf.cutoff_type, sf.cutoff_alpha, sf.eta, sf.r_shift, 0.0, 0, False,
                    bool(sf.narrow))


def kind_key(sf: SymmetryFunction) -> KindKey:
    """The angular kind of an angular SF."""
    if sf.compact:
        return KindKey(True, 0.0, 0.0, angle_radians(sf.angle_left), angle_radians(sf.angle_right), sf.core)
    return KindKey(False, sf.lambda_, sf.zeta, 0.0, 0.0, 0)


@dataclass(frozen=True)
class ElementPlan:
    """SFs of one central element (s: column in the element's sorted SF list).

    radial : neighbour element a -> [(s, w)] radial SFs seen by a neighbour of element a, weight
        w (Z_a for weighted types 12/23, else 1), in SF order.
    angular : block (a, b), a <= b -> {(group, c): [(s, kind)]}, in SF order.
    groups : the distinct radial groups of the angular SFs, in order of first appearance.
    """

    radial: dict
    angular: dict
    groups: list


class SymmetryFunctionPlan:
    """Grouping of the SFs of a ``SymmetryFunctionSet``: ``elements[e]`` (``ElementPlan``) per
    element index, ``kinds`` the distinct angular kinds of all elements in order of first
    appearance (element, then SF order)."""

    def __init__(self, sf_set):
        self.elements: list[ElementPlan] = []
        self.kinds: list[KindKey] = []
        for el in sf_set.elements:
            radial: dict = {}
            angular: dict = {}
            groups: list = []
            for s, sf in enumerate(sf_set.functions[el]):
                if not sf.angular:
                    for a, w in sf_set.neighbor_weights(sf):
                        radial.setdefault(a, []).append((s, w))
                    continue
                gk, kk = group_key(sf), kind_key(sf)
                if gk not in groups:
                    groups.append(gk)
                if kk not in self.kinds:
                    self.kinds.append(kk)
                for a, b, c in sf_set.neighbor_weights(sf):
                    angular.setdefault((a, b), {}).setdefault((gk, c), []).append((s, kk))
            self.elements.append(ElementPlan(radial=radial, angular=angular, groups=groups))
