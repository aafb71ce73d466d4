"""4G-HDNNP training in n2p2's two stages (``hdnnp train input.nn --stage 1|2|both``).

Stage 1: the chi networks and the element hardness J against reference charges.

Stage 1 of n2p2's ``nnp-train 1``: with the structures fixed, the charges Q = Qeq(chi(G), J) depend
on the chi networks' weights and on J only, so the loss sum (Q - Q_ref)^2 is minimised by
autograd through the (small, per-structure) bordered solve. J is parametrised as h^2 (positive),
as in n2p2. The real-space/k-space Qeq matrix without J is computed once per structure.
Optimizer: full-batch L-BFGS (default), Adam, or n2p2's Kalman filter (``optimizer="kalman"``, input.nn's
kalman_* keywords and update plan; :mod:`hdnnp.training.fourg_kalman`).

Writes an n2p2 4G potential directory: input.nn, scaling.data, weightse.ZZZ.data, hardness.ZZZ.data
(and, when the input directory has them, the short weights.ZZZ.data unchanged), plus
``learning-curve.out.stage-1`` with n2p2's columns (epoch, RMSE_Qtrain, RMSE_Qtest, MAE_Qtrain, MAE_Qtest).

Stage 2 (``train_stage2``): chi and J fixed, so for the fixed training positions the charges, dQ/dr,
the electrostatic energy and forces, G and dG/dr are constants computed once per structure; the
short networks (charge as last input) are fitted to energies and forces (loss: mean (dE/N)^2 +
force_weight mean dF^2), forces F = -(dE/dG dG/dr + dE/dQ dQ/dr) + F_elec, exactly those of
``Potential.compute`` for the written potential (tested).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hdnnp.errors import HDNNPError
from hdnnp.io.n2p2_data import read_input_data
from hdnnp.io.potential_directory import PotentialDirectory

log = logging.getLogger("hdnnp")


def _one_torch_thread(fn):
    """Run a stage with one torch CPU thread (the 2G trainer's default ``hdnnp_torch_threads 1``): the
    networks and the per-structure solves are small, and on a busy machine a second thread made a
    Kalman update of 1 399 weights 30x slower (91 ms against 2.9 ms)."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(n)
    return run


def _n2p2_initial_weights(pot, settings, which: str, seed: int) -> None:
    """n2p2's initial weights for the networks a Kalman stage trains (``which``: "charge_networks" in
    stage 1, "networks" in stage 2) when input.nn has ``weights_min``/``weights_max``: uniform in that
    range, then Glorot-Bengio (zero biases) or Nguyen-Widrow, as nnp-train and the 2G trainer
    (training.initialization); otherwise torch's defaults stay. With them the stage-1 Kalman learning curve
    follows n2p2's (charge RMSE ~4e-4 after 2 epochs on H2O_RPBE-D3_4G; ~2e-3 from torch's defaults).
    Stage-2 L-BFGS from these weights stalled at a 2x higher force RMSE (one seed), so L-BFGS and Adam keep
    torch's defaults."""
    import types

    from hdnnp.training.config import config_from_settings
    from hdnnp.training.initialization import _n2p2_init

    if "weights_min" not in settings and "weights_max" not in settings:
        return
    cfg = config_from_settings(settings, warn=False)
    gen = torch.Generator().manual_seed(int(seed) * 7919 + (1 if which == "charge_networks" else 2))
    _n2p2_init(types.SimpleNamespace(elements=pot.elements, networks=getattr(pot, which)), cfg, gen)


def _check_optimizer(optimizer: str, settings, stage: int):
    """Refuse an unknown optimizer or unsupported Kalman settings before the (slow) preparation; returns
    the Kalman parameters and update plans for ``kalman``, else None."""
    if optimizer not in ("lbfgs", "adam", "kalman"):
        raise HDNNPError(f"stage {stage} optimizer must be lbfgs, adam or kalman, not {optimizer!r}")
    if optimizer != "kalman":
        return None
    from hdnnp.training.fourg_kalman import kalman_setup

    return kalman_setup(settings, stage)


def _test_set(settings, n: int, test_fraction: float, seed: int) -> np.ndarray:
    """(n,) bool, True for the test structures: for an input.nn written for nnp-train (``updater_type``
    given) nnp-train's own split (the same structures as n2p2 with input.nn's ``random_seed``,
    :func:`hdnnp.training.dataset.n2p2_draws`), as the 2G trainer; else (or with ``hdnnp_split hdnnp``)
    one uniform draw per structure from ``seed``."""
    from hdnnp.training.dataset import n2p2_draws

    method = (settings.get_str("hdnnp_split") or ("n2p2" if "updater_type" in settings else "hdnnp")).lower()
    if method == "n2p2":
        return n2p2_draws(n, settings.get_int("random_seed", 1), n) < test_fraction
    if method != "hdnnp":
        raise settings.error(settings.line("hdnnp_split"), f"hdnnp_split must be hdnnp or n2p2, found {method!r}")
    return np.random.default_rng(seed).random(n) < test_fraction


@dataclass
class Stage1Result:
    curve: list = field(default_factory=list)  # (epoch, rmse_train, rmse_test, mae_train, mae_test)
    wall_time_s: float = 0.0
    run_dir: Path | None = None


@dataclass
class _Item:
    x: dict          # element -> (idx, scaled SFs)
    species: torch.Tensor
    A0: torch.Tensor  # (n, n) Qeq matrix without J (computation units)
    q_tot: float
    q_ref: torch.Tensor


def _prepare(pot, structures) -> list[_Item]:
    from hdnnp.model.fourg import _chi_and_inputs, ewald_parameters, image_pairs, units

    _, cl, cc = units(pot)
    items = []
    for s in structures:
        species = pot.sf_set.species_of(s)
        sp = torch.as_tensor(species)
        G = torch.as_tensor(pot.sf_set._run(s, pot.sf_set.neighbors(s), species, 0)[0], dtype=pot.dtype)
        with torch.no_grad():
            _, x = _chi_and_inputs(pot, G, sp)
            ewald = ewald_parameters(pot, s)
            pos = torch.as_tensor(s.positions, dtype=pot.dtype) * cl
            cell = None if s.cell is None else torch.as_tensor(s.cell, dtype=pot.dtype) * cl
            pairs = image_pairs(pot, pos, cell, ewald)
            A0 = pot.electrostatics.pair_terms(sp, pos, cell, pairs, ewald).matrix(pos)
        items.append(_Item({e: (idx, xx.detach()) for e, (idx, xx) in x.items()}, sp, A0,
                           float(s.charge or 0.0) * cc, torch.as_tensor(s.charges, dtype=pot.dtype) * cc))
    return items


def _charges(pot, item: _Item, h: torch.Tensor) -> torch.Tensor:
    from hdnnp.model.fourg import units

    ce, _, cc = units(pot)
    n = item.A0.shape[0]
    chi = torch.zeros(n, dtype=pot.dtype)
    for e, (idx, x) in item.x.items():
        chi = chi.index_put((idx,), pot.charge_networks[e](x) * (ce / cc))
    M = torch.ones((n + 1, n + 1), dtype=pot.dtype)
    M[:n, :n] = item.A0 + torch.diag(h[item.species] ** 2)
    M[n, n] = 0.0
    b = torch.cat([-chi, torch.tensor([item.q_tot], dtype=pot.dtype)])
    return torch.linalg.solve(M, b)[:n]


def _errors(pot, items, h) -> tuple[float, float]:
    if not items:
        return 0.0, 0.0
    with torch.no_grad():
        d = torch.cat([_charges(pot, it, h) - it.q_ref for it in items])
    return float(torch.sqrt((d * d).mean())), float(d.abs().mean())


@_one_torch_thread
def train_stage1(input_nn: str | Path, data: str | Path, run_dir: str | Path, epochs: int = 10,
                 optimizer: str = "lbfgs", learning_rate: float = 1e-3, test_fraction: float | None = None,
                 seed: int = 1, lbfgs_iterations: int = 20) -> Stage1Result:
    """Train the chi networks and the hardness of a 4G input.nn on the charges of ``data``.

    optimizer : lbfgs (full batch, ``lbfgs_iterations`` per epoch), adam (one step per structure) or
    kalman (n2p2's filter: one update per training structure x ``charge_fraction``).

    The scaling.data next to input.nn is used (else computed from the data, as nnp-scaling does).
    test_fraction : default input.nn's ``test_fraction`` (else 0.1); the split: see :func:`_test_set`.
    """
    from hdnnp.model.potential import Potential
    from hdnnp.training.statistics import sf_statistics

    t0 = time.perf_counter()
    input_nn, run_dir = Path(input_nn), Path(run_dir)
    src = PotentialDirectory(input_nn.parent, input_nn.name)
    settings = src.read_settings()
    if settings.nnp_generation() != 4:
        raise HDNNPError(f"{input_nn}: stage 1 needs a 4G input.nn (nnp_generation 4)")
    scaling = src.scaling_path
    pot = Potential.from_settings(settings, scaling_path=scaling if scaling.is_file() else None, seed=seed,
                                  source=src)
    kalman = _check_optimizer(optimizer, settings, 1)
    if kalman is not None:  # n2p2's filter from n2p2's initial weights (L-BFGS/Adam keep torch's)
        _n2p2_initial_weights(pot, settings, "charge_networks", seed)
    structures = read_input_data(data)
    if not scaling.is_file():
        pot.set_scaling(sf_statistics(pot.sf_set, structures))
    if test_fraction is None:
        test_fraction = settings.get_float("test_fraction", 0.1)
    is_test = _test_set(settings, len(structures), test_fraction, seed)
    items = _prepare(pot, structures)
    train = [it for it, t in zip(items, is_test) if not t]
    test = [it for it, t in zip(items, is_test) if t]
    h = torch.sqrt(pot.electrostatics.hardness.detach().clone()).requires_grad_(True)
    params = [h] + [p for net in pot.charge_networks.values() for p in net.parameters()]
    n_train_atoms = sum(len(it.q_ref) for it in train)

    def loss_fn():
        return sum(((_charges(pot, it, h) - it.q_ref) ** 2).sum() for it in train) / n_train_atoms

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=lbfgs_iterations, line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)  # the loss is ~1e-7 e^2
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=learning_rate)
    else:
        from hdnnp.training.fourg_kalman import ChargeKalman

        opt = ChargeKalman(pot, h, train, kalman[0], kalman[1]["charge"], seed)
    result = Stage1Result(run_dir=run_dir)
    cc = pot.conv_charge
    rmse_train = 0.0
    for epoch in range(epochs + 1):
        if epoch > 0:
            if optimizer == "kalman":
                opt.epoch(epoch, rmse_train)
            elif optimizer == "lbfgs":
                def closure():
                    opt.zero_grad()
                    loss = loss_fn()
                    loss.backward()
                    return loss
                opt.step(closure)
            else:
                for it in train:  # one update per structure, as n2p2's task batches of 1
                    opt.zero_grad()
                    loss = ((_charges(pot, it, h) - it.q_ref) ** 2).mean()
                    loss.backward()
                    opt.step()
        tr, te = _errors(pot, train, h), _errors(pot, test, h)
        rmse_train = tr[0]
        row = (epoch, tr[0] / cc, te[0] / cc, tr[1] / cc, te[1] / cc)
        result.curve.append(row)
        log.info("stage 1 epoch %3d: charge RMSE train %.4e test %.4e (e)", epoch, row[1], row[2])
    with torch.no_grad():
        pot.electrostatics.hardness.copy_(h.detach() ** 2)
    _write_stage1(pot, src, run_dir, result.curve)
    result.wall_time_s = time.perf_counter() - t0
    return result


def _write_stage1(pot, src: PotentialDirectory, run_dir: Path, curve) -> None:
    """The stage-1 potential directory: input.nn copied from ``src`` (as input.nn), scaling.data,
    weightse/hardness files, the short weights of ``src`` copied when it has them, the curve."""
    out = PotentialDirectory(run_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    if src.settings_path.resolve() != out.settings_path.resolve():
        shutil.copyfile(src.settings_path, out.settings_path)
    if pot.scaling_stats is not None:
        out.write_scaling(pot.scaling_stats)
    for e, J in zip(pot.elements, pot.hardness_physical()):
        out.write_charge_weights(e, pot.charge_networks[e].get_weights())
        out.write_hardness(e, J)
        if src.weights_path(e).is_file():
            out.copy_file_from(src, src.weights_path(e).name)
    lines = ["#" * 78, "# Learning curve, stage 1 (charges; hdnnp, columns as n2p2).", "#" * 78,
             "#        1                2                3                4                5",
             "#    epoch   RMSE_Qtrain_pu    RMSE_Qtest_pu    MAE_Qtrain_pu     MAE_Qtest_pu", "#" * 78]
    lines += [f"{r[0]:10d} {r[1]:16.8E} {r[2]:16.8E} {r[3]:16.8E} {r[4]:16.8E}" for r in curve]
    (run_dir / "learning-curve.out.stage-1").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------- stage 2
@dataclass
class _Item2:
    """One structure for stage 2; positions and chi/J are fixed, so G, dG/dr, the charges Q, dQ/dr
    and the electrostatic energy and forces are constants (computed once)."""

    x: dict             # element -> (idx, scaled SFs (m, n_sf), factor (n_sf,))
    dGdr: torch.Tensor  # (n, max_sf, n, 3) dG_i,s / dr_j
    Q: torch.Tensor     # (n,) charges (computation units)
    dQdr: torch.Tensor  # (n, n, 3)
    e_fixed: float      # E_elec + mean/offset shift (physical)
    f_elec: torch.Tensor  # (n, 3) -dE_elec/dr (total, through Q)
    e_ref: float
    f_ref: torch.Tensor
    n: int


def _prepare2(pot, structures) -> list[_Item2]:
    from hdnnp.model.fourg import ewald_parameters, fourg_energy, units

    ce, _, cc = units(pot)
    items = []
    for s in structures:
        species = pot.sf_set.species_of(s)
        sp = torch.as_tensor(species)
        nl = pot.sf_set.neighbors(s)
        G_np, D, _ = pot.sf_set._run(s, nl, species, 1)
        n, ms = G_np.shape
        dGdr = np.zeros((n, ms, n, 3))
        np.add.at(dGdr, (nl.i, slice(None), nl.j), D)  # (p, ms, 3) into [i_p, :, j_p, :]
        np.add.at(dGdr, (nl.i, slice(None), nl.i), -D)
        dGdr = torch.as_tensor(dGdr, dtype=pot.dtype)
        pos = torch.as_tensor(s.positions, dtype=pot.dtype)
        cell = None if s.cell is None else torch.as_tensor(s.cell, dtype=pot.dtype)
        if cell is not None:
            pos = pos - torch.floor(pos @ torch.linalg.inv(cell)) @ cell
        ewald = ewald_parameters(pot, s)
        G = torch.as_tensor(G_np, dtype=pot.dtype).requires_grad_(True)
        pos = pos.requires_grad_(True)
        terms = fourg_energy(pot, G, sp, pos, cell, float(s.charge or 0.0), ewald)
        Q = terms.charges * cc
        # dQ/dr (n, n, 3): one backward pass per charge through SFs and the explicit dependence
        eye = torch.eye(n, dtype=pot.dtype)
        try:  # all n backward passes at once (vmap over the output gradients)
            gG, gp = torch.autograd.grad(Q, [G, pos], grad_outputs=eye, retain_graph=True, is_grads_batched=True)
            rows = list(torch.einsum("kis,isjc->kjc", gG, dGdr) + gp)
        except RuntimeError:  # an operation without a batching rule: one pass per charge
            rows = []
            for k in range(n):
                gG, gp = torch.autograd.grad(Q[k], [G, pos], retain_graph=True)
                rows.append(torch.einsum("is,isjc->jc", gG, dGdr) + gp)
        gG, gp = torch.autograd.grad(terms.elec, [G, pos])
        f_elec = -(torch.einsum("is,isjc->jc", gG, dGdr) + gp)
        x = {}
        for e, (idx, xx) in pot.scaled_inputs(G.detach(), sp).items():
            x[e] = (idx, xx, pot._scale_t[e][1])
        items.append(_Item2(x, dGdr, Q.detach(), torch.stack(rows).detach(),
                            float(terms.elec.detach()) + pot.energy_shift(s), f_elec.detach(), float(s.energy),
                            torch.as_tensor(s.forces, dtype=pot.dtype), n))
    return items


def _energy_forces(pot, it: _Item2, create_graph: bool):
    """Energy (physical) and forces of one structure, differentiable in the short networks' weights."""
    from hdnnp.model.fourg import units

    ce = units(pot)[0]
    ms = it.dGdr.shape[1]
    e_sum = 0.0
    dEdG = torch.zeros((it.n, ms), dtype=pot.dtype)
    dEdQ = torch.zeros(it.n, dtype=pot.dtype)
    with torch.enable_grad():
        for e, (idx, x, factor) in it.x.items():
            inp = torch.cat([x, it.Q[idx, None]], dim=1).requires_grad_(True)
            out = pot.networks[e](inp)
            (g,) = torch.autograd.grad(out.sum(), inp, create_graph=create_graph)
            e_sum = e_sum + out.sum()
            ns = x.shape[1]
            dEdG = dEdG.index_put((idx,), torch.nn.functional.pad(g[:, :ns] * factor, (0, ms - ns)))
            dEdQ = dEdQ.index_put((idx,), g[:, ns])
    F = -(torch.einsum("is,isjc->jc", dEdG, it.dGdr) + torch.einsum("i,ijc->jc", dEdQ, it.dQdr)) / ce + it.f_elec
    return e_sum / ce + it.e_fixed, F


def _errors2(pot, items):
    """RMSE of the energy per atom and of the force components (physical units)."""
    if not items:
        return 0.0, 0.0
    de, df = [], []
    for it in items:
        E, F = _energy_forces(pot, it, False)
        de.append(float(E.detach() - it.e_ref) / it.n)
        df.append((F.detach() - it.f_ref).flatten())
    df = torch.cat(df)
    return float(np.sqrt(np.mean(np.square(de)))), float(torch.sqrt((df * df).mean()))


@_one_torch_thread
def train_stage2(stage1_dir: str | Path, data: str | Path, run_dir: str | Path, epochs: int = 10,
                 optimizer: str = "lbfgs", learning_rate: float = 1e-3, force_weight: float | None = None,
                 test_fraction: float | None = None, seed: int = 1, lbfgs_iterations: int = 20) -> Stage1Result:
    """n2p2's stage 2: the short-range networks on energies and forces, chi networks and hardness fixed
    (read from ``stage1_dir``: input.nn, scaling.data, weightse/hardness files; short weights start
    random). Loss: mean (dE/N)^2 + force_weight * mean dF^2 (force_weight: input.nn's, else 10);
    optimizer lbfgs, adam or kalman (n2p2's energy and force updates, :mod:`hdnnp.training.fourg_kalman`).
    Writes the full 4G potential and ``learning-curve.out.stage-2`` (epoch, RMSE E/atom train/test,
    RMSE F train/test)."""
    from hdnnp.model.potential import Potential

    t0 = time.perf_counter()
    stage1, run_dir = PotentialDirectory(stage1_dir), Path(run_dir)
    settings = stage1.read_settings()
    if settings.nnp_generation() != 4:
        raise HDNNPError(f"{stage1.settings_path}: stage 2 needs a 4G input.nn (nnp_generation 4)")
    pot = Potential.from_settings(settings, scaling_path=stage1.scaling_path, seed=seed, source=stage1)
    pot.load_fourg_files(stage1)
    kalman = _check_optimizer(optimizer, settings, 2)
    if kalman is not None:
        _n2p2_initial_weights(pot, settings, "networks", seed)
    for p in list(pot.charge_networks.parameters()) + [pot.electrostatics.hardness]:
        p.requires_grad_(False)
    fw = force_weight if force_weight is not None else settings.get_float("force_weight", 10.0)
    if test_fraction is None:
        test_fraction = settings.get_float("test_fraction", 0.1)
    structures = read_input_data(data)
    is_test = _test_set(settings, len(structures), test_fraction, seed)
    items = _prepare2(pot, structures)
    train = [it for it, t in zip(items, is_test) if not t]
    test = [it for it, t in zip(items, is_test) if t]
    params = [p for net in pot.networks.values() for p in net.parameters()]
    # start the output biases at the mean short-range energy per atom (n2p2's first epoch does this job)
    from hdnnp.model.fourg import units

    mean_epa = float(np.mean([(it.e_ref - it.e_fixed) / it.n for it in train])) * units(pot)[0]
    with torch.no_grad():
        for net in pot.networks.values():
            net.layers[-1].bias.fill_(mean_epa)

    def loss_of(batch):
        loss = 0.0
        for it in batch:
            E, F = _energy_forces(pot, it, True)
            loss = loss + ((E - it.e_ref) / it.n) ** 2 / len(batch) + fw * ((F - it.f_ref) ** 2).mean() / len(batch)
        return loss

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=lbfgs_iterations, line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=learning_rate)
    else:
        from hdnnp.training.fourg_kalman import ShortKalman

        opt = ShortKalman(pot, train, kalman[0], kalman[1], fw, settings.get_bool("use_short_forces"), seed)
    result = Stage1Result(run_dir=run_dir)
    for epoch in range(epochs + 1):
        if epoch > 0:
            if optimizer == "kalman":
                opt.epoch(epoch, *result.curve[-1][1:4:2])
            elif optimizer == "lbfgs":
                def closure():
                    opt.zero_grad()
                    loss = loss_of(train)
                    loss.backward()
                    return loss
                opt.step(closure)
            else:
                for it in train:
                    opt.zero_grad()
                    loss_of([it]).backward()
                    opt.step()
        (e_tr, f_tr), (e_te, f_te) = _errors2(pot, train), _errors2(pot, test)
        result.curve.append((epoch, e_tr, e_te, f_tr, f_te))
        log.info("stage 2 epoch %3d: RMSE E/atom train %.4e test %.4e, F train %.4e test %.4e", epoch, e_tr, e_te,
                 f_tr, f_te)
    run_dir.mkdir(parents=True, exist_ok=True)
    pot.save(run_dir, overwrite=True)
    lines = ["#" * 94, "# Learning curve, stage 2 (energies and forces; hdnnp).", "#" * 94,
             "#    epoch  RMSEpa_Etrain_pu  RMSEpa_Etest_pu    RMSE_Ftrain_pu     RMSE_Ftest_pu", "#" * 94]
    lines += [f"{r[0]:10d} {r[1]:17.8E} {r[2]:17.8E} {r[3]:17.8E} {r[4]:17.8E}" for r in result.curve]
    (run_dir / "learning-curve.out.stage-2").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result.wall_time_s = time.perf_counter() - t0
    return result
