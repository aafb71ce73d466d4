"""The files the training loop writes into a run directory: per epoch ``learning-curve.out``
(n2p2 columns), ``loss.out`` and ``val_loss.out``; at the end the plots (``loss.png``,
``learning-curves.png``, ``parity.png``). The potential's own files (input.nn, scaling.data,
weights) go through ``hdnnp.io.potential_directory``.

Errors in the records are in the data's units; ``labels`` (``inputs.unit_labels``) give the
printed units and the factors to them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from hdnnp.training import metrics as M


class RunFiles:
    """Epoch files and plots of one run directory (written by the main rank only)."""

    def __init__(self, run_dir: Path, labels: tuple, use_forces: bool, conv_energy: float, conv_length: float,
                 seed: int):
        self.run_dir = run_dir
        self.labels = labels
        self.use_forces = use_forces
        self.ce, self.cl = conv_energy, conv_length
        self.seed = seed

    def write_epoch(self, rec: dict, fresh: bool) -> None:
        """Append one epoch's lines (``fresh``: start the files with their headers)."""
        d = self.run_dir
        el, fl, ef, ff = self.labels
        fu = self.use_forces
        lc = M.LearningCurve(fu, self.ce, self.cl)
        if fresh:
            M.write_text(d / "learning-curve.out", lc.header())
            M.write_text(d / "loss.out", M.loss_file_header("training", el, fl if fu else None))
            M.write_text(d / "val_loss.out", M.loss_file_header("validation", el, fl if fu else None))
        M.write_text(d / "learning-curve.out", lc.line(rec["epoch"], rec["train"], rec["test"]), append=True)
        M.write_text(d / "loss.out", M.loss_file_line(rec["epoch"], rec["loss_train"], rec["train"], ef, ff, fu),
                     append=True)
        M.write_text(d / "val_loss.out", M.loss_file_line(rec["epoch"], rec["loss_test"], rec["test"], ef, ff, fu),
                     append=True)

    def rewrite(self, history: list[dict]) -> None:
        """The epoch files anew from a run's history (resume)."""
        for k, rec in enumerate(history):
            self.write_epoch(rec, fresh=(k == 0))

    def final_plots(self, history: list[dict], pred: dict) -> None:
        """Loss, learning curves and parity plots; a plotting failure only warns (the run is kept)."""
        from hdnnp.training import plots

        el, fl, ef, ff = self.labels
        fu = self.use_forces
        d = self.run_dir
        try:
            plots.plot_loss(history, d / "loss.png")
            plots.plot_learning_curves(history, d / "learning-curves.png", el, fl if fu else None, ef, ff)
            scaled = {name: {"e_ref": p["e_ref"] * ef, "e_pred": p["e_pred"] * ef,
                             "f_ref": p["f_ref"] * ff if fu else None, "f_pred": p["f_pred"] * ff if fu else None}
                      for name, p in pred.items()}
            plots.plot_parity(scaled, d / "parity.png", el, fl if fu else None, seed=self.seed)
        except Exception as exc:  # noqa: BLE001 - a plotting failure must not lose a finished run
            warnings.warn(f"could not write plots: {exc}", stacklevel=2)
