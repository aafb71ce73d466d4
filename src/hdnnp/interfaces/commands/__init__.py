"""Subcommands of the hdnnp CLI (thin wrappers over library functions)."""
