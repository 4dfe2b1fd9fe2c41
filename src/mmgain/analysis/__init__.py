"""What a run's results mean: η̂ and γ̂, the pairs' statistics and verdicts, learning curves and
m*, attribution and the theorems' summaries.  numpy and scipy only: it reads a
:class:`~mmgain.results.RunResult` and never the data, torch or the run machinery."""
from __future__ import annotations

from ..results import RunResult
from .estimates import add_latent_estimates
from .references import REFERENCES
from .summary import summarize
from .theory import add_theory_metrics

__all__ = ["analyze"]


def analyze(result: RunResult) -> RunResult:
    """Add the latent estimates (and the theorems' risks) to ``result.metrics`` and write
    ``result.summary``; returns ``result``."""
    add_latent_estimates(result)
    if result.spec.theory:
        add_theory_metrics(result)
    result.summary = summarize(result)
    reference = REFERENCES.get(result.spec.reference) if result.spec.reference else None
    if reference is not None:
        reference.annotate(result.summary)
    if "forward_selection" in result.meta:
        result.summary["forward_selection"] = result.meta["forward_selection"]
    return result
