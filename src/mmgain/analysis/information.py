"""The "why" in information terms: the game v(S) in nats, and what it identifies of a partial
information decomposition (PID).

v(S) = CE(∅) − CE(S): the cross-entropy of the empty model (the training labels' class
frequencies, so CE(∅) estimates H(Y)) minus the held-out cross-entropy of the best linear head on
the latent of the model trained on S — the corrected, cross-fitted probe risk that γ̂ uses.  With
a head richer than linear (``--head mlp``) the linear probe would hide what the head adds, so CE(S)
is the trained model's own cross-entropy on the test rows.  In the
population, with a head class rich enough, v(S) = I(X_S; Y); a finite model class and finite data
only lose information, so v(S) estimates a *lower bound* on I(X_S; Y).

For two modalities i, j any PID splits I_ij = I(X_i, X_j; Y) into redundancy R, unique parts U_i,
U_j and synergy S with I_i = R + U_i and I_j = R + U_j.  Three equations, four unknowns: only

    S − R = I_ij − I_i − I_j        (the pair's Möbius dividend of v; the co-information, negated)
    U_i − U_j = I_i − I_j

are identified, and every atom lies in a feasible interval: with C = I_i + I_j − I_ij,
R ∈ [max(0, C), min(I_i, I_j)], U_i = I_i − R, U_j = I_j − R, S = R − C.  For K > 2 modalities
the Möbius (Harsanyi) dividends d(T) = Σ_{U ⊆ T} (−1)^{|T|−|U|} v(U) of the same game split v over
every subset T; the pair's dividend is S − R of that pair.  Every identified quantity is a linear
combination of per-row losses, so its interval is the paired interval over seeds (folds) and rows
of :func:`.stats.paired`.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ..data.subsets import subset_name
from .stats import paired


def _ci(r: dict) -> list[float]:
    return [float(r["ci"][0]), float(r["ci"][1])]


def pid_bounds(I_i: float, I_j: float, I_ij: float) -> dict[str, list[float]]:
    """Feasible intervals of the PID atoms R, U_i, U_j, S given the three mutual informations
    (clipped at 0: information cannot be negative)."""
    I_i, I_j, I_ij = max(I_i, 0.0), max(I_j, 0.0), max(I_ij, 0.0)
    C = I_i + I_j - I_ij
    lo, hi = max(0.0, C), min(I_i, I_j)
    if lo > hi:            # the estimates violate I_ij ≥ max(I_i, I_j): no consistent PID; collapse
        lo = hi
    return {"R": [lo, hi], "U_i": [I_i - hi, I_i - lo], "U_j": [I_j - hi, I_j - lo], "S": [lo - C, hi - C]}


def _pair_text(i: str, j: str, sr: dict, bounds: dict) -> str:
    lo, hi = sr["ci"]
    d = sr["mean"]
    if hi < 0:
        what = f"{i} and {j} are mostly redundant about the label (R − S = {-d:.3f} nats [{-hi:.3f}, {-lo:.3f}])"
    elif lo > 0:
        what = f"{i} and {j} are synergistic about the label (S − R = {d:+.3f} nats [{lo:+.3f}, {hi:+.3f}])"
    else:
        what = f"{i} and {j}: neither redundancy nor synergy resolved (S − R = {d:+.3f} nats [{lo:+.3f}, {hi:+.3f}])"
    uniq = [f"{k} adds unique information ≥ {bounds[u][0]:.3f} nats" for k, u in ((i, "U_i"), (j, "U_j"))
            if bounds[u][0] > 0.0005]
    return what + ("; " + "; ".join(uniq) if uniq else "")


def information_records(result) -> list[dict[str, Any]]:
    """``summary.json``'s ``"information"``: per data variant at the largest sample size, v(S) of
    every trained subset, what each modality adds to the largest trained set without it (v(N + k) −
    v(N), an estimate of I(X_k; Y | X_N)), the identified PID quantities of every pair of modalities
    whose singles and pair were trained, and the Möbius dividends of every subset whose sub-lattice was trained.
    Classification runs only (the prior's per-row loss is recorded for them)."""
    prior = result.extras.get("prior_loss")
    rows = result.rows
    if prior is None or "heldout_fit" not in rows or "heldout_eval" not in rows:
        return []
    linear = result.spec.resolved_protocol().head == "linear"
    if linear:            # the corrected probe: the best linear head, the class the models have
        loss = 0.5 * (np.asarray(rows["heldout_fit"]["loss"], np.float64)
                      + np.asarray(rows["heldout_eval"]["loss"], np.float64))            # (S, A, R)
        source = "held-out cross-entropy of the best linear head on the trained latent (corrected, cross-fitted)"
    else:                 # a head richer than the linear probe: the trained model's own test cross-entropy
        loss = np.asarray(rows["test"]["loss"], np.float64)
        source = "the trained models' cross-entropy on the test rows (their head is richer than the linear probe)"
    prior = np.asarray(prior, np.float64)                                                 # (S, R)
    shared = all(g.seed is None for g in result.groups)
    ok = result.metrics["diverged"] == 0
    index = {frozenset(s): a for a, s in enumerate(result.subsets) if not result.controls[a]}
    names = result.data.names
    out = []
    for variant in [dict(v) for v in result.spec.variants]:
        js = result.replicates(result.group_ids(variant), max(result.ratios))             # (S, K)
        if js.size == 0:
            continue
        js = js[ok[js].all(axis=(1, 2))]        # replicates where no model diverged, in any fold
        if js.size == 0:
            continue
        v_rows = {s: prior[js] - loss[js, a] for s, a in index.items()}                 # (S, K, R) each
        v_rows[frozenset()] = np.zeros_like(prior[js])

        def stat(D):
            return paired(D, shared)

        values = []
        for s, a in index.items():
            r = stat(v_rows[s])
            values.append({"subset": subset_name(result.subsets[a]), "v": r["mean"], "v_ci": _ci(r)})
        pairs = []
        for i, j in combinations(names, 2):
            si, sj, sij = frozenset([i]), frozenset([j]), frozenset([i, j])
            if not {si, sj, sij} <= set(index):
                continue
            I_i, I_j, I_ij = (float(v_rows[s].mean()) for s in (si, sj, sij))
            sr = stat(v_rows[sij] - v_rows[si] - v_rows[sj])
            ud = stat(v_rows[si] - v_rows[sj])
            bounds = pid_bounds(I_i, I_j, I_ij)
            pairs.append({"i": i, "j": j, "I_i": I_i, "I_j": I_j, "I_ij": I_ij,
                          "synergy_minus_redundancy": sr["mean"], "synergy_minus_redundancy_ci": _ci(sr),
                          "unique_difference": ud["mean"], "unique_difference_ci": _ci(ud),
                          "R_range": bounds["R"], "U_i_range": bounds["U_i"], "U_j_range": bounds["U_j"],
                          "S_range": bounds["S"], "text": _pair_text(i, j, sr, bounds)})
        given = []            # what each modality adds to the largest trained set without it: I(X_k; Y | X_N)
        for k in names:
            partners = [s for s in index if k not in s and (s | {k}) in index]
            if not partners:
                continue
            N = max(partners, key=len)
            r = stat(v_rows[N | {k}] - v_rows[N])
            given.append({"modality": k, "N": subset_name(result.subsets[index[N]]), "value": r["mean"],
                          "value_ci": _ci(r)})
        dividends = []
        # the trained sets whose every subset is trained too, in the order of combinations(names, size):
        # only trained sets are candidates (enumerating all 2^K sets is 3^K work: hours at K = 20)
        order = {k: i for i, k in enumerate(names)}
        for T in sorted((S for S in index if len(S) > 1), key=lambda S: (len(S), sorted(order[k] for k in S))):
            T, size = tuple(sorted(T, key=order.__getitem__)), len(T)
            if not all(frozenset(U) in index for r in range(1, size) for U in combinations(T, r)):
                continue
            subs = [frozenset(U) for r in range(1, size + 1) for U in combinations(T, r)]
            r = stat(sum((-1) ** (size - len(U)) * v_rows[U] for U in subs))
            dividends.append({"subset": subset_name(T), "dividend": r["mean"], "dividend_ci": _ci(r)})
        out.append({**variant, "ratio": float(max(result.ratios)),
                    "n_train": int(result.streams.n_train[js[0, 0]]), "H_Y": float(prior[js].mean()),
                    "values": values, "given": given, "pairs": pairs, "dividends": dividends,
                    "unit": "nats", "estimates": f"lower bounds on I(X_S; Y) from {source}"})
    return out
