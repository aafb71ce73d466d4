"""The prototype's training entry point: ``hdnnp.training("control.in", save=True)``.

Reads ``control.in`` and its ``.smf`` files (``hdnnp.io.prototype``), converts them to n2p2
settings, trains with :func:`hdnnp.training.workflow.train`, and writes what the prototype
wrote into the output directory: the ``output_dir`` argument, else control.in's
``output_path`` (hdnnp extension), else its ``model_path`` (where the prototype's MD reads the
model from, so training then MD works with one control.in), else ``outputs/`` (the
prototype's folder); relative paths are relative to control.in:

* ``function.data`` (only with ``save=True``): per structure the number of atoms, one line
  per atom with its atomic number and raw symmetry functions, and a line
  ``0.0 E E 0.0`` with the total reference energy (the prototype's layout, n2p2's widths);
* ``loss.out`` / ``val_loss.out``: per epoch the loss and RMSEs (columns in the header);
* ``loss.png``: the loss plot; ``weights.XXX.data`` (XXX = atomic number, n2p2 format);

plus everything of an ``hdnnp train`` run directory (input.nn, scaling.data,
learning-curve.out, parity and learning-curve plots, config.json, checkpoint.pt), so the
result loads with ``Potential.from_n2p2(outputs)``.

Differences from the prototype (deliberate): forces enter the loss unless control.in says
``use_forces false`` (an hdnnp extension; the prototype fitted energies only); the loss is
the normalised HDNNP loss of ``hdnnp.training.trainer`` rather than Keras' MSE of scaled
total energies; "hyperbolic_tangent" is plain tanh and the linear twist is tanh(x) + 0.1 x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from hdnnp.errors import HDNNPError
from hdnnp.io.potential_directory import WEIGHTS_GLOB
from hdnnp.io.prototype import read_control

#: files this entry point writes (``overwrite=True`` removes exactly these first)
OUTPUT_FILES = ("function.data", "loss.out", "val_loss.out", "loss.png", "learning-curve.out", "learning-curves.png",
                "parity.png", "input.nn", "scaling.data", "config.json", "checkpoint.pt", "train.log")


def write_function_data(path: str | Path, trainer) -> None:
    """Raw symmetry functions of every structure in the prototype's ``function.data`` layout."""
    cache = trainer.cache
    structures = trainer.structures
    pot = trainer.pot
    single = len(cache.indices) == len(structures)
    with open(path, "w", encoding="utf-8") as fh:
        for g, s in enumerate(structures):
            if single:
                k = cache.local_of[g]
                rows = slice(cache.atom_start[k], cache.atom_start[k + 1])
                X = cache.G[rows]
                species = cache.species[rows]
                G = np.zeros_like(X)
                for e_idx, e in enumerate(pot.elements):
                    m = species == e_idx
                    n = pot.sf_set.n_sf[e]
                    sc = pot.scalings[e]
                    G[m, :n] = (X[m, :n] - sc.s_min) / sc.factor + sc.shift
            else:
                d = pot.sf_set.compute(s)
                G, species = d.G, d.species
            fh.write(f"{s.n_atoms:6d}\n")
            for a, el in enumerate(s.elements):
                n = pot.sf_set.n_sf[el]
                fh.write(f"{atomic_numbers[el]:3d}" + "".join(f" {v:15.10f}" for v in G[a, :n]) + "\n")
            fh.write(f"{0.0:20.10f}{s.energy:20.10f}{s.energy:20.10f}{0.0:20.10f}\n")


def training(control_file: str | Path, save: bool = True, output_dir: str | Path | None = None,
             overwrite: bool = False, epochs: int | None = None, progress: bool = True, **overrides):
    """Train from the prototype's ``control.in``; returns :class:`~hdnnp.training.trainer.TrainResult` (via :func:`hdnnp.training.workflow.train`).

    save : also write ``function.data`` (the prototype's ``-o`` flag).
    output_dir : default ``output_path`` of control.in, else ``model_path``, else ``outputs/``
        next to control.in.
    overwrite : replace this function's earlier outputs in output_dir (other files are kept);
        without it a non-empty output_dir is an error.
    overrides : TrainingConfig fields (e.g. ``learning_rate=1e-3``, ``batch_size=8``).
    """
    from hdnnp.training.workflow import train

    cf = read_control(control_file)
    if output_dir is not None:
        out = Path(output_dir)
    else:
        out = cf.resolve("output_path") or cf.resolve("model_path") or cf.directory / "outputs"
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise HDNNPError(f"output directory {out} is not empty; pass overwrite=True to replace the outputs of an "
                             "earlier training there, or choose output_dir")
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
        for w in out.glob(WEIGHTS_GLOB):
            w.unlink()
    extra = (lambda trainer: write_function_data(out / "function.data", trainer)) if save else None
    return train(config=control_file, run_dir=out, epochs=epochs, overrides=overrides, progress=progress,
                 extra_outputs=extra, allow_existing=overwrite)
