"""PNG plots of a training run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_loss(history: list[dict], path: str | Path) -> None:
    """Training and validation loss per epoch (the prototype's loss plot)."""
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(ep, [h["loss_train"] for h in history], label="train")
    ax.semilogy(ep, [h["loss_test"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised units)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(history: list[dict], path: str | Path, energy_label: str, force_label: str | None,
                         energy_factor: float = 1.0, force_factor: float = 1.0) -> None:
    """RMSE of energy per atom (and forces) per epoch, train and validation, log scale."""
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    n = 2 if force_label else 1
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.semilogy(ep, [h["train"]["rmse_epa"] * energy_factor for h in history], label="train")
    ax.semilogy(ep, [h["test"]["rmse_epa"] * energy_factor for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"RMSE energy ({energy_label})")
    ax.legend()
    if force_label:
        ax = axes[0, 1]
        ax.semilogy(ep, [h["train"]["rmse_f"] * force_factor for h in history], label="train")
        ax.semilogy(ep, [h["test"]["rmse_f"] * force_factor for h in history], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"RMSE force ({force_label})")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_parity(pred: dict, path: str | Path, energy_label: str, force_label: str | None,
                max_points: int = 200_000, seed: int = 0) -> None:
    """Predicted vs reference energy per atom (and force components), train and validation.

    pred : {"train": {"e_ref", "e_pred", "f_ref", "f_pred"}, "test": {...}} arrays in the
    units of the labels.
    """
    plt = _pyplot()
    n = 2 if force_label else 1
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4.2), squeeze=False)
    rng = np.random.default_rng(seed)
    panels = [("e", f"energy per atom ({energy_label})")]
    if force_label:
        panels.append(("f", f"force component ({force_label})"))
    for ax, (q, label) in zip(axes[0], panels):
        lo, hi = np.inf, -np.inf
        for name, style in (("train", dict(s=4, alpha=0.5)), ("test", dict(s=6, alpha=0.7, marker="^"))):
            d = pred.get(name)
            if d is None or d.get(f"{q}_ref") is None or len(d[f"{q}_ref"]) == 0:
                continue
            ref, prd = np.asarray(d[f"{q}_ref"]), np.asarray(d[f"{q}_pred"])
            if len(ref) > max_points:
                pick = rng.choice(len(ref), max_points, replace=False)
                ref, prd = ref[pick], prd[pick]
            ax.scatter(ref, prd, label="train" if name == "train" else "validation", **style)
            lo, hi = min(lo, ref.min(), prd.min()), max(hi, ref.max(), prd.max())
        if np.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
