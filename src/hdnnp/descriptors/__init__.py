"""Descriptors: cutoff functions, symmetry-function types, their kernels and scaling."""
