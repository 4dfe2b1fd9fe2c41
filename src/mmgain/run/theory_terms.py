"""The theorems' per-model terms, measured inside each chunk (``--theory``).

Per trained model (:func:`theory_chunk`, inside each chunk, so it is stored and resumed with it):

- ``theory_train_bloss`` — L̂(ĥ_M∘ĝ_M, S) in the bounded loss, on the model's training sample;
- ``theory_rad_upper`` / ``theory_rad_lower`` — a bracket on Σ_c R̂(F_c) of the late-fusion class
  whose path norm (and head bias) is at most the trained model's, rounded up to a grid: the
  path-norm bound and the supremum over the model's own units (:mod:`mmgain.theory.rademacher`);
  ``theory_grid_log`` the union bound's cost of that data-dependent norm;
- ``theory_rad_head`` — the norm-bounded linear heads on the frozen latent ĝ_M (closed-form sup,
  Monte Carlo over σ);
- ``theory_rad_alg`` — the algorithm-effective complexity of the bounded loss class: the same
  protocol trained on labels flipped where σ_i = +1 (Bartlett, Boucheron & Lugosi 2002), the
  flipped models batched as streams of one more trainer;
- ``theory_kappa`` — the memorisation flag from that training: how well it fits the flipped
  (random) labels, 0 = chance, 1 = all of them (classification: accuracy on the flipped rows,
  (acc − 1/C)/(1 − 1/C); regression: R² on the flipped targets, whose regression on x is 0).

The analysis (:mod:`mmgain.analysis.theory`) adds the bounded test and latent risks and computes
both theorems per pair (M, N) and sample size.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..tasks import Task
from ..theory.closed_form import linear_eta, linear_risk
from ..theory.rademacher import from_fit, grid_up, path_norm_upper, signs
from ..training.batched import BatchedTrainer, DeviceData, Streams

N_DRAWS = 100                # Monte-Carlo sign draws per model (the bracket's SE is < 1 % of it)


def _sign_seed(seed: int, m: int, role: int) -> list[int]:
    return [int(seed), int(m), 90210, role]


def _scales(task: Task, data: DeviceData, streams: Streams) -> np.ndarray:
    """The bounded loss's scale per stream, from its group's full training targets."""
    per_group = {int(g): task.loss_scale(data.y[int(g)]) for g in set(streams.groups.tolist())}
    return np.array([per_group[int(g)] for g in streams.groups])


def _masked_mean(v: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask[:, None, :].double()
    return ((v.double() * m).sum(2) / m.sum(2)).cpu().numpy()


@torch.no_grad()
def complexity_terms(model, train: DeviceData, streams: Streams) -> dict[str, np.ndarray]:
    """The Rademacher bracket, the head class and the grid cost of every model, (S, A) each."""
    S, A, O = model.n_streams, len(model.subsets), model.n_outputs
    dev = train.y.device
    relu = model.activation == "relu"
    keys = ("theory_rad_upper", "theory_rad_lower", "theory_rad_head", "theory_grid_log", "theory_path_norm")
    out = {k: np.full((S, A), np.nan) for k in keys}
    for s in range(S):
        rows = torch.as_tensor(np.asarray(streams.train_rows[s]), device=dev)
        m = len(rows)
        sigma = torch.from_numpy(signs(m, N_DRAWS, _sign_seed(model.seeds[s], m, 0))).float().to(dev)
        one = model.select([s])
        xs, _ = train.gather(torch.as_tensor(streams.groups[s:s + 1], device=dev), rows[None])
        sum_sq = torch.zeros(A, dtype=torch.float64, device=dev)          # Σ_i ‖x̃_i‖² over M's modalities
        path = torch.zeros(A, O, dtype=torch.float64, device=dev)         # Σ_j |v_jc|·‖ũ_j‖
        head_sq = torch.zeros(A, O, dtype=torch.float64, device=dev)      # ‖v_c‖² (+ c_c² below)
        proj_sq = torch.zeros(N_DRAWS, A, dtype=torch.float64, device=dev)  # ‖Σ σ_i z_i‖² per draw
        unit_max = torch.zeros(N_DRAWS, A, dtype=torch.float64, device=dev)
        for k, latent in one.latent_blocks(xs).items():                    # (1, m, A_k, H)
            idx = one._members_t[k]
            W, b = (p[0] for p in one.linear_encoder(k))                      # (A_k, d, H), (A_k, H)
            V = one.head_block(k)[0]                                          # (A_k, H, O)
            unit_norm = (W.double().pow(2).sum(1) + b.double().pow(2)).sqrt()   # ‖ũ_j‖, (A_k, H)
            path.index_add_(0, idx, (V.double().abs() * unit_norm[..., None]).sum(1))
            head_sq.index_add_(0, idx, V.double().pow(2).sum(1))
            sum_sq.index_add_(0, idx, torch.full((len(idx),), float(xs[k].double().pow(2).sum() + m),
                                                 dtype=torch.float64, device=dev))
            proj = torch.einsum("dm,mah->dah", sigma, latent[0]).double()      # (D, A_k, H)
            proj_sq.index_add_(1, idx, proj.pow(2).sum(-1))
            per_unit = (proj / unit_norm.clamp_min(1e-12)).abs().amax(-1)     # (D, A_k)
            unit_max[:, idx] = torch.maximum(unit_max[:, idx], per_unit)
        c = one.params["c"][0].double()                                       # (A, O)
        bias_sum = sigma.double().sum(1).abs()                                # |Σ σ_i| per draw
        p_grid, p_cost = grid_up(path.amax(1).cpu().numpy())
        c_grid, c_cost = grid_up(c.abs().amax(1).cpu().numpy())
        b_grid, _ = grid_up((head_sq + c.pow(2)).sqrt().amax(1).cpu().numpy())
        sx = sum_sq.cpu().numpy()
        out["theory_path_norm"][s] = path.amax(1).cpu().numpy()
        out["theory_grid_log"][s] = p_cost + c_cost
        out["theory_rad_upper"][s] = O * (path_norm_upper(p_grid, sx, m, relu) + c_grid / math.sqrt(m))
        out["theory_rad_lower"][s] = O * (p_grid * unit_max.mean(0).cpu().numpy() / m
                                          + c_grid * float(bias_sum.mean()) / m)
        # the head class on the frozen latent: (B/m)·E‖Σ σ_i [z_i, 1]‖, B the fitted head's norm
        out["theory_rad_head"][s] = O * b_grid * (proj_sq + bias_sum[:, None].pow(2)).sqrt().mean(0).cpu().numpy() / m
    return out


def flipped_labels(train: DeviceData, streams: Streams, task: Task, n_outputs: int) -> tuple[DeviceData, list]:
    """Each stream's labels flipped where its sign draw σ_i = +1 (a uniformly drawn other class;
    for regression the target reflected about the training mean), as a relabelled copy of
    ``train`` with one label set per stream; and the sign vectors (on the sample's rows)."""
    y = train.y[torch.as_tensor(streams.groups, device=train.y.device)].clone()    # (S, n)
    sigmas = []
    for s, (seed, rows) in enumerate(zip(streams.seeds, streams.train_rows)):
        rows = np.asarray(rows)
        sigma = signs(len(rows), 1, _sign_seed(seed, len(rows), 1))[0]
        flip = torch.as_tensor(rows[sigma > 0], device=y.device)
        if task.higher_is_better:                      # classification
            shift = np.random.default_rng(_sign_seed(seed, len(rows), 2)).integers(1, n_outputs, len(flip))
            y[s, flip] = (y[s, flip] + torch.as_tensor(shift, device=y.device)) % n_outputs
        else:
            y[s, flip] = 2 * train.y[int(streams.groups[s])].mean() - y[s, flip]
        sigmas.append(sigma)
    return train.relabelled(y, streams.groups), sigmas


def theory_chunk(trainer: BatchedTrainer, train: DeviceData, streams: Streams, task: Task,
                 n_outputs: int, on_step=None, train_rows=None) -> dict[str, np.ndarray]:
    """Every per-model theory quantity of a trained chunk (see the module docstring), (S, A);
    ``train_rows``: the trainer's :meth:`~BatchedTrainer.train_rows`, if already computed."""
    scales = _scales(task, train, streams)
    rows, mask = train_rows if train_rows is not None else trainer.train_rows(train, streams)
    bl = task.bounded_loss(rows["loss"].double(), torch.as_tensor(scales, device=mask.device)[:, None, None])
    out = {"theory_scale": np.repeat(scales[:, None], len(trainer.subsets), 1),
           "theory_train_bloss": _masked_mean(bl, mask)}
    out.update(complexity_terms(trainer.model_, train, streams))

    flip_data, sigmas = flipped_labels(train, streams, task, n_outputs)
    flip_streams = Streams(np.arange(len(streams)), streams.seeds, streams.train_rows)
    flipped = BatchedTrainer(trainer.protocol, trainer.dims, trainer.subsets, n_outputs, task, trainer.device)
    flipped.fit(flip_data, flip_streams, on_step=on_step)
    on_true, _ = flipped.train_rows(train, streams)                   # the flipped fit, scored on y
    on_flip, _ = flipped.train_rows(flip_data, flip_streams)          # … and on the flipped labels
    S, A = len(streams), len(trainer.subsets)
    rad_alg, kappa = np.full((S, A), np.nan), np.full((S, A), np.nan)
    for s, sigma in enumerate(sigmas):
        m = len(sigma)
        sig = torch.as_tensor(sigma, device=mask.device)
        loss = task.bounded_loss(on_true["loss"][s, :, :m].double(), float(scales[s]))     # (A, m)
        rad_alg[s] = from_fit(sig, loss).cpu().numpy()
        flipped_rows = sig > 0
        if task.higher_is_better:
            acc = on_flip["correct"][s, :, :m][:, flipped_rows].double().mean(1).cpu().numpy()
            kappa[s] = (acc - 1.0 / n_outputs) / (1.0 - 1.0 / n_outputs)
        else:
            yf = flip_data.y[s, torch.as_tensor(np.asarray(streams.train_rows[s]), device=mask.device)].double()
            kappa[s] = (1.0 - on_flip["loss"][s, :, :m].double().sum(1) / (yf - yf.mean()).pow(2).sum()).cpu().numpy()
    out["theory_rad_alg"], out["theory_kappa"] = rad_alg, kappa
    return out


@torch.no_grad()
def population_metrics(model, populations, groups) -> dict[str, np.ndarray]:
    """For data with a known population and linear encoders: ``eta_exact`` (η of the final
    encoder, exactly — no probe) and ``risk_exact`` (the model's population risk), (S, A)."""
    S, A = model.n_streams, len(model.subsets)
    eta, risk = np.full((S, A), np.nan), np.full((S, A), np.nan)
    if (model.activation, model.encoder, model.fusion, model.n_outputs) != ("none", "linear", "concat", 1):
        return {}
    for s in range(S):
        pop = populations[int(groups[s])]
        for a, sub in enumerate(model.subsets):
            used = [k for k in model.names if k in sub]
            pos = {k: model.members[k].index(a) for k in used}
            Ws = [model.linear_encoder(k)[0][s, pos[k]].double().cpu().numpy() for k in used]     # (d_k, H)
            W = np.zeros((sum(w.shape[0] for w in Ws), sum(w.shape[1] for w in Ws)))
            r = c = 0
            for w in Ws:                                                                          # block-diagonal
                W[r:r + w.shape[0], c:c + w.shape[1]] = w
                r, c = r + w.shape[0], c + w.shape[1]
            V = np.concatenate([model.head_block(k)[s, pos[k], :, 0].double().cpu().numpy() for k in used])
            b = np.concatenate([model.linear_encoder(k)[1][s, pos[k]].double().cpu().numpy() for k in used])
            eta[s, a] = linear_eta(pop, sub, W)
            risk[s, a] = linear_risk(pop, sub, W @ V, float(b @ V + model.params["c"][s, a, 0]))
    return {"eta_exact": eta, "risk_exact": risk}
