"""An experiment is data: a declarative spec run by one generic runner.

A spec names a data source (registered, or a path), the data variants to
sweep (e.g. the overlap ρ), the modality subsets, seeds, sample-size ratios,
the training protocol, how η̂ is referenced (a known Bayes risk, or the best
subset), and which report layout and paper reference to print beside ours.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import SpecError
from ..registry import Registry
from ..training.protocol import PROTOCOLS, TrainingProtocol


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    data: str                                   # a registered data source, or a path
    data_args: dict[str, Any] = field(default_factory=dict)
    variants: tuple[dict[str, Any], ...] = ({},)  # each a data variant; its keys become result columns
    subsets: str | tuple[str, ...] = "all"
    seeds: int = 5
    ratios: tuple[float, ...] = (1.0,)
    protocol: str = "huang2021"
    protocol_overrides: dict[str, Any] = field(default_factory=dict)
    bayes_risk: float | None = None             # known Bayes risk; None: the best subset's probe risk
    layout: str = "sweep"                     # report layout (tables, figures)
    reference: str | None = None                # paper numbers to print beside ours
    pairs: bool = True                          # paired comparisons (M, N), N ⊂ M, |M| = |N| + 1
    null_control: bool = False                  # add N + perm(k) for every pair (N+k, N)
    margin: float | None = None                 # equivalence margin (accuracy points / MSE); None: the task's default
    alpha: float = 0.05                         # level of every test and verdict
    grid: str | None = None                     # "dense": ~12 geometric sample sizes instead of ``ratios``
    theory: bool = False                        # measure the theorems' terms (experiments.theory)

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise SpecError(f"seeds must be ≥ 1, got {self.seeds}")
        for r in self.ratios:
            if not 0.0 < float(r) <= 1.0:
                raise SpecError(f"sample-size ratio {r} is outside (0, 1]")
        dup = sorted({float(r) for r in self.ratios if [float(x) for x in self.ratios].count(float(r)) > 1})
        if dup:
            raise SpecError(f"ratio(s) {', '.join(f'{r:g}' for r in dup)} given twice: duplicate ratios would "
                            "train identical models and count them as extra seeds")
        if self.margin is not None and not self.margin > 0:
            raise SpecError(f"the equivalence margin must be > 0, got {self.margin}")
        if not 0.0 < self.alpha < 0.5:
            raise SpecError(f"alpha must lie in (0, 0.5), got {self.alpha}")
        if self.grid not in (None, "paper", "dense"):
            raise SpecError(f"grid must be 'paper' or 'dense', got {self.grid!r}")
        if not self.variants:
            raise SpecError("a spec needs at least one data variant ({} for none)")

    def resolved_protocol(self) -> TrainingProtocol:
        return PROTOCOLS.get(self.protocol).with_(**self.protocol_overrides)

    def with_(self, **changes) -> "ExperimentSpec":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def variant_keys(self) -> list[str]:
        return sorted({k for v in self.variants for k in v})

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentSpec":
        """The spec that :meth:`to_dict` wrote (as read back from run.json)."""
        d = {k: v for k, v in d.items() if k != "resolved_protocol"}
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise SpecError(f"unknown spec field(s) {sorted(unknown)} (written by another mmgain version?)")
        for key in ("variants", "ratios"):
            if key in d:
                d[key] = tuple(d[key])
        if isinstance(d.get("subsets"), list):
            d["subsets"] = tuple(d["subsets"])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resolved_protocol"] = self.resolved_protocol().to_dict()
        return d


EXPERIMENTS: Registry[ExperimentSpec] = Registry("experiment")
