"""How a run executes: plan, chunks, backends, the store, budget, forward selection, the per-chunk
measurements and run folders."""
from .runner import RunInterrupted, assemble, plan_run, run_experiment

__all__ = ["RunInterrupted", "assemble", "plan_run", "run_experiment"]
