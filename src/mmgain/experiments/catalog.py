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
    pairs=False,
))

RATIOS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)

# `mmgain run`: the paper's IEMOCAP protocol on any data, by default the embedded mfeat.
EXPERIMENTS.register("run", ExperimentSpec(
    name="run",
    data="mfeat",
    subsets="all",
    seeds=5,
    ratios=RATIOS,
    protocol="huang2021",
    layout="sweep",
))

# `mmgain reproduce iemocap --data IEMOCAP_features_raw.pkl`: paper Tables 1–3, Fig. 2a.
EXPERIMENTS.register("iemocap", ExperimentSpec(
    name="iemocap",
    data="",                      # the user's IEMOCAP_features_raw.pkl (not redistributable)
    subsets="all",
    seeds=5,
    ratios=RATIOS,
    protocol="huang2021",
    layout="sweep",
    reference="huang2021-iemocap",
))
