"""ASE calculators for ``hdnnp sample``: built-in names (EMT, GFN1/GFN2-xTB via tblite) or an import path."""

from __future__ import annotations

import importlib
import logging
import os

from hdnnp.errors import HDNNPError

log = logging.getLogger("hdnnp.sampling")

#: the built-in calculator names accepted by ``make_calculator``
CALCULATOR_NAMES = ("emt", "gfn2-xtb", "gfn1-xtb")
#: thread settings for tblite (anchors/ENGINES.md: with several OpenMP threads and
#: the default wait policy, GFN2-xTB calls slowed down 2-20x at random; one OpenMP
#: thread is stable). Applied with ``setdefault``: a value the user set wins.
XTB_THREAD_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def set_thread_defaults(defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Set thread environment variables the user has not set; return the ones set here.

    Must run before the library that reads them (tblite's OpenMP runtime) is loaded.
    """
    chosen = {}
    for key, value in (XTB_THREAD_DEFAULTS if defaults is None else defaults).items():
        if key not in os.environ:
            os.environ[key] = value
            chosen[key] = value
    return chosen


#: tblite SCF accuracy used for reference data. tblite's default (1.0) leaves force noise of
#: ~2e-4 eV/Å between a call that starts from the previous step's wavefunction and a fresh
#: call; 0.1 brings it to ~1e-5 eV/Å for ~15 % more time (56-atom Al/O/H cluster, GFN2-xTB).
XTB_ACCURACY = 0.1


def make_calculator(spec: str, charge: int | None = None, multiplicity: int | None = None,
                    accuracy: float = XTB_ACCURACY):
    """Build an ASE calculator from a name or an import path.

    spec : ``emt`` (ASE's EMT), ``gfn2-xtb`` / ``gfn1-xtb`` (tblite, optional extra
        ``pip install tblite``), or ``package.module:factory`` where ``factory()``
        returns an ASE calculator (a calculator object at that path is used as is).
    charge, multiplicity : total charge and spin multiplicity (tblite only).
    accuracy : tblite's SCF accuracy (smaller is tighter; tblite's own default is 1.0).

    Returns the calculator; energies must be in eV and forces in eV/Å (ASE units).
    """
    name = spec.strip()
    key = name.lower()
    if key == "emt":
        if charge or multiplicity:
            raise HDNNPError("--charge/--multiplicity apply to gfn1-xtb/gfn2-xtb only, not to emt")
        from ase.calculators.emt import EMT

        return EMT()
    if key in ("gfn2-xtb", "gfn1-xtb"):
        chosen = set_thread_defaults()
        if chosen:
            log.info("tblite threads: %s (set OMP_NUM_THREADS yourself to override)",
                     " ".join(f"{k}={v}" for k, v in chosen.items()))
        try:
            from tblite.ase import TBLite
        except ImportError:
            raise HDNNPError(
                f"calculator {name!r} needs tblite, which is not installed; "
                "install it with 'pip install tblite' (or 'pip install hdnnp[xtb]')"
            ) from None
        if not accuracy > 0.0:
            raise HDNNPError(f"accuracy must be > 0, found {accuracy}")
        kwargs = {"method": "GFN2-xTB" if key == "gfn2-xtb" else "GFN1-xTB", "verbosity": 0,
                  "accuracy": float(accuracy)}
        if charge is not None:
            kwargs["charge"] = charge
        if multiplicity is not None:
            kwargs["multiplicity"] = multiplicity
        return TBLite(**kwargs)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise HDNNPError(f"calculator {name!r}: cannot import module {module_name!r} ({exc})") from None
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise HDNNPError(f"calculator {name!r}: module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not isinstance(obj, type) and hasattr(obj, "get_potential_energy"):
            return obj  # a calculator object
        if not callable(obj):
            raise HDNNPError(f"calculator {name!r}: {attr!r} is neither a calculator nor callable")
        try:
            calc = obj()
        except Exception as exc:
            raise HDNNPError(f"calculator {name!r}: calling {attr}() failed: {type(exc).__name__}: {exc}") from exc
        if not hasattr(calc, "get_potential_energy"):
            raise HDNNPError(f"calculator {name!r}: {attr}() returned {type(calc).__name__}, not an ASE calculator")
        return calc
    raise HDNNPError(
        f"unknown calculator {name!r}; expected one of {', '.join(CALCULATOR_NAMES)} "
        "or an import path 'package.module:factory' returning an ASE calculator"
    )
