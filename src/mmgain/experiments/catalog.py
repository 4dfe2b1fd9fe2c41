"""The registered experiments.  Adding an experiment means adding a spec here."""
from __future__ import annotations

from .spec import EXPERIMENTS, ExperimentSpec

OVERLAPS = (1.0, 0.8, 0.5, 0.2, 0.0)

EXPERIMENTS.register("synthetic", ExperimentSpec(
    name="synthetic",
    data="synthetic-overlap",
    data_args={"n_train": 7000, "n_test": 3000},
    variants=tuple({"overlap": r} for r in OVERLAPS),
    subsets=("m1", "m1+m2", "m1+m2+m3", "m1+m2+m3+m4"),
    seeds=5,
    protocol="synthetic",
    bayes_risk=0.0,               # y is a noise-free function of all four modalities
    layout="synthetic",
    reference="huang2021-table4",
))
