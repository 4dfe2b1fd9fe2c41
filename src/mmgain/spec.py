"""An experiment is data: a declarative spec run by one generic runner.

A spec names a data source (registered, or a path), the data variants to
sweep (e.g. the overlap ρ), the modality subsets, seeds, sample-size ratios,
the training protocol, how η̂ is referenced (a known Bayes risk, or the best
subset), and which report layout and paper reference to print beside ours.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import SpecError
from .probes.kinds import PROBES
from .registry import Registry
from .training.protocol import PROTOCOLS, TrainingProtocol


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    data: str                                   # a registered data source, or a path
    data_args: dict[str, Any] = field(default_factory=dict)
    variants: tuple[dict[str, Any], ...] = ({},)  # each a data variant; its keys become result columns
    subsets: str | tuple[str, ...] = "auto"       # "auto": data.subsets.effective_selection (all up to 8 modalities)
    seeds: int | None = 5                       # None: 1 with cross-fitting, else 5 (see :func:`resolve_design`)
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
    theory: bool = False                        # measure the theorems' terms (run.theory_terms, analysis.theory)
    cv: int | None = None                       # folds of cross-fitting; 0: the one fixed split; None: auto
    primary: tuple[str, ...] | None = None      # the confirmatory pairs 'M:N'; None: each modality left out of all
    probes: tuple[str, ...] = ()                # registered probes fitted beside the paper's (probes.kinds)
    costs: dict[str, float] | None = None       # modality → cost, for the best subset under a budget (default 1 each)
    budget: float | None = None                 # the most a subset may cost; None: no limit
    target_n: int | None = None                 # rows at which to forecast; None: 2× the largest measured

    def __post_init__(self) -> None:
        if self.seeds is not None and self.seeds < 1:
            raise SpecError(f"seeds must be ≥ 1, got {self.seeds}")
        if self.cv is not None and (self.cv < 0 or self.cv == 1):
            raise SpecError(f"--cv takes 0 (one fixed split) or a number of folds ≥ 2, got {self.cv}")
        if self.theory and self.protocol in PROTOCOLS and self.resolved_protocol().head != "linear":
            raise SpecError("--theory measures the terms of the paper's linear head; leave out --head mlp")
        if self.cv and self.theory:
            raise SpecError("--theory measures the terms on one fixed split; leave out --cv (or give --cv 0)")
        for pair in self.primary or ():
            if pair.count(":") != 1 or not all(pair.split(":")):
                raise SpecError(f"--primary takes pairs M:N such as 'text+audio:text', got {pair!r}")
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
        for name in self.probes:
            PROBES.get(name)                    # an unknown probe is named, with the registered ones
        if self.budget is not None and not self.budget >= 0:
            raise SpecError(f"--budget must be ≥ 0, got {self.budget}")
        if self.target_n is not None and not self.target_n >= 1:
            raise SpecError(f"--target-n must be a number of rows ≥ 1, got {self.target_n}")
        if "paper" in self.probes or len(set(self.probes)) < len(self.probes):
            raise SpecError(f"probes: each extra probe once, and not 'paper' (it always runs), got {list(self.probes)}")

    def resolved_protocol(self) -> TrainingProtocol:
        """The preset with the overrides.  Fewer ``epochs`` than the preset's probe budget, with no
        ``probe_epochs`` of their own, probe after the last epoch (the CLI and the API alike)."""
        preset, overrides = PROTOCOLS.get(self.protocol), dict(self.protocol_overrides)
        epochs = overrides.get("epochs")
        if ("probe_epochs" not in overrides and isinstance(epochs, int) and preset.probe_epochs is not None
                and preset.probe_epochs > epochs):
            overrides["probe_epochs"] = epochs
        return preset.with_(**overrides)

    def with_(self, **changes) -> "ExperimentSpec":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def variant_keys(self) -> list[str]:
        return sorted({k for v in self.variants for k in v})

    @classmethod
    def from_dict(cls, d: dict, source: str | None = None) -> "ExperimentSpec":
        """The spec that :meth:`to_dict` wrote (as read back from run.json).  The dict comes from a
        file that may have been edited: every field's type is checked, and an error names ``source``."""
        try:
            return cls._from_dict(d)
        except SpecError as e:
            raise SpecError(f"{source}: spec: {e}" if source else str(e)) from None
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError) as e:
            raise SpecError(f"{source + ': ' if source else ''}spec: not a valid mmgain spec ({e})") from None

    @classmethod
    def _from_dict(cls, d: dict) -> "ExperimentSpec":
        if not isinstance(d, dict):
            raise SpecError(f"expected an object, got {type(d).__name__}")
        d = {k: v for k, v in d.items() if k != "resolved_protocol"}
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise SpecError(f"unknown spec field(s) {sorted(map(str, unknown))} (written by another mmgain version?)")
        d.setdefault("cv", 0)      # written before cross-fitting existed: it ran on one fixed split
        for key in ("variants", "ratios", "primary", "subsets", "probes"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        for key, value in d.items():
            if not _FIELD_CHECKS[key](value):
                raise SpecError(f"field {key!r} has the wrong type ({type(value).__name__}: {str(value)[:60]!r})")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resolved_protocol"] = self.resolved_protocol().to_dict()
        return d


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strs(v) -> bool:
    return isinstance(v, tuple) and all(isinstance(x, str) for x in v)


# What each field of a spec read back from a file may hold (the file may have been edited by hand).
_FIELD_CHECKS = {
    "name": lambda v: isinstance(v, str),
    "data": lambda v: isinstance(v, str),
    "data_args": lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    "variants": lambda v: isinstance(v, tuple) and all(isinstance(x, dict) and all(isinstance(k, str) for k in x)
                                                       for x in v),
    "subsets": lambda v: isinstance(v, str) or _strs(v),
    "seeds": lambda v: v is None or _int(v),
    "ratios": lambda v: isinstance(v, tuple) and all(_num(x) for x in v),
    "protocol": lambda v: isinstance(v, str),
    "protocol_overrides": lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    "bayes_risk": lambda v: v is None or _num(v),
    "layout": lambda v: isinstance(v, str),
    "reference": lambda v: v is None or isinstance(v, str),
    "pairs": lambda v: isinstance(v, bool),
    "null_control": lambda v: isinstance(v, bool),
    "margin": lambda v: v is None or _num(v),
    "alpha": _num,
    "grid": lambda v: v is None or isinstance(v, str),
    "theory": lambda v: isinstance(v, bool),
    "cv": lambda v: v is None or _int(v),
    "primary": lambda v: v is None or _strs(v),
    "probes": _strs,
    "costs": lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) and _num(x) for k, x in v.items())),
    "budget": lambda v: v is None or _num(v),
    "target_n": lambda v: v is None or _int(v),
}


DEFAULT_FOLDS = 5        # cross-fitting folds when the data bring no split
FIXED_SPLIT_SEEDS = 5    # seeds on one fixed split: the same training as DEFAULT_FOLDS folds × 1 seed


def resolve_design(spec: ExperimentSpec, has_split: bool, per_seed: bool) -> dict[str, Any]:
    """How many folds and seeds a run trains, and why.  Cross-fitting (every row a test row once)
    is the default for data without a split of their own: 5 folds × 1 seed train as many models as
    5 seeds on one split and score 5× the rows, and the rows are what limits the intervals (docs:
    the design).  Data with a split (a benchmark's), generated data (fresh rows per seed) and
    ``--theory`` keep one split unless ``--cv`` says otherwise."""
    if spec.cv is not None and spec.cv >= 2 and per_seed:
        raise SpecError("--cv is for data files; generated data draw new rows for every seed already")
    if spec.cv is not None:
        folds = spec.cv
        why = f"--cv {spec.cv}" if spec.cv else "--cv 0: one fixed split"
    elif per_seed:
        folds, why = 0, "generated data: fresh rows for every seed"
    elif has_split:
        folds, why = 0, "the data bring their own train/test split (--cv K cross-fits instead)"
    elif spec.theory:
        folds, why = 0, "--theory measures on one fixed split"
    else:
        folds, why = DEFAULT_FOLDS, "the data bring no split: every row is scored once, by a model that did not see it"
    seeds = spec.seeds if spec.seeds is not None else (1 if folds else FIXED_SPLIT_SEEDS)
    return {"folds": folds, "seeds": seeds, "why": why}


EXPERIMENTS: Registry[ExperimentSpec] = Registry("experiment")
