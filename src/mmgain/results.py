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
    trained_chunks: int | None = None                             # chunks this process trained (a resume: maybe 0)

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


_PAIR_FIELDS = ("modality", "M", "N", "ratio", "n_train", "family", "verdict", "gain", "gain_ci", "diff_mean",
                "diff_ci", "ci", "p_value", "p_family", "q_by", "gamma", "gamma_ci", "latent", "rows_needed", "why")


@dataclass
class PairResult:
    """One pair (M, N), M = N plus one modality, at one data variant and sample size: the one schema
    of a pair, read by the verdict records (summary.json's ``verdicts``, ``Study.verdicts``), the
    terminal's Table 3 and the report's cards.  A quantity that was not computed is None (null in
    JSON, "—" when printed).  ``gain`` is signed so that + means the modality helps (accuracy
    points, or MSE reduction); ``diff_mean`` is M − N in the task's metric (``<metric>_diff_mean``
    in the files).  ``extra`` holds the rest of the pair's record (the γ̂ variants, the paper's
    procedure, registered pair statistics)."""

    modality: str | None
    M: str
    N: str
    ratio: float
    n_train: int | None = None
    family: str | None = None
    verdict: str | None = None
    gain: float | None = None
    gain_ci: list | None = None
    diff_mean: float | None = None
    diff_ci: list | None = None
    ci: str | None = None
    p_value: float | None = None
    p_family: float | None = None
    q_by: float | None = None
    gamma: float | None = None
    gamma_ci: list | None = None
    latent: str | None = None
    rows_needed: Any = None
    why: str | None = None
    variant: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, d: dict[str, Any], metric: str, variant_keys=()) -> "PairResult":
        """A pair (or verdict) record as summary.json holds it.  A record written before gains
        existed gives its gain from M − N (the sign of the metric: accuracy up, MSE down)."""
        rename = {f"{metric}_diff_mean": "diff_mean", f"{metric}_diff_ci": "diff_ci"}
        known = {rename.get(k, k): v for k, v in d.items() if rename.get(k, k) in _PAIR_FIELDS}
        sign = 1.0 if metric == "acc" else -1.0
        if known.get("gain") is None and known.get("diff_mean") is not None:
            known["gain"] = sign * known["diff_mean"]
        if known.get("gain_ci") is None and known.get("diff_ci") is not None:
            known["gain_ci"] = sorted(sign * x for x in known["diff_ci"]) if None not in known["diff_ci"] \
                else list(known["diff_ci"])
        variant = {k: d.get(k) for k in variant_keys}
        extra = {k: v for k, v in d.items() if rename.get(k, k) not in _PAIR_FIELDS and k not in variant_keys
                 and not k.startswith("_")}
        return cls(**{"modality": None, **known}, variant=variant, extra=extra)

    def record(self, metric: str, extra_keys=()) -> dict[str, Any]:
        """The verdict record: the data variant, the schema's fields (the metric's difference under
        its file name), then ``extra_keys`` from ``extra``; absent values are None."""
        out = dict(self.variant)
        for name in _PAIR_FIELDS:
            out[{"diff_mean": f"{metric}_diff_mean", "diff_ci": f"{metric}_diff_ci"}.get(name, name)] = getattr(self, name)
        out.update({k: self.extra.get(k) for k in extra_keys})
        return out
