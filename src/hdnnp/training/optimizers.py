"""Gradient optimizers (Adam, SGD, Adagrad, RMSprop, L-BFGS) and learning-rate schedules from the config."""

from __future__ import annotations


import torch

from hdnnp.errors import SettingsError
from hdnnp.training.config import TrainingConfig


def make_optimizer(params, cfg: TrainingConfig):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, betas=cfg.betas, eps=cfg.epsilon)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.learning_rate)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.learning_rate, eps=cfg.epsilon)
    if cfg.optimizer == "rmsprop":  # Keras' rho = 0.9
        return torch.optim.RMSprop(params, lr=cfg.learning_rate, alpha=0.9, eps=cfg.epsilon)
    if cfg.optimizer == "lbfgs":
        return torch.optim.LBFGS(params, lr=cfg.learning_rate, max_iter=cfg.lbfgs_iterations,
                                 history_size=cfg.lbfgs_history, line_search_fn="strong_wolfe",
                                 tolerance_grad=1e-12, tolerance_change=1e-14)
    raise SettingsError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(opt, cfg: TrainingConfig):
    """(scheduler, when): when is 'epoch' (stepped with the validation loss for plateau) or 'step'."""
    if cfg.optimizer in ("lbfgs", "kalman") or cfg.lr_schedule == "none":
        return None, None
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr), "epoch"
    if cfg.lr_schedule == "exponential":
        gamma = cfg.lr_decay if 0.0 < cfg.lr_decay <= 1.0 else 0.99
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma), "epoch"
    if cfg.lr_schedule == "inverse_time":  # Keras' decay: lr / (1 + decay * iterations)
        k = cfg.lr_decay
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + k * step)), "step"
    raise SettingsError(f"unknown lr schedule {cfg.lr_schedule!r}")
