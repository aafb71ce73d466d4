"""Reusable physics checks (finite differences, invariances) for tests and users."""

from hdnnp.testing.physics import (  # noqa: F401
    central_difference_forces,
    central_difference_stress,
    fd_convergence,
    random_rotation,
)
