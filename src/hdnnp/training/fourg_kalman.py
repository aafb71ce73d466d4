"""n2p2's Kalman filter (``updater_type 1``) in the two 4G training stages (``--optimizer kalman``).

Follows n2p2 v2.3.0 ``Training::update`` for ``HDNNP_4G`` (src/libnnptrain/Training.cpp) with the
filter of :mod:`hdnnp.training.kalman` (one dense P, ``update_strategy 0``, as n2p2 for 4G stage 1):

- Stage 1 ("charge" updates; the weight vector is the chi networks' weights followed by the element
  hardness parameters h, J = h^2, as n2p2 appends sqrt(J) of each element): one candidate = one
  training structure; error xi = -||Q - Q_ref|| and Jacobian H = d||Q - Q_ref||/dw (autograd through
  the structure's bordered Qeq solve); updates per epoch int(n_train x ``charge_fraction`` /
  ``task_batch_size_charge``) (``charge_fraction`` default 1).
- Stage 2 ("energy" and "force" updates over the short networks; charges, dQ/dr, the electrostatic
  energy and forces fixed): energy xi = E_ref - E, H = dE/dw of one structure; force xi = F_ref - F
  of one force component and dF/dw, both x ``force_weight``. Force candidates are grouped as n2p2's
  4G sub-candidates: int(3 N x ``short_force_fraction``) (at least 1) consecutive force updates use
  components of one structure before the next structure is taken. Updates per epoch as n2p2
  (``short_energy_fraction``, ``short_force_fraction`` or ``force_energy_ratio``); the energy/force
  update order is a random shuffle of the planned counts.

Errors and Jacobians are in n2p2's normalised units (energy x conv_energy, length x conv_length,
charge x conv_charge; all 1 without normalisation). Selection: ``selection_mode`` 0 (random) and 2
(threshold: a candidate is taken if its error exceeds ``rmse_threshold_*`` x the previous epoch's
training RMSE, else the next is tried, up to ``rmse_threshold_trials``; if none passes, the last one
tried is used, as n2p2). Not supported (refused with file:line): ``selection_mode`` 1 (sort),
``task_batch_size_*`` other than 1, ``update_strategy`` 1. The kalman_* keywords and eta/q schedules
are those of the 2G filter (etatau and qtau divided by the updates per epoch).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from hdnnp.errors import SettingsError
from hdnnp.training.dataset import available_memory_bytes
from hdnnp.training.kalman import KalmanFilter, KalmanParameters, add_flat, flat_jacobian

log = logging.getLogger("hdnnp")

#: P may use at most this fraction of the available memory
MEMORY_FRACTION = 0.7


@dataclass
class PropertyPlan:
    """n2p2's update plan of one property (charge, energy or force)."""

    fraction: float  # <property>_fraction: share of the candidates used per epoch
    selection: list  # selection_mode schedule: MODE [EPOCH MODE ...]
    threshold: float  # rmse_threshold_<property>
    trials: int  # rmse_threshold_trials_<property>

    def mode(self, epoch: int) -> int:
        mode = self.selection[0]
        for k in range(1, len(self.selection), 2):
            if epoch >= self.selection[k]:
                mode = self.selection[k + 1]
        return mode


def _where(settings, key: str) -> str:
    line = settings.line(key)
    return f"{settings.path}:{line.lineno}" if line is not None and line.lineno else str(settings.path)


def _check(settings, prop: str, plan: PropertyPlan, task_batch: int, key_tbs: str) -> None:
    """Refuse what the 4G filter does not implement, naming the input.nn line."""
    if task_batch != 1:
        raise SettingsError(f"{_where(settings, key_tbs)}: {key_tbs} {task_batch}: the 4G Kalman stages do one "
                            f"candidate per update (task_batch_size 1)")
    sel = plan.selection
    if len(sel) % 2 != 1 or any(m not in (0, 2) for m in sel[0::2]):
        key = f"selection_mode_{prop}" if f"selection_mode_{prop}" in settings else "selection_mode"
        raise SettingsError(f"{_where(settings, key)}: selection_mode for {prop}: expected MODE [EPOCH MODE ...] "
                            f"with modes 0 (random) or 2 (threshold) in the 4G stages, found {' '.join(map(str, sel))}")


def kalman_setup(settings, stage: int) -> tuple[KalmanParameters, dict[str, PropertyPlan]]:
    """The kalman_* parameters and the update plans ({'charge'} or {'energy', 'force'}) of a 4G input.nn."""
    from hdnnp.training.config import config_from_settings

    cfg = config_from_settings(settings, warn=False)
    cfg.optimizer = "kalman"
    cfg.validate()  # the kalman_* values, with file:line
    if cfg.update_strategy != 0:
        raise SettingsError(f"{_where(settings, 'update_strategy')}: update_strategy {cfg.update_strategy}: the 4G "
                            f"Kalman stages use one filter (update_strategy 0; n2p2 has no per-element 4G charge "
                            f"updater)")
    kp = KalmanParameters(cfg.kalman_type, cfg.kalman_epsilon, cfg.kalman_q0, cfg.kalman_qtau, cfg.kalman_qmin,
                          cfg.kalman_eta, cfg.kalman_etatau, cfg.kalman_etamax, cfg.kalman_lambda, cfg.kalman_nu)
    plans = {}
    if stage == 1:
        def pick(specific, general, default, conv):
            for key in (specific, general):
                if key in settings:
                    line = settings.line(key)
                    try:
                        return conv(key)
                    except Exception as exc:  # noqa: BLE001 - re-raised with location
                        raise settings.error(line, f"{key}: {exc}") from None
            return default

        sel = pick("selection_mode_charge", "selection_mode", [0],
                   lambda k: [int(v) for v in settings.line(k).values])
        plan = PropertyPlan(pick("charge_fraction", "charge_fraction", 1.0, settings.get_float), sel,
                            pick("rmse_threshold_charge", "rmse_threshold", 0.0, settings.get_float),
                            pick("rmse_threshold_trials_charge", "rmse_threshold_trials", 1, settings.get_int))
        _check(settings, "charge", plan, pick("task_batch_size_charge", "task_batch_size_charge", 1,
                                              settings.get_int), "task_batch_size_charge")
        plans["charge"] = plan
    else:
        for prop in ("energy", "force"):
            plan = PropertyPlan(getattr(cfg, f"{prop}_fraction"), list(getattr(cfg, f"selection_mode_{prop}")),
                                getattr(cfg, f"rmse_threshold_{prop}"), getattr(cfg, f"rmse_threshold_trials_{prop}"))
            _check(settings, prop, plan, getattr(cfg, f"task_batch_size_{prop}"), f"task_batch_size_{prop}")
            plans[prop] = plan
        plans["force_energy_ratio"] = cfg.force_energy_ratio
    return kp, plans


def _make_filter(n_w: int, kp: KalmanParameters, n_updates: int, what: str) -> KalmanFilter:
    need = KalmanFilter.memory_bytes([n_w])
    avail = available_memory_bytes()
    if need > MEMORY_FRACTION * avail:
        raise SettingsError(f"{what} Kalman filter: P needs {need / 2**30:.2f} GiB ({n_w} weights) but only "
                            f"{avail / 2**30:.2f} GiB is available; use smaller networks or --optimizer lbfgs")
    kf = KalmanFilter([torch.arange(n_w)], kp, n_updates)
    log.info("%s Kalman filter: %s; %d fit parameters; P %.1f MiB (float64, dense); %d updates per epoch",
             what, "standard" if kp.type == 0 else "fading memory", n_w, need / 2**20, n_updates)
    return kf


def _cycle(order, pos: int):
    return order[pos % len(order)], pos + 1


# ------------------------------------------------------------------------------------------ stage 1
class ChargeKalman:
    """Stage 1: n2p2's "charge" updates of the chi networks and h (J = h^2).

    pot : the 4G Potential (its ``charge_networks`` are updated in place).
    h : (n_elements,) tensor, sqrt of the hardness in computation units (updated in place).
    train : the stage-1 items (``fourg_stages._Item``) of the training structures.
    """

    def __init__(self, pot, h: torch.Tensor, train: list, kp: KalmanParameters, plan: PropertyPlan, seed: int):
        self.pot, self.h, self.train, self.plan = pot, h, train, plan
        # flat order: the chi networks element by element (layer by layer, weight then bias), then h; n2p2
        # interleaves each element's h after its weights: with P0 = I/epsilon the filter is the same
        self.params = [t for e in pot.elements for lin in pot.charge_networks[e].layers for t in (lin.weight, lin.bias)]
        self.params.append(h)
        n_w = sum(p.numel() for p in self.params)
        self.n_updates = int(len(train) * plan.fraction)
        if self.n_updates == 0:
            raise SettingsError("stage 1 Kalman filter: no charge updates planned per epoch (charge_fraction too small "
                                "for the training set)")
        self.kf = _make_filter(n_w, kp, self.n_updates, "stage 1 (charges):")
        self.generator = torch.Generator().manual_seed(int(seed) * 1000 + 29)

    def error_and_jacobian(self, item) -> tuple[float, torch.Tensor]:
        """(xi = -||Q - Q_ref||, H = d||Q - Q_ref||/dw (n_w,)) of one structure (computation units)."""
        from hdnnp.training.fourg_stages import _charges

        with torch.enable_grad():
            norm = torch.linalg.vector_norm(_charges(self.pot, item, self.h) - item.q_ref)
            if float(norm.detach()) == 0.0:  # n2p2: zero Jacobian
                return 0.0, torch.zeros(sum(p.numel() for p in self.params), dtype=torch.float64)
            return -float(norm.detach()), flat_jacobian(norm, self.params, retain_graph=False)

    def update(self, item) -> None:
        xi, H = self.error_and_jacobian(item)
        dw = self.kf.update(torch.tensor([xi], dtype=torch.float64), H[:, None])
        add_flat(self.params, dw)

    def epoch(self, epoch: int, rmse_train: float) -> None:
        """All charge updates of one epoch; rmse_train: the previous epoch's training charge RMSE
        (computation units; threshold selection)."""
        from hdnnp.training.fourg_stages import _charges

        mode = self.plan.mode(epoch)
        order = torch.randperm(len(self.train), generator=self.generator).tolist()
        pos = 0
        for _ in range(self.n_updates):
            for _ in range(max(self.plan.trials, 1) if mode == 2 else 1):
                k, pos = _cycle(order, pos)
                item = self.train[k]
                if mode != 2:
                    break
                with torch.no_grad():
                    norm = float(torch.linalg.vector_norm(_charges(self.pot, item, self.h) - item.q_ref))
                frac = norm / math.sqrt(len(item.q_ref)) / rmse_train if rmse_train > 0 else math.inf
                if frac > self.plan.threshold:
                    break
            self.update(item)  # none above the threshold: the last one tried, as n2p2


# ------------------------------------------------------------------------------------------ stage 2
class ShortKalman:
    """Stage 2: n2p2's "energy" and "force" updates of the short networks (charges fixed).

    pot : the 4G Potential (its short ``networks`` are updated in place).
    train : the stage-2 items (``fourg_stages._Item2``) of the training structures.
    force_weight : multiplies the force updates' error and Jacobian (n2p2 ``force_weight``).
    use_forces : input.nn's ``use_short_forces`` (no force updates without it).
    """

    def __init__(self, pot, train: list, kp: KalmanParameters, plans: dict, force_weight: float, use_forces: bool,
                 seed: int):
        from hdnnp.model.fourg import units
        from hdnnp.training.kalman import weight_blocks

        self.pot, self.train, self.plans, self.force_weight = pot, train, plans, force_weight
        self.ce, self.cl, _ = units(pot)
        self.params, _, _ = weight_blocks(pot, "none")
        n_e = len(train)
        n_f = 3 * sum(it.n for it in train) if use_forces else 0
        frac_f = plans["force"].fraction
        if n_f and plans.get("force_energy_ratio") is not None:
            frac_f = n_e * plans["force_energy_ratio"] / n_f
        self.frac_f = frac_f
        self.n_updates = {"energy": int(n_e * plans["energy"].fraction), "force": int(n_f * frac_f) if n_f else 0}
        if self.n_updates["energy"] + self.n_updates["force"] == 0:
            raise SettingsError("stage 2 Kalman filter: no updates planned per epoch (check short_energy_fraction "
                                "and short_force_fraction)")
        n_w = sum(p.numel() for p in self.params)
        self.kf = _make_filter(n_w, kp, self.n_updates["energy"] + self.n_updates["force"],
                               f"stage 2 (energies: {self.n_updates['energy']}, forces: {self.n_updates['force']} "
                               f"updates):")
        self.generator = torch.Generator().manual_seed(int(seed) * 1000 + 31)

    # ---------------------------------------------------------------- one update
    def energy_error_and_jacobian(self, item) -> tuple[float, torch.Tensor]:
        """(xi = E_ref - E, H = dE/dw) of one structure, normalised units (x conv_energy)."""
        with torch.enable_grad():
            e_sum = sum(self.pot.networks[e](torch.cat([x, item.Q[idx, None]], dim=1)).sum()
                        for e, (idx, x, _) in item.x.items())
            xi = (item.e_ref - item.e_fixed) * self.ce - float(e_sum.detach())
            return xi, flat_jacobian(e_sum, self.params, retain_graph=False)

    def force_error_and_jacobian(self, item, atom: int, comp: int) -> tuple[float, torch.Tensor]:
        """(xi = F_ref - F, H = dF/dw) of one force component, normalised units (x conv_energy/conv_length),
        without force_weight."""
        from hdnnp.training.fourg_stages import _energy_forces

        c = self.ce / self.cl
        with torch.enable_grad():
            _, F = _energy_forces(self.pot, item, True)
            y = F[atom, comp] * c
            return float(item.f_ref[atom, comp]) * c - float(y.detach()), flat_jacobian(y, self.params,
                                                                                          retain_graph=False)

    def _apply(self, xi: float, H: torch.Tensor) -> None:
        dw = self.kf.update(torch.tensor([xi], dtype=torch.float64), H.to(torch.float64)[:, None])
        add_flat(self.params, dw)

    def update_energy(self, item) -> None:
        self._apply(*self.energy_error_and_jacobian(item))

    def update_force(self, item, atom: int, comp: int) -> None:
        xi, H = self.force_error_and_jacobian(item, atom, comp)
        self._apply(xi * self.force_weight, H * self.force_weight)

    # ---------------------------------------------------------------- one epoch
    def epoch(self, epoch: int, rmse_epa: float, rmse_f: float) -> None:
        """All updates of one epoch; rmse_epa, rmse_f: the previous epoch's training RMSEs (physical
        units, threshold selection)."""
        g = self.generator
        n = len(self.train)
        self._e = {"order": torch.randperm(n, generator=g).tolist(), "pos": 0, "mode": self.plans["energy"].mode(epoch),
                   "rmse": rmse_epa}
        if self.n_updates["force"]:
            # n2p2 (4G): force candidates are structures, each with its components shuffled (sub-candidates)
            subs = [torch.randperm(3 * it.n, generator=g).tolist() for it in self.train]
            self._f = {"order": torch.randperm(n, generator=g).tolist(), "pos": 0, "subs": subs, "sub_pos": [0] * n,
                       "group": 0, "mode": self.plans["force"].mode(epoch), "rmse": rmse_f}
        schedule = torch.tensor([1] * self.n_updates["force"] + [0] * self.n_updates["energy"])
        if self.n_updates["force"] and self.n_updates["energy"]:
            schedule = schedule[torch.randperm(len(schedule), generator=g)]
        for kind in schedule.tolist():
            if kind:
                self._force_step()
            else:
                self._energy_step()

    def _energy_step(self) -> None:
        st, plan = self._e, self.plans["energy"]
        for _ in range(max(plan.trials, 1) if st["mode"] == 2 else 1):
            k, st["pos"] = _cycle(st["order"], st["pos"])
            item = self.train[k]
            if st["mode"] != 2:
                break
            with torch.no_grad():
                err = self._energy_error(item)
            frac = abs(err) / (item.n * st["rmse"]) if st["rmse"] > 0 else math.inf
            if frac > plan.threshold:
                break
        self.update_energy(item)

    def _energy_error(self, item) -> float:
        """E_ref - E (physical) of one structure."""
        e_sum = sum(float(self.pot.networks[e](torch.cat([x, item.Q[idx, None]], dim=1)).sum())
                    for e, (idx, x, _) in item.x.items())
        return item.e_ref - item.e_fixed - e_sum / self.ce

    def _force_step(self) -> None:
        from hdnnp.training.fourg_stages import _energy_forces

        st, plan = self._f, self.plans["force"]
        k = st["order"][st["pos"] % len(st["order"])]
        item, subs = self.train[k], st["subs"][k]
        for _ in range(max(plan.trials, 1) if st["mode"] == 2 else 1):
            sub, st["sub_pos"][k] = _cycle(subs, st["sub_pos"][k])
            if st["mode"] != 2:
                break
            _, F = _energy_forces(self.pot, item, False)
            err = abs(float(item.f_ref[sub // 3, sub % 3] - F.detach()[sub // 3, sub % 3]))
            frac = err / st["rmse"] if st["rmse"] > 0 else math.inf
            if frac > plan.threshold:
                break
        self.update_force(item, sub // 3, sub % 3)
        # n2p2: int(3 N x fraction) consecutive force updates on one structure, then the next structure
        st["group"] += 1
        if st["group"] >= max(int(3 * item.n * self.frac_f), 1):
            st["group"] = 0
            st["pos"] += 1

