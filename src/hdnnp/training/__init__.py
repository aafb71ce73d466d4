"""Training: data-set normalisation and SF statistics, descriptor cache, trainer, checkpoints, plots.

``hdnnp.training`` is also callable: ``hdnnp.training("control.in", save=True)`` runs the
prototype-compatible entry point :func:`hdnnp.training.prototype.training`. (``hdnnp.training``
names both this package and that function; making the package callable keeps
``hdnnp.training(...)`` working whichever of the two an import left behind.)
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from hdnnp.training.prototype import training

        return training(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


def __getattr__(name):  # lazy: importing the package stays cheap
    if name == "train":
        from hdnnp.training.workflow import train

        return train
    if name == "training":
        from hdnnp.training.prototype import training

        return training
    raise AttributeError(f"module 'hdnnp.training' has no attribute {name!r}")
