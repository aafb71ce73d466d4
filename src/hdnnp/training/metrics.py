"""Error metrics and the per-epoch output files (n2p2's ``learning-curve.out``, ``loss.out``).

Errors are accumulated as sums over structures / force components (so that sums from
several processes can be added), then turned into RMSE and MAE in physical units ("pu",
the units of the data) and in the normalised training units ("iu": energies x conv_energy,
forces x conv_energy/conv_length), as n2p2 reports them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: order of the accumulated sums (see ``ErrorSums``)
SUM_KEYS = ("n_struct", "n_comp", "se_epa", "se_e", "ae_epa", "ae_e", "se_f", "ae_f")


def sums_to_metrics(s: np.ndarray) -> dict:
    """RMSE/MAE in physical units from the summed errors (array in SUM_KEYS order)."""
    d = dict(zip(SUM_KEYS, (float(x) for x in s)))
    ns = max(d["n_struct"], 1.0)
    nc = d["n_comp"]
    return {
        "rmse_epa": math.sqrt(d["se_epa"] / ns), "rmse_e": math.sqrt(d["se_e"] / ns),
        "mae_epa": d["ae_epa"] / ns, "mae_e": d["ae_e"] / ns,
        "rmse_f": math.sqrt(d["se_f"] / nc) if nc else float("nan"),
        "mae_f": d["ae_f"] / nc if nc else float("nan"),
        "n_struct": int(d["n_struct"]), "n_comp": int(nc),
    }


def reference_errors(structures, predictions) -> dict | None:
    """RMSE/MAE (``sums_to_metrics`` keys) of predictions against the reference energies and
    forces stored with the structures, in their units; None when no structure has a reference
    energy. Forces count only where the structure has reference forces.

    structures : sequence of ``Structure`` (energy, forces may be None).
    predictions : matching sequence with ``.energy`` and ``.forces`` (n_atoms, 3).
    """
    s = np.zeros(len(SUM_KEYS))
    for st, p in zip(structures, predictions):
        if st.energy is None:
            continue
        n = len(st)
        de = float(p.energy) - float(st.energy)
        s[0] += 1
        s[2] += (de / n) ** 2
        s[3] += de**2
        s[4] += abs(de / n)
        s[5] += abs(de)
        if st.forces is not None and p.forces is not None:
            df = np.asarray(p.forces) - np.asarray(st.forces)
            s[1] += df.size
            s[6] += float(np.sum(df**2))
            s[7] += float(np.sum(np.abs(df)))
    return sums_to_metrics(s) if s[0] else None


def loss_from_metrics(m: dict, conv_energy: float, conv_length: float, force_weight: float, use_forces: bool) -> float:
    """The training loss (normalised units) of a whole set from its physical-unit metrics."""
    loss = (m["rmse_epa"] * conv_energy) ** 2
    if use_forces:
        loss += force_weight * (m["rmse_f"] * conv_energy / conv_length) ** 2
    return loss


_LC_COLS_E = [
    ("RMSEpa_Etrain", "RMSE of training energies per atom", "train", "rmse_epa", "e"),
    ("RMSEpa_Etest", "RMSE of test energies per atom", "test", "rmse_epa", "e"),
    ("RMSE_Etrain", "RMSE of training energies", "train", "rmse_e", "e"),
    ("RMSE_Etest", "RMSE of test energies", "test", "rmse_e", "e"),
    ("MAEpa_Etrain", "MAE of training energies per atom", "train", "mae_epa", "e"),
    ("MAEpa_Etest", "MAE of test energies per atom", "test", "mae_epa", "e"),
    ("MAE_Etrain", "MAE of training energies", "train", "mae_e", "e"),
    ("MAE_Etest", "MAE of test energies", "test", "mae_e", "e"),
]
_LC_COLS_F = [
    ("RMSE_Ftrain", "RMSE of training forces", "train", "rmse_f", "f"),
    ("RMSE_Ftest", "RMSE of test forces", "test", "rmse_f", "f"),
    ("MAE_Ftrain", "MAE of training forces", "train", "mae_f", "f"),
    ("MAE_Ftest", "MAE of test forces", "test", "mae_f", "f"),
]


class LearningCurve:
    """Writer of n2p2's ``learning-curve.out`` (same columns, order and number format)."""

    def __init__(self, use_forces: bool, conv_energy: float, conv_length: float):
        self.cols = _LC_COLS_E + (_LC_COLS_F if use_forces else [])
        self.ce = conv_energy
        self.cl = conv_length

    def header(self) -> str:
        props = ["energies"] + (["forces"] if len(self.cols) > len(_LC_COLS_E) else [])
        names = [("epoch", "Current epoch.")]
        for unit, tag in (("pu", "physical units"), ("iu", "training units")):
            names += [(f"{n}_{unit}", f"{d} ({tag})") for n, d, *_ in self.cols]
        width = 10 + 17 * (len(names) - 1)
        out = ["#" * 80, "# Learning curves for training properties:"]
        out += [f"#  * {p}" for p in props]
        out += ["#" * 80, "# Col  Name             Description", "#" * 80]
        out += [f"# {k + 1:<4d} {n:<16s} {d}" for k, (n, d) in enumerate(names)]
        out.append("#" * width)
        out.append("#" + f"{1:>9d}" + "".join(f" {k:>16d}" for k in range(2, len(names) + 1)))
        out.append("#" + f"{'epoch':>9s}" + "".join(f" {n:>16s}" for n, _ in names[1:]))
        out.append("#" * width)
        return "\n".join(out) + "\n"

    def line(self, epoch: int, train: dict, test: dict) -> str:
        sets = {"train": train, "test": test}
        pu = [sets[s][k] for _, _, s, k, _ in self.cols]
        iu = [sets[s][k] * (self.ce if q == "e" else self.ce / self.cl) for _, _, s, k, q in self.cols]
        return f"{epoch:10d}" + "".join(f" {v:16.8E}" for v in pu + iu) + "\n"


def loss_file_header(which: str, energy_label: str, force_label: str | None) -> str:
    cols = ["epoch", "loss (normalised units)", f"RMSE energy per atom ({energy_label})"]
    if force_label:
        cols.append(f"RMSE force ({force_label})")
    lines = [f"# {which} loss per epoch (hdnnp train); columns:"]
    lines += [f"#   {k + 1}: {c}" for k, c in enumerate(cols)]
    return "\n".join(lines) + "\n"


def loss_file_line(epoch: int, loss: float, m: dict, energy_factor: float, force_factor: float,
                   use_forces: bool) -> str:
    s = f"{epoch:8d} {loss:16.8E} {m['rmse_epa'] * energy_factor:16.8E}"
    if use_forces:
        s += f" {m['rmse_f'] * force_factor:16.8E}"
    return s + "\n"


def write_table(train: dict, test: dict, energy_label: str, force_label: str | None, energy_factor: float,
                force_factor: float) -> str:
    """The final summary table (RMSE and MAE, train and validation, physical units)."""
    head = f"{'':24s} {'RMSE train':>12s} {'RMSE valid':>12s} {'MAE train':>12s} {'MAE valid':>12s}"
    rows = [head, "-" * len(head)]

    def row(label, key_r, key_m, f):
        return (f"{label:24s} {train[key_r] * f:12.5g} {test[key_r] * f:12.5g} "
                f"{train[key_m] * f:12.5g} {test[key_m] * f:12.5g}")

    rows.append(row(f"E/atom [{energy_label}]", "rmse_epa", "mae_epa", energy_factor))
    if force_label:
        rows.append(row(f"F [{force_label}]", "rmse_f", "mae_f", force_factor))
    rows.append(f"({train['n_struct']} training, {test['n_struct']} validation structures)")
    return "\n".join(rows)


def write_text(path: Path, text: str, append: bool = False) -> None:
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        fh.write(text)
