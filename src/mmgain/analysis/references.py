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


# Huang et al. 2021 on IEMOCAP (T = text, A = audio, V = visual), top-1 test accuracy (%).
# Table 1 swaps the TA/TV labels; Tables 2–3 and Fig. 2a agree on the values below.
_IEMOCAP_NAMES = {"T": "text", "TA": "text+audio", "TV": "text+visual", "TVA": "text+audio+visual"}
_IEMOCAP_ACC = {  # ratio -> subset -> (mean, std or None)
    1.0: {"T": (49.93, 0.57), "TA": (51.08, 0.66), "TV": (53.03, 0.21), "TVA": (53.89, 0.47)},
    1e-1: {"T": (48.30, None), "TA": (50.46, None), "TV": (49.50, None), "TVA": (50.75, None)},
    1e-2: {"T": (45.63, None), "TA": (47.28, None), "TV": (46.54, None), "TVA": (46.39, None)},
    1e-3: {"T": (29.08, None), "TA": (34.28, None), "TV": (38.37, None), "TVA": (32.24, None)},
    1e-4: {"T": (23.66, None), "TA": (25.06, None), "TV": (24.71, None), "TVA": (24.71, None)},
}
_IEMOCAP_PAIRS = {("TA", "T"): (1.15, 1.36), ("TV", "T"): (3.10, 3.57),   # (acc difference, γ) at ratio 1
                  ("TVA", "TV"): (0.86, 0.19), ("TVA", "TA"): (2.81, 2.40)}


class IemocapTables(Reference):
    """Paper Tables 1–3 (accuracy per subset and ratio; pairs with accuracy difference and γ)."""

    def annotate(self, summary: dict[str, Any]) -> None:
        acc = {(_IEMOCAP_NAMES[s], r): v for r, row in _IEMOCAP_ACC.items() for s, v in row.items()}
        for c in summary["cells"]:
            paper = acc.get((c["subset"], float(c["ratio"])))
            c["paper"], c["paper_std"] = (None, None) if paper is None else paper
        pairs = {(_IEMOCAP_NAMES[m], _IEMOCAP_NAMES[n]): v for (m, n), v in _IEMOCAP_PAIRS.items()}
        for p in summary.get("pairs", []):
            paper = pairs.get((p["M"], p["N"])) if float(p["ratio"]) == 1.0 else None
            p["paper_acc_diff"], p["paper_gamma"] = (None, None) if paper is None else paper


REFERENCES: Registry[Reference] = Registry("reference")
REFERENCES.register("huang2021-table4", SyntheticTable4())
REFERENCES.register("huang2021-iemocap", IemocapTables())
