"""Modality attribution over the retrained lattice, and the joint-training diagnostics.

Shapley values of the modalities with v(M) = the test metric of the model *trained* on M
(accuracy in points, or −MSE) and v(∅) = the best constant prediction:

    φ_k = Σ_{N ⊆ [K]∖k} |N|!(K−|N|−1)!/K! · [v(N∪k) − v(N)],

and the pairwise Shapley interaction index (Grabisch 1997)

    I_ij = Σ_{N ⊆ [K]∖{i,j}} |N|!(K−|N|−2)!/(K−1)! · [v(N∪ij) − v(N∪i) − v(N∪j) + v(N)],

negative for redundant pairs, positive for synergistic ones.  Exact from the lattice when
every subset was trained; :func:`permutation_shapley` is the sampled estimator (with its
standard error) for lattices too large to enumerate.  The masking version (one joint model,
modalities dropped at test time) is computed beside it for comparison: it is what peers
call Shapley, and it answers another question (what the joint model relies on, not what a
modality adds when a model is trained with it).
"""
from __future__ import annotations

from math import factorial
from typing import Callable

import numpy as np

from ..data.subsets import SAMPLED_SEED, effective_selection, subset_name
from .stats import two_level

MISSING_P = (0.0, 0.1, 0.3, 0.5, 1.0)
BOOTSTRAP = 2000


def _weights(K: int, size: int, extra: int) -> float:
    return factorial(size) * factorial(K - size - extra) / factorial(K - extra + 1)


def shapley_exact(v: np.ndarray) -> np.ndarray:
    """φ (K,) from v (..., 2^K) indexed by bitmask (bit i set = modality i in the subset)."""
    v = np.asarray(v, dtype=np.float64)
    K = int(np.log2(v.shape[-1]))
    phi = np.zeros(v.shape[:-1] + (K,))
    for k in range(K):
        for m in range(2 ** K):
            if not m >> k & 1:
                phi[..., k] += _weights(K, bin(m).count("1"), 1) * (v[..., m | 1 << k] - v[..., m])
    return phi


def interactions_exact(v: np.ndarray) -> np.ndarray:
    """The Shapley interaction index I (..., K, K) (diagonal 0) from v (..., 2^K)."""
    v = np.asarray(v, dtype=np.float64)
    K = int(np.log2(v.shape[-1]))
    out = np.zeros(v.shape[:-1] + (K, K))
    for i in range(K):
        for j in range(i + 1, K):
            for m in range(2 ** K):
                if m >> i & 1 or m >> j & 1:
                    continue
                w = _weights(K, bin(m).count("1"), 2)
                d = v[..., m | 1 << i | 1 << j] - v[..., m | 1 << i] - v[..., m | 1 << j] + v[..., m]
                out[..., i, j] += w * d
            out[..., j, i] = out[..., i, j]
    return out


def permutation_shapley(value: Callable[[int], float], K: int, n_permutations: int,
                        seed: int = SAMPLED_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo Shapley values: the mean marginal contribution of each modality over random
    orderings (Castro et al. 2009), and its standard error.  ``value(bitmask)`` is called
    once per distinct subset met (cached)."""
    rng = np.random.default_rng(seed)
    cache: dict[int, float] = {}

    def v(m: int) -> float:
        if m not in cache:
            cache[m] = float(value(m))
        return cache[m]

    draws = np.zeros((n_permutations, K))
    for t in range(n_permutations):
        m = 0
        for k in rng.permutation(K):
            draws[t, k] = v(m | 1 << k) - v(m)
            m |= 1 << k
    se = draws.std(0, ddof=1) / np.sqrt(n_permutations) if n_permutations > 1 else np.full(K, np.nan)
    return draws.mean(0), se


def _mean_ci(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and a percentile bootstrap 95 % CI over whole seeds."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    if len(x) < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    rng = np.random.default_rng(seed)
    boot = x[rng.integers(0, len(x), (BOOTSTRAP, len(x)))].mean(1)
    return mean, np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)


def _t_ci(x: np.ndarray) -> tuple[float, float | None, float | None]:
    """Mean over seeds and the 95 % t interval (the seed-only case of :func:`.stats.two_level`)."""
    r = two_level([(1.0, np.asarray(x, dtype=np.float64)[:, None])], shared_rows=False)
    lo, hi = r["ci"]
    return r["mean"], None if lo != lo else float(lo), None if hi != hi else float(hi)


def _round(x, digits: int = 4):
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return [_round(float(v), digits) for v in x]
    return None if x != x else round(float(x), digits)


def _sampled_count(selection, names) -> int | None:
    selection = effective_selection(selection, names)
    if isinstance(selection, str) and selection.startswith("sampled:"):
        return int(selection.split(":", 1)[1])
    return None


def _sampled_shapley(result, js, names, index, sign: float, n: int) -> dict:
    """The permutation estimator on a ``sampled:N`` lattice: it replays the N orderings whose
    prefixes were trained.  CI over seeds (bootstrap); ``phi_se``: the error of sampling N
    orderings (common to all seeds, so not reduced by more seeds)."""
    K = len(names)
    test = result.metrics[f"test_{result.task.metric}"]
    base = sign * result.extras["baseline_" + result.task.metric][js]

    def value(s_idx):
        def v(mask: int) -> float:
            if mask == 0:
                return float(base[s_idx] if s_idx is not None else base.mean())
            a = index[frozenset(names[i] for i in range(K) if mask >> i & 1)]
            return float(sign * (test[js[s_idx], a] if s_idx is not None else test[js, a].mean()))
        return v

    per_seed = np.array([permutation_shapley(value(i), K, n)[0] for i in range(len(js))])
    phi, se = permutation_shapley(value(None), K, n)
    _, lo, hi = _mean_ci(per_seed)
    return {"modalities": names, "phi": _round(phi), "phi_ci": [_round(lo), _round(hi)], "phi_se": _round(se),
            "estimator": f"permutation sampling over the {n} orderings of --subsets sampled:{n}",
            "v_full": _round(value(None)(2 ** K - 1)), "v_empty": _round(value(None)(0))}


def attribution(result) -> dict:
    """``summary.json``'s ``shapley``, ``interactions``, ``ensemble_gap`` and ``missing_modality``."""
    task = result.task
    m = task.metric
    sign = 1.0 if task.higher_is_better else -1.0           # v = accuracy, or −MSE
    names = result.data.names
    K = len(names)
    subsets = [s for s, c in zip(result.subsets, result.controls) if not c]
    index = {frozenset(s): a for a, s in enumerate(result.subsets) if not result.controls[a]}
    complete = len(index) == 2 ** K - 1
    test = result.metrics[f"test_{m}"]
    diverged = result.metrics["diverged"] > 0
    out = {"shapley": [], "interactions": [], "ensemble_gap": [], "missing_modality": [], "deficit": []}
    for variant, _, ratio, js in result.cells():
        variant = dict(variant)
        js = js[~diverged[js].any(1)]
        if len(js) == 0:
            continue
        where = {**variant, "ratio": float(ratio), "n_train": int(result.streams.n_train[js[0]]),
                 "n_seeds": int(len(js))}
        sampled = _sampled_count(result.spec.subsets, names)
        if not complete and sampled and "baseline_" + m in result.extras:
            out["shapley"].append({**where, **_sampled_shapley(result, js, names, index, sign, sampled)})
        if complete and "baseline_" + m in result.extras:
            v = np.zeros((len(js), 2 ** K))
            v[:, 0] = sign * result.extras["baseline_" + m][js]
            for mask in range(1, 2 ** K):
                a = index[frozenset(names[i] for i in range(K) if mask >> i & 1)]
                v[:, mask] = sign * test[js, a]
            phi, lo, hi = _mean_ci(shapley_exact(v))
            row = {**where, "modalities": names, "phi": _round(phi), "phi_ci": [_round(lo), _round(hi)],
                   "v_full": _round(v[:, -1].mean()), "v_empty": _round(v[:, 0].mean())}
            if f"masked_{m}" in result.extras:
                masked = sign * result.extras[f"masked_{m}"][js]
                pm, plo, phi_ = _mean_ci(shapley_exact(masked))
                row.update(masked_phi=_round(pm), masked_phi_ci=[_round(plo), _round(phi_)])
            out["shapley"].append(row)
            if K >= 2:
                inter, ilo, ihi = _mean_ci(interactions_exact(v))
                out["interactions"].append({**where, "modalities": names, "pairs": [
                    {"i": names[i], "j": names[j], "value": _round(inter[i, j]),
                     "ci": [_round(ilo[i, j]), _round(ihi[i, j])]}
                    for i in range(K) for j in range(i + 1, K)]})
        if f"ensemble_{m}" in result.metrics:
            ens = result.metrics[f"ensemble_{m}"]
            for a, s in enumerate(result.subsets):
                if result.controls[a] or np.isnan(ens[js, a]).any():
                    continue
                mean, lo, hi = _t_ci(sign * (ens[js, a] - test[js, a]))
                out["ensemble_gap"].append({**where, "M": subset_name(s), "joint": _round(test[js, a].mean()),
                                            "ensemble": _round(ens[js, a].mean()), "gap": _round(mean),
                                            "gap_ci": [_round(lo), _round(hi)],
                                            "ensemble_better": bool(lo is not None and lo > 0)})
        alone = result.metrics[f"heldout_{m}"]     # the k-only model's encoder: its own cross-fitted probe
        for s in subsets:                         # the per-modality deficit (probed at the top ratio)
            a = index[frozenset(s)]
            for k in s:
                block = result.metrics.get(f"probe_block_{k}_{m}")
                single = index.get(frozenset([k]))
                if len(s) < 2 or block is None or single is None or np.isnan(block[js, a]).any():
                    continue
                mean, lo, hi = _t_ci(sign * (block[js, a] - alone[js, single]))
                out["deficit"].append({**where, "M": subset_name(s), "modality": k,
                                       "joint_block": _round(block[js, a].mean()),
                                       "alone": _round(alone[js, single].mean()), "deficit": _round(mean),
                                       "deficit_ci": [_round(lo), _round(hi)]})
        for a, s in enumerate(subsets):
            a = index[frozenset(s)]
            for k in s:
                col = result.metrics.get(f"drop_{k}_{m}")
                if col is None or np.isnan(col[js, a]).any():
                    continue
                rest = tuple(x for x in s if x != k)
                v_m, v_drop = sign * test[js, a].mean(), sign * col[js, a].mean()
                if rest:
                    if frozenset(rest) not in index:
                        continue
                    v_n = sign * test[js, index[frozenset(rest)]].mean()
                else:
                    v_n = sign * result.extras["baseline_" + m][js].mean()
                if v_m <= v_n:
                    p_star = 0.0
                elif v_drop >= v_n:
                    p_star = None                    # M stays ahead even with k always missing
                else:
                    p_star = (v_m - v_n) / (v_m - v_drop)
                out["missing_modality"].append({
                    **where, "M": subset_name(s), "missing": k, "N": subset_name(rest) or "∅",
                    "p": list(MISSING_P),
                    "value": [_round(sign * ((1 - p) * v_m + p * v_drop)) for p in MISSING_P],
                    "N_value": _round(sign * v_n), "p_star": _round(p_star)})
    out["conventions"] = {
        "v": f"test {task.metric_label}" if task.higher_is_better else f"−test {task.metric}",
        "shapley": "φ_k over the retrained lattice (a model trained on every subset); v(∅) = the best constant "
                   "prediction from the training labels; Σφ_k = v(full) − v(∅); CI: bootstrap over whole seeds",
        "masked_phi": "the same formula over one joint (full) model with modalities dropped at test time "
                      "(what masking-based attributions measure)",
        "interactions": "Shapley interaction index: < 0 redundant, > 0 synergistic",
        "ensemble_gap": "v(average of the single-modality models' outputs) − v(joint model on M); > 0: the joint "
                        "model under-uses its modalities (a training failure, not a property of the data); "
                        "t interval over seeds",
        "deficit": "v of the best head on block k of the joint model M − v of the best head on the {k} model's "
                   "encoder (cross-fitted probe on the test rows, largest sample size); < 0: k's encoder learned less "
                   "inside the joint model (modality laziness); t interval over seeds",
        "missing_modality": "expected v of M when k is missing (its term dropped) on a fraction p of the test "
                            "rows; p_star: the fraction from which the smaller model N = M∖k is better",
    }
    if not complete and not _sampled_count(result.spec.subsets, names):
        out["shapley_note"] = ("Shapley values need a model for every subset (--subsets all); this run trained "
                               f"{len(index)} of {2 ** K - 1}")
    return out
