"""Subcommands of the hdnnp CLI (thin wrappers over library functions)."""


def add_fourg_solver_options(p) -> None:
    """--qeq-solver and --ewald-parameters (4G potentials), shared by ``hdnnp predict`` and ``hdnnp md``."""
    p.add_argument("--qeq-solver", choices=("auto", "dense", "cg"), default=None,
                   help="4G charge equilibration: dense (n2p2's LU solve), cg (matrix-free conjugate gradients) "
                        "or auto (dense for small structures); default: the potential's hdnnp_qeq_solver, else auto")
    p.add_argument("--ewald-parameters", choices=("n2p2", "scaled"), default=None,
                   help="4G periodic: n2p2's Ewald width (parity) or one scaled for large cells (O(N^1.5) with "
                        "--qeq-solver cg); default: the potential's hdnnp_ewald_parameters, else n2p2")
