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


def select_subsets(selection: str | Sequence[str] | None, names: Sequence[str]) -> list[Subset]:
    """``None``/``"all"`` → every subset; otherwise a comma-separated string or a list of names."""
    if selection is None or selection == "all" or list(selection) == ["all"]:
        return enumerate_subsets(names)
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
