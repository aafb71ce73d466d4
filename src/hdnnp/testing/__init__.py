"""Reusable physics checks (finite differences, invariances) and the contracts every potential
meets (any model generation, backend, dtype), for tests and users; see ``tests/model/test_contracts.py``."""

from hdnnp.testing.physics import (  # noqa: F401
    FLOAT32,
    FLOAT64,
    Tolerances,
    central_difference_forces,
    central_difference_stress,
    check_empty,
    check_energy_is_sum,
    check_forces_fd,
    check_invariances,
    check_isolated_atoms,
    check_lone_atoms,
    check_same_results,
    check_stress_fd,
    check_supercell,
    cluster,
    cut_down,
    fd_convergence,
    moved,
    random_rotation,
)
