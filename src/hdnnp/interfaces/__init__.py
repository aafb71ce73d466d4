"""Interfaces: ASE calculator, n2p2/LAMMPS export, command line."""
