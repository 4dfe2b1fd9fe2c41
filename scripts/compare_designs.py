"""The design table of docs/decisions.md: for run folders of the same data, how wide the intervals
are and how many verdicts are decided (anything but 'inconclusive').

    .venv/bin/python scripts/compare_designs.py RUN_DIR [RUN_DIR ...]
"""
import json
import sys
from pathlib import Path


def row(folder: Path) -> str:
    s = json.loads((folder / "summary.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    d = run.get("design", {})
    design = f"{d['folds']} folds × {d['seeds']} seed" if d.get("folds") else f"fixed split × {d.get('seeds')} seeds"
    pairs = s["pairs"]
    prim = [p for p in pairs if p["family"] == "primary"]
    width = lambda ps: sum((p["gain_ci"][1] - p["gain_ci"][0]) / 2 for p in ps) / max(len(ps), 1)   # noqa: E731
    decided = lambda ps: sum(p["verdict"] != "inconclusive" for p in ps)   # noqa: E731
    top = max(p["ratio"] for p in pairs)
    explo = [p for p in pairs if p["family"] == "exploratory" and p["ratio"] == top]
    words = ", ".join(f"{p['modality']}: {p['verdict']}" for p in prim)
    return (f"| {folder.name} | {design} | {run['n_models']} | {pairs[0]['n_rows']} | {width(prim):.2f} | "
            f"{decided(prim)}/{len(prim)} | {width(explo):.2f} | {decided(explo)}/{len(explo)} | "
            f"{run['wall_time_s']:.0f} | {words} |")


if __name__ == "__main__":
    print("| run | design | models | scored rows | primary half-width | primary decided | exploratory half-width "
          "(top n) | exploratory decided (top n) | wall s | primary verdicts |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in sys.argv[1:]:
        print(row(Path(f)))
