"""Published numbers and closed forms to print *beside* ours — never copied into results.

A reference annotates summary cells with ``paper`` (and, where one exists, a
closed form); the runner's own numbers stay untouched.
"""
from __future__ import annotations

from typing import Any

from ..registry import Registry
from ..theory.closed_form import eta_finite, eta_star


class Reference:
    def annotate(self, summary: dict[str, Any]) -> None:
        raise NotImplementedError


# Huang et al. 2021, Table 4: η as test MSE, mean ± std; keys (subset, overlap ρ).
_TABLE4 = {
    "m1": {1.0: (0.0, 0.0), 0.8: (12.04, 0.39), 0.5: (75.89, 1.28), 0.2: (193.28, 1.08), 0.0: (301.92, 7.85)},
    "m1+m2": {1.0: (0.0, 0.0), 0.8: (8.16, 0.17), 0.5: (51.25, 1.06), 0.2: (129.81, 4.36), 0.0: (207.45, 4.68)},
    "m1+m2+m3": {1.0: (0.0, 0.0), 0.8: (4.18, 0.05), 0.5: (26.06, 0.69), 0.2: (65.17, 1.52), 0.0: (103.23, 0.61)},
    "m1+m2+m3+m4": {r: (0.0, 0.0) for r in (1.0, 0.8, 0.5, 0.2, 0.0)},
}


class SyntheticTable4(Reference):
    """Paper Table 4 plus the closed forms η* and η_n of the overlap generator."""

    def annotate(self, summary: dict[str, Any]) -> None:
        for c in summary["cells"]:
            rho, k = float(c["overlap"]), int(c["n_modalities"])
            paper = _TABLE4.get(c["subset"], {}).get(rho)
            c["paper"] = None if paper is None else paper[0]
            c["paper_std"] = None if paper is None else paper[1]
            c["closed_form"] = eta_star(rho, k)
            c["finite_sample"] = eta_finite(rho, k, int(c["n_train"]))


REFERENCES: Registry[Reference] = Registry("reference")
REFERENCES.register("huang2021-table4", SyntheticTable4())
