"""The printed tables: our numbers in the paper's layouts, the paper's beside them."""
from types import SimpleNamespace

from mmgain.catalog import EXPERIMENTS
from mmgain.analysis.references import REFERENCES
from mmgain.report.layouts import LAYOUTS
from mmgain.report.tables import render


def _cell(subset, ratio, acc, n_mod):
    return {"subset": subset, "ratio": ratio, "n_train": int(5810 * ratio) or 1, "n_modalities": n_mod,
            "test_acc_mean": acc, "test_acc_std": 0.5, "test_ce_mean": 1.0, "test_ce_std": 0.1,
            "probe_acc_mean": acc - 1, "probe_acc_std": 0.4, "probe_ce_mean": 1.2, "probe_ce_std": 0.05,
            "eta_mean": 0.1, "eta_std": 0.01, "eta_raw_mean": 0.2, "eta_raw_std": 0.02,
            "train_acc_mean": acc + 10, "train_acc_std": 0.3, "n_seeds": 5}


def _iemocap_result():
    cells = [_cell("text", 0.01, 44.0, 1), _cell("text", 1.0, 50.5, 1),
             _cell("text+audio", 0.01, 46.0, 2), _cell("text+audio", 1.0, 52.25, 2)]
    pairs = [{"M": "text+audio", "N": "text", "ratio": r, "acc_diff_mean": d, "acc_diff_ci": [d - 1, d + 1],
              "p_value": 0.0123, "p_family": 0.0246, "n_seeds": 5, "verdict": "helps", "gamma": -0.0251,
              "gain": d, "gain_ci": [d - 1, d + 1], "family": "primary" if r == 1.0 else "exploratory",
              "gamma_ci": [-0.04, -0.01], "latent": "better", "gamma_acc_raw": 1.5}
             for r, d in ((0.01, 2.0), (1.0, 1.75))]
    summary = {"experiment": "iemocap", "cells": cells, "pairs": pairs,
               "tests": {"ci": "95 % t interval over seeds and test rows", "alpha": 0.05, "family": "2 pairs",
                         "margin": 1.0, "margin_unit": "accuracy points"},
               "modalities": ["audio: at n=5810, adding it helps 1 of 1 partner set(s)"]}
    REFERENCES.get("huang2021-iemocap").annotate(summary)
    return SimpleNamespace(spec=EXPERIMENTS.get("iemocap"), summary=summary)


def test_sweep_tables_put_ours_beside_the_paper():
    res = _iemocap_result()
    t1, t2, t3, verdicts = (b.text() if hasattr(b, "text") else b for b in LAYOUTS.get("sweep").blocks(res))
    t3 = render(LAYOUTS.get("sweep").blocks(res)[2].header, LAYOUTS.get("sweep").blocks(res)[2].rows,
                LAYOUTS.get("sweep").blocks(res)[2].title, width=400)      # one part: the whole row on a line
    text = LAYOUTS.get("sweep").text(res)                                  # the terminal: 100 columns
    assert max(len(x) for x in text.splitlines()) <= 104                   # γ̂'s combining mark counts in len
    row = next(line for line in t1.splitlines() if line.startswith("text+audio "))
    assert "52.25±0.50" in row and "51.08±0.66" in row           # ours, then the paper's Table 1
    row = next(line for line in t2.splitlines() if line.startswith("text "))
    assert row.split()[1:] == ["44.00±0.50", "(45.63)", "50.50±0.50", "(49.93±0.57)"]
    assert "r=0.01" in t2 and "r=1 (n=5810)" in t2
    row = next(line for line in t3.splitlines() if line.startswith("text+audio"))
    assert row.split() == ["text+audio", "text", "primary", "+1.75", "[+0.75,", "+2.75]", "0.0246", "helps", "-0.0251",
                           "[-0.0400,", "-0.0100]", "better", "+1.500", "1.15", "1.36"]
    assert "ratio 1" in t3.splitlines()[0]                      # Table 3 is at the full sample
    header = " ".join(LAYOUTS.get("sweep").blocks(res)[2].header)
    assert "(acc. points, +: helps)" in header and "(−: M's latent better)" in header   # every sign stated
    assert verdicts.splitlines()[1] == "audio: at n=5810, adding it helps 1 of 1 partner set(s)"


def test_reference_annotates_without_touching_our_numbers():
    res = _iemocap_result()
    cell = next(c for c in res.summary["cells"] if c["subset"] == "text" and c["ratio"] == 1.0)
    assert cell["paper"] == 49.93 and cell["test_acc_mean"] == 50.5
    assert res.summary["pairs"][0]["paper_acc_diff"] is None    # the paper gives pairs at ratio 1 only


def test_synthetic_check_line():
    cells = []
    for subset, k in (("m1", 1), ("m1+m2+m3+m4", 4)):
        for rho, eta in ((1.0, 0.0), (0.5, 80.0 if k == 1 else 0.001)):
            cells.append({"subset": subset, "overlap": rho, "n_modalities": k, "ratio": 1.0, "n_train": 7000,
                          "eta_raw_mean": eta, "eta_raw_std": 0.1, "eta_mean": eta * 0.9, "eta_std": 0.1,
                          "test_mse_mean": eta, "test_mse_std": 0.1, "n_seeds": 5})
    summary = {"experiment": "synthetic", "cells": cells}
    REFERENCES.get("huang2021-table4").annotate(summary)
    check = LAYOUTS.get("synthetic").check(summary["cells"])
    assert "0/1 within 5 % of the paper (worst 5.4 %, m1 ρ=0.5)" in check   # 80 vs 75.89
    assert "1/1 within 5 % of η_n (worst 5.1 %)" not in check and "0/1 within 5 % of η_n" in check  # 80 vs 76.10
    assert "cells with η* = 0: 3/3 below 0.5" in check
    assert "corrected η̂, same cells: 1/1 within 5 % of η* (worst 4.0 %, m1 ρ=0.5)" in check   # 72 vs 75


def test_a_card_answers_its_primary_question_and_warns_of_overfitting():
    from mmgain.report.html import _cards

    def cell(s, acc, train):
        return {"subset": s, "ratio": 1.0, "n_train": 800, "test_acc_mean": acc, "train_acc_mean": train}

    def pair(M, N, family, verdict, gain, ci, latent="not resolved"):
        return {"modality": "noise", "M": M, "N": N, "ratio": 1.0, "n_train": 800, "family": family,
                "verdict": verdict, "gain": gain, "gain_ci": ci, "acc_diff_mean": gain, "acc_diff_ci": ci,
                "ci": "simultaneous 97.5 % interval (Bonferroni over the 2 primary comparisons)" if family == "primary"
                else "unadjusted 95 % interval (exploratory)", "latent": latent, "gamma": 0.01,
                "gamma_ci": [-0.02, 0.04], "why": "w"}
    summary = {"metric": "acc", "cells": [cell("image", 80.0, 100.0), cell("noise", 33.0, 90.0),
                                          cell("image+noise", 76.0, 100.0)],
               "verdicts": [pair("image+noise", "image", "primary", "hurts", -4.0, [-6.0, -2.0]),
                            pair("noise+x", "x", "exploratory", "helps", 1.0, [0.5, 1.5])]}
    (card,) = _cards(summary, ["noise"])
    head = card["headline"]
    assert head["N"] == "image" and head["family"] == "primary" and head["verdict"] == "hurts"
    assert head["ci"] == "[-6.00, -2.00]" and "simultaneous" in head["interval"]
    assert "through extra inputs at this n (complexity), not harmful information" in head["note"]
    assert "adds at most -2.00" in head["bound"]
    assert any("overfitting" in w for w in card["warnings"])


def test_synthetic_report_with_sizes_where_eta_n_has_no_closed_form(tmp_path):
    """η_n needs more training rows than features; with 300 rows the three- and four-modality cells
    (300, 400 features) have none, and the report still draws (it failed on the null)."""
    from mmgain.cli import main
    out = tmp_path / "syn"
    assert main(["reproduce", "synthetic", "--seeds", "1", "--n-train", "300", "--n-test", "200", "--epochs", "2",
                 "--overlaps", "1.0", "0.5", "--quiet", "--out", str(out)]) == 0
    assert (out / "report.html").is_file()


def test_pair_result_is_the_one_schema_of_a_pair():
    from mmgain.results import PairResult
    old = {"M": "a+b", "N": "a", "ratio": 1.0, "mse_diff_mean": -0.3, "mse_diff_ci": [-0.5, -0.1], "verdict": "helps",
           "overlap": 0.5, "gamma_ce_raw": 0.01, "_d": {"private": 1}}
    p = PairResult.from_record(old, "mse", ["overlap"])
    assert p.gain == 0.3 and p.gain_ci == [0.1, 0.5]          # an MSE reduction is a gain
    assert p.family is None and p.gamma is None and p.variant == {"overlap": 0.5}
    assert p.extra == {"gamma_ce_raw": 0.01}                  # private keys stay out
    rec = p.record("mse")
    assert list(rec)[:4] == ["overlap", "modality", "M", "N"] and rec["mse_diff_mean"] == -0.3
    assert rec["gamma_ci"] is None and rec["why"] is None
    assert PairResult.from_record(rec, "mse", ["overlap"]).record("mse") == rec
