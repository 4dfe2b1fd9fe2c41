"""Figures in the paper's style (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def line_plot(path: Path, series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
              xlabel: str, ylabel: str, title: str, logx: bool = False, xticks: Sequence[float] | None = None) -> Path:
    """One line with error bars (± one standard deviation over seeds) per series:
    ``{label: (x, mean, std)}``; the legend sits outside the plot, right of it."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    for label, (x, m, s) in series.items():
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=label)
    if logx:
        ax.set_xscale("log")
    if xticks is not None:
        ax.set_xticks(list(xticks))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              title="error bars: ± 1 sd", title_fontsize=7)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
