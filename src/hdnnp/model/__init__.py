"""Model: activations, per-element networks, symmetry-function scaling, the potential."""
