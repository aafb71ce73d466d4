"""hdnnp: high-dimensional neural network potentials (Behler-Parrinello), n2p2-compatible.

Pipeline: data (``hdnnp.io``, ``hdnnp.structure``) -> descriptors (``hdnnp.descriptors``)
-> model (``hdnnp.model``) -> training (``hdnnp.training``) / dynamics
(``hdnnp.dynamics``) -> interfaces (``hdnnp.interfaces``, CLI).
"""

from __future__ import annotations

__version__ = "0.1.0"

from hdnnp.structure import Structure  # noqa: E402

__all__ = ["Structure", "Potential", "__version__"]


def __getattr__(name):  # lazy imports keep `import hdnnp` light
    if name == "Potential":
        from hdnnp.model.potential import Potential

        return Potential
    if name == "training":
        from hdnnp.training.prototype import training

        return training
    if name == "molecular_dynamics":
        from hdnnp.dynamics.prototype import molecular_dynamics

        return molecular_dynamics
    raise AttributeError(f"module 'hdnnp' has no attribute {name!r}")
