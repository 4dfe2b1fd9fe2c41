"""Report layouts: how a run is printed and drawn, chosen by the spec's ``layout``."""
from __future__ import annotations

from pathlib import Path

from ..registry import Registry
from .figures import line_plot
from .tables import fmt_pm, render


class Layout:
    def text(self, result) -> str:
        raise NotImplementedError

    def figures(self, result, out: Path) -> list[Path]:
        return []


class SyntheticLayout(Layout):
    """Paper Table 4 (η by subset × overlap ρ) and Fig. 2b (η against number of modalities)."""

    def text(self, result) -> str:
        cells = result.summary["cells"]
        overlaps = list(dict.fromkeys(c["overlap"] for c in cells))
        subsets = list(dict.fromkeys(c["subset"] for c in cells))
        at = {(c["subset"], c["overlap"]): c for c in cells}
        header = ["subset", "quantity"] + [f"ρ={r}" for r in overlaps]
        rows = []
        for s in subsets:
            cs = [at.get((s, r)) for r in overlaps]
            rows.append([s, "η̂ ours (probe)"] + [fmt_pm(c["eta_mean"], c["eta_std"]) for c in cs])
            rows.append(["", "paper"] + [fmt_pm(c.get("paper"), c.get("paper_std")) for c in cs])
            rows.append(["", "η* closed form"] + [fmt_pm(c.get("closed_form")) for c in cs])
            rows.append(["", "η_n finite n"] + [fmt_pm(c.get("finite_sample")) for c in cs])
            rows.append(["", "model test MSE"] + [fmt_pm(c["test_mse_mean"], c["test_mse_std"]) for c in cs])
        n = cells[0]["n_seeds"]
        table = render(header, rows, title=f"η (test MSE − Bayes risk 0), mean ± std over {n} seeds; "
                                           "Huang et al. 2021 Table 4 beside it")
        return table + "\n\n" + self.check(cells)

    @staticmethod
    def check(cells) -> str:
        """How far ours lies from the paper and from η_n (the issue's acceptance bands)."""
        big = [c for c in cells if c.get("paper") is not None and c["paper"] >= 1]
        zero = [c for c in cells if c["overlap"] == 1.0 or c["closed_form"] == 0]
        gap = lambda a, b: abs(a / b - 1) * 100  # noqa: E731
        lines = []
        if big:
            worst_p = max(big, key=lambda c: gap(c["eta_mean"], c["paper"]))
            worst_n = max(big, key=lambda c: gap(c["eta_mean"], c["finite_sample"]))
            lines.append(f"cells with paper η ≥ 1: {sum(gap(c['eta_mean'], c['paper']) <= 5 for c in big)}/{len(big)} "
                         f"within 5 % of the paper (worst {gap(worst_p['eta_mean'], worst_p['paper']):.1f} %, "
                         f"{worst_p['subset']} ρ={worst_p['overlap']}), "
                         f"{sum(gap(c['eta_mean'], c['finite_sample']) <= 5 for c in big)}/{len(big)} within 5 % of η_n "
                         f"(worst {gap(worst_n['eta_mean'], worst_n['finite_sample']):.1f} %)")
        if zero:
            lines.append(f"cells with η* = 0: {sum(abs(c['eta_mean']) < 0.5 for c in zero)}/{len(zero)} below 0.5 "
                         f"(largest {max(abs(c['eta_mean']) for c in zero):.2g})")
        return "\n".join(lines)

    def figures(self, result, out: Path) -> list[Path]:
        cells = result.summary["cells"]
        series = {}
        for r in dict.fromkeys(c["overlap"] for c in cells):
            cs = sorted((c for c in cells if c["overlap"] == r), key=lambda c: c["n_modalities"])
            series[f"ρ={r}"] = ([c["n_modalities"] for c in cs], [c["eta_mean"] for c in cs],
                                [c["eta_std"] for c in cs])
        return [line_plot(out / "fig_eta_vs_modalities.png", series, "number of modalities |M|",
                          "η̂ (test MSE of the best head)", "Latent quality vs. modalities (cf. Fig. 2b)",
                          xticks=sorted({c["n_modalities"] for c in cells}))]


class GenericLayout(Layout):
    """Every cell's metrics in one table."""

    def text(self, result) -> str:
        cells = result.summary["cells"]
        keys = [k[:-5] for k in cells[0] if k.endswith("_mean")]
        header = ["subset", "ratio", "n_train"] + keys
        rows = [[c["subset"], f"{c['ratio']:g}", str(c["n_train"])]
                + [fmt_pm(c[f"{k}_mean"], c[f"{k}_std"]) for k in keys] for c in cells]
        return render(header, rows)


LAYOUTS: Registry[Layout] = Registry("layout")
LAYOUTS.register("synthetic", SyntheticLayout())
LAYOUTS.register("generic", GenericLayout())
