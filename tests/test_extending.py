"""Extending mmgain: a probe, a pair statistic and a report section are each one function and one
registration (test-only examples, each checked against an independent value)."""
import json

import numpy as np
import pytest
import torch

from mmgain.analysis.estimates import PAIR_STATISTICS, PairStatistic
from mmgain.cli import main
from mmgain.errors import UnknownName
from mmgain.probes import PROBES, ProbeKind
from mmgain.report.figures import Line, LineFigure
from mmgain.report.sections import SECTIONS, Section
from mmgain.report.tables import Table
from mmgain.spec import ExperimentSpec


# ---------------------------------------------------------------- the parts, one function each

def fit_majority(task, Z, y, Z_test, y_test, n_outputs, protocol):
    """Reads nothing from the latent: the training rows' majority class (a floor for any probe)."""
    counts = torch.stack([torch.bincount(y[:, j], minlength=n_outputs) for j in range(y.shape[1])])   # (models, C)
    major = counts.argmax(1)                                                                           # (models,)
    freq = (counts.float() + 1) / (counts.sum(1, keepdim=True).float() + n_outputs)
    yt = y_test.T                                                                                      # (models, n_test)
    return {"test": {"loss": -torch.log(freq.gather(1, yt)), "correct": (yt == major[:, None]).float()}}


def median_diff(analysis, js, a, b):
    d = analysis.metric_rows[js, a] - analysis.metric_rows[js, b]          # (seeds, folds, rows)
    return {"median_row_diff": float(np.median(d.mean(axis=(0, 1))))}


def verdict_counts(summary, run):
    if not summary.get("verdicts"):
        return None
    counts = {}
    for v in summary["verdicts"]:
        counts.setdefault(v["modality"], {}).setdefault(v["verdict"], 0)
        counts[v["modality"]][v["verdict"]] += 1
    rows = [[k, ", ".join(f"{w} {n}" for w, n in sorted(c.items()))] for k, c in counts.items()]
    helps = [sum(n for w, n in c.items() if w == "helps") for c in counts.values()]
    figure = LineFigure("counts", "helps verdicts per modality", "modality", "helps verdicts",
                        [Line("helps", list(range(len(helps))), helps, colour="#1a9850", filled=[True] * len(helps))],
                        categories=list(counts))
    return Section("Verdicts per modality", [Table(["modality", "verdicts"], rows, "verdict counts")],
                   "How often each word was said, over every partner set and sample size.", [figure])


@pytest.fixture()
def registered(monkeypatch):
    monkeypatch.setitem(PROBES._items, "majority", ProbeKind(fit_majority, "the training rows' majority class"))
    monkeypatch.setitem(PAIR_STATISTICS._items, "median", PairStatistic(median_diff, ("median_row_diff",),
                                                                         "median over rows of the paired difference"))
    monkeypatch.setitem(SECTIONS._items, "verdict-counts", verdict_counts)


def _npz(path, n=200):
    r = np.random.default_rng(0)
    y = r.integers(0, 3, n)
    np.savez(path, a=r.normal(size=(n, 4)) + y[:, None], b=r.normal(size=(n, 3)), y=y)
    return y


def test_a_registered_probe_statistic_and_section_appear_everywhere(tmp_path, registered, capsys):
    y = _npz(tmp_path / "d.npz")
    out = tmp_path / "run"
    assert main(["run", "--data", str(tmp_path / "d.npz"), "--cv", "0", "--seeds", "2", "--ratios", "1",
                 "--epochs", "3", "--probes", "majority", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    split = np.array([r.split(",")[1] for r in (out / "split.csv").read_text().splitlines()[1:]])

    # the probe: its columns, next to the paper's probe, and the majority-class accuracy by hand
    train, test = y[split == "train"], y[split == "test"]
    expected = 100.0 * np.mean(test == np.bincount(train, minlength=3).argmax())
    cell = next(c for c in summary["cells"] if c["subset"] == "a+b")
    assert cell["majority_acc_mean"] == pytest.approx(expected) and "probe_acc_mean" in cell
    assert cell["probe_acc_mean"] > cell["majority_acc_mean"]        # a's latent knows more than the floor
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"majority_acc", "majority_ce", "probe_acc"} <= set(header)
    with np.load(out / "outcomes.npz") as z:
        assert z["majority_test_correct"].shape == z["probe_test_correct"].shape

    # the statistic: in every pair and verdict, equal to the median computed from outcomes.npz
    with np.load(out / "outcomes.npz") as z:
        subsets = list(z["subsets"])
        correct = 100.0 * z["test_correct"].astype(np.float64)                # (streams, subsets, rows)
    a, b = subsets.index("a+b"), subsets.index("b")
    pair = next(p for p in summary["pairs"] if p["M"] == "a+b" and p["N"] == "b")
    assert pair["median_row_diff"] == pytest.approx(float(np.median((correct[:, a] - correct[:, b]).mean(0))))
    assert all("median_row_diff" in v for v in summary["verdicts"])

    # the section: in the report, and after the tables in the terminal
    html = (out / "report.html").read_text()
    assert 'id="section-verdict-counts"' in html and "Verdicts per modality" in html
    assert "verdict counts" in printed and "modality" in printed
    section = html.split('id="section-verdict-counts"')[1]
    assert '<svg class="counts" role="img" aria-label="helps verdicts per modality"' in section    # its figure
    assert "[figure: helps verdicts per modality; in report.html]" in printed


def test_an_unknown_probe_is_named():
    with pytest.raises(UnknownName, match="unknown probe 'knn'"):
        ExperimentSpec(name="x", data="mfeat", probes=("knn",))
