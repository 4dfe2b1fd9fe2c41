"""Modality subsets M ⊆ [K] and their canonical names (``m1+m2``).

A subset is a tuple of modality names in the dataset's own modality order, so
``"m2+m1"`` and ``"m1+m2"`` are the same subset.
"""
from __future__ import annotations

from itertools import combinations
from typing import Iterable, Sequence

from .dataset import DataError

Subset = tuple[str, ...]
SEP = "+"
MAX_ALL = 12          # 'all' subsets beyond this many modalities is refused before anything is enumerated


def subset_name(subset: Iterable[str]) -> str:
    return SEP.join(subset)


def enumerate_subsets(names: Sequence[str], max_size: int | None = None) -> list[Subset]:
    """All non-empty subsets, smallest first, each in modality order."""
    top = len(names) if max_size is None else min(max_size, len(names))
    return [tuple(c) for r in range(1, top + 1) for c in combinations(names, r)]


def parse_subset(text: str, names: Sequence[str]) -> Subset:
    parts = [p.strip() for p in text.split(SEP)]
    unknown = [p for p in parts if p not in names]
    if not text.strip() or unknown:
        raise DataError(f"unknown modality {', '.join(map(repr, unknown)) or repr(text)} in subset "
                        f"{text!r}; known modalities: {', '.join(names)}")
    if len(set(parts)) != len(parts):
        raise DataError(f"subset {text!r} names a modality twice")
    return tuple(n for n in names if n in parts)


DEFAULT_ALL_MAX = 8      # without --subsets: every subset up to this many modalities (255 subsets) …
DEFAULT_ORDERINGS = 32   # … and above it the prefixes of this many orderings (at most 32·(K−1) + 1 subsets)


def effective_selection(selection: str | Sequence[str] | None, names: Sequence[str]) -> str | Sequence[str]:
    """What a run trains for ``selection``: without one (``None`` or ``"auto"``), every subset up to
    :data:`DEFAULT_ALL_MAX` modalities and ``sampled:DEFAULT_ORDERINGS`` above — 2^K − 1
    subsets grow past what a run of one machine answers, while the prefixes of random
    orderings keep the Shapley values unbiased and one γ pair per step of each ordering.  A
    function of the modalities alone: the same command trains the same lattice on every
    device, and a resumed run finds the same one."""
    if selection is None or selection == "auto":
        return "all" if len(names) <= DEFAULT_ALL_MAX else f"sampled:{DEFAULT_ORDERINGS}"
    return selection


MAX_ORDERINGS = 10_000   # more orderings than this add nothing for K ≤ 12 and take minutes to draw
SAMPLED_SEED = 0      # the orderings of ``sampled:N`` (also what the Shapley estimator replays)


def sampled_orderings(names: Sequence[str], n: int, seed: int = SAMPLED_SEED) -> list[tuple[str, ...]]:
    """``n`` random orderings of the modalities: the draws of
    :func:`mmgain.analysis.attribution.permutation_shapley` with the same seed."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return [tuple(names[i] for i in rng.permutation(len(names))) for _ in range(n)]


def sampled_subsets(names: Sequence[str], n: int) -> list[Subset]:
    """``sampled:N``: every prefix of N random orderings, so that the permutation estimator of the
    Shapley values is computable from the trained subsets alone (and unbiased)."""
    want = {frozenset(order[:i]) for order in sampled_orderings(names, n) for i in range(1, len(names) + 1)}
    return sorted((tuple(k for k in names if k in s) for s in want), key=lambda s: (len(s), [names.index(k) for k in s]))


def _singles_pairs_full(names: Sequence[str]) -> list[Subset]:
    full = [tuple(names)] if len(names) > 2 else []
    return enumerate_subsets(names, 2) + full


def _leave_one_out(names: Sequence[str]) -> list[Subset]:
    """The full set and the full set without each modality: every modality's leave-one-out pair."""
    drops = [tuple(k for k in names if k != left) for left in names] if len(names) > 1 else []
    return drops + [tuple(names)]


# Named subset policies that grow polynomially in K (``all`` grows as 2^K).
POLICIES = {"singles+pairs+full": _singles_pairs_full, "leave-one-out": _leave_one_out}
# Greedy forward selection (K(K+1)/2 subsets): it needs training, so the runner picks the subsets
# (:mod:`mmgain.run.selection`); the pure search is :func:`forward_path`.
FORWARD = "forward"


def forward_path(names: Sequence[str], score, higher_is_better: bool = True) -> tuple[list[Subset], list[tuple[Subset, float]]]:
    """Greedy forward selection: from the empty set, add at each stage the modality whose
    addition scores best; ``score(candidates)`` returns one number per candidate subset (NaN is
    worst; ties go to the modality that comes first).  Returns every subset scored
    (K + (K−1) + … + 1 of them, canonical order) and the path: the chosen subset and its score
    at each stage."""
    chosen: tuple[str, ...] = ()
    scored: list[Subset] = []
    path: list[tuple[Subset, float]] = []
    while len(chosen) < len(names):
        cands = [tuple(k for k in names if k in chosen or k == new) for new in names if new not in chosen]
        values = [float(v) for v in score(cands)]
        keyed = [(-v if higher_is_better else v) if v == v else float("inf") for v in values]
        best = min(range(len(cands)), key=lambda i: (keyed[i], i))
        scored += cands
        chosen = cands[best]
        path.append((chosen, values[best]))
    return sorted(scored, key=lambda s: (len(s), [names.index(k) for k in s])), path


def select_subsets(selection: str | Sequence[str] | None, names: Sequence[str]) -> list[Subset]:
    """``"all"`` → every subset; ``None``/``"auto"`` → :func:`effective_selection`; a policy of
    :data:`POLICIES`; ``"sampled:N"`` → the prefixes of N random orderings; otherwise a
    comma-separated string or a list of names."""
    selection = effective_selection(selection, names)
    if selection == "all" or list(selection) == ["all"]:
        if len(names) > MAX_ALL:
            raise DataError(f"{len(names)} modalities give {2 ** len(names) - 1:,} subsets; 'all' is refused above "
                            f"{MAX_ALL} modalities ({2 ** MAX_ALL - 1:,} subsets). Use --subsets sampled:N (the "
                            "prefixes of N random orderings, enough for Shapley values), --subsets "
                            f"{' or --subsets '.join([*POLICIES, FORWARD])}, or name the subsets with "
                            "--subsets 'a,a+b,...'")
        return enumerate_subsets(names)
    if isinstance(selection, str) and selection in POLICIES:
        return sorted(POLICIES[selection](names), key=lambda s: (len(s), [names.index(k) for k in s]))
    if selection == FORWARD:
        raise DataError("--subsets forward chooses its subsets by training (greedy forward selection): "
                        "only mmgain run and reproduce can use it")
    if isinstance(selection, str) and selection.startswith("sampled:"):
        count = selection.split(":", 1)[1]
        if not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= MAX_ORDERINGS:
            raise DataError(f"--subsets {selection!r}: sampled:N needs a whole number N of orderings in "
                            f"1..{MAX_ORDERINGS:,}")
        return sampled_subsets(names, int(count))
    items = selection.split(",") if isinstance(selection, str) else list(selection)
    out: list[Subset] = []
    for item in items:
        s = parse_subset(item, names)
        if s not in out:
            out.append(s)
    return out


def proper_pairs(subsets: Sequence[Subset]) -> list[tuple[Subset, Subset]]:
    """Pairs (M, N) with N ⊂ M and |M| = |N| + 1, among the given subsets."""
    return [(m, n) for m in subsets for n in subsets
            if len(m) == len(n) + 1 and set(n) < set(m)]
