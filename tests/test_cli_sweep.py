"""`mmgain run` and `mmgain reproduce iemocap` end to end on small data."""
import csv
import json

import numpy as np
import pytest

from iemocap_fixture import write_iemocap_fixture, write_unsafe_pickle
from mmgain.cli import main

FAST = ["--seeds", "3", "--epochs", "3", "--probe-epochs", "2", "--quiet"]


def _user_npz(path):
    """The README's bring-your-own-data example."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    np.savez(path, text=rng.normal(size=(300, 20)) + y[:, None], audio=rng.normal(size=(300, 8)), y=y)


def test_run_on_a_user_npz(tmp_path, capsys):
    _user_npz(tmp_path / "mydata.npz")
    out = tmp_path / "run"
    assert main(["run", "--cv", "0", "--data", str(tmp_path / "mydata.npz"), "--ratios", "0.1", "1", *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 2" in printed and "Table 3" in printed
    assert "classes (3): 0, 1, 2" in printed
    summary = json.loads((out / "summary.json").read_text())
    cells, pairs = summary["cells"], summary["pairs"]
    assert len(cells) == 3 * 2                               # 3 subsets × 2 ratios
    for key in ("subset", "ratio", "n_train", "test_acc_mean", "test_acc_std", "probe_acc_mean", "probe_acc_std",
                "n_seeds"):
        assert key in cells[0]
    assert {c["n_train"] for c in cells} == {24, 240}        # round(r · 240) with the 80/20 stratified split
    assert len(pairs) == 2 * 2                               # (text+audio, text), (text+audio, audio) × 2 ratios
    for key in ("M", "N", "ratio", "acc_diff_mean", "acc_diff_ci", "p_value", "p_family", "q_by", "family", "gain", "gamma",
                "gamma_ci", "gamma_acc", "gamma_ce_raw", "gamma_acc_raw", "verdict", "latent", "why"):
        assert key in pairs[0]
    p = next(p for p in pairs if p["N"] == "audio" and p["ratio"] == 1.0)
    assert p["acc_diff_ci"][0] <= p["acc_diff_mean"] <= p["acc_diff_ci"][1]
    assert p["acc_diff_mean"] > 10                           # text carries the label, audio does not
    # Signs: adding the informative modality gives + accuracy, − γ̂ (better latent), + probe accuracy.
    assert p["gamma"] < 0 and p["gamma_ci"][1] < 0 and p["gamma_acc"] > 0 and p["gamma_acc_raw"] > 0
    assert p["verdict"] == "helps" and p["latent"] == "better" and "better representation" in p["why"]
    assert [v["verdict"] for v in summary["verdicts"]] == [q["verdict"] for q in pairs]
    assert set(summary["verdicts"][0]) >= {"modality", "M", "N", "ratio", "verdict", "acc_diff_mean",
                                           "acc_diff_ci", "p_family", "family", "gain", "gain_ci", "gamma", "gamma_ci",
                                           "latent", "why"}
    assert "Verdicts (α=0.05" in printed and "text added to audio at n=240 (primary): helps" in printed
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 3 * 2 * 3
    assert {"train_acc", "train_ce", "probe_train_ce", "latent_risk", "eta", "eta_raw"} <= set(rows[0])
    outcomes = np.load(out / "outcomes.npz")
    assert outcomes["test_correct"].shape == (2 * 3, 3, 60) and outcomes["heldout_eval_loss"].shape == (6, 3, 60)
    assert outcomes["matched_fit_loss"].shape == (6, 2, 60)      # one width-matched control per pair
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["data"]["split"]["method"] == "stratified"
    assert (out / "split.csv").exists() and (out / "fig_acc_vs_rows.png").exists()


def test_run_on_embedded_mfeat_reduced(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--cv", "0", "--subsets", "mor,kar+mor", "--ratios", "1", "--seeds", "2", "--epochs", "2",
                 "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [c["subset"] for c in summary["cells"]] == ["mor", "kar+mor"]
    assert summary["cells"][0]["n_train"] == 1600


def test_reproduce_iemocap_on_fixture(tmp_path, capsys):
    write_iemocap_fixture(tmp_path / "IEMOCAP_features_raw.pkl", n_train=10, n_test=4)
    out = tmp_path / "run"
    assert main(["reproduce", "iemocap", "--data", str(tmp_path / "IEMOCAP_features_raw.pkl"), *FAST,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(49.93±0.57)" in printed and "(23.66)" in printed and "paper Δacc" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["cells"]) == 7 * 5
    t = next(c for c in summary["cells"] if c["subset"] == "text" and c["ratio"] == 1.0)
    assert t["paper"] == 49.93 and t["test_acc_mean"] != 49.93
    pair = next(p for p in summary["pairs"] if p["M"] == "text+audio" and p["N"] == "text" and p["ratio"] == 1.0)
    assert pair["paper_acc_diff"] == 1.15 and pair["paper_gamma"] == 1.36
    assert "split.csv" not in json.loads((out / "run.json").read_text())["files"]   # the file's own split


def test_reproduce_iemocap_refuses_unsafe_pickle(tmp_path, capsys):
    marker = tmp_path / "pwned"
    write_unsafe_pickle(tmp_path / "evil.pkl", marker)
    assert main(["reproduce", "iemocap", "--data", str(tmp_path / "evil.pkl"), *FAST,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and "Traceback" not in err and not marker.exists()
    assert not (tmp_path / "run").exists()          # failed before training: no run folder left behind


@pytest.mark.parametrize("args, message", [
    (["--ratios", "0"], "outside (0, 1]"),
    (["--ratios", "1.5"], "outside (0, 1]"),
    (["--subsets", "text+smell"], "unknown modality 'smell'"),
    (["--probe-epochs", "9"], "probe_epochs must lie in 1..epochs"),
])
def test_run_bad_arguments(tmp_path, capsys, args, message):
    _user_npz(tmp_path / "d.npz")
    assert main(["run", "--cv", "0", "--data", str(tmp_path / "d.npz"), *FAST, "--out", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_data_path_makes_no_run_folder(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--cv", "0", "--data", str(tmp_path / "nothere.npz"), "--out", str(out), "--quiet"]) == 2
    assert "no such file or folder" in capsys.readouterr().err and not out.exists()


def test_run_regression_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 5)), rng.normal(size=(400, 3))
    np.savez(tmp_path / "reg.npz", a=a, b=b, y=a[:, 0] + 0.5 * b[:, 1])
    out = tmp_path / "run"
    assert main(["run", "--cv", "0", "--data", str(tmp_path / "reg.npz"), "--task", "regression", "--ratios", "1",
                 "--seeds", "2", "--epochs", "20", "--hidden", "8", "--quiet", "--out", str(out)]) == 0
    assert "test MSE" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    full = next(c for c in summary["cells"] if c["subset"] == "a+b")
    single = next(c for c in summary["cells"] if c["subset"] == "a")
    assert full["test_mse_mean"] < single["test_mse_mean"]     # b carries part of y
    pair = next(p for p in summary["pairs"] if p["N"] == "a")
    assert pair["mse_diff_mean"] < 0 and pair["gamma"] < 0 and "gamma_mse_raw" in pair and "gamma_acc" not in pair
    assert pair["verdict"] == "helps" and pair["latent"] == "better"
