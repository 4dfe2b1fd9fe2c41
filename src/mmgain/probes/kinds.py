"""The registered probes (timm style): how a frozen latent is read out, by name.

Every run fits the paper's probe (``paper``: the best linear head on the frozen encoder, fitted on
the model's training rows, scored on its test rows; η̂ of Huang et al.'s tables) and the
cross-fitted probe behind γ̂ (:func:`~.latent.latent_gap_probe`, with its width-matched
controls).  A spec's ``probes`` adds registered probes of the first kind beside the paper's, so
that two read-outs of the same latents are compared in one run: probe ``name`` writes the per-row
outcomes ``<name>_test`` (outcomes.npz) and the metrics ``<name>_<metric>`` (results.csv, and
``_mean``/``_std`` in every cell of summary.json).

A new probe is one function and one registration::

    PROBES.register("centroid", ProbeKind(fit_centroids, "nearest class mean in the latent"))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import Registry
from .latent import fit_probe


@dataclass(frozen=True)
class ProbeKind:
    """``fit(task, Z, y, Z_test, y_test, n_outputs, protocol) -> {"test": per-row outcomes}``: Z a
    :class:`~.latent.Latent` of many models (its rows the training rows), y (n, models); the
    outcomes are the task's (``loss``, and ``correct`` for classification), (models, n_test)."""

    fit: Callable[..., dict]
    description: str


PROBES: Registry[ProbeKind] = Registry("probe")
PROBES.register("paper", ProbeKind(fit_probe, "the best linear head on the frozen encoder (logistic regression "
                                              "or least squares), fitted on the training rows: Huang et al.'s η̂"))


def column_prefix(name: str) -> str:
    """The results' column prefix of probe ``name`` (the paper's probe keeps ``probe_``)."""
    return "probe" if name == "paper" else name
