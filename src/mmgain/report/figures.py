"""Figures in the paper's style (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def line_plot(path: Path, series: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
              xlabel: str, ylabel: str, title: str, logx: bool = False, xticks: Sequence[float] | None = None) -> Path:
    """One line with error bars per series: ``{label: (x, mean, std)}``."""
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
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
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
