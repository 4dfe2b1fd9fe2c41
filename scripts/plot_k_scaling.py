"""The README's scaling plot: seconds per model against K, from the measured CSV (no new runs).

    .venv/bin/python scripts/plot_k_scaling.py benchmarks/k-scaling-2026-11-27.csv
"""
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

path = Path(sys.argv[1])
rows = list(csv.DictReader(path.open()))
fig, ax = plt.subplots(figsize=(6, 3.6))
styles = ["o:", "s--", "D-"]
for version, style in zip(dict.fromkeys(r["version"] for r in rows), styles):   # in the CSV's order
    pts = [r for r in rows if r["version"] == version]
    k = [int(r["k"]) for r in pts]
    for part, color in (("total_s", "C0"), ("train_s", "C1"), ("probe_s", "C2")):
        ax.plot(k, [float(r[part]) / int(r["models"]) for r in pts], style, color=color,
                label=f"{part[:-2]} ({version})")
ax.axhline(600 / (1023 * 5), color="grey", lw=0.8, ls=":")
ax.text(4.1, 600 / (1023 * 5) * 1.1, "target at K = 10 (5 seeds in 10 min)", fontsize=7, color="grey")
ax.set_xlabel("K (modalities; all 2^K − 1 subsets)")
ax.set_ylabel("seconds per model")
ax.set_title("mmgain bench --k K --batched-only, 2-core CPU, 2026-11-27", fontsize=9)
ax.legend(fontsize=6, ncol=2)
fig.tight_layout()
out = path.with_suffix(".png")
fig.savefig(out, dpi=120)
print(out)
