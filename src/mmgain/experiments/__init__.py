"""Experiments: declarative specs, the registered catalog and the one runner."""
from . import catalog  # noqa: F401  (registers the built-in specs)
from .runner import RunResult, run_experiment
from .spec import EXPERIMENTS, ExperimentSpec

__all__ = ["EXPERIMENTS", "ExperimentSpec", "RunResult", "run_experiment"]
