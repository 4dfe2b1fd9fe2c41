"""The hand-off between a run and its analysis: a run's results as arrays, and the facts about
its data that the analysis needs.

Nothing here needs the data themselves, torch or the run machinery, so a stored run can be
analysed and reported anywhere (``mmgain collect``, ``mmgain.load``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data.subsets import subset_name
from .tasks import Task


@dataclass(frozen=True)
class Group:
    """A data group as the analysis sees it: its data variant, the seed its data were drawn with
    (generated data, else None), its cross-fitting fold (else None) and, for data drawn from a
    known distribution, that distribution (for the closed-form checks)."""

    variant: dict[str, Any]
    seed: int | None = None
    fold: int | None = None
    population: Any = None


@dataclass(frozen=True)
class DataFacts:
    """What the analysis and the outputs read about the data: modality names (in the data's
    order) and widths, the task's sizes, the default equivalence margin (from the first group's
    training targets), and which row went where (``row_file``: a file name and its rows, for a
    split or folds that mmgain made)."""

    names: list[str]
    dims: dict[str, int]
    n_classes: int
    n_outputs: int
    default_margin: float
    classes: list[str] | None = None
    row_file: tuple[str, list[dict[str, Any]]] | None = None


@dataclass
class StreamTable:
    """What identifies each stream: its data group, seed, sample-size ratio and training rows."""

    group: np.ndarray
    seed: np.ndarray
    ratio: np.ndarray
    n_train: np.ndarray

    def __len__(self) -> int:
        return len(self.seed)

    def where(self, group_ids, ratio: float) -> np.ndarray:
        """The streams of these data groups at this ratio, in seed order."""
        js = np.flatnonzero(np.isin(self.group, list(group_ids)) & (self.ratio == ratio))
        return js[np.argsort(self.seed[js], kind="stable")]


@dataclass
class RunResult:
    """A run's results as arrays, kept structured until they are written.

    ``metrics[name]`` is (S, A) — stream × subset; ``rows[name]`` is (S, A, n_test):
    per-row outcomes on the test rows of the models (``test``), of the paper's
    probe (``probe_test``) and of the cross-fitted probe (``heldout_fit``: in-fold,
    ``heldout_eval``: out-of-fold), each a dict of the task's row outcomes
    (``loss``, ``correct``); ``rows["matched_*"]`` is (S, Q, n_test) for the width-matched
    control of each pair in ``pairs``.  :meth:`table` flattens to one row per
    model for the CSV writer only.
    """

    spec: Any                                 # the run's ExperimentSpec (:mod:`mmgain.run.spec`)
    task: Task
    subsets: list[tuple[str, ...]]
    controls: list[bool]                      # per subset: a null-control subset (holds a permuted copy)
    groups: list[Group]
    data: DataFacts
    streams: StreamTable
    metrics: dict[str, np.ndarray]
    rows: dict[str, dict[str, np.ndarray]]
    pairs: list[tuple[int, int]] = field(default_factory=list)   # (a, b): subsets[a] = subsets[b] + one modality
    summary: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    eta_reference: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, np.ndarray] = field(default_factory=dict)   # per stream (S, ...): see .diagnostics
    design: dict[str, Any] = field(default_factory=dict)          # folds and seeds (.spec.resolve_design)

    @property
    def ratios(self) -> list[float]:
        """The run's sample-size ratios, ascending."""
        return sorted(set(self.streams.ratio.tolist()))

    def cells(self):
        """Every data variant × sample size, in order: ``(variant, group ids, ratio, streams)``
        with the streams of that cell in seed order (possibly none, in an unfinished run).  The one
        iteration the analysis uses."""
        for variant in self.spec.variants:
            gids = self.group_ids(variant)
            for ratio in self.ratios:
                yield variant, gids, float(ratio), self.streams.where(gids, float(ratio))

    def group_ids(self, variant: dict[str, Any]) -> list[int]:
        """The data groups (one per seed for generated data, else one) of a data variant."""
        return [gi for gi, g in enumerate(self.groups) if g.variant == variant]

    def replicates(self, group_ids, ratio: float) -> np.ndarray:
        """The streams of these data groups at this ratio as (seeds, folds): row s holds seed s's
        stream of each cross-fitting fold (one column without cross-fitting).  A seed missing a
        fold (an unfinished run) is left out."""
        js = self.streams.where(group_ids, ratio)
        folds = [self.groups[int(self.streams.group[j])].fold or 0 for j in js]
        K = max(folds, default=-1) + 1
        by_seed: dict[int, dict[int, int]] = {}
        for j, f in zip(js, folds):
            by_seed.setdefault(int(self.streams.seed[j]), {})[f] = int(j)
        rows = [[d[f] for f in range(K)] for _, d in sorted(by_seed.items()) if len(d) == K]
        return np.array(rows, dtype=np.int64).reshape(len(rows), K)

    def table(self) -> list[dict[str, Any]]:
        """One row per model, in spec order (subsets within streams)."""
        out = []
        for s in range(len(self.streams)):
            g = self.groups[int(self.streams.group[s])]
            for a, sub in enumerate(self.subsets):
                row = {"experiment": self.spec.name, "subset": subset_name(sub), "n_modalities": len(sub),
                       **g.variant, **({"fold": g.fold} if g.fold is not None else {}),
                       "seed": int(self.streams.seed[s]), "ratio": float(self.streams.ratio[s]),
                       "n_train": int(self.streams.n_train[s])}
                if any(self.controls):
                    row["control"] = int(self.controls[a])
                row.update({k: float(v[s, a]) for k, v in self.metrics.items()})
                out.append(row)
        return out
