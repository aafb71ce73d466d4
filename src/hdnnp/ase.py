"""ASE interface: ``from hdnnp.ase import HDNNPCalculator``.

Re-exports ``hdnnp.interfaces.ase_calculator``. (Inside the ``hdnnp`` package ``import ase``
is absolute, so this module does not shadow the ASE package.)
"""

from hdnnp.interfaces.ase_calculator import HDNNPCalculator

__all__ = ["HDNNPCalculator"]
