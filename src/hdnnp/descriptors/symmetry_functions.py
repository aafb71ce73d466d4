"""Symmetry-function types (n2p2 numbering) and their ``input.nn`` syntax.

One class per type; each docstring gives the formula and the settings-line syntax.
``REGISTRY`` maps n2p2's type code to the class; the parser, the sort and the
kernels all read it. The arithmetic lives in ``hdnnp.descriptors.kernels``.

Conventions: theta_ijk is the angle at the central atom i; angular sums run over
unordered pairs j<k of neighbours whose elements match (e1, e2) in either order;
element indices are ordered by atomic number (n2p2 ``ElementMap``).
Formulas and sort keys follow n2p2 v2.3.0 (``SymFnc*.cpp``, ``Element.cpp``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

from hdnnp.descriptors.cutoff import CUTOFF_NAMES

#: compact-function cores: subtype letter/number -> kernel code
CORE_CODES = {"p1": 1, "p2": 2, "p3": 3, "p4": 4, "e": 5}


class SymmetryFunctionError(ValueError):
    """Bad parameters on a symmetry-function line (the parser adds file:line)."""


def _num(tok: str, name: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise SymmetryFunctionError(f"parameter {name} must be a number, found {tok!r}") from None
    if not math.isfinite(v):
        raise SymmetryFunctionError(f"parameter {name} must be a finite number, found {tok!r}")
    return v


@dataclass
class SymmetryFunction:
    """Common fields; unused ones stay at their defaults.

    Lengths in the potential's length unit, angles in degrees (as written in input.nn).
    """

    central: str
    neighbors: tuple[str, ...] = ()
    eta: float = 0.0
    r_shift: float = 0.0
    r_cut: float = 0.0
    lambda_: float = 0.0
    zeta: float = 1.0
    r_low: float = 0.0
    angle_left: float = 0.0
    angle_right: float = 0.0
    subtype: str = ""
    cutoff_type: int = 0
    cutoff_alpha: float = 0.0
    line: int | None = field(default=None, compare=False)

    code: ClassVar[int]
    #: parameters after ``<central> <type>`` on the settings line; ``param_names`` (the fields they
    #: set, in order) is derived from it
    syntax: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    #: fields that order the SFs of one type as n2p2 does ("e1": neighbour element index, "e1e2":
    #: the two neighbour element indices, sorted)
    sort_fields: ClassVar[tuple[str, ...]]
    angular: ClassVar[bool] = False
    narrow: ClassVar[bool] = False  # angular with the r_jk factor
    weighted: ClassVar[bool] = False
    compact: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "syntax" in cls.__dict__:  # "<e1> <eta> ... [<r_shift>]" -> ("eta", ...): no elements, no options
            names = [tok.strip("<>") for tok in cls.syntax.split() if not tok.startswith("[")]
            cls.param_names = tuple("lambda_" if n == "lambda" else n for n in names if n not in ("e1", "e2"))

    # ---------------------------------------------------------------- parsing
    @classmethod
    def parse(cls, central: str, tokens: list[str], line: int | None = None) -> "SymmetryFunction":
        """Build from the tokens after ``<central> <type>`` on a settings line."""
        n_el = 0 if cls.weighted else (2 if cls.angular else 1)
        n_req = n_el + len(cls.param_names)
        n_opt = 1 if cls.code == 3 or cls.code == 9 else 0  # optional r_shift of types 3/9
        if not (n_req <= len(tokens) <= n_req + n_opt):
            expect = f"{n_req}" if not n_opt else f"{n_req} or {n_req + n_opt}"
            raise SymmetryFunctionError(
                f"type {cls.code} takes {expect} parameters after the type "
                f"({cls.syntax}), found {len(tokens)}"
            )
        neighbors = tuple(tokens[:n_el])
        sf = cls(central=central, neighbors=neighbors, line=line)
        for name, tok in zip(cls.param_names + (("r_shift",) if n_opt else ()), tokens[n_el:]):
            if name == "subtype":
                sf.subtype = tok
            else:
                setattr(sf, name, _num(tok, name))
        sf.validate()
        return sf

    def validate(self) -> None:
        if self.r_cut <= 0.0:
            raise SymmetryFunctionError(f"r_cut must be > 0, found {self.r_cut}")
        if self.eta < 0.0:
            raise SymmetryFunctionError(f"eta must be >= 0, found {self.eta}")
        if self.angular and not self.compact:
            if self.lambda_ not in (-1.0, 1.0):
                raise SymmetryFunctionError(f"lambda must be +1 or -1, found {self.lambda_}")
            if self.zeta < 1.0:
                # n2p2 accepts any zeta and computes (1 + lambda cos)^zeta (its AlAuMgO_4G example
                # uses zeta = -1, -2): accepted for parity, with a warning
                warnings.warn(f"angular symmetry function with zeta = {self.zeta} < 1 (accepted as n2p2 does)",
                              RuntimeWarning, stacklevel=2)
        if self.compact:
            st = self.subtype
            core = st[:2] if st.startswith("p") else st[:1]
            ok = (st.startswith("e") and len(st) <= 3) or (
                len(st) in (2, 3) and core in CORE_CODES and (len(st) == 2 or st[2] == "a")
            )
            if not ok:
                raise SymmetryFunctionError(
                    f"subtype must be p1, p2, p3, p4 (optionally followed by 'a') or e, found {st!r}"
                )
            if self.r_low > self.r_cut:
                raise SymmetryFunctionError(f"r_low ({self.r_low}) must not exceed r_cut ({self.r_cut})")
            if self.angular:
                left, right = self.angle_left, self.angle_right
                center = 0.5 * (left + right)
                if left >= right:
                    raise SymmetryFunctionError(f"angle_left ({left}) must be < angle_right ({right})")
                if (left < 0.0 and center != 0.0) or (right > 180.0 and center != 180.0) or right - left > 360.0:
                    raise SymmetryFunctionError(
                        f"angular window [{left}, {right}] degrees must lie in [0, 180] or be centred on 0 or 180"
                    )

    # ------------------------------------------------------------- utilities
    @property
    def core(self) -> int:
        """Compact core code (1-4 polynomials, 5 exponential); 0 for Gaussian types."""
        if not self.compact:
            return 0
        return CORE_CODES["e"] if self.subtype.startswith("e") else CORE_CODES[self.subtype[:2]]

    @property
    def asymmetric(self) -> bool:
        return self.compact and len(self.subtype) == 3 and self.subtype.startswith("p")

    def sort_key(self, element_index: dict[str, int]) -> tuple:
        """Order within the type (``sort_fields``), as n2p2 sorts its SFs."""
        key = []
        for name in self.sort_fields:
            if name == "e1":
                key.append(self._el(element_index, 0))
            elif name == "e1e2":
                key.extend(sorted((self._el(element_index, 0), self._el(element_index, 1))))
            else:
                key.append(getattr(self, name))
        return tuple(key)

    def settings_line(self) -> str:
        """The ``symfunction_short`` line that defines this function."""
        vals = []
        for name in self.param_names:
            v = getattr(self, name)
            vals.append(v if isinstance(v, str) else f"{v:.10g}")
        if self.code in (3, 9) and self.r_shift != 0.0:
            vals.append(f"{self.r_shift:.10g}")
        return " ".join(["symfunction_short", self.central, str(self.code), *self.neighbors, *vals])

    def describe(self) -> str:
        """Short human-readable label, e.g. ``H 3 O-H eta=0.07 lambda=1 zeta=1 rc=12``."""
        parts = [self.central, str(self.code)]
        if self.neighbors:
            parts.append("-".join(self.neighbors))
        for name in self.param_names:
            v = getattr(self, name)
            parts.append(f"{name}={v if isinstance(v, str) else f'{v:g}'}")
        return " ".join(parts)

    def with_cutoff(self, cutoff_type: int, alpha: float) -> "SymmetryFunction":
        if self.compact:
            return self
        if cutoff_type not in CUTOFF_NAMES:
            raise SymmetryFunctionError(f"cutoff_type must be one of 0-8, found {cutoff_type}")
        self.cutoff_type, self.cutoff_alpha = cutoff_type, alpha
        return self

    def _el(self, element_index, k):
        return element_index[self.neighbors[k]]


class _NarrowAngular:
    """Trait: angular SF with the r_jk factor (wide subclasses set narrow = False)."""

    angular = True
    narrow = True


class _Weighted:
    """Trait: sums over all neighbour elements with weights Z_j (radial) or Z_j Z_k (angular)."""

    weighted = True


class _Compact:
    """Trait: compact polynomial/exponential windows instead of Gaussians and a cutoff."""

    compact = True


class RadialG2(SymmetryFunction):
    """Type 2, radial: G = sum_j exp(-eta (r_ij - r_s)^2) f_c(r_ij).

    ``<central> 2 <neighbour> <eta> <r_shift> <r_cut>`` (Behler, J. Chem. Phys. 134, 074106 (2011)).
    """

    code = 2
    syntax = "<e1> <eta> <r_shift> <r_cut>"
    sort_fields = ("r_cut", "eta", "r_shift", "e1")


class AngularNarrowG3(_NarrowAngular, SymmetryFunction):
    """Type 3, narrow angular:

    G = 2^(1-zeta) sum_{j<k} (1 + lambda cos theta)^zeta
        exp(-eta[(r_ij-r_s)^2 + (r_ik-r_s)^2 + (r_jk-r_s)^2]) f_c(r_ij) f_c(r_ik) f_c(r_jk);
    a term is 0 when 1 + lambda cos theta <= 0.

    ``<central> 3 <e1> <e2> <eta> <lambda> <zeta> <r_cut> [<r_shift>]``
    """

    code = 3
    syntax = "<e1> <e2> <eta> <lambda> <zeta> <r_cut> [<r_shift>]"
    sort_fields = ("r_cut", "eta", "r_shift", "zeta", "lambda_", "e1e2")


class AngularWideG9(AngularNarrowG3):
    """Type 9, wide angular: as type 3 without the r_jk Gaussian and without f_c(r_jk).

    ``<central> 9 <e1> <e2> <eta> <lambda> <zeta> <r_cut> [<r_shift>]``
    """

    code = 9
    narrow = False


class WeightedRadialG12(_Weighted, SymmetryFunction):
    """Type 12, weighted radial: G = sum_j Z_j exp(-eta (r_ij - r_s)^2) f_c(r_ij), all neighbours.

    ``<central> 12 <eta> <r_shift> <r_cut>``
    """

    code = 12
    syntax = "<eta> <r_shift> <r_cut>"
    sort_fields = ("r_cut", "eta", "r_shift")


class WeightedAngularG13(_Weighted, _NarrowAngular, SymmetryFunction):
    """Type 13, weighted narrow angular: type 3 over all pairs with weight Z_j Z_k.

    ``<central> 13 <eta> <r_shift> <lambda> <zeta> <r_cut>``
    """

    code = 13
    syntax = "<eta> <r_shift> <lambda> <zeta> <r_cut>"
    sort_fields = ("r_cut", "eta", "r_shift", "zeta", "lambda_")


class CompactRadial20(_Compact, SymmetryFunction):
    """Type 20, compact polynomial radial (Bircher et al., Mach. Learn.: Sci. Technol. 2, 035026 (2021)):

    G = sum_j [r_l < r_ij < r_c] C_r(r_ij), with C_r(r) = core(|r - c| / w),
    c = (r_l + r_c)/2, w = (r_c - r_l)/2; subtype ``pN`` (polynomial N = 1..4),
    ``pNa`` (asymmetric: core(x(2-x))) or ``e`` (exponential). No cutoff function.

    ``<central> 20 <e1> <r_low> <r_cut> <subtype>``
    """

    code = 20
    syntax = "<e1> <r_low> <r_cut> <subtype>"
    sort_fields = ("subtype", "e1", "r_cut", "r_low")


class CompactAngularNarrow21(_Compact, _NarrowAngular, SymmetryFunction):
    """Type 21, compact narrow angular:

    G = sum_{j<k} C_r(r_ij) C_r(r_ik) C_r(r_jk) C_a(theta_ijk), C_a a plain core on
    [angle_left, angle_right] (degrees); collinear triples (|cos theta| = 1) are skipped.

    ``<central> 21 <e1> <e2> <r_low> <r_cut> <angle_left> <angle_right> <subtype>``

    Differs from n2p2 2.3.0 on purpose: n2p2's SF groups reuse C_r(r_jk) of the previous
    member when r_low/r_cut agree but the subtype differs; we always use this function's own.
    """

    code = 21
    syntax = "<e1> <e2> <r_low> <r_cut> <angle_left> <angle_right> <subtype>"
    sort_fields = ("subtype", "e1e2", "r_cut", "r_low", "angle_left", "angle_right")


class CompactAngularWide22(CompactAngularNarrow21):
    """Type 22, compact wide angular: type 21 without the C_r(r_jk) factor.

    ``<central> 22 <e1> <e2> <r_low> <r_cut> <angle_left> <angle_right> <subtype>``
    """

    code = 22
    narrow = False


class CompactWeightedRadial23(_Compact, _Weighted, SymmetryFunction):
    """Type 23, compact weighted radial: type 20 over all neighbours with weight Z_j.

    ``<central> 23 <r_low> <r_cut> <subtype>``
    """

    code = 23
    syntax = "<r_low> <r_cut> <subtype>"
    sort_fields = ("subtype", "r_cut", "r_low")


class CompactWeightedAngularNarrow24(_Compact, _Weighted, _NarrowAngular, SymmetryFunction):
    """Type 24, compact weighted narrow angular: type 21 over all pairs with weight Z_j Z_k.

    ``<central> 24 <r_low> <r_cut> <angle_left> <angle_right> <subtype>``
    """

    code = 24
    syntax = "<r_low> <r_cut> <angle_left> <angle_right> <subtype>"
    sort_fields = ("subtype", "r_cut", "r_low", "angle_left", "angle_right")


class CompactWeightedAngularWide25(CompactWeightedAngularNarrow24):
    """Type 25, compact weighted wide angular: type 22 over all pairs with weight Z_j Z_k.

    ``<central> 25 <r_low> <r_cut> <angle_left> <angle_right> <subtype>``
    """

    code = 25
    narrow = False


REGISTRY: dict[int, type[SymmetryFunction]] = {
    cls.code: cls
    for cls in (
        RadialG2, AngularNarrowG3, AngularWideG9, WeightedRadialG12, WeightedAngularG13,
        CompactRadial20, CompactAngularNarrow21, CompactAngularWide22, CompactWeightedRadial23,
        CompactWeightedAngularNarrow24, CompactWeightedAngularWide25,
    )
}


def parse_symfunction(tokens: list[str], line: int | None = None) -> SymmetryFunction:
    """Parse the values of a ``symfunction_short`` line: ``<central> <type> ...``."""
    if len(tokens) < 2:
        raise SymmetryFunctionError("expected '<central element> <type> <parameters...>'")
    try:
        code = int(tokens[1])
    except ValueError:
        raise SymmetryFunctionError(f"symmetry-function type must be an integer, found {tokens[1]!r}") from None
    cls = REGISTRY.get(code)
    if cls is None:
        raise SymmetryFunctionError(
            f"unknown symmetry-function type {code}; supported types: {', '.join(map(str, sorted(REGISTRY)))}"
        )
    return cls.parse(tokens[0], tokens[2:], line)


def sort_symmetry_functions(sfs: list[SymmetryFunction], element_index: dict[str, int]) -> list[SymmetryFunction]:
    """n2p2's input order: by type code, then the type's own keys (``Element.cpp``)."""
    return sorted(sfs, key=lambda sf: (sf.code, sf.sort_key(element_index)))


def angle_radians(deg: float) -> float:
    """n2p2 converts as (deg * pi) / 180."""
    return (deg * math.pi) / 180.0
